"""Medical sanity of the bundled leg-twitch model (issue 3).

Each test names the article sentence (verbatim) or the clinical fact it encodes. The checks are ranks and
directions, not tuned numbers; the golden numbers (priors at the reference evidence) are computed here
from the prior files with ``tomllib`` and from pgmpy's VariableElimination, not from bayesdx output.
The presenting complaint (leg_twitching = yes) is part of every case.
"""

from __future__ import annotations

import csv
import os
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesdx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PRIOR_DIR = REPO / "priors"
DEV = REPO / "evaluation" / "vignettes" / "dev.csv"
SETTINGS = ("article", "article_kent", "epidemiology", "uniform")
BENIGN = (
    "overexertion",
    "stress_anxiety",
    "substance_use",
    "medication_side_effect",
    "magnesium_deficiency",
    "iron_deficiency",
    "vitamin_deficiency",
)


def _shared(relative: str, env_var: str) -> Path:
    path = SHARED / relative
    if path.is_file():
        return path
    override = os.environ.get(env_var)
    if override and Path(override).is_file():
        return Path(override)
    pytest.skip(f"{relative} not found; set {env_var} to its path")


@pytest.fixture(scope="module")
def model(bundled_model: bayesdx.Model) -> bayesdx.Model:
    return bundled_model


@pytest.fixture(scope="module")
def models(model: bayesdx.Model) -> dict[str, bayesdx.Model]:
    """The bundled model under every prior setting (article is the default, already loaded)."""
    return {name: (model if name == "article" else bayesdx.load_model(priors=name)) for name in SETTINGS}


def _rank(model: bayesdx.Model, evidence: dict) -> bayesdx.Diagnosis:
    return bayesdx.rank_causes(evidence, model=model, next_steps=False)


def _ids(dx: bayesdx.Diagnosis, k: int) -> list[str]:
    return [c.id for c in dx.causes[:k]]


# ---------------------------------------------------------------------- rankings
def test_a_single_episode_after_unaccustomed_exertion_ranks_overexertion_first(model):
    """Article: "Often, twitching in the leg is caused by unaccustomed overexertion" and "However, this
    appearance should disappear completely on its own after a few hours." """
    dx = _rank(model, {"recent_overexertion": "yes", "frequency": "once", "duration": "hours"})
    assert dx.causes[0].id == "overexertion"


def test_seizures_with_loss_of_consciousness_rank_epilepsy_above_the_benign_causes(model):
    """Article: "if the muscle twitching is clearly visible, the physician refers to it as myoclonia, such as
    can occur during an epileptic seizure." """
    dx = _rank(model, {"loss_of_consciousness": "yes", "twitch_appearance": "visible_jerk"})
    for benign in BENIGN:
        assert dx.rank("epilepsy") < dx.rank(benign), benign
    assert dx.causes[0].id == "epilepsy"


def test_weakness_with_wasting_and_daily_fasciculations_for_months_puts_als_in_the_top_three(model):
    """Clinical: fasciculations with progressive weakness and muscle wasting in an older adult are the
    picture of motor neuron disease (NICE NG42); ALS must be on the differential. Article: "direct
    prevention of nerve disorders such as amyotrophic lateral sclerosis ... is not possible." """
    dx = _rank(
        model,
        {
            "muscle_weakness": "yes",
            "muscle_wasting": "yes",
            "twitch_appearance": "fine_flicker",
            "frequency": "daily",
            "duration": "over_3_months",
            "age_group": "older_adult",
        },
    )
    assert "als" in _ids(dx, 3)


def test_urge_to_move_worse_at_rest_and_at_night_ranks_restless_legs_first(model):
    """Article: "The most common neurological disorder that triggers twitching of the legs is the so-called
    restless legs syndrome, restless legs syndrome, which occurs especially during sleep." Clinical: the
    urge to move, worse at rest and in the evening, is the IRLSSG definition (Allen 2014)."""
    dx = _rank(model, {"urge_to_move": "yes", "worse_at_rest_or_night": "yes"})
    assert dx.causes[0].id == "restless_legs_syndrome"


