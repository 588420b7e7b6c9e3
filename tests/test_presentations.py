"""Textbook presentations (issue 11): each must reach the rank a clinician would give it.

Ranked by the default ranking (expected disablement, see bayesdx.counterfactual) with the default
(article) priors. The table is the issue's, written by a clinical reviewer before this ranking existed;
each row names the fact it encodes.
"""

from __future__ import annotations

import pytest

import bayesdx

PRESENTATIONS = [
    # id, evidence, cause, worst acceptable rank, the fact
    (
        "V1",
        {
            "age_group": "adult",
            "sex": "male",
            "thirst_frequent_urination": "yes",
            "numbness_tingling": "yes",
            "both_legs": "yes",
            "frequency": "daily",
            "duration": "over_3_months",
        },
        "diabetes_mellitus",
        2,
        "thirst and polyuria with symmetric numb feet: diabetes with its neuropathy",
    ),
    (
        "V2",
        {
            "age_group": "older_adult",
            "sex": "male",
            "muscle_weakness": "yes",
            "muscle_wasting": "yes",
            "painful_cramps": "yes",
            "both_legs": "no",
            "numbness_tingling": "no",
        },
        "als",
        1,
        "asymmetric weakness, wasting and cramps without sensory loss: motor neuron disease",
    ),
    (
        "V3",
        {"age_group": "adult", "sex": "female", "urge_to_move": "yes", "worse_at_rest_or_night": "yes"},
        "restless_legs_syndrome",
        1,
        "urge to move, worse at rest and at night: the IRLSSG essential criteria",
    ),
    (
        "V4",
        {"age_group": "adult", "sex": "female", "fatigue_pallor": "yes", "frequency": "daily"},
        "iron_deficiency",
        2,
        "tiredness and pallor in a woman of childbearing age: iron deficiency",
    ),
    (
        "V5",
        {
            "age_group": "adult",
            "sex": "male",
            "twitch_appearance": "visible_jerk",
            "loss_of_consciousness": "yes",
            "frequency": "once",
            "duration": "hours",
        },
        "epilepsy",
        1,
        "a first seizure: visible jerks with loss of consciousness",
    ),
    (
        "V6",
        {"age_group": "child", "fever": "yes", "twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes"},
        "febrile_infection",
        1,
        "a febrile convulsion in a child",
    ),
    (
        "V7",
        {"age_group": "older_adult", "sex": "male", "rhythm": "rhythmic", "resting_tremor_slowness": "yes"},
        "parkinsons_disease",
        1,
        "rhythmic rest tremor with slowness in an older man: parkinsonism",
    ),
    (
        "V8",
        {"age_group": "adult", "sex": "female", "numbness_tingling": "yes", "vision_or_balance_problems": "yes", "muscle_weakness": "yes"},
        "multiple_sclerosis",
        1,
        "sensory, visual or balance and motor symptoms in a young woman: MS",
    ),
    (
        "V9",
        {"age_group": "older_adult", "sex": "male", "leg_pain_on_walking": "yes", "cold_pale_legs": "yes"},
        "circulatory_disorder",
        1,
        "claudication with cold pale legs: peripheral artery disease",
    ),
    (
        "V10",
        {"age_group": "adult", "back_pain_radiating": "yes", "both_legs": "no"},
        "nerve_root_irritation",
        1,
        "back pain radiating into one leg: radiculopathy",
    ),
    (
        "V11",
        {"age_group": "adult", "joint_pain_swelling": "yes", "inflammation_markers": "abnormal"},
        "arthritis",
        1,
        "swollen painful joints with raised CRP/ESR: inflammatory arthritis",
    ),
    (
        "V11b",
        {"age_group": "adult", "joint_pain_swelling": "yes", "worse_at_rest_or_night": "yes"},
        "arthritis",
        1,
        "article: inflammation of the joints with severe pain that persists even at rest",
    ),
    (
        "V12",
        {"age_group": "adult", "recent_overexertion": "yes", "painful_cramps": "yes", "frequency": "once", "duration": "hours"},
        "overexertion",
        1,
        "article: a one-off after unaccustomed overexertion that settles within hours",
    ),
    (
        "V13",
        {"age_group": "adult", "emotional_stress": "yes"},
        "stress_anxiety",
        1,
        "article: twitching as an expression of mental overload and stress",
    ),
    ("V14", {"age_group": "adult", "high_caffeine_intake": "yes"}, "substance_use", 1, "stimulant-related fasciculation"),
    (
        "V15",
        {"age_group": "older_adult", "sex": "female", "new_medication": "yes", "rhythm": "rhythmic"},
        "medication_side_effect",
        1,
        "a new drug with tremor in an older woman: drug-induced tremor",
    ),
    (
        "V16",
        {"age_group": "adult", "painful_cramps": "yes", "blood_magnesium": "abnormal"},
        "magnesium_deficiency",
        1,
        "cramps with low serum magnesium",
    ),
    (
        "V17",
        {"age_group": "adult", "sex": "female", "muscle_weakness": "yes", "creatine_kinase": "abnormal", "duration": "over_3_months"},
        "myopathy",
        1,
        "months of weakness with a raised CK: myopathy",
    ),
    (
        "V18",
        {
            "age_group": "older_adult",
            "sex": "female",
            "general_malaise": "yes",
            "fatigue_pallor": "yes",
            "numbness_tingling": "yes",
            "vision_or_balance_problems": "yes",
        },
        "vitamin_deficiency",
        1,
        "malaise, pallor, numbness and unsteadiness in an older woman: B12 deficiency",
    ),
    (
        "V19",
        {"age_group": "older_adult", "sex": "male", "alcohol_or_drug_use": "yes", "numbness_tingling": "yes", "both_legs": "yes"},
        "polyneuropathy",
        2,
        "symmetric numb feet in a drinker: alcoholic polyneuropathy",
    ),
    (
        "V20",
        {"age_group": "adult", "recent_injury": "yes", "joint_pain_swelling": "yes", "muscle_weakness": "yes"},
        "injury",
        1,
        "article: twitching after an external force",
    ),
    (
        "V21",
        {"age_group": "older_adult", "twitch_appearance": "fine_flicker", "muscle_weakness": "yes", "muscle_wasting": "yes"},
        "als",
        2,
        "fasciculations with weakness and wasting: motor neuron disease",
    ),
    (
        "V22",
        {"age_group": "child", "twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes", "fever": "no"},
        "epilepsy",
        1,
        "an afebrile seizure in a child: epilepsy",
    ),
    (
        "V23",
        {
            "age_group": "adult",
            "emotional_stress": "yes",
            "muscle_weakness": "yes",
            "electromyography": "abnormal",
            "duration": "over_3_months",
        },
        "als",
        3,
        "an abnormal EMG with weakness is not explained by stress",
    ),
    (
        "V23n",
        {
            "age_group": "adult",
            "emotional_stress": "yes",
            "muscle_weakness": "yes",
            "electromyography": "neurogenic",
            "duration": "over_3_months",
        },
        "als",
        3,
        "denervation on EMG with weakness is not explained by stress",
    ),
]


