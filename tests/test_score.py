"""score on N cases equals N calls of rank_causes; its output shape and its argument checks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx import UnknownVariableError

EXACT = 1e-12


def _assert_score_equals_rank_causes(model, cases, frame, top_k):
    assert len(frame) == len(cases)
    for k, case in enumerate(cases):
        dx = bayesdx.rank_causes(case, model=model)
        row = frame.iloc[k]
        k_shown = min(top_k, len(model.hypotheses))
        assert_allclose(
            [row[f"probability_{j}"] for j in range(1, k_shown + 1)],
            [c.probability for c in dx.causes[:k_shown]],
            atol=EXACT,
            rtol=0,
            err_msg=f"case {k}: {case!r}",
        )
        # the same ids in the same order, except that causes tied within 1e-12 may come in either order
        # (test_observed_causes_tie_at_one_and_keep_the_model_order checks exact ties separately)
        by_id = {c.id: c.probability for c in dx.causes}
        for j in range(1, k_shown + 1):
            if row[f"cause_{j}"] != dx.causes[j - 1].id:
                assert abs(by_id[row[f"cause_{j}"]] - dx.causes[j - 1].probability) <= EXACT, f"case {k}: {case!r}"


def _random_cases(model, n, rng, *, observe=0.5):
    cases = []
    for _ in range(n):
        case = {v: str(rng.choice(model.states[v])) for v in model.variables if rng.random() < observe}
        cases.append(case)
    return cases


def test_score_of_a_list_equals_rank_causes_case_by_case_on_tiny(tiny_model, rng):
    cases = _random_cases(tiny_model, 30, rng)
    frame = bayesdx.score(cases, model=tiny_model, top_k=2)
    assert list(frame.index) == list(range(30))
    _assert_score_equals_rank_causes(tiny_model, cases, frame, 2)


def test_score_of_a_dataframe_equals_rank_causes_case_by_case_on_child(child_model, child_network, evidence_sampler, rng):
    cases = evidence_sampler(child_network, 20, rng, observe=0.3, exclude=["Disease"])
    labels = [f"case-{k:02d}" for k in reversed(range(len(cases)))]  # an index that is not sorted
    frame = pd.DataFrame(cases, index=labels)
    scored = bayesdx.score(frame, model=child_model, top_k=4)
    assert list(scored.index) == labels  # index kept, input order kept
    assert list(scored.columns) == [
        "cause_1",
        "probability_1",
        "cause_2",
        "probability_2",
        "cause_3",
        "probability_3",
        "cause_4",
        "probability_4",
    ]
    _assert_score_equals_rank_causes(child_model, cases, scored, 4)


def test_score_of_a_list_equals_rank_causes_on_graded(graded_model, rng):
    cases = [
        c
        for c in _random_cases(graded_model, 60, rng)
        if not ("severity" in c and c["severity"] == "none" and c.get("infection") == "present")
    ]
    frame = bayesdx.score(cases, model=graded_model, top_k=2)
    _assert_score_equals_rank_causes(graded_model, cases, frame, 2)


def test_score_of_one_case_does_not_depend_on_the_other_cases_in_the_batch_on_hepar2(hepar2_raw_network, evidence_sampler, rng):
    """pgmpy's hepar2 as shipped: some CPD columns sum to 1 +- 1e-7 (``ggtp``, ``alt``, ...).

    score must still give each case the same answer as rank_causes: a case's posterior cannot depend on
    which variables the *other* cases of the batch observe.
    """
    model = bayesdx.load_model(hepar2_raw_network, causes=["Cirrhosis", "PBC", "ChHepatitis", "Steatosis"])
    cases = evidence_sampler(hepar2_raw_network, 12, rng, observe=0.25)
    n_hyp = len(model.hypotheses)
    together = bayesdx.score(cases, model=model, top_k=n_hyp)
    for k, case in enumerate(cases):
        alone = bayesdx.score([case], model=model, top_k=n_hyp)
        got = {together.iloc[k][f"cause_{j}"]: together.iloc[k][f"probability_{j}"] for j in range(1, n_hyp + 1)}
        ref = {alone.iloc[0][f"cause_{j}"]: alone.iloc[0][f"probability_{j}"] for j in range(1, n_hyp + 1)}
        assert_allclose([got[i] for i in ref], list(ref.values()), atol=EXACT, rtol=0, err_msg=f"case {k}: {case!r}")


def test_score_keeps_a_non_default_index_with_missing_cells(tiny_model):
    frame = pd.DataFrame(
        {"fever": ["yes", np.nan, "no"], "thermometer": [None, "abnormal", ""]}, index=pd.Index([30, 10, 20], name="patient")
    )
    scored = bayesdx.score(frame, model=tiny_model, top_k=1)
    assert list(scored.index) == [30, 10, 20]
    assert scored.index.name == "patient"
    assert list(scored.columns) == ["cause_1", "probability_1", "score_1"]
    expected = [
        bayesdx.rank_causes(e, model=tiny_model).causes[0] for e in ({"fever": "yes"}, {"thermometer": "abnormal"}, {"fever": "no"})
    ]
    assert scored["cause_1"].tolist() == [c.id for c in expected]
    assert_allclose(scored["probability_1"].to_numpy(float), [c.probability for c in expected], atol=EXACT, rtol=0)


def test_score_top_k_above_the_number_of_hypotheses_shows_them_all(tiny_model):
    scored = bayesdx.score([{"fever": "yes"}], model=tiny_model, top_k=10)
    assert list(scored.columns) == ["cause_1", "probability_1", "score_1", "cause_2", "probability_2", "score_2"]
    scored = bayesdx.score([{"fever": "yes"}], model=tiny_model, top_k=10, ranking="posterior")
    assert list(scored.columns) == ["cause_1", "probability_1", "cause_2", "probability_2"]


def test_score_of_no_cases_is_an_empty_frame_with_the_columns(tiny_model):
    scored = bayesdx.score([], model=tiny_model, top_k=2)
    assert len(scored) == 0
    assert list(scored.columns) == ["cause_1", "probability_1", "score_1", "cause_2", "probability_2", "score_2"]


def test_score_probabilities_are_unrounded(tiny_model):
    scored = bayesdx.score([{"fever": "yes"}], model=tiny_model, top_k=2)
    # hand: P(cold | fever=yes) = 0.1758 / 0.2962 (see test_hand_computed.py), not rounded for display
    assert scored.loc[0, "cause_1"] == "cold"
    assert_allclose(scored.loc[0, "probability_1"], 0.1758 / 0.2962, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("top_k", "error", "message"),
    [
        (0, ValueError, "The 'top_k' parameter of score must be an int >= 1. Got 0 instead."),
        (-2, ValueError, "The 'top_k' parameter of score must be an int >= 1. Got -2 instead."),
        ("3", TypeError, "The 'top_k' parameter of score must be an int >= 1. Got str '3' instead."),
        (True, TypeError, "The 'top_k' parameter of score must be an int >= 1. Got bool True instead."),
        (2.0, TypeError, "The 'top_k' parameter of score must be an int >= 1. Got float 2.0 instead."),
        (None, TypeError, "The 'top_k' parameter of score must be an int >= 1. Got NoneType None instead."),
    ],
)
def test_score_rejects_a_bad_top_k(tiny_model, top_k, error, message):
    with pytest.raises(error, match=re.escape(message)):
        bayesdx.score([{"fever": "yes"}], model=tiny_model, top_k=top_k)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("fevr", "Unknown variable 'fevr' (a column of the cases). Did you mean 'fever'?"),
        ("age", "Unknown variable 'age' (a column of the cases). See model.variables for the valid names."),
    ],
)
def test_score_rejects_an_unknown_column(tiny_model, column, message):
    frame = pd.DataFrame({"fever": ["yes"], column: ["no"]})
    with pytest.raises(UnknownVariableError, match=re.escape(message)) as info:
        bayesdx.score(frame, model=tiny_model)
    assert info.value.variable == column


@pytest.mark.parametrize("function", ["rank_causes", "score"])
def test_observed_causes_tie_at_one_and_keep_the_model_order(graded_model, function):
    """Both causes observed present: each has probability exactly 1, and ties keep the model's order."""
    case = {"infection": "present", "toxin": "present"}
    if function == "rank_causes":
        dx = bayesdx.rank_causes(case, model=graded_model)
        ranked = [(c.id, c.probability) for c in dx.causes]
    else:
        row = bayesdx.score([case], model=graded_model, top_k=2).iloc[0]
        ranked = [(row["cause_1"], row["probability_1"]), (row["cause_2"], row["probability_2"])]
    assert ranked == [("infection", 1.0), ("toxin", 1.0)]


