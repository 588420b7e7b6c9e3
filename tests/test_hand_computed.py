"""Posteriors, evidence probabilities and CPD tables worked out by hand.

The tiny model (tests/data/models/tiny.toml, priors tests/data/priors/tiny.toml):

    flu ~ P(present) = 0.1         cold ~ P(present) = 0.3          (independent roots)
    fever = noisy-OR(flu 0.8, cold 0.5, leak 0.1):
        P(fever=no | flu, cold) = 0.9 * (0.2 if flu) * (0.5 if cold)
    thermometer | fever:  P(abnormal | yes) = 0.9,  P(abnormal | no) = 0.05

Joint of (flu, cold) and P(fever | flu, cold):

    flu  cold   P(flu, cold)          P(no | .)              P(yes | .)
    +    +      0.1*0.3 = 0.03        0.9*0.2*0.5 = 0.09     0.91
    +    -      0.1*0.7 = 0.07        0.9*0.2     = 0.18     0.82
    -    +      0.9*0.3 = 0.27        0.9*0.5     = 0.45     0.55
    -    -      0.9*0.7 = 0.63        0.9         = 0.90     0.10

    P(flu, cold, fever=yes): 0.0273, 0.0574, 0.1485, 0.0630   sum P(fever=yes) = 0.2962
    P(flu, cold, fever=no):  0.0027, 0.0126, 0.1215, 0.5670   sum P(fever=no)  = 0.7038
"""

from __future__ import annotations

import math

import pytest
from numpy.testing import assert_allclose

import bayesdx

ATOL = 1e-9

# P(flu, cold, fever=yes) and P(flu, cold, fever=no) per (flu, cold) row of the table above.
YES = {"++": 0.03 * 0.91, "+-": 0.07 * 0.82, "-+": 0.27 * 0.55, "--": 0.63 * 0.10}
NO = {"++": 0.03 * 0.09, "+-": 0.07 * 0.18, "-+": 0.27 * 0.45, "--": 0.63 * 0.90}


def _p(diagnosis: bayesdx.Diagnosis) -> dict[str, float]:
    return {c.id: c.probability for c in diagnosis.causes}


def test_tiny_joint_table_adds_up_by_hand():
    # 0.0273 + 0.0574 + 0.1485 + 0.0630 = 0.2962 ; 0.0027 + 0.0126 + 0.1215 + 0.5670 = 0.7038
    assert_allclose(sum(YES.values()), 0.2962, atol=ATOL, rtol=0)
    assert_allclose(sum(NO.values()), 0.7038, atol=ATOL, rtol=0)


def test_tiny_posterior_given_fever_yes_matches_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"fever": "yes"}, model=tiny_model)
    # P(flu | yes)  = (0.0273 + 0.0574) / 0.2962 = 0.0847 / 0.2962
    # P(cold | yes) = (0.0273 + 0.1485) / 0.2962 = 0.1758 / 0.2962
    assert_allclose(dx.probability("flu"), 0.0847 / 0.2962, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("cold"), 0.1758 / 0.2962, atol=ATOL, rtol=0)
    assert [c.id for c in dx.causes] == ["cold", "flu"]  # 0.5935 > 0.2860
    assert_allclose(dx.log_evidence, math.log(0.2962), atol=ATOL, rtol=0)


def test_tiny_posterior_given_fever_no_matches_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"fever": "no"}, model=tiny_model)
    # P(flu | no)  = (0.0027 + 0.0126) / 0.7038 = 0.0153 / 0.7038
    # P(cold | no) = (0.0027 + 0.1215) / 0.7038 = 0.1242 / 0.7038
    assert_allclose(dx.probability("flu"), 0.0153 / 0.7038, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("cold"), 0.1242 / 0.7038, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.7038), atol=ATOL, rtol=0)


def test_tiny_posterior_given_thermometer_abnormal_matches_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"thermometer": "abnormal"}, model=tiny_model)
    # P(abnormal) = 0.2962 * 0.9 + 0.7038 * 0.05 = 0.26658 + 0.03519 = 0.30177
    # P(flu, abnormal)  = 0.0847 * 0.9 + 0.0153 * 0.05 = 0.07623 + 0.000765 = 0.076995
    # P(cold, abnormal) = 0.1758 * 0.9 + 0.1242 * 0.05 = 0.15822 + 0.00621  = 0.16443
    assert_allclose(dx.probability("flu"), 0.076995 / 0.30177, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("cold"), 0.16443 / 0.30177, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.30177), atol=ATOL, rtol=0)


