"""Simulated consultations (src/bayesdx/evaluation/consultation.py): the protocol's bookkeeping."""

from __future__ import annotations

import numpy as np

import bayesdx
from bayesdx.evaluation.consultation import simulate_consultations


def test_an_unavailable_study_is_paid_once_and_its_tests_are_not_asked_again(bundled_model):
    """Review finding: after an EMG + nerve conduction study the vignette does not record, the same analysis
    asked for the EMG alone and paid 30 more."""
    case = {"age_group": "older_adult", "sex": "male", "muscle_weakness": "yes", "muscle_wasting": "yes"}
    result = simulate_consultations(bundled_model, [case], ["als"], ["v1"], max_steps=15)
    asked = result.asked[0]
    assert "emg_ncs" in asked
    after = asked[asked.index("emg_ncs") + 1 :]
    assert "electromyography" not in after
    assert "electroneurography" not in after
    costs = [c for c, _ in result.history[0]]
    assert costs == sorted(costs)


def test_the_accuracy_cost_curve_and_area_follow_the_step_function(bundled_model):
    cases = [
        {"age_group": "adult", "urge_to_move": "yes", "worse_at_rest_or_night": "yes", "sex": "female"},
        {"age_group": "adult", "emotional_stress": "yes"},
    ]
    result = simulate_consultations(bundled_model, cases, ["restless_legs_syndrome", "stress_anxiety"], ["a", "b"])
    for k, hist in enumerate(result.history):
        assert hist[0][0] == 0.0
        dx = bayesdx.rank_causes({v: cases[k][v] for v in ("age_group", "sex") if v in cases[k]}, model=bundled_model)
        assert hist[0][1] == (dx.causes[0].id == ["restless_legs_syndrome", "stress_anxiety"][k])
    area = result.auc(100.0)
    assert ((area >= 0.0) & (area <= 1.0)).all()
    curve = result.accuracy_at([0.0, 1e9])
    assert curve[1] == np.mean(result.top1_final())