#: Presentations the bundled knowledge does not yet place where the reviewer asked, and why (strict: they
#: fail the suite as soon as they pass, so the note cannot go stale).
KNOWN_MISSES = {
    "V23": "the coarse answer 'abnormal' (soft evidence: myopathic or neurogenic) fits radiculopathy, myopathy and "
    "polyneuropathy, each commoner than ALS in an adult under 60, and stress keeps its own finding: ALS is 5th "
    "(expected disablement 0.32 against 0.37 for stress). With the finer result 'neurogenic' ALS is 3rd (V23n).",
}


@pytest.mark.parametrize(
    ("pid", "evidence", "cause", "worst", "fact"),
    [
        pytest.param(*p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[p[0]])) if p[0] in KNOWN_MISSES else p
        for p in PRESENTATIONS
    ],
    ids=[p[0] for p in PRESENTATIONS],
)
def test_textbook_presentation_reaches_its_rank(bundled_model, pid, evidence, cause, worst, fact):
    dx = bayesdx.rank_causes(evidence, model=bundled_model, next_steps=False)
    assert dx.rank(cause) <= worst, (pid, fact, [(c.id, round(c.score(dx.ranking), 3)) for c in dx.causes[:4]])


def test_no_single_answer_makes_any_cause_impossible(bundled_model):
    """People misreport and tests err: every state of every finding and test, alone with the presenting
    complaint, leaves every cause with a positive posterior (no hard zeros in the time course or elsewhere)."""
    cases = [
        {var: state}
        for var in (*bundled_model.findings, *bundled_model.tests)
        if var not in bundled_model.presenting
        for state in bundled_model.states[var]
    ]
    frame = bayesdx.score(cases, model=bundled_model, top_k=len(bundled_model.hypotheses), ranking="posterior")
    lowest = frame[[c for c in frame.columns if c.startswith("probability_")]].min(axis=1)
    impossible = [cases[k] for k in range(len(cases)) if not lowest.iloc[k] > 0.0]
    assert not impossible
    assert len(cases) >= 2 * (len(bundled_model.findings) + len(bundled_model.tests) - 1)


def test_a_first_seizure_leaves_als_and_parkinson_possible(bundled_model):
    """The clinical review's example: once + hours used to give ALS, Parkinson's, RLS, polyneuropathy and
    iron deficiency probability 0."""
    dx = bayesdx.rank_causes(
        {"frequency": "once", "duration": "hours", "muscle_wasting": "yes", "muscle_weakness": "yes", "electromyography": "abnormal"},
        model=bundled_model,
        next_steps=False,
    )
    for cause in ("als", "parkinsons_disease", "restless_legs_syndrome", "polyneuropathy", "iron_deficiency"):
        assert dx.probability(cause) > 0.0
    assert dx.rank("als") <= 3