def test_tiny_posterior_given_thermometer_normal_and_cold_absent_matches_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"thermometer": "normal", "cold": "absent"}, model=tiny_model)
    # cold absent: rows "+-" and "--".  P(normal | yes) = 0.1, P(normal | no) = 0.95
    # P(flu, cold-, normal)  = 0.0574 * 0.1 + 0.0126 * 0.95 = 0.00574 + 0.01197 = 0.01771
    # P(flu-, cold-, normal) = 0.0630 * 0.1 + 0.5670 * 0.95 = 0.00630 + 0.53865 = 0.54495
    # P(e) = 0.01771 + 0.54495 = 0.56266
    assert_allclose(dx.probability("flu"), 0.01771 / 0.56266, atol=ATOL, rtol=0)
    assert dx.probability("cold") == 0.0
    assert_allclose(dx.log_evidence, math.log(0.56266), atol=ATOL, rtol=0)


def test_tiny_evidence_on_a_cause_itself_matches_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"flu": "present"}, model=tiny_model)
    # flu is observed: P(flu) = 1; cold is independent of flu a priori: P(cold | flu) = 0.3; P(e) = 0.1
    assert_allclose(dx.probability("flu"), 1.0, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("cold"), 0.3, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.1), atol=ATOL, rtol=0)
    assert dx.evidence == {"flu": "present"}


def test_tiny_cause_observed_with_fever_yes_explains_away_by_hand(tiny_model):
    dx = bayesdx.rank_causes({"flu": "present", "fever": "yes"}, model=tiny_model)
    # P(cold | flu, yes) = 0.0273 / (0.0273 + 0.0574) = 0.0273 / 0.0847 ; P(e) = 0.0847
    assert_allclose(dx.probability("cold"), 0.0273 / 0.0847, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.0847), atol=ATOL, rtol=0)


def test_tiny_priors_without_evidence_match_prior_file(tiny_model):
    dx = bayesdx.rank_causes({}, model=tiny_model)
    # no evidence: the priors of tests/data/priors/tiny.toml, P(e) = 1
    assert_allclose(dx.probability("flu"), 0.1, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("cold"), 0.3, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, 0.0, atol=ATOL, rtol=0)
    assert_allclose([tiny_model.prior_probabilities["flu"], tiny_model.prior_probabilities["cold"]], [0.1, 0.3], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("evidence", "p_evidence"),
    [
        ({"fever": "yes"}, 0.2962),
        ({"fever": "no"}, 0.7038),
        ({"thermometer": "normal"}, 0.2962 * 0.1 + 0.7038 * 0.95),  # 0.02962 + 0.66861 = 0.69823
        ({"fever": "yes", "thermometer": "abnormal"}, 0.2962 * 0.9),
        ({"flu": "absent", "cold": "absent", "fever": "no"}, 0.5670),
        ({"cold": "present"}, 0.3),
    ],
)
def test_tiny_log_evidence_equals_log_probability_by_hand(tiny_model, evidence, p_evidence):
    dx = bayesdx.rank_causes(evidence, model=tiny_model)
    assert_allclose(dx.log_evidence, math.log(p_evidence), atol=ATOL, rtol=0)


