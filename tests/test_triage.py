"""Triage and referral rules (src/bayesdx/triage.py, the [triage] and [referral] sections of the model file).

Each level gets a case named after the article sentence or clinical source of its rule; red flags are
checked never to be under-triaged whatever else a case carries; the parsers are checked error by error.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesdx
from bayesdx.exceptions import ModelFileError
from bayesdx.triage import ReferralPolicy, TriagePolicy, TriageRule

REPO = Path(__file__).resolve().parents[1]
MODEL_FILE = REPO / "models" / "leg_twitch.toml"
DEV = REPO / "evaluation" / "vignettes" / "dev.csv"
LEVELS = ("self_care", "routine_appointment", "prompt_specialist", "emergency")

ONCE = "If twitching in the leg occurs once, a doctor is definitely not necessary."
REGULARLY = "Only if twitching in the leg occurs regularly, an examination by an appropriate physician should take place."


@pytest.fixture(scope="module")
def model(bundled_model: bayesdx.Model) -> bayesdx.Model:
    return bundled_model


def _model_file() -> dict:
    with MODEL_FILE.open("rb") as handle:
        return tomllib.load(handle)


RULES = _model_file()["triage"]["rules"]
#: The emergency red flags of the model file, each as the evidence that raises it.
RED_FLAGS = [
    {var: (value if isinstance(value, str) else value[0]) for var, value in rule["when"].items()}
    for rule in RULES
    if rule["level"] == "emergency" and "when" in rule
]
WHEN_RULES = [rule for rule in RULES if "when" in rule]


def _triage(model: bayesdx.Model, evidence: dict) -> bayesdx.Diagnosis:
    return bayesdx.rank_causes(evidence, model=model, next_steps=False)


def _dev() -> pd.DataFrame:
    return pd.read_csv(DEV, dtype=str, keep_default_na=False)


def _evidence(row: pd.Series, model: bayesdx.Model) -> dict[str, str]:
    return {c: v for c, v in row.items() if c in model.states and v != ""}


# ---------------------------------------------------------------------- one case per level
def test_the_model_declares_the_vocabulary_levels_lowest_first(model):
    assert model.triage_policy.levels == LEVELS
    assert model.triage_policy.default == "routine_appointment"


def test_self_care_for_a_single_episode_after_overexertion(model):
    """Article: "If twitching in the leg occurs once, a doctor is definitely not necessary." and "In other
    cases, twitching in the leg can also occur due to overloading of the muscles. In such a case, a visit
    to the doctor is not necessary." """
    dx = _triage(model, {"frequency": "once", "recent_overexertion": "yes", "duration": "hours"})
    assert dx.triage == "self_care"
    assert any(ONCE in reason for reason in dx.triage_reasons)


@pytest.mark.parametrize("frequency", ["occasional", "daily"])
def test_routine_appointment_when_twitching_occurs_regularly(model, frequency):
    """Article: "Only if twitching in the leg occurs regularly, an examination by an appropriate physician
    should take place." """
    dx = _triage(model, {"frequency": frequency, "age_group": "adult"})
    assert dx.triage == "routine_appointment"
    assert any(REGULARLY in reason for reason in dx.triage_reasons)


@pytest.mark.parametrize(
    "evidence",
    [
        {"muscle_wasting": "yes"},  # NICE NG42: fasciculations with wasting suggest motor neuron disease
        {"muscle_weakness": "yes"},  # new weakness is a neurological deficit
        {"vision_or_balance_problems": "yes"},  # visual or balance symptoms: suspected MS (NICE NG220)
    ],
    ids=["wasting", "weakness", "vision_or_balance"],
)
def test_prompt_specialist_for_neurological_deficits(model, evidence):
    """Article: "behind the muscle twitching as a symptom, serious clinical pictures of the nervous system can
    also be hidden, which can only be ruled out with the help of extended diagnostics." """
    assert _triage(model, evidence).triage == "prompt_specialist"


@pytest.mark.parametrize(
    "evidence",
    [
        {"loss_of_consciousness": "yes"},
        {"fever": "yes", "twitch_appearance": "visible_jerk", "age_group": "child"},
    ],
    ids=["loss_of_consciousness", "febrile_convulsion_in_a_child"],
)
def test_emergency_for_seizures_and_febrile_convulsions(model, evidence):
    """Article: "if the muscle twitching is clearly visible, the physician refers to it as myoclonia, such as
    can occur during an epileptic seizure. There is an additional risk of injury." and "Febrile convulsions
    in infections". Clinical: convulsions with fever need urgent care to exclude meningitis (NICE NG143)."""
    assert _triage(model, evidence).triage == "emergency"


