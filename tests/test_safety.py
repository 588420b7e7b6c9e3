"""Safety (issue 12): red flags that never send an emergency home, and referral that follows triage.

Each red-flag rule is checked on the presentation it names, with the guideline its basis cites; benign
look-alikes must stay below emergency; self care must never win against a finding it does not explain;
adding a red-flag finding to any case never lowers its triage level; and on the blind safety vignettes
(evaluation/vignettes/safety.csv, written without sight of the rules) every emergency is sent to emergency care.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesdx

REPO = Path(__file__).resolve().parents[1]
VIGNETTES = REPO / "evaluation" / "vignettes"
LEVELS = ("self_care", "routine_appointment", "prompt_specialist", "emergency")
RED_FLAG_FINDINGS = (
    "saddle_numbness_or_bladder",
    "rapidly_worsening",
    "swallowing_speech_or_breathing",
    "neck_stiffness_or_confusion",
    "dark_urine",
    "seizure_over_5_minutes",
    "sudden_severe_leg_pain",
    "new_or_worst_headache",
)


@pytest.fixture(scope="module")
def model(bundled_model: bayesdx.Model) -> bayesdx.Model:
    return bundled_model


def _dx(model: bayesdx.Model, evidence: dict[str, str]) -> bayesdx.Diagnosis:
    return bayesdx.rank_causes(evidence, model=model, next_steps=False)


def _cases(name: str, model: bayesdx.Model) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    frame = pd.read_csv(VIGNETTES / name, dtype=str, keep_default_na=False)
    return frame, [{c: v for c, v in row.items() if c in model.states and v != ""} for _, row in frame.iterrows()]


# ---------------------------------------------------------------------- one test per red-flag rule
RED_FLAG_CASES = [
    # (name, evidence, guideline the firing rule must cite)
    ("cauda equina: saddle numbness", {"saddle_numbness_or_bladder": "yes", "back_pain_radiating": "yes"}, "NICE NG59"),
    (
        "cauda equina: bilateral sciatica with deficit",
        {"back_pain_radiating": "yes", "both_legs": "yes", "numbness_tingling": "yes", "muscle_weakness": "yes"},
        "GIRFT",
    ),
    (
        "spinal injury: trauma, back pain, weakness",
        {"recent_injury": "yes", "back_pain_radiating": "yes", "muscle_weakness": "yes"},
        "NICE NG41",
    ),
    ("spinal injury: trauma, numb legs", {"recent_injury": "yes", "both_legs": "yes", "numbness_tingling": "yes"}, "NICE NG41"),
    ("Guillain-Barre / myelitis: spreading over days", {"rapidly_worsening": "yes", "muscle_weakness": "yes"}, "Guillain-Barre"),
    (
        "bulbar or respiratory involvement",
        {"swallowing_speech_or_breathing": "yes", "muscle_weakness": "yes", "twitch_appearance": "fine_flicker"},
        "NICE NG42",
    ),
    ("meningism or confusion", {"neck_stiffness_or_confusion": "yes", "fever": "yes"}, "NICE NG240"),
    ("adult seizure with fever", {"age_group": "adult", "fever": "yes", "loss_of_consciousness": "yes"}, "NICE NG240"),
    ("status epilepticus", {"seizure_over_5_minutes": "yes", "twitch_appearance": "visible_jerk"}, "NICE NG217"),
    ("seizure with worst headache", {"new_or_worst_headache": "yes", "twitch_appearance": "visible_jerk"}, "NICE NG228"),
    ("acute limb ischaemia: cold, pale, painful", {"sudden_severe_leg_pain": "yes", "cold_pale_legs": "yes"}, "ESVS 2020"),
    (
        "acute limb ischaemia: cold within hours, numb",
        {"cold_pale_legs": "yes", "duration": "hours", "numbness_tingling": "yes"},
        "ESVS 2020",
    ),
    ("threatened limb: sudden pain and weakness", {"sudden_severe_leg_pain": "yes", "muscle_weakness": "yes"}, "ESVS 2020"),
    (
        "child with thirst and polyuria (DKA risk)",
        {"age_group": "child", "thirst_frequent_urination": "yes", "general_malaise": "yes"},
        "NICE NG18",
    ),
    ("rhabdomyolysis: dark urine after exertion", {"dark_urine": "yes", "recent_overexertion": "yes"}, "Bosch"),
    (
        "rhabdomyolysis: cramps, weakness, raised CK after exertion",
        {"recent_overexertion": "yes", "painful_cramps": "yes", "muscle_weakness": "yes", "creatine_kinase": "abnormal"},
        "Exertional rhabdomyolysis",
    ),
]


@pytest.mark.parametrize(("name", "evidence", "guideline"), RED_FLAG_CASES, ids=[c[0] for c in RED_FLAG_CASES])
def test_each_red_flag_is_an_emergency_with_its_guideline_named(model, name, evidence, guideline):
    dx = _dx(model, evidence)
    assert dx.triage == "emergency", (name, dx.triage)
    assert any(guideline in reason for reason in dx.triage_reasons), dx.triage_reasons
    assert dx.referral == "emergency department"


@pytest.mark.parametrize(
    "evidence",
    [
        {"sudden_severe_leg_pain": "yes"},  # calf tear or DVT: same-day examination, not an ambulance
        {"dark_urine": "yes"},  # concentrated urine: a CK and urine test soon
    ],
    ids=["sudden_pain_alone", "dark_urine_alone"],
)
def test_a_red_flag_finding_alone_is_at_least_prompt(model, evidence):
    assert LEVELS.index(_dx(model, evidence).triage) >= LEVELS.index("prompt_specialist")


# ---------------------------------------------------------------------- look-alikes stay below emergency
LOOK_ALIKES = [
    (
        "sciatica without deficit",
        {
            "back_pain_radiating": "yes",
            "both_legs": "no",
            "numbness_tingling": "no",
            "muscle_weakness": "no",
            "saddle_numbness_or_bladder": "no",
        },
    ),
    (
        "cramps after a run, no dark urine",
        {"recent_overexertion": "yes", "painful_cramps": "yes", "dark_urine": "no", "frequency": "once", "duration": "hours"},
    ),
    ("cold feet for years", {"cold_pale_legs": "yes", "duration": "over_3_months", "sudden_severe_leg_pain": "no"}),
    (
        "stable diabetic numb feet",
        {
            "numbness_tingling": "yes",
            "both_legs": "yes",
            "thirst_frequent_urination": "yes",
            "age_group": "older_adult",
            "duration": "over_3_months",
            "rapidly_worsening": "no",
        },
    ),
    ("adult with thirst, otherwise well", {"age_group": "adult", "thirst_frequent_urination": "yes"}),
    (
        "anxious adult with fasciculations",
        {"emotional_stress": "yes", "twitch_appearance": "fine_flicker", "muscle_weakness": "no", "frequency": "daily"},
    ),
    ("minor knock to the thigh", {"recent_injury": "yes", "frequency": "once", "muscle_weakness": "no", "numbness_tingling": "no"}),
]


@pytest.mark.parametrize(("name", "evidence"), LOOK_ALIKES, ids=[c[0] for c in LOOK_ALIKES])
def test_benign_look_alikes_are_not_sent_to_the_emergency_department(model, name, evidence):
    dx = _dx(model, evidence)
    assert dx.triage != "emergency", (name, dx.triage_reasons)
    assert dx.referral != "emergency department"


# ---------------------------------------------------------------------- self care needs nothing unexplained
@pytest.mark.parametrize(
    "extra",
    [
        {"fever": "yes"},
        {"cold_pale_legs": "yes", "numbness_tingling": "yes"},
        {"muscle_wasting": "yes"},
        {"blood_glucose_hba1c": "abnormal"},
    ],
    ids=["fever", "cold_numb_leg", "wasting", "raised_glucose"],
)
def test_self_care_never_wins_against_a_finding_it_does_not_explain(model, extra):
    """Article: "If twitching in the leg occurs once, a doctor is definitely not necessary" -- but only when
    nothing else positive is left unexplained."""
    assert _dx(model, {"frequency": "once", "age_group": "adult"}).triage == "self_care"
    assert _dx(model, {"frequency": "once", "age_group": "adult", **extra}).triage != "self_care"


def test_self_care_still_covers_the_benign_triggers_it_explains(model):
    dx = _dx(
        model, {"frequency": "once", "recent_overexertion": "yes", "painful_cramps": "yes", "emotional_stress": "yes", "duration": "hours"}
    )
    assert dx.triage == "self_care"


# ---------------------------------------------------------------------- the property
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_adding_a_red_flag_finding_never_lowers_triage(model, data):
    """Whatever a case already carries (a random subset of a blind vignette), answering a red-flag question
    with yes never lowers its triage level."""
    _frame, cases = _cases("dev2.csv", model)
    case = data.draw(st.sampled_from(cases), label="vignette")
    keep = data.draw(st.lists(st.booleans(), min_size=len(case), max_size=len(case)), label="keep")
    evidence = {k: v for (k, v), kept in zip(case.items(), keep, strict=True) if kept}
    flag = data.draw(st.sampled_from(RED_FLAG_FINDINGS), label="flag")
    before = _dx(model, {k: v for k, v in evidence.items() if k != flag}).triage
    after = _dx(model, {**evidence, flag: "yes"}).triage
    assert LEVELS.index(after) >= LEVELS.index(before), (evidence, flag, before, after)


# ---------------------------------------------------------------------- referral follows triage
@pytest.mark.parametrize(
    ("evidence", "contact"),
    [
        ({"muscle_wasting": "yes"}, "neurologist"),  # wasting alone
        (
            {"emotional_stress": "yes", "muscle_weakness": "yes", "electromyography": "abnormal", "duration": "over_3_months"},
            "neurologist",
        ),  # abnormal EMG with stress
        (
            {"loss_of_consciousness": "yes", "twitch_appearance": "visible_jerk", "fever": "no", "frequency": "once", "duration": "hours"},
            "emergency department",
        ),  # a first seizure
        ({"emotional_stress": "yes", "vision_or_balance_problems": "yes"}, "neurologist"),
    ],
    ids=["wasting", "emg_with_stress", "first_seizure", "stress_with_vision"],
)
def test_referral_follows_triage_and_red_flags(model, evidence, contact):
    dx = _dx(model, evidence)
    assert dx.referral == contact, (dx.referral, dx.referral_reason)
    assert dx.referral_reason


def test_no_psychiatric_referral_once_a_red_flag_fired(model):
    dx = _dx(model, {"emotional_stress": "yes", "high_caffeine_intake": "yes", "dark_urine": "yes"})
    assert dx.triage in ("prompt_specialist", "emergency")
    assert dx.referral != "psychiatrist", dx.referral_reason


# ---------------------------------------------------------------------- the blind vignette sets
def _advice(model: bayesdx.Model, name: str) -> tuple[pd.DataFrame, list[str]]:
    frame, cases = _cases(name, model)
    return frame, [_dx(model, c).triage for c in cases]


def test_every_emergency_in_the_blind_safety_set_is_sent_to_emergency_care(model):
    frame, advice = _advice(model, "safety.csv")
    assert len(frame) >= 40
    missed = [(cid, a) for cid, a, t in zip(frame.case_id, advice, frame.true_triage, strict=True) if t == "emergency" and a != "emergency"]
    assert not missed
    look_alikes_to_ed = [
        cid for cid, a, t in zip(frame.case_id, advice, frame.true_triage, strict=True) if t != "emergency" and a == "emergency"
    ]
    assert not look_alikes_to_ed


@pytest.mark.parametrize("name", ["dev.csv", "dev2.csv", "safety.csv"])
def test_safe_advice_on_the_vignette_sets(model, name):
    """Gilbert 2020 (BMJ Open): safe advice is the vignette's level, more cautious, or one level less
    cautious, and emergencies only as emergencies. Floors set from the issue's goals, not from results."""
    frame, advice = _advice(model, name)
    got = [LEVELS.index(a) for a in advice]
    truth = [LEVELS.index(t) for t in frame.true_triage]
    safe = [(a == 3) if t == 3 else (a >= t - 1) for a, t in zip(got, truth, strict=True)]
    assert sum(safe) / len(safe) >= 0.97
    assert all(a == 3 for a, t in zip(got, truth, strict=True) if t == 3)
    under = sum(a < t for a, t in zip(got, truth, strict=True)) / len(got)
    assert under <= 0.05