def test_tiny_noisy_or_table_built_by_loader_matches_hand_calculation(tiny_model):
    cpd = tiny_model.network.get_cpds("fever")
    # P(fever=yes | flu, cold) = 1 - 0.9 * (0.2 if flu) * (0.5 if cold)
    expected = {("present", "present"): 0.91, ("present", "absent"): 0.82, ("absent", "present"): 0.55, ("absent", "absent"): 0.10}
    for (flu, cold), p_yes in expected.items():
        assert_allclose(cpd.get_value(fever="yes", flu=flu, cold=cold), p_yes, atol=ATOL, rtol=0)
        assert_allclose(cpd.get_value(fever="no", flu=flu, cold=cold), 1 - p_yes, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------- the graded model
# tests/data/models/graded.toml: age (child 0.2, adult 0.5, older 0.3); causes infection and toxin
# (cause_prior, priors 0.2 via the qualifier "sometimes" and 0.1); severity none < mild < severe is
# noisy_max(infection, toxin, age=older); rash is noisy_or(infection, age=child).
def _cpd(model, node):
    return model.network.get_cpds(node)


# noisy_max: P(severity <= y | parents) = L(y) * prod over active parents C_i(y), cumulative over (none, mild, severe):
#   L = cumsum(0.6, 0.3, 0.1) = (0.6, 0.9, 1.0)      C_infection = cumsum(0.0, 0.2, 0.8) = (0.0, 0.2, 1.0)
#   C_toxin = cumsum(0.5, 0.3, 0.2) = (0.5, 0.8, 1.0) C_older = cumsum(0.4, 0.4, 0.2) = (0.4, 0.8, 1.0)
SEVERITY_BY_HAND = {
    # (infection, toxin, older?) : pmf = differences of the cdf
    ("absent", "absent", False): (0.6, 0.3, 0.1),  # cdf L = (0.6, 0.9, 1)
    ("absent", "absent", True): (0.24, 0.48, 0.28),  # cdf (0.6*0.4, 0.9*0.8, 1) = (0.24, 0.72, 1)
    ("absent", "present", False): (0.3, 0.42, 0.28),  # cdf (0.6*0.5, 0.9*0.8, 1) = (0.3, 0.72, 1)
    ("absent", "present", True): (0.12, 0.456, 0.424),  # cdf (0.3*0.4, 0.72*0.8, 1) = (0.12, 0.576, 1)
    ("present", "absent", False): (0.0, 0.18, 0.82),  # cdf (0, 0.9*0.2, 1) = (0, 0.18, 1)
    ("present", "absent", True): (0.0, 0.144, 0.856),  # cdf (0, 0.18*0.8, 1) = (0, 0.144, 1)
    ("present", "present", False): (0.0, 0.144, 0.856),  # cdf (0, 0.18*0.8, 1)
    ("present", "present", True): (0.0, 0.1152, 0.8848),  # cdf (0, 0.144*0.8, 1) = (0, 0.1152, 1)
}


@pytest.mark.parametrize(
    ("infection", "toxin", "age"),
    [(i, t, a) for i in ("present", "absent") for t in ("present", "absent") for a in ("child", "adult", "older")],
)
def test_graded_noisy_max_table_built_by_loader_matches_hand_calculation(graded_model, infection, toxin, age):
    cpd = _cpd(graded_model, "severity")
    expected = SEVERITY_BY_HAND[(infection, toxin, age == "older")]
    got = [cpd.get_value(severity=s, infection=infection, toxin=toxin, age=age) for s in ("none", "mild", "severe")]
    assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("infection", "age", "p_yes"),
    [
        # P(rash=no | .) = 0.95 * (0.4 if infection) * (0.7 if age == child)
        ("present", "child", 1 - 0.95 * 0.4 * 0.7),  # 0.734
        ("present", "adult", 1 - 0.95 * 0.4),  # 0.62
        ("present", "older", 1 - 0.95 * 0.4),
        ("absent", "child", 1 - 0.95 * 0.7),  # 0.335
        ("absent", "adult", 0.05),
        ("absent", "older", 0.05),
    ],
)
def test_graded_noisy_or_with_per_state_link_matches_hand_calculation(graded_model, infection, age, p_yes):
    cpd = _cpd(graded_model, "rash")
    assert_allclose(cpd.get_value(rash="yes", infection=infection, age=age), p_yes, atol=ATOL, rtol=0)
    assert_allclose(cpd.get_value(rash="no", infection=infection, age=age), 1 - p_yes, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("age", "p_present"),
    [
        # P(present) = sigmoid(logit(0.2) + log OR(age)); reference odds 0.2/0.8 = 0.25
        ("child", 0.6),  # odds 0.25 * 6 = 1.5   -> 1.5 / 2.5 = 0.6
        ("adult", 0.2),  # odds ratio 1 (reference) -> the prior itself
        ("older", 1 / 9),  # odds 0.25 * 0.5 = 0.125 -> 0.125 / 1.125 = 1/9
    ],
)
def test_graded_cause_prior_odds_ratio_formula_by_hand_for_infection(graded_model, age, p_present):
    cpd = _cpd(graded_model, "infection")
    assert_allclose(cpd.get_value(infection="present", age=age), p_present, atol=ATOL, rtol=0)
    assert_allclose(cpd.get_value(infection="absent", age=age), 1 - p_present, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("age", "infection", "p_present"),
    [
        # reference odds 0.1/0.9 = 1/9; OR(age=older) = 3; OR(infection=present) = 2; they multiply
        ("child", "absent", 0.1),
        ("adult", "absent", 0.1),
        ("adult", "present", 2 / 11),  # odds 2/9 -> (2/9) / (11/9)
        ("older", "absent", 0.25),  # odds 3/9 = 1/3 -> (1/3) / (4/3)
        ("older", "present", 0.4),  # odds 6/9 = 2/3 -> (2/3) / (5/3)
    ],
)
def test_graded_cause_prior_odds_ratios_of_two_parents_multiply_by_hand(graded_model, age, infection, p_present):
    cpd = _cpd(graded_model, "toxin")
    assert_allclose(cpd.get_value(toxin="present", age=age, infection=infection), p_present, atol=ATOL, rtol=0)


