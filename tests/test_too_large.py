"""Networks too large for exact inference are refused before anything is allocated (issue 7)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from bayesdx.exceptions import ModelTooLargeError
from bayesdx.inference import CompiledNetwork, InferenceEngine


def grid(side: int, rng: np.random.Generator) -> CompiledNetwork:
    """A side x side grid of binary variables (parents: upper and left neighbours); its treewidth is ``side``."""
    names = [f"g{r}_{c}" for r in range(side) for c in range(side)]
    parents, tables = [], []
    for r in range(side):
        for c in range(side):
            pa = tuple(p for p, ok in (((r - 1) * side + c, r > 0), (r * side + c - 1, c > 0)) if ok)
            p = rng.uniform(0.05, 0.95, size=(2,) * len(pa))
            parents.append(pa)
            tables.append(np.stack([p, 1 - p]))
    return CompiledNetwork(tuple(names), (("0", "1"),) * len(names), tuple(parents), tuple(tables))


def test_a_grid_of_treewidth_32_raises_model_too_large_naming_the_table_size_before_allocating(rng):
    side = 32
    engine = InferenceEngine(grid(side, rng))
    bottom = {f"g{side - 1}_{c}": np.array([[1.0, 0.0]]) for c in range(side)}
    top = [f"g0_{c}" for c in range(side)]
    tracemalloc.start()
    with pytest.raises(ModelTooLargeError, match=r"largest intermediate table would hold [0-9.e+]+ entries") as info:
        engine.posterior(bottom, top, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.largest_intermediate >= 2**side  # the grid's treewidth is its side
    assert info.value.limit == engine.max_entries
    assert peak < 64 * 2**20  # found from the contraction order, not by trying to allocate


def test_a_small_grid_is_answered_exactly_and_consistently(rng):
    # the same engine answers when the tables fit: P(top-left | bottom-left) sums to one and log P(e) < 0
    engine = InferenceEngine(grid(4, rng))
    post = engine.posterior({"g3_0": np.array([[1.0, 0.0]])}, ["g0_0"], 1)
    assert post.marginals["g0_0"].sum() == pytest.approx(1.0, abs=1e-12)
    assert post.log_evidence[0] < 0
