"""A few cases get every counterfactual row from their own engine call (``engine/lowered_cases.py``).

The counterfactual scores need, for each positive finding of a case, the case with that finding observed normal
(a lowered case). Quickscore reads it off the case's signed terms. Two kinds were missing from a single call and
cost it a second engine call, as much again as the first:

- a finding with at most two causes the case does not observe enters as telescoped positive terms, none of them
  its normal level (emotional stress: one cause);
- a lowered sum can cancel past double precision's budget where its case does not (the complaint itself, when
  one cause explains it well).

A call of fewer than ``FEW_CASES`` cases now computes the first as extra cases of the same call and the second
again in extended precision. Values are checked against pyAgrum on the evidence with the finding observed normal.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.counterfactual import counterfactual_findings
from bayesdx.engine import quickscore
from bayesdx.evidence import likelihoods_from_evidence
from bayesdx.posteriors import add_presenting

ATOL = 1e-9

# dev006 of evaluation/vignettes/dev.csv: emotional stress (one cause, stress_anxiety) is telescoped
STRESS = {
    "twitch_appearance": "fine_flicker",
    "rhythm": "arrhythmic",
    "frequency": "occasional",
    "duration": "days_to_weeks",
    "both_legs": "yes",
    "emotional_stress": "yes",
    "numbness_tingling": "no",
    "muscle_weakness": "no",
    "muscle_wasting": "no",
    "age_group": "adult",
    "sex": "female",
}
# dev022: calf flicker with painful cramps; the complaint's lowered sum cancels past double precision's budget
CRAMPS = {
    "twitch_appearance": "fine_flicker",
    "frequency": "occasional",
    "duration": "over_3_months",
    "worse_at_rest_or_night": "yes",
    "painful_cramps": "yes",
    "numbness_tingling": "no",
    "age_group": "older_adult",
    "sex": "female",
}


def _engine_calls(model: bayesdx.Model, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of cases of every engine call."""
    _ = model.prior_probabilities  # computed by the engine once per model, on first use
    calls: list[int] = []
    posterior = type(model.engine).posterior

    def counting(self, likelihoods, targets, n, **kwargs):
        calls.append(n)
        return posterior(self, likelihoods, targets, n, **kwargs)

    monkeypatch.setattr(type(model.engine), "posterior", counting)
    return calls


def _lowered(model: bayesdx.Model, case: dict[str, str]):
    lik = add_presenting(model, likelihoods_from_evidence(model, [case]), 1)
    return model.engine.posterior(lik, model.causes, 1, lower=counterfactual_findings(model)).lowered


def _check_against_pyagrum(model: bayesdx.Model, to_pyagrum, case: dict[str, str], finding: str, lowered) -> None:
    import pyagrum as gum

    assert lowered.available[0], finding
    net = model.compiled
    normal = model.states[finding][net.decompositions[net.index()[finding]].order[0]]
    evidence = {**model.presenting, **case, finding: normal}
    ie = gum.LazyPropagation(to_pyagrum(model.network))
    ie.setEvidence({u: model.answer_vector(u, a).tolist() for u, a in evidence.items()})
    ie.makeInference()
    assert lowered.log_evidence[0] == pytest.approx(np.log(ie.evidenceProbability()), abs=ATOL)
    for c in model.causes:
        assert_allclose(lowered.marginals[c][0], ie.posterior(c).toarray(), atol=ATOL, rtol=0, err_msg=c)


@pytest.mark.parametrize(("case", "finding"), [(STRESS, "emotional_stress"), (CRAMPS, "leg_twitching")])
def test_a_single_case_gets_every_counterfactual_row_from_its_own_engine_call(bundled_model, to_pyagrum, monkeypatch, case, finding):
    """emotional_stress (telescoped: an extra case) and the complaint of the cramps vignette (its lowered sum in
    extended precision) are given by the ranking's call itself, equal to pyAgrum with the finding observed
    normal; ``rank_causes`` then asks the engine once. Without them (``FEW_CASES = 0``) the same row is not
    given and a second engine call asks for it."""
    _check_against_pyagrum(bundled_model, to_pyagrum, case, finding, _lowered(bundled_model, case)[finding])
    calls = _engine_calls(bundled_model, monkeypatch)
    bayesdx.rank_causes(case, model=bundled_model, ranking="expected_disablement", next_steps=False)
    assert calls == [1]
    monkeypatch.setattr(quickscore, "FEW_CASES", 0)
    monkeypatch.setattr("bayesdx.engine.engine.FEW_CASES", 0)
    assert not _lowered(bundled_model, case)[finding].available[0]  # the control: the row was missing before
    calls.clear()
    bayesdx.rank_causes(case, model=bundled_model, ranking="expected_disablement", next_steps=False)
    assert calls[0] == 1
    assert len(calls) == 2


