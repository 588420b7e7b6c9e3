"""Next steps a clinician would order (issue 13): harm-weighted value of information.

The seven scenarios of the issue, each with what must come first (the tests are the ordered tests: blood
tests, neurophysiology, imaging; the bedside neurological examination is an examination), and the harm-
weighted expected information gain checked against brute force with pgmpy VariableElimination.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pgmpy.inference import VariableElimination
from references import pgmpy_evidence

import bayesdx

BENIGN_TRIGGER_QUESTIONS = {"emotional_stress", "recent_overexertion", "high_caffeine_intake", "alcohol_or_drug_use"}

SCENARIOS = [
    # name, evidence, (which tests may come first, within the first n tests), next step must not be a benign trigger question
    (
        "afebrile adult first seizure",
        {"twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes", "fever": "no", "age_group": "adult"},
        ({"eeg", "mri", "ct_scan"}, 1),
        True,
    ),
    (
        "seizure, fever not asked",
        {"twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes", "age_group": "adult"},
        ({"eeg", "mri", "ct_scan"}, 2),
        False,
    ),
    (
        "fasciculations, weakness, wasting",
        {"twitch_appearance": "fine_flicker", "muscle_weakness": "yes", "muscle_wasting": "yes", "age_group": "older_adult"},
        ({"emg_ncs", "electromyography", "electroneurography"}, 2),
        True,
    ),
    (
        "numb feet and thirst",
        {"numbness_tingling": "yes", "both_legs": "yes", "thirst_frequent_urination": "yes", "age_group": "adult"},
        ({"blood_glucose_hba1c"}, 1),
        False,
    ),
    (
        "urge to move at night",
        {"urge_to_move": "yes", "worse_at_rest_or_night": "yes", "age_group": "adult", "sex": "female"},
        ({"blood_ferritin"}, 2),
        False,
    ),
    (
        "swollen joints, rest pain",
        {"joint_pain_swelling": "yes", "worse_at_rest_or_night": "yes", "age_group": "adult"},
        ({"inflammation_markers"}, 1),
        False,
    ),
    ("painful cramps, young adult", {"painful_cramps": "yes", "age_group": "adult"}, ({"blood_magnesium", "creatine_kinase"}, 2), False),
]


@pytest.mark.parametrize(("name", "evidence", "first", "no_trigger"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_the_recommended_tests_are_the_ones_a_clinician_would_order(bundled_model, name, evidence, first, no_trigger):
    dx = bayesdx.rank_causes(evidence, model=bundled_model)
    tests = [s.id for s in dx.next_steps if s.kind == "test"]
    allowed, within = first
    assert allowed & set(tests[:within]), (name, tests[:4])
    assert all(s.value > 0 for s in dx.next_steps if s.id in set(tests[:within]) & allowed)
    if no_trigger:
        assert dx.next_step is not None
        assert dx.next_step.id not in BENIGN_TRIGGER_QUESTIONS, (name, dx.next_step)


def test_the_neurological_examination_is_an_examination_not_an_ordered_test(bundled_model):
    dx = bayesdx.rank_causes({"painful_cramps": "yes"}, model=bundled_model)
    kinds = {s.id: s.kind for s in dx.next_steps}
    assert kinds["neurological_exam"] == "examination"
    assert kinds["electromyography"] == "test"
    assert kinds["fever"] == "question"


def _h2(p: float) -> float:
    return 0.0 if p <= 0.0 or p >= 1.0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def brute_force_weighted_eig(model: bayesdx.Model, evidence: Mapping[str, str], candidates: list[str]) -> dict[str, float]:
    """sum_h w_h [h2(P(h|e)) - sum_x P(x|e) h2(P(h|e,x))] by VariableElimination, w_h read from the model file."""
    import tomllib
    from pathlib import Path

    with (Path(__file__).resolve().parents[1] / "models" / "leg_twitch.toml").open("rb") as handle:
        harm = tomllib.load(handle)["harm"]
    weight = dict.fromkeys(model.causes, float(harm["default"]))
    for group in harm["groups"]:
        for c in group["causes"]:
            weight[c] = float(group["weight"])
    ve = VariableElimination(model.network)

    def query(variables: list[str], e: Mapping[str, str]):
        hard, virtual = pgmpy_evidence(model.network, e)
        return ve.query(variables=variables, evidence=hard, virtual_evidence=virtual, joint=False, show_progress=False)

    def s_w(e: Mapping[str, str]) -> float:
        factors = query(list(model.causes), e)
        return sum(weight[c] * _h2(float(factors[c].get_value(**{c: "present"}))) for c in model.causes)

    now = s_w(evidence)
    gains = {}
    for x in candidates:
        marginal = query([x], evidence)[x]
        expected = sum(
            float(p) * s_w({**evidence, x: state})
            for state, p in zip(marginal.state_names[x], np.asarray(marginal.values), strict=True)
            if p > 1e-12
        )
        gains[x] = now - expected
    return gains


@pytest.mark.parametrize("scenario", [0, 2])
def test_harm_weighted_eig_equals_brute_force(bundled_model, scenario):
    evidence = {**bundled_model.presenting, **SCENARIOS[scenario][1]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model)
    steps = {s.id: s for s in dx.next_steps}
    candidates = [
        c
        for c in ("eeg", "electromyography", "creatine_kinase", "fever", "emotional_stress", "numbness_tingling", "duration")
        if c not in evidence
    ]
    reference = brute_force_weighted_eig(bundled_model, evidence, candidates)
    assert_allclose([steps[c].expected_information_gain for c in candidates], [reference[c] for c in candidates], atol=1e-9, rtol=0)


def test_emg_and_nerve_conduction_as_one_study_valued_over_all_their_results(bundled_model):
    """The model file's [[studies]] emg_ncs: one candidate at its own cost whose outcomes are the 3 x 2
    combinations of the two tests; its EIG is checked against VariableElimination over those combinations."""
    evidence = {**bundled_model.presenting, **SCENARIOS[2][1]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model)
    steps = {s.id: s for s in dx.next_steps}
    assert steps["emg_ncs"].cost == 40.0
    assert steps["emg_ncs"].kind == "test"
    assert dx.next_step.id == "emg_ncs"
    # brute force: the harm-weighted entropy after each joint outcome
    import tomllib
    from pathlib import Path

    with (Path(__file__).resolve().parents[1] / "models" / "leg_twitch.toml").open("rb") as handle:
        harm = tomllib.load(handle)["harm"]
    weight = dict.fromkeys(bundled_model.causes, float(harm["default"]))
    for group in harm["groups"]:
        weight.update(dict.fromkeys(group["causes"], float(group["weight"])))
    ve = VariableElimination(bundled_model.network)

    def s_w(e):
        factors = ve.query(list(bundled_model.causes), evidence=e, joint=False, show_progress=False)
        return sum(weight[c] * _h2(float(factors[c].get_value(**{c: "present"}))) for c in bundled_model.causes)

    joint = ve.query(["electromyography", "electroneurography"], evidence=evidence, joint=True, show_progress=False)
    expected = 0.0
    for emg in bundled_model.states["electromyography"]:
        for ncs in bundled_model.states["electroneurography"]:
            p = float(joint.get_value(electromyography=emg, electroneurography=ncs))
            expected += p * s_w({**evidence, "electromyography": emg, "electroneurography": ncs})
    assert_allclose(steps["emg_ncs"].expected_information_gain, s_w(evidence) - expected, atol=1e-9, rtol=0)
    # once one of its tests is done, the study is no longer offered
    done = bayesdx.rank_causes({**evidence, "electromyography": "neurogenic"}, model=bundled_model)
    assert "emg_ncs" not in {s.id for s in done.next_steps}


def test_pursue_overrides_the_harm_weights(bundled_model):
    evidence = SCENARIOS[0][1]
    weighted = bayesdx.rank_causes(evidence, model=bundled_model)
    chosen = bayesdx.rank_causes(evidence, model=bundled_model, pursue=["epilepsy"])
    assert chosen.pursued == ("epilepsy",)
    assert len(weighted.pursued) == len(bundled_model.hypotheses)
    assert {s.id: s.expected_information_gain for s in chosen.next_steps} != {
        s.id: s.expected_information_gain for s in weighted.next_steps
    }


def test_a_study_of_tests_with_children_takes_the_row_plan_with_the_same_value(bundled_model, monkeypatch):
    """Studies of noisy leaves use cumulative rows (single likelihoods on the parents); any other study has one
    row per combination of results. Forcing the second plan gives the same EIG (the first is checked against
    brute force above)."""
    from bayesdx import step_rows

    evidence = {**bundled_model.presenting, **SCENARIOS[2][1]}
    fast = {s.id: s.expected_information_gain for s in bayesdx.rank_causes(evidence, model=bundled_model).next_steps}
    original = step_rows.candidate_plans

    def rows_for_the_study(model, candidates):
        plans = original(model, candidates)
        for test in model.studies["emg_ncs"].tests:
            plans[test] = ("rows", None)
        return plans

    monkeypatch.setattr(step_rows, "candidate_plans", rows_for_the_study)
    slow = {s.id: s.expected_information_gain for s in bayesdx.rank_causes(evidence, model=bundled_model).next_steps}
    assert_allclose(slow["emg_ncs"], fast["emg_ncs"], atol=1e-9, rtol=0)