def test_painful_cramps_and_alcohol_raise_magnesium_deficiency(model):
    """Article: "If painful cramps also occur, emphasis should be placed on a balanced diet with a high
    magnesium content." Clinical: chronic alcohol use causes hypomagnesaemia (Ayuk & Gittoes 2014)."""
    before = _rank(model, {}).probability("magnesium_deficiency")
    cramps = _rank(model, {"painful_cramps": "yes"}).probability("magnesium_deficiency")
    both = _rank(model, {"painful_cramps": "yes", "alcohol_or_drug_use": "yes"}).probability("magnesium_deficiency")
    assert before < cramps < both


def test_a_child_with_fever_and_visible_jerks_ranks_febrile_infection_first(model):
    """Article: "Febrile convulsions in infections, diabetes mellitus or orthopedic clinical pictures with
    nerve irritations can also underlie the twitching of the leg." Clinical: febrile seizures occur in
    2-5% of young children (AAP 2011)."""
    dx = _rank(model, {"fever": "yes", "twitch_appearance": "visible_jerk", "age_group": "child"})
    assert dx.causes[0].id == "febrile_infection"


def test_a_woman_with_fatigue_pallor_and_low_ferritin_ranks_iron_deficiency_first(model):
    """Article: "Repeated twitching of the leg can be a sign of a serious iron deficiency." Clinical: a low
    ferritin is the most specific test for iron deficiency; iron deficiency is several times commoner in
    women (Looker 1997)."""
    dx = _rank(model, {"fatigue_pallor": "yes", "sex": "female", "blood_ferritin": "abnormal"})
    assert dx.causes[0].id == "iron_deficiency"


def test_a_boy_with_months_of_weakness_and_a_raised_ck_ranks_myopathy_above_overexertion(model):
    """Article: "If polio, degeneration of the cervical spine or serious muscular diseases are suspected,
    self-measures should be refrained from." Clinical: proximal weakness with a raised creatine kinase for
    more than three months in a boy is a myopathy (e.g. a dystrophy) until proven otherwise; an
    exercise-induced CK rise peaks within days and settles within about a week, and overexertion "should
    disappear completely on its own after a few hours". (The dev053 vignette; a strict xfail until the
    counterfactual ranking: co-present stress no longer lends overexertion the long course.)"""
    dx = _rank(
        model,
        {
            "twitch_appearance": "fine_flicker",
            "frequency": "occasional",
            "duration": "over_3_months",
            "both_legs": "yes",
            "muscle_weakness": "yes",
            "age_group": "child",
            "sex": "male",
            "creatine_kinase": "abnormal",
        },
    )
    assert dx.rank("myopathy") < dx.rank("overexertion"), _ids(dx, 4)


def test_a_child_with_daily_visible_jerks_and_an_epileptiform_eeg_ranks_epilepsy_above_stress(model):
    """Article: "if the muscle twitching is clearly visible, the physician refers to it as myoclonia, such as
    can occur during an epileptic seizure." Clinical: interictal epileptiform discharges are found in only
    about 2-4% of healthy children, so with daily myoclonic jerks they make epilepsy (e.g. a myoclonic
    epilepsy, often without loss of consciousness) far more likely than psychosomatic twitching (NICE NG217).
    (The dev062 vignette.)"""
    dx = _rank(
        model,
        {
            "twitch_appearance": "visible_jerk",
            "rhythm": "arrhythmic",
            "frequency": "daily",
            "duration": "days_to_weeks",
            "stimulus_triggered": "no",
            "fever": "no",
            "loss_of_consciousness": "no",
            "age_group": "child",
            "sex": "male",
            "eeg": "abnormal",
        },
    )
    assert dx.rank("epilepsy") < dx.rank("stress_anxiety"), _ids(dx, 4)