def test_wide_result_frames_are_built_in_blocks_with_the_same_columns_and_dtypes(bundled_model, monkeypatch):
    """score's result frame is built from two blocks when it has many ranked columns (faster); the frame, its
    column order and dtypes are the same as column by column, with and without the next-step columns."""
    from bayesdx import scoring

    cases = pd.DataFrame(
        [{"painful_cramps": "yes"}, {"fever": "yes", "loss_of_consciousness": "yes"}, {"age_group": "child"}], index=["a", "a", "b"]
    )  # a repeated case id: the blocks are joined on positions
    for next_step in (False, True):
        monkeypatch.setattr(scoring, "WIDE_FRAME", 10**6)
        by_column = bayesdx.score(cases, model=bundled_model, top_k=20, next_step=next_step)
        monkeypatch.setattr(scoring, "WIDE_FRAME", 0)
        in_blocks = bayesdx.score(cases, model=bundled_model, top_k=20, next_step=next_step)
        pd.testing.assert_frame_equal(in_blocks, by_column)
        assert in_blocks["cause_1"].dtype == object
        assert in_blocks["probability_20"].dtype == np.float64


def test_score_frames_and_result_frames_carry_the_caveat():
    """Medical honesty (user review, session 15): the DataFrames of score() and Diagnosis.to_frame() carried no caveat;
    both now hold it in attrs["caveat"], as the results, the rank table, --json and the interview do."""
    from bayesdx.results import CAVEAT

    assert bayesdx.score([{"fever": "yes"}]).attrs["caveat"] == CAVEAT
    assert bayesdx.score(pd.DataFrame({"case_id": ["a"], "fever": ["yes"], "true_cause": ["x"]})).attrs["caveat"] == CAVEAT
    assert bayesdx.rank_causes({"fever": "yes"}).to_frame().attrs["caveat"] == CAVEAT