def test_graded_prior_qualifier_resolves_through_the_scale(graded_model):
    # [scale.terms] sometimes = 0.2 and causes.infection.qualifier = "sometimes"
    assert graded_model.prior_setting.probabilities == {"infection": 0.2, "toxin": 0.1}


def test_graded_posterior_given_severe_and_older_matches_hand_calculation(graded_model):
    dx = bayesdx.rank_causes({"age": "older", "severity": "severe"}, model=graded_model)
    # age = older: P(infection) = 1/9; P(toxin | infection) = 0.4, P(toxin | no infection) = 0.25
    # P(inf, tox)   = 1/9 * 0.4  = 0.4/9     P(severe | ., older) = 0.8848
    # P(inf, -tox)  = 1/9 * 0.6  = 0.6/9                           0.856
    # P(-inf, tox)  = 8/9 * 0.25 = 2/9                             0.424
    # P(-inf, -tox) = 8/9 * 0.75 = 6/9                             0.28
    w = {"it": 0.4 / 9 * 0.8848, "i-": 0.6 / 9 * 0.856, "-t": 2 / 9 * 0.424, "--": 6 / 9 * 0.28}
    total = sum(w.values())  # = P(severe | older)
    assert_allclose(dx.probability("infection"), (w["it"] + w["i-"]) / total, atol=ATOL, rtol=0)
    assert_allclose(dx.probability("toxin"), (w["it"] + w["-t"]) / total, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.3 * total), atol=ATOL, rtol=0)  # P(older) = 0.3


def test_graded_roles_hypotheses_and_prior_probabilities_by_hand(graded_model):
    assert graded_model.causes == ("infection", "toxin")
    assert graded_model.findings == ("age", "severity", "rash")
    assert graded_model.tests == ()
    assert [h.id for h in graded_model.hypotheses] == ["infection", "toxin"]
    # P(infection) = 0.2 * 0.6 + 0.5 * 0.2 + 0.3 * 1/9 = 0.12 + 0.10 + 0.0333... = 0.25333...
    p_infection = 0.2 * 0.6 + 0.5 * 0.2 + 0.3 / 9
    # P(toxin) = sum over age of P(age) * [P(inf | age) P(tox | age, inf) + P(-inf | age) P(tox | age, -inf)]
    #   child: 0.6 * 2/11 + 0.4 * 0.1 ; adult: 0.2 * 2/11 + 0.8 * 0.1 ; older: 1/9 * 0.4 + 8/9 * 0.25
    #   = 0.2 * 0.149090.. + 0.5 * 0.116363.. + 0.3 * 0.266666.. = 0.168
    p_toxin = 0.2 * (0.6 * 2 / 11 + 0.04) + 0.5 * (0.2 * 2 / 11 + 0.08) + 0.3 * (0.4 / 9 + 2 / 9)
    assert_allclose(p_toxin, 0.168, atol=ATOL, rtol=0)
    assert_allclose(
        [graded_model.prior_probabilities["infection"], graded_model.prior_probabilities["toxin"]],
        [p_infection, p_toxin],
        atol=ATOL,
        rtol=0,
    )
    dx = bayesdx.rank_causes(None, model=graded_model)
    assert_allclose([dx.probability("infection"), dx.probability("toxin")], [p_infection, p_toxin], atol=ATOL, rtol=0)