@pytest.mark.parametrize("evidence", [{}, {"sex": "female"}, {"age_group": "adult", "sex": "male"}])
def test_the_default_level_applies_when_no_rule_fires(model, evidence):
    dx = _triage(model, evidence)
    assert dx.triage == model.triage_policy.default == "routine_appointment"
    assert dx.triage_reasons == ()


@pytest.mark.parametrize("rule", WHEN_RULES, ids=[f"{r['level']}:{','.join(r['when'])}" for r in WHEN_RULES])
def test_every_observation_rule_fires_and_carries_its_basis(model, rule):
    """Each rule with a `when` condition, read from the model file: a case that meets it is triaged at least
    at the rule's level, and when that is the level the rule's basis is among the reasons."""
    evidence = {var: (value if isinstance(value, str) else value[0]) for var, value in rule["when"].items()}
    dx = _triage(model, evidence)
    assert LEVELS.index(dx.triage) >= LEVELS.index(rule["level"])
    if dx.triage == rule["level"]:
        assert rule["basis"] in dx.triage_reasons


def test_posterior_rule_raises_a_probable_serious_disease_to_a_specialist(model):
    """A 30% posterior of a serious neurological or muscle disease warrants a specialist (model file's
    assumption), even without a red-flag observation: daily rhythmic resting tremor in an older adult."""
    evidence = {
        "rhythm": "rhythmic",
        "frequency": "daily",
        "duration": "over_3_months",
        "age_group": "older_adult",
        "worse_at_rest_or_night": "yes",
    }
    dx = _triage(model, evidence)
    serious = sum(dx.probability(c) for c in ("als", "multiple_sclerosis", "myopathy", "parkinsons_disease", "epilepsy"))
    assert serious >= 0.3
    assert dx.triage == "prompt_specialist"
    rule = next(r for r in RULES if r.get("posterior_at_least") == 0.3)
    assert rule["basis"] in dx.triage_reasons


# ---------------------------------------------------------------------- red flags are never under-triaged
@pytest.fixture(scope="module")
def dev_cases(model) -> list[dict[str, str]]:
    return [_evidence(row, model) for _, row in _dev().iterrows()]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_red_flag_added_to_any_other_evidence_is_an_emergency(model, dev_cases, data):
    """Safety property: whatever else is known (a random subset of a development vignette's evidence), a
    red flag of the model file makes the case an emergency, and the reason is that rule's basis."""
    case = data.draw(st.sampled_from(dev_cases), label="vignette")
    keep = data.draw(st.lists(st.booleans(), min_size=len(case), max_size=len(case)), label="keep")
    flag_index = data.draw(st.integers(0, len(RED_FLAGS) - 1), label="red flag")
    flag = RED_FLAGS[flag_index]
    evidence = {**{k: v for (k, v), kept in zip(case.items(), keep, strict=True) if kept}, **flag}
    dx = _triage(model, evidence)
    assert dx.triage == "emergency", evidence
    rule = [r for r in RULES if r["level"] == "emergency" and "when" in r][flag_index]
    assert rule["basis"] in dx.triage_reasons


def test_there_are_red_flags_for_seizures_and_febrile_convulsions():
    assert {"loss_of_consciousness": "yes"} in RED_FLAGS
    assert {"fever": "yes", "twitch_appearance": "visible_jerk"} in RED_FLAGS


# ---------------------------------------------------------------------- accuracy on the development vignettes
def test_triage_accuracy_and_under_triage_on_dev_vignettes(model):
    frame = _dev()
    got = [_triage(model, _evidence(row, model)).triage for _, row in frame.iterrows()]
    truth = list(frame["true_triage"])
    assert set(truth) <= set(LEVELS)
    accuracy = sum(g == t for g, t in zip(got, truth, strict=True)) / len(truth)
    under = [(cid, g, t) for cid, g, t in zip(frame["case_id"], got, truth, strict=True) if LEVELS.index(g) < LEVELS.index(t)]
    over = sum(LEVELS.index(g) > LEVELS.index(t) for g, t in zip(got, truth, strict=True))
    print(
        f"\ntriage on dev.csv ({len(truth)} cases): accuracy {accuracy:.3f}, under-triage "
        f"{len(under) / len(truth):.3f} {under}, over-triage {over / len(truth):.3f}"
    )
    # The product's safety floor, fixed before looking at results and not a tuned number: at most one case
    # in ten may be sent to a lower level than the vignette's author chose. The triage rules were reviewed
    # against these same vignettes, so the printed figure is optimistic; the floor only catches breakage.
    assert len(under) / len(truth) <= 0.10, under