# ---------------------------------------------------------------------- explaining away and age
ALS_EVIDENCE = {"muscle_weakness": "yes", "muscle_wasting": "yes", "electromyography": "neurogenic", "neurological_exam": "abnormal"}


def test_strong_als_evidence_explains_away_stress(model):
    """Clinical reasoning the model file states at [model.presenting]: once the twitching is explained by
    ALS, stress is no more likely than in anyone else. None of this evidence is linked to stress, so the
    fall must come through the common effect, the presenting complaint (explaining away)."""
    base = _rank(model, {}).probability("stress_anxiety")
    with_als = _rank(model, ALS_EVIDENCE)
    assert with_als.probability("als") > 10 * _rank(model, {}).probability("als")
    assert with_als.probability("stress_anxiety") < base


def test_without_the_presenting_complaint_als_evidence_leaves_stress_unchanged(model):
    """The d-separation behind explaining away, checked with pgmpy's VariableElimination on the network:
    without conditioning on leg_twitching, the ALS findings say nothing about stress."""
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(model.network)
    plain = ve.query(["stress_anxiety"], evidence={}, show_progress=False).get_value(stress_anxiety="present")
    als = ve.query(["stress_anxiety"], evidence=ALS_EVIDENCE, show_progress=False).get_value(stress_anxiety="present")
    assert_allclose(als, plain, rtol=0, atol=1e-12)
    presenting = dict(model.presenting)
    lower = ve.query(["stress_anxiety"], evidence={**presenting, **ALS_EVIDENCE}, show_progress=False)
    higher = ve.query(["stress_anxiety"], evidence=presenting, show_progress=False)
    assert lower.get_value(stress_anxiety="present") < higher.get_value(stress_anxiety="present")


@pytest.mark.parametrize(
    "findings",
    [
        {"resting_tremor_slowness": "yes", "rhythm": "rhythmic"},
        {"rhythm": "rhythmic", "frequency": "daily"},
        {},
    ],
    ids=["tremor_and_slowness", "rhythmic_daily", "no_findings"],
)
def test_parkinsons_is_more_probable_in_older_adults_than_adults(model, findings):
    """Clinical: Parkinson disease affects about 1% of people over 60 and is very rare before 40
    (de Lau & Breteler 2006)."""
    adult = _rank(model, {**findings, "age_group": "adult"}).probability("parkinsons_disease")
    older = _rank(model, {**findings, "age_group": "older_adult"}).probability("parkinsons_disease")
    assert older > adult


@pytest.mark.parametrize(
    "findings", [{"fever": "yes"}, {"twitch_appearance": "visible_jerk"}, {}], ids=["fever", "visible_jerk", "no_findings"]
)
def test_febrile_infection_is_more_probable_in_children(model, findings):
    """Article: "Febrile convulsions in infections"; clinical: febrile seizures are a disorder of childhood
    (6 to 60 months, AAP 2011)."""
    child = _rank(model, {**findings, "age_group": "child"}).probability("febrile_infection")
    for other in ("adult", "older_adult"):
        assert child > _rank(model, {**findings, "age_group": other}).probability("febrile_infection")


# ---------------------------------------------------------------------- vocabulary
def test_the_bundled_model_holds_the_whole_vocabulary_exactly_as_spelled(model):
    path = _shared("spec/vocabulary.csv", "BAYESDX_VOCABULARY")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] in ("cause", "finding", "test")]
    assert rows
    roles = {"cause": model.causes, "finding": model.findings, "test": model.tests}
    for row in rows:
        assert row["id"] in model.states, row["id"]
        # each spelling is accepted, as a state or as an alias for finer states (soft evidence)
        assert set(row["states"].split("|")) <= set(model.answers(row["id"])), row["id"]
        if tuple(model.states[row["id"]]) != tuple(row["states"].split("|")):
            assert row["id"] in model.aliases, row["id"]
        for state in row["states"].split("|"):
            bayesdx.rank_causes({row["id"]: state}, model=model, next_steps=False)
        assert row["id"] in roles[row["kind"]], (row["id"], row["kind"])
    extra = set(model.causes + model.findings + model.tests) - {r["id"] for r in rows}
    assert extra == set(model.presenting)  # the only node beyond the vocabulary is the presenting complaint


