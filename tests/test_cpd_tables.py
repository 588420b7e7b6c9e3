"""The full table of a noisy CPD (``bayesdx.cpd_tables.table_for``) against its definition, entry by entry.

The fact encoded: for a noisy-OR / noisy-MAX CPD, ``P(child <= level y | parents) = L(y) * prod_i C_i(y)``
(leak CDF times each parent's CDF in its state; Henrion 1989, Diez 1993), and the table holds the differences
of that CDF between levels. The table is built as an outer product grown one parent at a time (issue 16: the
bundled model's ``frequency`` and ``duration`` have 20 parents, 3 million entries each); here every entry
checked is recomputed in plain Python floats, one parent configuration at a time, in the same order of
products, so they must agree exactly.
"""

from __future__ import annotations

import itertools

import numpy as np

from bayesdx import _resources
from bayesdx.cpd_tables import noisy_parameters, table_for
from bayesdx.model_file import read_model_file


def _by_definition(noisy, config: tuple[int, ...]) -> list[float]:
    """``P(child = state | config)`` per child state, from the leak and parent CDFs in Python floats."""
    levels = len(noisy.order)
    cdf = []
    for y in range(levels):
        value = float(noisy.leak_cdf[y])
        for factor, state in zip(noisy.parent_cdfs, config, strict=True):
            value *= float(factor[state, y])
        cdf.append(value)
    pmf = [min(max(cdf[y] - (cdf[y - 1] if y else 0.0), 0.0), 1.0) for y in range(levels)]
    out = [0.0] * levels
    for level, state_index in enumerate(noisy.order):
        out[state_index] = pmf[level]
    return out


def test_noisy_tables_equal_their_definition_entry_by_entry():
    spec = read_model_file(_resources.data_dir("models") / "leg_twitch.toml")
    rng = np.random.default_rng(16)
    checked = set()
    for node, cpd in spec.cpds.items():
        if cpd["kind"] not in ("noisy_or", "noisy_max"):
            continue
        table = table_for(spec, node, prior=None)
        noisy = noisy_parameters(spec, node)
        cards = table.shape[1:]
        assert table.shape[0] == len(spec.nodes[node].states)
        if int(np.prod(cards)) <= 4096:
            configs = list(itertools.product(*[range(k) for k in cards]))
        else:  # 3 million entries: the corners and 300 drawn configurations
            configs = [tuple([0] * len(cards)), tuple(k - 1 for k in cards)]
            configs += [tuple(int(rng.integers(k)) for k in cards) for _ in range(300)]
        for config in configs:
            assert table[(slice(None), *config)].tolist() == _by_definition(noisy, config), (node, config)
        np.testing.assert_allclose(table.sum(axis=0), 1.0, atol=1e-12)
        checked.add((cpd["kind"], len(noisy.order), max(cards)))
    # what the model exercises: noisy-OR with binary and three-state parents, noisy-MAX with three levels
    assert {("noisy_or", 2, 2), ("noisy_or", 2, 3), ("noisy_max", 3, 2)} <= checked