# ---------------------------------------------------------------------- referral
@pytest.mark.parametrize(
    ("evidence", "contact"),
    [
        ({"urge_to_move": "yes", "worse_at_rest_or_night": "yes"}, "neurologist"),  # restless legs
        (
            {
                "muscle_weakness": "yes",
                "muscle_wasting": "yes",
                "twitch_appearance": "fine_flicker",
                "frequency": "daily",
                "duration": "over_3_months",
                "age_group": "older_adult",
            },
            "neurologist",
        ),  # ALS / polyneuropathy
        ({"emotional_stress": "yes"}, "psychiatrist"),  # psychosomatic twitching
        ({"back_pain_radiating": "yes", "numbness_tingling": "yes"}, "orthopedist"),  # radicular: nerve root
        ({"painful_cramps": "yes", "recent_overexertion": "yes"}, "family doctor"),  # benign: no specialist
    ],
    ids=["rls", "als", "stress", "nerve_root", "overexertion"],
)
def test_referral_follows_the_leading_causes(model, evidence, contact):
    """Article: "Medical contacts for twitching in the leg are family doctors, neurologists, psychiatrists
    and orthopedists." """
    assert _triage(model, evidence).referral == contact


# ---------------------------------------------------------------------- TriagePolicy and ReferralPolicy units
PATH = Path("m.toml")
STATES = {"fever": ("yes", "no"), "cough": ("yes", "no")}
HYPOTHESES = ["flu", "cold"]
LEVELS2 = ["low", "high"]


def _rule(**extra):
    return {"level": "high", "when": {"fever": "yes"}, "basis": "clinical: x", **extra}


TRIAGE_ERRORS = [
    ([], "triage", "must be a table"),
    ({"levels": ["only"], "default": "only"}, "triage.levels", "must list at least two level names, lowest first"),
    ({"levels": "low,high", "default": "low"}, "triage.levels", "must list at least two level names"),
    ({"levels": LEVELS2, "default": "medium"}, "triage.default", "must be one of ['low', 'high'], got 'medium'"),
    ({"levels": LEVELS2, "default": "low", "rules": ["x"]}, "triage.rules[0]", "must be a table"),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(level="urgent")]},
        "triage.rules[0].level",
        "must be one of ['low', 'high'], got 'urgent'",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(basis="")]},
        "triage.rules[0].basis",
        "is missing: every triage rule cites its sentence or clinical source",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(when={"rash": "yes"})]},
        "triage.rules[0].when.rash",
        "refers to unknown node 'rash'",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(when={"fever": "high"})]},
        "triage.rules[0].when.fever",
        "'high' is not a state of 'fever'; valid states are ['yes', 'no']",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(causes=["measles"], posterior_at_least=0.5)]},
        "triage.rules[0].causes",
        "'measles' is not a cause hypothesis of the model",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(causes=["flu"])]},
        "triage.rules[0]",
        "'causes' and 'posterior_at_least' go together",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(posterior_at_least=0.5)]},
        "triage.rules[0]",
        "'causes' and 'posterior_at_least' go together",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(causes=["flu"], posterior_at_least=1.5)]},
        "triage.rules[0].posterior_at_least",
        "must be a probability, got 1.5",
    ),
    (
        {"levels": LEVELS2, "default": "low", "rules": [_rule(when={})]},
        "triage.rules[0]",
        "needs a 'when' condition or 'causes' with 'posterior_at_least'",
    ),
    ({"levels": LEVELS2, "default": "low", "rules": [_rule(), _rule(level="nope")]}, "triage.rules[1].level", "got 'nope'"),
]


@pytest.mark.parametrize(("raw", "key", "message"), TRIAGE_ERRORS, ids=[f"{k}:{m[:20]}" for _, k, m in TRIAGE_ERRORS])
def test_triage_policy_parse_errors_name_the_key(raw, key, message):
    with pytest.raises(ModelFileError, match=re.escape(f"m.toml, key {key!r}: ") + ".*" + re.escape(message)) as info:
        TriagePolicy.parse(PATH, raw, STATES, HYPOTHESES)
    assert info.value.key == key