# ---------------------------------------------------------------------- prior settings
def _expected_priors(name: str) -> dict[str, float]:
    """The prior file's probabilities, read with tomllib and scaled by expected_causes by hand."""
    with (PRIOR_DIR / f"{name}.toml").open("rb") as handle:
        data = tomllib.load(handle)
    terms = data.get("scale", {}).get("terms", {})
    raw = {c: (e["probability"] if "probability" in e else terms[e["qualifier"]] * e.get("share", 1.0)) for c, e in data["causes"].items()}
    expected = data.get("setting", {}).get("expected_causes")
    if expected is None:
        return raw
    total = sum(raw.values())
    return {c: p * expected / total for c, p in raw.items()}


def test_every_prior_setting_is_one_of_the_four_named():
    assert {p.stem for p in PRIOR_DIR.glob("*.toml")} == set(SETTINGS)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_prior_setting_loads_and_holds_at_the_reference_evidence_by_variable_elimination(models, name):
    """docs/model-format.md: a prior is the probability of the cause in an adult presenting with twitching
    in the leg ([model.prior_reference] plus [model.presenting]); checked with pgmpy's VariableElimination
    on the network against the prior file's numbers (after its expected_causes scaling) to 1e-9."""
    from pgmpy.inference import VariableElimination

    model = models[name]
    assert model.priors == name
    expected = _expected_priors(name)
    assert set(expected) == set(model.causes)
    evidence = {**dict(model.presenting), "age_group": "adult"}
    factors = VariableElimination(model.network).query(list(model.causes), evidence=evidence, joint=False, show_progress=False)
    got = {c: factors[c].get_value(**{c: "present"}) for c in model.causes}
    causes = sorted(expected)
    assert_allclose([got[c] for c in causes], [expected[c] for c in causes], rtol=0, atol=1e-9)


def test_every_article_quote_in_the_prior_files_appears_verbatim():
    article = _shared("article/twitching-in-the-leg.txt", "BAYESDX_ARTICLE").read_text(encoding="utf-8")
    quotes = 0
    for path in sorted(PRIOR_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for cause, entry in data["causes"].items():
            if "quote" in entry:
                quotes += 1
                assert entry["quote"] in article, f"{path.name} causes.{cause}.quote: {entry['quote']!r}"
    assert quotes >= 4  # article and article_kent quote the article's frequency words


def test_accuracy_of_each_prior_setting_on_dev_vignettes(models):
    frame = pd.read_csv(DEV, dtype=str, keep_default_na=False)
    columns = [c for c in frame.columns if c in models["article"].states]
    cases = frame[columns].replace("", float("nan"))
    truth = frame["true_cause"]
    lines, top3 = [], {}
    for name, model in models.items():
        scored = bayesdx.score(cases, model=model, top_k=3)
        hit1 = (scored["cause_1"] == truth).mean()
        top3[name] = ((scored["cause_1"] == truth) | (scored["cause_2"] == truth) | (scored["cause_3"] == truth)).mean()
        lines.append(f"{name}: top-1 {hit1:.3f}, top-3 {top3[name]:.3f}")
    print(f"\naccuracy on dev.csv ({len(frame)} cases): " + "; ".join(lines))
    # A regression guard, not the target: the 0.9 top-3 target is for held-out vignettes, and these 87
    # development cases are the ones the model was reviewed against (one case is 1.1 points). 0.8 catches a
    # broken model or prior file without pinning the current tuning.
    assert top3["article"] >= 0.8
