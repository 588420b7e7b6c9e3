"""The evaluation metrics on tiny case sets whose every number is worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from bayesdx.evaluation import metrics as m

# Four cases, three hypotheses (columns in model order h0, h1, h2).
#   case 0: true h0, clearly first                      -> rank 1
#   case 1: true h1, tied with h0 at 0.4; h0 comes first -> rank 2 (ties keep the model's order)
#   case 2: true h0, lowest of the three                 -> rank 3 (last)
#   case 3: true h2, tied with h0 at 0.25; h0 comes first-> rank 3 (last, through a tie)
P = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.40, 0.40, 0.20],
        [0.10, 0.30, 0.60],
        [0.25, 0.50, 0.25],
    ]
)
TRUTH = np.array([0, 1, 0, 2])
OUTCOME = np.eye(3)[TRUTH]


def test_ranks_by_hand_with_ties_and_last_place():
    assert m.true_cause_ranks(P, TRUTH).tolist() == [1, 2, 3, 3]


def test_top_k_and_mrr_by_hand():
    ranks = m.true_cause_ranks(P, TRUTH)
    assert m.top_k_accuracy(ranks, 1) == 0.25
    assert m.top_k_accuracy(ranks, 2) == 0.5
    assert m.top_k_accuracy(ranks, 3) == 1.0
    assert_allclose(np.mean(1.0 / ranks), (1 + 1 / 2 + 1 / 3 + 1 / 3) / 4, rtol=1e-15)


def test_log_loss_by_hand_and_clip():
    # -(ln 0.7 + ln 0.4 + ln 0.1 + ln 0.25) / 4 = -ln(0.007) / 4 = 1.24046...
    assert_allclose(m.log_losses(P[np.arange(4), TRUTH]).mean(), -math.log(0.007) / 4, rtol=1e-12)
    assert_allclose(m.log_losses(np.array([0.0, 1.0])), [15 * math.log(10), 0.0], rtol=1e-12)


def test_brier_by_hand():
    # per case: (0.09+0.04+0.01)/3, (0.16+0.36+0.04)/3, (0.81+0.09+0.36)/3, (0.0625+0.25+0.5625)/3
    per_case = m.brier_scores(P, TRUTH)
    assert_allclose(per_case, [0.14 / 3, 0.56 / 3, 1.26 / 3, 0.875 / 3], rtol=1e-12)
    assert_allclose(per_case.mean(), 2.835 / 12, rtol=1e-12)


def test_ece_by_hand():
    # bins of the 12 (case, hypothesis) pairs, sum of (p - y) per bin:
    #   [0.1,0.2): 0.1, 0.1-1          -> |-0.8| = 0.8
    #   [0.2,0.3): 0.2, 0.2, 0.25, 0.25-1 -> |-0.1| = 0.1
    #   [0.3,0.4): 0.3 -> 0.3;  [0.4,0.5): 0.4, 0.4-1 -> 0.2;  [0.5,0.6): 0.5;  [0.6,0.7): 0.6;  [0.7,0.8): 0.7-1 -> 0.3
    # ECE = (0.8+0.1+0.3+0.2+0.5+0.6+0.3) / 12 = 2.8 / 12
    assert_allclose(m.expected_calibration_error(P, OUTCOME), 2.8 / 12, rtol=1e-12)


def test_reliability_table_by_hand():
    table = m.reliability_table(P, OUTCOME)
    assert table["n"].tolist() == [0, 2, 4, 1, 2, 1, 1, 1, 0, 0]
    assert_allclose(table.loc[2, ["mean_predicted", "observed_frequency"]].to_numpy(dtype=float), [0.225, 0.25])
    assert np.isnan(table.loc[0, "mean_predicted"])
    # a probability of exactly 1 goes in the last bin
    assert m.reliability_table(np.array([1.0]), np.array([1.0]))["n"].tolist()[-1] == 1


def test_triage_accuracy_and_under_triage_by_hand():
    levels = ("self_care", "routine_appointment", "prompt_specialist", "emergency")
    advised = ["self_care", "emergency", "routine_appointment", "routine_appointment"]
    true = ["self_care", "prompt_specialist", "emergency", "self_care"]
    assert np.mean([a == t for a, t in zip(advised, true, strict=True)]) == 0.25
    # only case 2 is under-triaged (emergency advised as routine); cases 1 and 3 are over-triaged
    assert m.under_triage(advised, true, levels).tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("a", "b", "a_only", "b_only", "p"),
    [
        ([1, 1, 1, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0, 1], 3, 0, 2 * 0.5**3),  # 2 * P(X <= 0), X ~ Bin(3, 1/2)
        ([1, 0, 0, 0, 0, 1, 0], [0, 1, 1, 1, 1, 1, 0], 1, 4, 2 * (1 + 5) / 32),  # 2 * P(X <= 1), X ~ Bin(5, 1/2)
        ([1, 0, 1], [1, 0, 1], 0, 0, 1.0),  # no discordant pair
    ],
)
def test_exact_mcnemar_by_hand(a, b, a_only, b_only, p):
    result = m.mcnemar_exact(np.array(a), np.array(b), "x", "y")
    assert (result.a, result.b, result.a_only, result.b_only) == ("x", "y", a_only, b_only)
    assert result.both + result.a_only + result.b_only + result.neither == len(a)
    assert_allclose(result.p_value, p, rtol=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean(rng):
    values = rng.random(40)
    seed = int(rng.integers(2**31))
    lo, hi = m.bootstrap_interval(values, n_resamples=200, rng=np.random.default_rng(seed))
    again = m.bootstrap_interval(values, n_resamples=200, rng=np.random.default_rng(seed))
    assert (lo, hi) == again
    assert lo < values.mean() < hi
    assert m.bootstrap_interval(np.ones(5), n_resamples=50, rng=rng) == (1.0, 1.0)
    assert all(math.isnan(x) for x in m.bootstrap_interval(np.ones(1), n_resamples=50, rng=rng))


def test_bootstrap_of_a_paired_statistic(rng):
    lo, hi = m.bootstrap_interval((P, OUTCOME), m.expected_calibration_error, n_resamples=100, rng=rng)
    assert 0.0 <= lo <= hi <= 1.0


def test_end_to_end_on_the_tiny_model_by_hand(tiny_model):
    """evaluate() on three tiny-model vignettes, against posteriors worked out by hand.

    tiny: P(flu) = 0.1, P(cold) = 0.3, fever noisy-OR with leak 0.1 and links flu 0.8, cold 0.5.
    P(fever=no) = 0.9 * (0.9*0.7 + 0.9*0.3*0.5 + 0.1*0.7*0.2 + 0.1*0.3*0.1) = 0.7038, so with fever=yes
    P(flu | yes) = (0.1 - 0.0126 - 0.0027) / 0.2962 and P(cold | yes) = (0.3 - 0.1215 - 0.0027) / 0.2962;
    with fever=no P(flu | no) = 0.0153 / 0.7038 and P(cold | no) = 0.1242 / 0.7038.
    """
    from bayesdx.evaluation import evaluate

    p_flu_yes, p_cold_yes = 0.0847 / 0.2962, 0.1758 / 0.2962
    p_flu_no, p_cold_no = 0.0153 / 0.7038, 0.1242 / 0.7038
    frame = pd.DataFrame({"case_id": ["a", "b", "c"], "true_cause": ["flu", "cold", "flu"], "fever": ["yes", "yes", "no"]})
    result = evaluate(frame, model=tiny_model, priors=("tiny",), next_steps=False, n_bootstrap=20, n_prior_draws=0, n_self_consistency=0)
    row = result.metrics.iloc[0]
    assert result.cases["rank_tiny"].tolist() == [2, 1, 2]
    assert_allclose(result.cases["probability_tiny"], [p_flu_yes, p_cold_yes, p_flu_no], rtol=1e-9)
    assert_allclose(row[["top1", "top3", "mrr"]].to_numpy(dtype=float), [1 / 3, 1.0, (0.5 + 1 + 0.5) / 3])
    assert_allclose(row["log_loss"], -(math.log(p_flu_yes) + math.log(p_cold_yes) + math.log(p_flu_no)) / 3, rtol=1e-9)
    brier = ((p_flu_yes - 1) ** 2 + p_cold_yes**2 + p_flu_yes**2 + (p_cold_yes - 1) ** 2 + (p_flu_no - 1) ** 2 + p_cold_no**2) / 6
    assert_allclose(row["brier"], brier, rtol=1e-9)
    assert math.isnan(row["triage_accuracy"])
    assert math.isnan(row["policy_auc"])
    assert math.isnan(row["cost_to_top1"])