def test_extra_cases_leave_the_cases_themselves_unchanged(bundled_model):
    """The extra cases are appended and taken off again: each case's posterior and evidence probability are
    those of the case computed alone, without ``lower``, and the scores the same as a batch of 16 cases
    (at ``FEW_CASES`` the extra cases are not made)."""
    cases = [STRESS, CRAMPS, {**STRESS, "high_caffeine_intake": "yes", "recent_overexertion": "yes"}]
    model = bundled_model
    lik = add_presenting(model, likelihoods_from_evidence(model, cases), len(cases))
    with_lower = model.engine.posterior(lik, model.causes, len(cases), lower=counterfactual_findings(model))
    plain = model.engine.posterior(lik, model.causes, len(cases))
    assert with_lower.log_evidence.shape == (3,)
    assert_allclose(with_lower.log_evidence, plain.log_evidence, rtol=1e-13, atol=0)
    for c in model.causes:
        assert with_lower.marginals[c].shape == (3, 2)
        assert_allclose(with_lower.marginals[c], plain.marginals[c], atol=1e-13, rtol=0)
    for low in with_lower.lowered.values():
        assert low.available.shape == (3,)
    few = bayesdx.score(cases, model=model, ranking="expected_disablement", top_k=5)
    many = bayesdx.score(cases * 6, model=model, ranking="expected_disablement", top_k=5).iloc[:3]
    numbers = few.select_dtypes("number").columns
    assert_allclose(few[numbers].to_numpy(float), many[numbers].to_numpy(float), atol=1e-12, rtol=0)


def test_an_impossible_extra_lowered_case_is_not_available():
    """A cause observed present that always raises ``f0`` (link probability one) makes ``f0`` at its normal level
    impossible. ``f0`` has one free parent here (telescoped), so its lowered case is an extra case; coming back
    impossible, it is not available (no posterior to give), as in Quickscore and the sweep, while ``f1``'s is,
    and equals the brute force."""
    from test_sweep import _brute_force, _network

    from bayesdx.inference import InferenceEngine

    always_yes = [[[0.0, 1.0], [1.0, 1.0]], [[0.4, 1.0], [1.0, 1.0]]]
    sometimes = [[[0.3, 1.0], [1.0, 1.0]], [[0.6, 1.0], [1.0, 1.0]]]
    net = _network(
        ["c0", "c1", "f0", "f1"],
        [("present", "absent")] * 2 + [("yes", "no")] * 2,
        [(), (), (0, 1), (0, 1)],
        [[0.3, 0.7], [0.2, 0.8]],
        [((1, 0), [0.9, 1.0], always_yes), ((1, 0), [0.9, 1.0], sometimes)],
    )
    yes = np.array([[1.0, 0.0]])
    lik = {"c0": np.array([[1.0, 0.0]]), "f0": yes, "f1": yes}
    post = InferenceEngine(net).posterior(lik, ["c1"], 1, lower=["f0", "f1"])
    assert not post.impossible[0]
    assert not post.lowered["f0"].available[0]
    assert post.lowered["f1"].available[0]
    log_z, marginals = _brute_force(net, {**lik, "f1": np.array([[0.0, 1.0]])}, ["c1"])
    assert_allclose(post.lowered["f1"].log_evidence, log_z, rtol=0, atol=ATOL)
    assert_allclose(post.lowered["f1"].marginals["c1"], marginals["c1"], atol=ATOL, rtol=0)
