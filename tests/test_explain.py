"""Explanations (src/bayesdx/explain.py): the weight of evidence of each observed item for one cause.

Reference numbers come from pgmpy's VariableElimination. What explain.py defines, and what is checked:
the items are the case's evidence as used (``Diagnosis.evidence``, which for the bundled model includes
the presenting complaint leg_twitching = yes) in the model's variable order; the first prefix is the empty
evidence set, so ``prior_probability`` is the cause's probability with no evidence at all (not
``Diagnosis.prior_probabilities``, which is conditioned on the presenting complaint), and each item's
log-likelihood ratio is ``logit P(h | items up to it) - logit P(h | items before it)``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import pytest
from numpy.testing import assert_allclose

import bayesdx

ALS_CASE = {
    "muscle_weakness": "yes",
    "muscle_wasting": "yes",
    "twitch_appearance": "fine_flicker",
    "frequency": "daily",
    "duration": "over_3_months",
    "age_group": "older_adult",
}
SEIZURE = {"loss_of_consciousness": "yes", "twitch_appearance": "visible_jerk", "fever": "no"}
EXERTION_THEN_CHRONIC = {"recent_overexertion": "yes", "duration": "over_3_months", "frequency": "daily"}


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


@pytest.fixture(scope="module")
def model(bundled_model: bayesdx.Model) -> bayesdx.Model:
    return bundled_model


def _ve_probability(ve: Any, node: str, state: str, evidence: Mapping[str, str]) -> float:
    if node in evidence:
        return 1.0 if evidence[node] == state else 0.0
    factor = ve.query([node], evidence=dict(evidence), joint=False, show_progress=False)[node]
    return float(factor.get_value(**{node: state}))


def _prefixes_by_ve(ve: Any, model: bayesdx.Model, evidence: Mapping[str, str], cause: str) -> list[float]:
    """P(cause | the first k items) for k = 0..n, items in the model's variable order, by VariableElimination."""
    hyp = next(h for h in model.hypotheses if h.id == cause)
    order = [v for v in model.variables if v in evidence]
    return [_ve_probability(ve, hyp.node, hyp.state, {v: evidence[v] for v in order[:k]}) for k in range(len(order) + 1)]


CASES = [(ALS_CASE, "als"), (ALS_CASE, "stress_anxiety"), (SEIZURE, "epilepsy"), (EXERTION_THEN_CHRONIC, "overexertion")]


@pytest.mark.parametrize(("evidence", "cause"), CASES, ids=[f"{c}" for _, c in CASES])
def test_every_prefix_posterior_equals_variable_elimination_on_the_bundled_model(model, bundled_ve, evidence, cause):
    dx = bayesdx.rank_causes(evidence, model=model, next_steps=False)
    explanation = dx.explain(cause)
    reference = _prefixes_by_ve(bundled_ve, model, dx.evidence, cause)
    assert [c.variable for c in explanation.contributions] == [v for v in model.variables if v in dx.evidence]
    got = [explanation.prior_probability] + [c.probability_after for c in explanation.contributions]
    assert_allclose(got, reference, rtol=0, atol=1e-9)
    assert_allclose([c.probability_before for c in explanation.contributions], reference[:-1], rtol=0, atol=1e-9)
    assert explanation.posterior_probability == pytest.approx(dx.probability(cause), abs=1e-12)


@pytest.mark.parametrize(("evidence", "cause"), CASES, ids=[f"{c}" for _, c in CASES])
def test_contributions_sum_to_the_change_in_log_odds_from_variable_elimination(model, bundled_ve, evidence, cause):
    dx = bayesdx.rank_causes(evidence, model=model, next_steps=False)
    explanation = dx.explain(cause)
    reference = _prefixes_by_ve(bundled_ve, model, dx.evidence, cause)
    change = _logit(reference[-1]) - _logit(reference[0])
    total = math.fsum(c.log_likelihood_ratio for c in explanation.contributions)
    assert total == pytest.approx(explanation.log_odds_change, abs=1e-9)
    assert explanation.log_odds_change == pytest.approx(change, abs=1e-9)
    for k, c in enumerate(explanation.contributions):
        assert c.log_likelihood_ratio == pytest.approx(_logit(reference[k + 1]) - _logit(reference[k]), abs=1e-9)


def test_the_prior_is_the_probability_with_no_evidence_at_all(model, bundled_ve):
    """The first prefix is empty, so the presenting complaint is an item of its own (it supports every
    cause: each one can produce twitching in the leg)."""
    dx = bayesdx.rank_causes({}, model=model, next_steps=False)
    for cause in ("overexertion", "als"):
        explanation = dx.explain(cause)
        assert explanation.prior_probability == pytest.approx(_ve_probability(bundled_ve, cause, "present", {}), abs=1e-12)
        (item,) = explanation.contributions
        assert (item.variable, item.state) == ("leg_twitching", "yes")
        assert item.log_likelihood_ratio > 0
        assert explanation.posterior_probability == pytest.approx(dx.prior_probabilities[cause], abs=1e-12)


