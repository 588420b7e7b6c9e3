"""Property tests (hypothesis, derandomized) on the tiny model and on a generated random network.

The random network (``random_small_network`` in conftest.py) is built from the seeded generator; its
every CPD entry is positive, so no evidence is impossible. Cause ``c0`` is binary (present/absent),
``c1`` has three states and no normal state, so every state of ``c1`` is a hypothesis.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import bayesdx

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
ATOL = 1e-9
MISSING = (None, float("nan"), "")


def _draw_evidence(data, model, *, exclude=()):
    """Draw a random (possibly empty) evidence dict over the model's variables."""
    evidence = {}
    for v in model.variables:
        if v in exclude:
            continue
        if data.draw(st.booleans(), label=f"observe {v}"):
            evidence[v] = data.draw(st.sampled_from(model.states[v]), label=v)
    return evidence


def _node_totals(model, diagnosis):
    """Per cause node, the sum of its hypotheses' probabilities and whether they cover every state."""
    totals = {}
    for c in diagnosis.causes:
        totals[c.node] = totals.get(c.node, 0.0) + c.probability
    return totals


def _check_probabilities(model, dx):
    probs = np.array([c.probability for c in dx.causes])
    assert not np.isnan(probs).any()
    assert ((probs >= -ATOL) & (probs <= 1 + ATOL)).all()
    assert list(probs) == sorted(probs, reverse=True)  # most probable first
    assert math.isfinite(dx.log_evidence)
    assert dx.log_evidence <= ATOL
    totals = _node_totals(model, dx)
    for node in model.causes:
        ranked_all = len([h for h in model.hypotheses if h.node == node]) == len(model.states[node])
        if ranked_all:  # every state is a hypothesis: they sum to 1
            assert_allclose(totals[node], 1.0, atol=ATOL, rtol=0)
        else:  # the normal state is left out: the others sum to at most 1
            assert totals[node] <= 1 + ATOL


def _state_sums_to_one(model, evidence):
    """Every cause node's full marginal (normal state included) sums to 1, through the engine."""
    observed = dict(evidence.items())
    n = 1
    lik = {}
    for v, s in observed.items():
        arr = np.zeros((n, len(model.states[v])))
        arr[0, model.states[v].index(s)] = 1.0
        lik[v] = arr
    post = model.engine.posterior(lik, model.causes, n)
    for node in model.causes:
        assert_allclose(post.marginals[node].sum(axis=1), 1.0, atol=ATOL, rtol=0)
        assert ((post.marginals[node] >= -ATOL) & (post.marginals[node] <= 1 + ATOL)).all()


# ---------------------------------------------------------------------- bounds and sums
@SETTINGS
@given(data=st.data())
def test_tiny_posteriors_lie_in_unit_interval_and_state_probabilities_sum_to_one(tiny_model, data):
    evidence = _draw_evidence(data, tiny_model)
    _check_probabilities(tiny_model, bayesdx.rank_causes(evidence, model=tiny_model))
    _state_sums_to_one(tiny_model, evidence)


