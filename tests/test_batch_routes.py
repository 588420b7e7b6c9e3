"""How a batch is split (src/bayesdx/engine/engine.py, engine/patterns.py), issue 16: no batch slower per case
than its single calls. Every route is checked against pgmpy's VariableElimination on child."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.engine import engine as engine_module
from bayesdx.engine import patterns as patterns_module
from bayesdx.evidence import likelihoods_from_evidence

ATOL = 1e-9


def _posterior(model: bayesdx.Model, cases: list[dict[str, str]]):
    lik = likelihoods_from_evidence(model, cases)
    return model.engine.posterior(lik, model.causes, len(cases))


def _check(model, network, cases, post, ve_reference):
    for k, case in enumerate(cases):
        expected = ve_reference(network, model, case)
        got = {h.id: post.marginals[h.node][k, model.states[h.node].index(h.state)] for h in model.hypotheses}
        assert_allclose([got[h] for h in expected], list(expected.values()), atol=ATOL, rtol=0, err_msg=str(case))


@pytest.mark.parametrize(("ratio", "route"), [(0.0, "patterns"), (np.inf, "contraction")])
def test_a_batch_with_few_patterns_is_split_when_the_joint_program_builds_more(
    child_network, ve_reference, evidence_sampler, rng, monkeypatch, ratio, route
):
    """With at most FEW_PATTERNS patterns, the joint program's tables are compared with the patterns' own
    programs' (FEW_PATTERNS_RATIO); both outcomes are exact."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # no universal program for these cases
    monkeypatch.setattr(patterns_module, "SPLIT_WORTH_ENTRIES", 0)  # every joint program is worth comparing
    monkeypatch.setattr(patterns_module, "FEW_PATTERNS_RATIO", ratio)
    model = bayesdx.load_model(child_network, causes=["Disease"])
    base = evidence_sampler(child_network, 3, rng, observe=0.3, exclude=["Disease"])
    cases = [base[k % 3] for k in range(24)]  # three patterns (at most), 24 cases: not a small batch
    post = _posterior(model, cases)
    assert post.route == route
    _check(model, child_network, cases, post, ve_reference)


def test_a_few_cases_go_by_pattern_without_compiling_the_joint_program(child_network, ve_reference, evidence_sampler, rng, monkeypatch):
    """Fewer than MIN_CHUNK cases whose joint program is not compiled: one program per pattern, the programs
    their single calls use (compiling the joint program first made such batches slower than single calls)."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)
    model = bayesdx.load_model(child_network, causes=["Disease"])
    cases = evidence_sampler(child_network, 5, rng, observe=0.3, exclude=["Disease"])
    post = _posterior(model, cases)
    assert post.route == "patterns"
    engine = model.engine
    index = engine.network.index()
    joint = frozenset(index[v] for case in cases for v in case) | {index["Disease"]}
    assert not any(key[0] == joint for key in engine._programs)  # the joint program was never compiled
    _check(model, child_network, cases, post, ve_reference)


@pytest.mark.parametrize(("narrowed", "runs"), [(False, 1), (True, 12)], ids=["small tables: one chunk", "large tables: one at a time"])
def test_a_few_cases_of_small_tables_run_as_one_chunk(child_network, ve_reference, evidence_sampler, rng, monkeypatch, narrowed, runs):
    """Twelve cases of one pattern: where their tables fit the chunk budget they run together (one at a time,
    each case paid every step's Python overhead: a vignette's own contraction for its 12 copies cost about 12
    times as much); where the tables narrow the chunk below MIN_CHUNK, too few cases to compare run one at a
    time. Both exact."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # no universal program for these cases
    model = bayesdx.load_model(child_network, causes=["Disease"])
    entries = []
    original = engine_module.run

    def counted(program, *args, **kwargs):
        entries.append(program.entries_per_case)
        return original(program, *args, **kwargs)

    monkeypatch.setattr(engine_module, "run", counted)
    cases = evidence_sampler(child_network, 1, rng, observe=0.4, exclude=["Disease"]) * 12
    _posterior(model, cases[:2])  # compiles the cases' program (one case alone takes the single-target route)
    assert entries
    assert 12 * entries[0] < engine_module.CHUNK_BUDGET_ENTRIES // engine_module.MIN_CHUNK
    if narrowed:  # a budget that fits the tables of 12 cases, fewer than MIN_CHUNK
        monkeypatch.setattr(engine_module, "CHUNK_BUDGET_ENTRIES", 12 * entries[0])
    entries.clear()
    post = _posterior(model, cases)
    assert post.route == "contraction"
    assert len(entries) == runs
    _check(model, child_network, cases, post, ve_reference)


@pytest.mark.parametrize("n", [3, 20])
def test_cases_without_evidence_share_one_program(child_network, ve_reference, monkeypatch, n):
    """No likelihoods at all (the prior): a few cases used to go 'by pattern' and failed to find their number
    (StopIteration); every case has the same, empty, pattern. Checked against pgmpy with no evidence."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # no universal program for these cases
    model = bayesdx.load_model(child_network, causes=["Disease"])
    post = model.engine.posterior({}, ["Disease"], n)
    _check(model, child_network, [{}] * n, post, ve_reference)
    assert_allclose(post.log_evidence, 0.0, atol=ATOL)


def test_cases_without_evidence_and_a_large_program(pathfinder_normalized):
    """Found in review: with no evidence and a program of more than SPLIT_WORTH_ENTRIES per case (22 targets on
    pathfinder), the batch-versus-pattern cost check also raised StopIteration. Checked against pgmpy."""
    from pgmpy.inference import VariableElimination

    nodes = list(pathfinder_normalized.nodes())
    targets = nodes[:: len(nodes) // 20]
    model = bayesdx.load_model(pathfinder_normalized, causes=nodes[:1])
    post = model.engine.posterior({}, targets, 3)
    expected = VariableElimination(pathfinder_normalized).query(targets[:3], joint=False, show_progress=False)
    for t in targets[:3]:
        order = [expected[t].state_names[t].index(s) for s in model.states[t]]
        assert_allclose(post.marginals[t], np.tile(expected[t].values[order], (3, 1)), atol=ATOL, rtol=0)