@pytest.mark.parametrize(("evidence", "cause"), CASES, ids=[f"{c}" for _, c in CASES])
def test_supporting_items_are_positive_and_conflicting_negative_strongest_first(model, evidence, cause):
    explanation = bayesdx.rank_causes(evidence, model=model, next_steps=False).explain(cause)
    support = [c.log_likelihood_ratio for c in explanation.supporting]
    conflict = [c.log_likelihood_ratio for c in explanation.conflicting]
    assert all(x > 0 for x in support)
    assert all(x < 0 for x in conflict)
    assert support == sorted(support, reverse=True)
    assert conflict == sorted(conflict)
    zero = [c for c in explanation.contributions if c.log_likelihood_ratio == 0]
    assert len(support) + len(conflict) + len(zero) == len(explanation.contributions)
    frame = explanation.to_frame()
    assert list(frame.columns) == ["variable", "state", "log_likelihood_ratio", "probability_before", "probability_after"]
    assert len(frame) == len(explanation.contributions)


def test_wasting_supports_als_and_stress_is_not_supported_by_it(model):
    """Clinical: fasciculations with weakness and wasting are the picture of motor neuron disease (NICE NG42)."""
    dx = bayesdx.rank_causes(ALS_CASE, model=model, next_steps=False)
    als = {c.variable for c in dx.explain("als").supporting}
    assert {"muscle_weakness", "muscle_wasting", "duration", "age_group"} <= als
    stress = dx.explain("stress_anxiety")
    assert "muscle_wasting" not in {c.variable for c in stress.supporting}


def test_a_chronic_course_conflicts_with_overexertion(model):
    """Article: "However, this appearance should disappear completely on its own after a few hours. If this
    is not the case, then a visit to the doctor should be considered." Recent exertion supports
    overexertion; daily twitching for more than three months counts against it."""
    explanation = bayesdx.rank_causes(EXERTION_THEN_CHRONIC, model=model, next_steps=False).explain("overexertion")
    assert "recent_overexertion" in {c.variable for c in explanation.supporting}
    assert "duration" in {c.variable for c in explanation.conflicting}
    # frequency alone is near-neutral since the 0.02 misreport floor (a noisy-MAX cause can only raise the
    # level), but the course as a whole still counts against overexertion
    course = sum(c.log_likelihood_ratio for c in explanation.contributions if c.variable in ("duration", "frequency"))
    assert course < 0


def test_an_observed_cause_has_posterior_one_and_infinite_log_odds_change(model):
    dx = bayesdx.rank_causes({"diabetes_mellitus": "present", "numbness_tingling": "yes"}, model=model, next_steps=False)
    explanation = dx.explain("diabetes_mellitus")
    assert explanation.posterior_probability == 1.0
    assert explanation.log_odds_change == math.inf
    assert explanation.contributions[0].variable == "diabetes_mellitus"  # causes come first in model order


def test_explanations_on_hepar2_match_variable_elimination_for_a_multi_state_hypothesis(hepar2_model, hepar2_ve):
    evidence = {"fatigue": "present", "jaundice": "present", "ggtp": "a640_70"}
    assert evidence["ggtp"] in hepar2_model.states["ggtp"]
    dx = bayesdx.rank_causes(evidence, model=hepar2_model, next_steps=False)
    for cause in ("Cirrhosis=decompensate", "PBC"):
        explanation = dx.explain(cause)
        reference = _prefixes_by_ve(hepar2_ve, hepar2_model, dx.evidence, cause)
        got = [explanation.prior_probability] + [c.probability_after for c in explanation.contributions]
        assert_allclose(got, reference, rtol=0, atol=1e-9)
        total = math.fsum(c.log_likelihood_ratio for c in explanation.contributions)
        assert total == pytest.approx(_logit(reference[-1]) - _logit(reference[0]), abs=1e-9)


def test_an_unknown_cause_raises_key_error_listing_the_valid_ids(model):
    dx = bayesdx.rank_causes(ALS_CASE, model=model, next_steps=False)
    message = "'alz' is not a cause hypothesis of model 'leg_twitch'. Valid ids are 'overexertion', 'stress_anxiety'"
    with pytest.raises(KeyError, match=re.escape(message)):
        dx.explain("alz")
    with pytest.raises(KeyError, match=re.escape("'muscle_wasting' is not a cause hypothesis of model 'leg_twitch'")):
        dx.explain("muscle_wasting")


def test_a_diagnosis_without_its_model_cannot_be_explained(model):
    dx = dataclasses.replace(bayesdx.rank_causes(ALS_CASE, model=model, next_steps=False), model=None)
    with pytest.raises(ValueError, match=re.escape("This Diagnosis does not carry its model, so it cannot be explained.")):
        dx.explain("als")