@SETTINGS
@given(data=st.data())
def test_random_network_posteriors_lie_in_unit_interval_and_state_probabilities_sum_to_one(random_small_model, data):
    evidence = _draw_evidence(data, random_small_model)
    dx = bayesdx.rank_causes(evidence, model=random_small_model)
    _check_probabilities(random_small_model, dx)
    _state_sums_to_one(random_small_model, evidence)
    if "c1" not in evidence:  # c1 has no normal state: its three hypotheses sum to 1
        assert_allclose(sum(dx.probability(f"c1={s}") for s in ("low", "mid", "high")), 1.0, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------- order and unobserved values
def _same(a, b):
    assert [c.id for c in a.causes] == [c.id for c in b.causes] or all(
        abs(x.probability - y.probability) <= 1e-12 for x, y in zip(a.causes, b.causes, strict=True)
    )
    pa = {c.id: c.probability for c in a.causes}
    pb = {c.id: c.probability for c in b.causes}
    assert_allclose([pa[i] for i in pb], list(pb.values()), atol=1e-12, rtol=0)
    assert_allclose(a.log_evidence, b.log_evidence, atol=1e-12, rtol=0)


@SETTINGS
@given(data=st.data())
def test_evidence_order_does_not_matter_on_tiny(tiny_model, data):
    evidence = _draw_evidence(data, tiny_model)
    shuffled = dict(data.draw(st.permutations(list(evidence.items())), label="order"))
    _same(bayesdx.rank_causes(evidence, model=tiny_model), bayesdx.rank_causes(shuffled, model=tiny_model))


@SETTINGS
@given(data=st.data())
def test_evidence_order_does_not_matter_on_random_network(random_small_model, data):
    evidence = _draw_evidence(data, random_small_model)
    shuffled = dict(data.draw(st.permutations(list(evidence.items())), label="order"))
    _same(bayesdx.rank_causes(evidence, model=random_small_model), bayesdx.rank_causes(shuffled, model=random_small_model))


@SETTINGS
@given(data=st.data())
def test_unobserved_entries_change_nothing_on_tiny(tiny_model, data):
    evidence = _draw_evidence(data, tiny_model)
    padded = dict(evidence)
    for v in tiny_model.variables:
        if v not in evidence and data.draw(st.booleans(), label=f"pad {v}"):
            padded[v] = data.draw(st.sampled_from(MISSING), label=f"missing {v}")
    order = data.draw(st.permutations(list(padded)), label="order")
    padded = {v: padded[v] for v in order}
    base, dx = bayesdx.rank_causes(evidence, model=tiny_model), bayesdx.rank_causes(padded, model=tiny_model)
    assert dx.evidence == base.evidence
    _same(base, dx)


@SETTINGS
@given(data=st.data())
def test_unobserved_entries_change_nothing_on_random_network(random_small_model, data):
    evidence = _draw_evidence(data, random_small_model)
    padded = dict(evidence)
    for v in random_small_model.variables:
        if v not in evidence and data.draw(st.booleans(), label=f"pad {v}"):
            padded[v] = data.draw(st.sampled_from(MISSING), label=f"missing {v}")
    base = bayesdx.rank_causes(evidence, model=random_small_model)
    _same(base, bayesdx.rank_causes(padded, model=random_small_model))


# ---------------------------------------------------------------------- evidence that favours a cause
@SETTINGS
@given(data=st.data())
def test_observing_fever_yes_never_lowers_flu_in_the_tiny_noisy_or_network(tiny_model, data):
    evidence = _draw_evidence(data, tiny_model, exclude=("fever", "flu"))
    before = bayesdx.rank_causes(evidence, model=tiny_model).probability("flu")
    after = bayesdx.rank_causes({**evidence, "fever": "yes"}, model=tiny_model).probability("flu")
    assert after >= before - 1e-12
    # and fever=no never raises it
    lower = bayesdx.rank_causes({**evidence, "fever": "no"}, model=tiny_model).probability("flu")
    assert lower <= before + 1e-12


@SETTINGS
@given(data=st.data())
def test_abnormal_thermometer_never_lowers_either_cause_in_the_tiny_network(tiny_model, data):
    evidence = _draw_evidence(data, tiny_model, exclude=("thermometer", "flu", "cold"))
    for cause in ("flu", "cold"):
        before = bayesdx.rank_causes(evidence, model=tiny_model).probability(cause)
        after = bayesdx.rank_causes({**evidence, "thermometer": "abnormal"}, model=tiny_model).probability(cause)
        assert after >= before - 1e-12


@SETTINGS
@given(data=st.data())
def test_evidence_raises_a_cause_exactly_when_it_is_likelier_under_the_cause_on_random_network(random_small_model, data):
    """Bayes: P(h | e, x) >= P(h | e) if and only if P(x | h, e) >= P(x | e).

    Both sides are computed by the engine from different queries, so the property ties them together.
    """
    model = random_small_model
    evidence = _draw_evidence(data, model, exclude=("c0",))
    candidates = [v for v in model.variables if v not in evidence and v != "c0"]
    if not candidates:
        return
    x = data.draw(st.sampled_from(candidates), label="new variable")
    state = data.draw(st.sampled_from(model.states[x]), label="its state")
    before = bayesdx.rank_causes(evidence, model=model).probability("c0")
    after = bayesdx.rank_causes({**evidence, x: state}, model=model).probability("c0")
    # P(x | c0 = present, e) = exp(log P(e, c0, x) - log P(e, c0)); P(x | e) likewise
    with_h = bayesdx.rank_causes({**evidence, "c0": "present"}, model=model).log_evidence
    with_h_x = bayesdx.rank_causes({**evidence, "c0": "present", x: state}, model=model).log_evidence
    p_x_given_h = math.exp(with_h_x - with_h)
    p_x = math.exp(
        bayesdx.rank_causes({**evidence, x: state}, model=model).log_evidence - bayesdx.rank_causes(evidence, model=model).log_evidence
    )
    assert_allclose(after, before * p_x_given_h / p_x, atol=ATOL, rtol=0)
    if p_x_given_h > p_x + 1e-9:
        assert after > before
    elif p_x_given_h < p_x - 1e-9:
        assert after < before


@SETTINGS
@given(data=st.data())
def test_law_of_total_probability_over_a_new_observation_on_random_network(random_small_model, data):
    """P(h | e) = sum over x of P(x | e) P(h | e, x)."""
    model = random_small_model
    evidence = _draw_evidence(data, model, exclude=("c0", "c1"))
    candidates = [v for v in model.variables if v not in evidence and v not in model.causes]
    if not candidates:
        return
    x = data.draw(st.sampled_from(candidates), label="new variable")
    base = bayesdx.rank_causes(evidence, model=model)
    mixed = {h.id: 0.0 for h in model.hypotheses}
    for state in model.states[x]:
        dx = bayesdx.rank_causes({**evidence, x: state}, model=model)
        weight = math.exp(dx.log_evidence - base.log_evidence)
        for c in dx.causes:
            mixed[c.id] += weight * c.probability
    assert_allclose([mixed[c.id] for c in base.causes], [c.probability for c in base.causes], atol=ATOL, rtol=0)


def test_random_network_matches_pgmpy_variable_elimination(random_small_model, random_small_network, ve_reference, evidence_sampler, rng):
    for case in evidence_sampler(random_small_network, 25, rng, observe=0.4):
        dx = bayesdx.rank_causes(case, model=random_small_model)
        expected = ve_reference(random_small_network, random_small_model, case)
        assert_allclose([dx.probability(i) for i in expected], list(expected.values()), atol=ATOL, rtol=0)
