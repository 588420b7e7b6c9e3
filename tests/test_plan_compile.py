"""The contraction compiler gives exactly the programs of its straightforward reference.

:func:`bayesdx.engine.plan.compile_program` keeps its elimination costs in a heap and its per-step
bookkeeping incremental; ``plan_reference.compile_program_reference`` is the compiler as it was before
(a ``min`` over every index at each pick). Equal programs (operands, elimination order, steps, tapes)
mean every exactness result obtained with the old compiler carries over.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from plan_reference import compile_program_reference
from references import example_network

import bayesdx
from bayesdx.engine import CompiledNetwork, plan
from bayesdx.engine.plan import Program, ProgramKey, compile_program
from bayesdx.exceptions import ModelTooLargeError

SEED = 20261124


@pytest.fixture(autouse=True)
def _signed_decompositions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference predates the non-negative decomposition of small noisy CPDs (plan.POSITIVE_PARENTS): both
    compilers compile the signed one here (the choice of operands is tested in tests/test_rounding_bound.py)."""
    monkeypatch.setattr(plan, "POSITIVE_PARENTS", -1)


EXAMPLES = ("child", "alarm", "hepar2", "win95pts", "andes", "pathfinder")  # pathfinder: one index in ~100 tables


@pytest.fixture(scope="module")
def example_networks() -> dict[str, CompiledNetwork]:
    return {name: CompiledNetwork.from_pgmpy(example_network(name)) for name in EXAMPLES}


def random_keys(net: CompiledNetwork, n: int, rng: np.random.Generator) -> list[ProgramKey]:
    """``n`` evidence patterns: a few to most variables carrying evidence, some observed in one state in
    every case, and (where the network has noisy CPDs) some CPDs decomposed, some observed at their lowest
    level."""
    n_vars = len(net.variables)
    noisy = [v for v, d in enumerate(net.decompositions or ()) if d is not None]
    keys: list[ProgramKey] = []
    for k in range(n):
        fraction = (0.02, 0.1, 0.3, 0.6)[k % 4]
        carried = {int(v) for v in np.flatnonzero(rng.random(n_vars) < fraction)} or {int(rng.integers(n_vars))}
        hard = {v for v in carried if rng.random() < 0.4}
        decomposed = {v for v in noisy if rng.random() < 0.7}
        lowest = {v for v in decomposed & carried if rng.random() < 0.5}
        keys.append((frozenset(carried), frozenset(decomposed), frozenset(lowest), frozenset(hard)))
    return keys


def assert_same_program(net: CompiledNetwork, key: ProgramKey, **options: Any) -> None:
    try:
        expected: Program | ModelTooLargeError = compile_program_reference(net, key, **options)
    except ModelTooLargeError as error:
        expected = error
    if isinstance(expected, ModelTooLargeError):
        with pytest.raises(ModelTooLargeError, match="variables carrying evidence") as raised:
            compile_program(net, key, **options)
        assert str(raised.value) == str(expected)
        return
    program = compile_program(net, key, **options)
    assert program.steps == expected.steps  # the elimination order, step by step
    assert repr(program) == repr(expected)
    assert program == expected  # operands, sources, tapes, sizes


@pytest.mark.parametrize("name", EXAMPLES)
def test_programs_match_the_reference_on_random_keys_of_pgmpy_networks(name: str, example_networks: dict[str, CompiledNetwork]) -> None:
    net = example_networks[name]
    rng = np.random.default_rng(SEED)
    for key in random_keys(net, 12 if name == "andes" else 40, rng):
        assert_same_program(net, key)


def test_programs_match_the_reference_on_random_keys_of_the_bundled_model(bundled_model: bayesdx.Model) -> None:
    """The bundled model's noisy CPDs: decomposed factors, factors at the lowest level, hidden level indices."""
    net = bundled_model.compiled
    assert net.decompositions is not None
    assert any(d is not None for d in net.decompositions)
    for key in random_keys(net, 60, np.random.default_rng(SEED)):
        assert_same_program(net, key)


def test_programs_the_engine_compiles_match_the_reference(
    bundled_model: bayesdx.Model, child_model: bayesdx.Model, rng: np.random.Generator
) -> None:
    """The keys a ranking really compiles (after ranking a few sampled cases), against the reference."""
    for model in (bundled_model, child_model):
        findings = list(model.findings)[:12]
        for _ in range(6):
            chosen = rng.choice(len(findings), size=min(4, len(findings)), replace=False)
            case = {findings[k]: model.states[findings[k]][int(rng.integers(len(model.states[findings[k]])))] for k in chosen}
            bayesdx.rank_causes(case, model=model, next_steps=False)
        engine = model.engine
        assert engine._programs
        for key in list(engine._programs):
            assert_same_program(model.compiled, key, optimize=engine.optimize, max_entries=engine.max_entries)


@pytest.mark.parametrize("optimize", ["greedy", "optimal"])
def test_programs_with_an_opt_einsum_path_match_the_reference(optimize: str, example_networks: dict[str, CompiledNetwork]) -> None:
    """The steps built from an opt_einsum path (only the per-step bookkeeping is shared)."""
    net = example_networks["child"]
    keys = random_keys(net, 12, np.random.default_rng(SEED))
    for key in keys if optimize == "greedy" else [k for k in keys if len(k[0]) <= 2]:
        assert_same_program(net, key, optimize=optimize)


def test_a_too_large_program_raises_as_the_reference_does(example_networks: dict[str, CompiledNetwork]) -> None:
    net = example_networks["win95pts"]
    for key in random_keys(net, 8, np.random.default_rng(SEED)):
        assert_same_program(net, key, max_entries=8)