def test_referral_without_the_complaint_follows_the_posterior(model):
    """A case that states the complaint absent has no disablement scores; the referral then weighs the
    posteriors (it went to the first contact listed, a psychiatrist, for swollen joints with raised CRP)."""
    dx = _dx(model, {"leg_twitching": "no", "joint_pain_swelling": "yes", "inflammation_markers": "abnormal", "age_group": "older_adult"})
    assert all(c.disablement == 0.0 for c in dx.causes)
    assert dx.referral == "orthopedist", dx.referral_reason


def test_a_rule_on_an_alias_fires_for_each_of_its_states():
    """triage.py: an alias in `when` ("abnormal") stands for its states; an alias answer matches a rule that
    lists all of the alias's states."""
    from pathlib import Path as _Path

    from bayesdx.triage import TriagePolicy

    states = {"emg": ("normal", "myopathic", "neurogenic", "abnormal")}
    aliases = {"emg": {"abnormal": ("myopathic", "neurogenic")}}
    raw = {"levels": ["low", "high"], "default": "low", "rules": [{"level": "high", "when": {"emg": "abnormal"}, "basis": "b"}]}
    policy = TriagePolicy.parse(_Path("m.toml"), raw, states, [], aliases=aliases)
    for answer, level in (("abnormal", "high"), ("neurogenic", "high"), ("myopathic", "high"), ("normal", "low")):
        assert policy.assess({"emg": answer}, {})[0] == level
    raw["rules"][0]["when"] = {"emg": ["myopathic", "neurogenic"]}
    policy = TriagePolicy.parse(_Path("m.toml"), raw, states, [], aliases=aliases)
    assert policy.assess({"emg": "abnormal"}, {})[0] == "high"