def test_causes_tied_exactly_come_in_the_models_order():
    """Found in a user review (session 15): with uniform priors, eight causes linked to none of the evidence tie
    exactly (same prior, nothing observed of theirs), but come out of the contraction up to rounding (1e-17) and were
    ordered by it: injury, last in the model, ranked first of them. The docs promise ties by posterior, then the
    model's order; a value within pipeline.TIE (2^-40, about 1e-12) of the next larger one now ties with it."""
    model = bayesdx.load_model(priors="uniform")
    for ranking in ("expected_disablement", "posterior"):
        dx = bayesdx.rank_causes({"painful_cramps": "yes", "age_group": "adult"}, model=model, ranking=ranking)
        order = [h.id for h in model.hypotheses]
        tied = [c for c in dx.causes if abs(c.probability - 0.038373212271054) < 1e-12]  # in ranked order
        assert len(tied) == 8
        assert [order.index(c.id) for c in tied] == sorted(order.index(c.id) for c in tied)


def test_small_posteriors_that_differ_are_not_ties():
    """Found in review (session 15): ties compared in absolute steps of 1e-12 made two posteriors of 4.676e-9 and
    4.6755e-9 (1.3e-4 apart, relatively) a tie, listed in model order, so a ranking by posterior was not best first.
    Ties are now relative. Also: the ulp pair of the review ties, NaN comes last, -0.0 ties 0.0."""
    from bayesdx.pipeline import rank_order

    evidence = {
        "sudden_severe_leg_pain": "yes", "age_group": "child", "inflammation_markers": "abnormal", "electroneurography": "abnormal",
        "electromyography": "neurogenic", "saddle_numbness_or_bladder": "yes", "new_medication": "yes", "blood_ferritin": "abnormal",
        "twitch_appearance": "visible_jerk", "leg_twitching": "no", "neurological_exam": "abnormal", "neck_stiffness_or_confusion": "yes",
        "dark_urine": "yes", "duration": "hours", "rhythm": "rhythmic", "frequency": "once",
    }  # fmt: skip
    for ranking in ("posterior", "expected_disablement"):
        dx = bayesdx.rank_causes(evidence, ranking=ranking)
        scores = [c.score(ranking) for c in dx.causes]
        assert scores == sorted(scores, reverse=True)
    tiny = np.array([[4.675536e-09, 4.676128e-09, 1e-20, 4e-13]])
    assert rank_order(tiny, tiny).tolist() == [[1, 0, 3, 2]]
    a = 0.8197727311634999
    ulp = np.array([[a, np.nextafter(a, 1.0)]])
    assert rank_order(ulp, ulp).tolist() == [[0, 1]]  # a tie: model order
    assert rank_order(np.array([[np.nan, 0.2, 0.5]]), np.array([[0.1, 0.2, 0.5]])).tolist() == [[2, 1, 0]]
    assert rank_order(np.array([-0.0, 0.0, 0.1]), np.zeros(3)).tolist() == [2, 0, 1]


def test_tied_causes_rank_alike_in_a_batch_and_alone_whatever_their_rounding():
    """Found in the second review (session 15): ties by fixed steps of the mantissa split a pair some ulps apart that
    fell on either side of a step (12 in 20,000 uniform-prior cases). Here myopathy and injury tie exactly (equal in
    extended precision): in this batch they came out 27 ulps apart and score listed injury first, while rank_causes
    on the case alone listed myopathy first, as the model's order says. Ties are now by neighbours, so both agree.
    Also: negative values, infinities and float32 order by value (rank_order is public)."""
    from bayesdx.pipeline import rank_order

    model = bayesdx.load_model(priors="uniform")
    other = {"recent_overexertion": "no", "high_caffeine_intake": "yes", "blood_glucose_hba1c": "abnormal", "action_amplified": "yes"}
    case = {"blood_ferritin": "abnormal", "rapidly_worsening": "no", "numbness_tingling": "yes", "sex": "male"}
    row = bayesdx.score([other, case], model=model, top_k=20).iloc[1]
    batch = [row[f"cause_{j}"] for j in range(1, 21)]
    alone = [c.id for c in bayesdx.rank_causes(case, model=model, next_steps=False).causes]
    assert batch.index("myopathy") < batch.index("injury")
    assert alone.index("myopathy") < alone.index("injury")
    assert batch == alone
    for values, expected in (([-0.5, -0.25, 0.1], [2, 1, 0]), ([-np.inf, 0.1], [1, 0]), ([np.inf, 0.1], [0, 1])):
        assert rank_order(np.array(values), np.zeros(len(values))).tolist() == expected
    assert rank_order(np.array([0.1, 0.9], dtype=np.float32), np.zeros(2, dtype=np.float32)).tolist() == [1, 0]