REFERRAL_ERRORS = [
    ("family doctor", "referral.default", "must name the default contact"),
    ({"contacts": {}}, "referral.default", "must name the default contact"),
    ({"default": 3}, "referral.default", "must name the default contact"),
    ({"default": "gp", "contacts": ["flu"]}, "referral.contacts", "must be a table of cause = contact, got ['flu']"),
    ({"default": "gp", "contacts": {"measles": "gp"}}, "referral.contacts.measles", "'measles' is not a cause hypothesis of the model"),
    ({"default": "gp", "contacts": {"flu": 1}}, "referral.contacts.flu", "must be a contact name, got 1"),
]


@pytest.mark.parametrize(("raw", "key", "message"), REFERRAL_ERRORS, ids=[k + str(i) for i, (_, k, _) in enumerate(REFERRAL_ERRORS)])
def test_referral_policy_parse_errors_name_the_key(raw, key, message):
    with pytest.raises(ModelFileError, match=re.escape(f"m.toml, key {key!r}: {message}")) as info:
        ReferralPolicy.parse(PATH, raw, HYPOTHESES)
    assert info.value.key == key


def test_triage_policy_parses_a_valid_table():
    policy = TriagePolicy.parse(
        PATH,
        {
            "levels": LEVELS2,
            "default": "low",
            "rules": [
                _rule(),
                {"level": "high", "causes": ["flu"], "posterior_at_least": 0.4, "basis": "b"},
                {"level": "low", "when": {"cough": ["yes", "no"]}, "basis": "c"},
            ],
        },
        STATES,
        HYPOTHESES,
    )
    assert policy.levels == ("low", "high")
    assert policy.default == "low"
    assert policy.rules[0] == TriageRule("high", {"fever": ("yes",)}, (), None, "clinical: x")
    assert policy.rules[1] == TriageRule("high", {}, ("flu",), 0.4, "b")
    assert policy.rules[2].when == {"cough": ("yes", "no")}


def test_triage_policy_takes_the_highest_level_that_fires_and_its_rules():
    low = TriageRule("low", {"cough": ("yes",)}, (), None, "low rule")
    high = TriageRule("high", {"fever": ("yes",)}, (), None, "fever rule")
    flu = TriageRule("high", {}, ("flu", "cold"), 0.5, "posterior rule")
    policy = TriagePolicy(("low", "mid", "high"), "mid", (low, high, flu))
    assert policy.assess({}, {"flu": 0.1, "cold": 0.1}) == ("mid", ())
    assert policy.assess({"cough": "yes"}, {"flu": 0.1}) == ("low", (low,))
    assert policy.assess({"cough": "yes", "fever": "yes"}, {"flu": 0.1}) == ("high", (high,))
    # the posterior rule sums its causes: 0.3 + 0.2 reaches 0.5
    assert policy.assess({"cough": "yes"}, {"flu": 0.3, "cold": 0.2}) == ("high", (flu,))
    assert policy.assess({"fever": "yes"}, {"flu": 0.3, "cold": 0.2}) == ("high", (high, flu))
    assert policy.assess({"fever": "no"}, {"flu": 0.3, "cold": 0.19}) == ("mid", ())


def test_referral_policy_sums_posteriors_by_contact_over_the_pursued_causes():
    policy = ReferralPolicy("gp", {"flu": "chest", "cold": "ent"})
    # gp collects the causes without a contact: 0.3 + 0.25 beats chest 0.5
    assert policy.refer({"flu": 0.5, "cold": 0.1, "a": 0.3, "b": 0.25}, ("flu", "cold", "a", "b")) == "gp"
    assert policy.refer({"flu": 0.5, "cold": 0.1, "a": 0.3, "b": 0.25}, ("flu", "cold", "a")) == "chest"
    assert policy.refer({"flu": 0.5}, ()) == "gp"


def test_referral_tie_goes_to_the_contact_listed_first():
    """triage.py's documentation: "ties go to the contact listed first" (in the [referral] contacts table)."""
    policy = ReferralPolicy("gp", {"flu": "chest", "cold": "ent"})
    assert policy.refer({"flu": 0.4, "cold": 0.4}, ("cold", "flu")) == "chest"
