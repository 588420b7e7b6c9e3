"""Variables observed in every case of a batch are sliced out of the contraction.

Each operand holding such a variable is taken at the case's own state (a per-case operand without that
index), so nothing is summed over it; its likelihood at that state multiplies ``P(e)``. Checked against
pgmpy's VariableElimination and against the same cases computed with the variable left in the contraction.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose

from bayesdx.engine import engine as engine_module
from bayesdx.inference import InferenceEngine


def _onehot(states: list[int], n_states: int, value: float = 1.0) -> np.ndarray:
    out = np.zeros((len(states), n_states))
    out[np.arange(len(states)), states] = value
    return out


def test_a_variable_observed_in_every_case_leaves_the_contraction_and_answers_match_variable_elimination(
    random_small_network, random_small_model, ve_marginal_reference, monkeypatch
):
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # no shared all-variable contraction for small batches
    engine = InferenceEngine(random_small_model.compiled)
    net = engine.network
    observed = [v for v in net.variables if v.startswith("f")][:2]
    n_states = [len(net.states[net.index()[v]]) for v in observed]
    combos = [(a, b) for a in range(n_states[0]) for b in range(n_states[1])]
    lik = {v: _onehot([c[k] for c in combos], n_states[k]) for k, v in enumerate(observed)}
    post = engine.posterior(lik, ["c0", "c1"], len(combos))
    program = next(reversed(engine._programs.values()))
    hard = {net.index()[v] for v in observed}
    assert not hard & {i for op in program.operands for i in op}  # sliced out of every operand
    for k, combo in enumerate(combos):
        evidence = {v: net.states[net.index()[v]][s] for v, s in zip(observed, combo, strict=True)}
        for cause in ("c0", "c1"):
            expected = ve_marginal_reference(random_small_network, cause, evidence, net.states[net.index()[cause]])
            assert_allclose(post.marginals[cause][k], expected, atol=1e-12, rtol=0)


def test_a_single_nonzero_likelihood_other_than_one_scales_the_evidence_probability(random_small_model, monkeypatch):
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)
    engine = InferenceEngine(random_small_model.compiled)
    net = engine.network
    var = next(v for v in net.variables if v.startswith("f"))
    size = len(net.states[net.index()[var]])
    sliced = engine.posterior({var: _onehot([0, 1], size, 0.25)}, ["c0", "c1"], 2)
    # the same cases next to an unobserved one: the variable is then not sliced
    kept = engine.posterior({var: np.vstack([_onehot([0, 1], size), np.ones((1, size))])}, ["c0", "c1"], 3)
    assert_allclose(sliced.log_evidence, kept.log_evidence[:2] + math.log(0.25), rtol=0, atol=1e-12)
    for cause in ("c0", "c1"):
        assert_allclose(sliced.marginals[cause], kept.marginals[cause][:2], rtol=0, atol=1e-12)


def test_small_batches_share_one_contraction_carrying_every_variable(
    random_small_network, random_small_model, ve_marginal_reference, evidence_sampler, rng
):
    """A few cases at a time (an interactive call) reuse one compiled program whatever their evidence."""
    engine = InferenceEngine(random_small_model.compiled)
    net = engine.network
    cases = evidence_sampler(random_small_network, 12, rng, observe=0.5, exclude=("c0", "c1"))
    for evidence in cases:
        lik = {}
        for v, state in evidence.items():
            row = np.zeros((1, len(net.states[net.index()[v]])))
            row[0, net.states[net.index()[v]].index(state)] = 1.0
            lik[v] = row
        post = engine.posterior(lik, ["c0", "c1"], 1)
        for cause in ("c0", "c1"):
            expected = ve_marginal_reference(random_small_network, cause, evidence, net.states[net.index()[cause]])
            assert_allclose(post.marginals[cause][0], expected, atol=1e-12, rtol=0)
    assert len({frozenset(e) for e in cases}) > 1  # different observed variables ...
    assert len(engine._programs) == 1  # ... one program
