"""Every malformed model or prior file raises ModelFileError naming the file, the key and the bad value.

Each broken file is the tiny model (tests/data/models/tiny.toml) or its prior file with one small edit,
written into ``tmp_path``.
"""

from __future__ import annotations

import re

import pytest

import bayesdx
from bayesdx import ModelFileError

TINY_THERMOMETER_ROWS = """[[cpds.thermometer.rows]]
given = { fever = "yes" }
probabilities = [0.1, 0.9]
[[cpds.thermometer.rows]]
given = { fever = "no" }
probabilities = [0.95, 0.05]
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"the edit's anchor {old!r} is not in the tiny model"
    return text.replace(old, new, 1)


def _write(tmp_path, text, name="broken.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MODEL_CASES = {
    "unknown node in links": (
        ("[cpds.fever.links.cold]", "[cpds.fever.links.colt]"),
        "cpds.fever.links",
        "colt",
        r"refers to unknown node 'colt'\. Did you mean 'cold'\?",
    ),
    "unknown node in parents": (
        ('parents = ["fever"]', 'parents = ["fevr"]'),
        "cpds.thermometer.parents",
        "fevr",
        r"refers to unknown node 'fevr'\. Did you mean 'fever'\?",
    ),
    "unknown node in odds_ratios": (
        ('[cpds.flu]\nkind = "cause_prior"\n', '[cpds.flu]\nkind = "cause_prior"\n[cpds.flu.odds_ratios.colds]\npresent = 2.0\n'),
        "cpds.flu.odds_ratios",
        "colds",
        r"refers to unknown node 'colds'\. Did you mean 'cold'\?",
    ),
    "cycle": (
        ('[cpds.flu]\nkind = "cause_prior"\n', '[cpds.flu]\nkind = "cause_prior"\n[cpds.flu.odds_ratios.fever]\nyes = 2.0\n'),
        "cpds.flu",
        ["flu", "fever", "flu"],
        r"the network has a cycle: flu -> fever -> flu",
    ),
    "leak above 1": (
        ("leak = 0.1", "leak = 1.5"),
        "cpds.fever.leak",
        1.5,
        r"must be a probability in \[0, 1\], got 1\.5",
    ),
    "negative link probability": (
        ("probability = 0.8", "probability = -0.2"),
        "cpds.fever.links.flu.probability",
        -0.2,
        r"must be a probability in \[0, 1\], got -0\.2",
    ),
    "distribution not summing to 1": (
        ("probabilities = [0.1, 0.9]", "probabilities = [0.1, 0.8]"),
        "cpds.thermometer.rows[0].probabilities",
        [0.1, 0.8],
        r"must sum to 1 within 1e-09, sums to 0\.9",
    ),
    "distribution off by 1e-8": (
        ("probabilities = [0.1, 0.9]", "probabilities = [0.1, 0.90000001]"),
        "cpds.thermometer.rows[0].probabilities",
        [0.1, 0.90000001],
        r"must sum to 1 within 1e-09, sums to 1\.00000001",
    ),
    "distribution of the wrong length": (
        ("probabilities = [0.1, 0.9]", "probabilities = [0.1, 0.4, 0.5]"),
        "cpds.thermometer.rows[0].probabilities",
        [0.1, 0.4, 0.5],
        r"must be a list of 2 probabilities, got \[0\.1, 0\.4, 0\.5\]",
    ),
    "missing states": (
        ('[nodes.fever]\nrole = "finding"\nstates = ["yes", "no"]\n', '[nodes.fever]\nrole = "finding"\n'),
        "nodes.fever.states",
        None,
        r"is missing",
    ),
    "a single state": (
        ('states = ["yes", "no"]', 'states = ["yes"]'),
        "nodes.fever.states",
        ["yes"],
        r"must list at least two distinct state names, got \['yes'\]",
    ),
    "missing CPD": (
        ('[cpds.thermometer]\nkind = "table"\nparents = ["fever"]\n' + TINY_THERMOMETER_ROWS, ""),
        "cpds.thermometer",
        None,
        r"is missing: node 'thermometer' has no CPD",
    ),
    "CPD for an unknown node": (
        ("[cpds.flu]\n", '[cpds.cough]\nkind = "table"\nprobabilities = [0.5, 0.5]\n\n[cpds.flu]\n'),
        "cpds.cough",
        "cough",
        r"refers to unknown node 'cough'",
    ),
    "bad kind": (
        ('kind = "noisy_or"', 'kind = "noisy_and"'),
        "cpds.fever.kind",
        "noisy_and",
        r"must be one of 'table', 'noisy_or', 'noisy_max', 'cause_prior', got 'noisy_and'",
    ),
    "bad role": (
        ('role = "finding"', 'role = "symptom"'),
        "nodes.fever.role",
        "symptom",
        r"must be one of 'cause', 'finding', 'test', 'hidden', got 'symptom'",
    ),
    "row missing a configuration without default": (
        (TINY_THERMOMETER_ROWS, TINY_THERMOMETER_ROWS.split('[[cpds.thermometer.rows]]\ngiven = { fever = "no" }')[0]),
        "cpds.thermometer.rows",
        {"fever": "no"},
        r"has no row for parent states \{'fever': 'no'\} and no default",
    ),
    "duplicated row": (
        ('given = { fever = "no" }', 'given = { fever = "yes" }'),
        "cpds.thermometer.rows[1].given",
        {"fever": "yes"},
        r"repeats the configuration of rows\[0\]",
    ),
    "row with a bad parent state": (
        ('given = { fever = "no" }', 'given = { fever = "maybe" }'),
        "cpds.thermometer.rows[1].given.fever",
        "maybe",
        r"'maybe' is not a state of 'fever'; valid states are \['yes', 'no'\]",
    ),
    "normal state not among the states": (
        ('[nodes.fever]\nrole = "finding"\n', '[nodes.fever]\nrole = "finding"\nnormal = "none"\n'),
        "nodes.fever.normal",
        "none",
        r"must be one of the node's states \['yes', 'no'\], got 'none'",
    ),
    "cause_prior on a finding": (
        ('kind = "noisy_or"\nleak = 0.1', 'kind = "cause_prior"\nleak = 0.1'),
        "cpds.fever.kind",
        "cause_prior",
        r"'cause_prior' needs a binary cause node with a normal state",
    ),
    "bad format version": (
        ("format_version = 1", "format_version = 2"),
        "format_version",
        2,
        r"must be 1, got 2",
    ),
}


@pytest.mark.parametrize(("edit", "key", "value", "message"), list(MODEL_CASES.values()), ids=list(MODEL_CASES))
def test_broken_model_file_raises_model_file_error_naming_file_key_and_value(
    tmp_path, tiny_text, tiny_priors_path, edit, key, value, message
):
    path = _write(tmp_path, _edit(tiny_text, *edit))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}, key {key!r}: ") + message) as info:
        bayesdx.load_model(path, priors=tiny_priors_path)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert info.value.value == value
    assert isinstance(info.value, ValueError)


def test_distribution_within_1e_minus_9_of_one_is_accepted(tmp_path, tiny_text, tiny_priors_path):
    path = _write(tmp_path, _edit(tiny_text, "probabilities = [0.1, 0.9]", "probabilities = [0.1, 0.9000000001]"))
    model = bayesdx.load_model(path, priors=tiny_priors_path)
    assert model.id == "tiny"


def test_invalid_toml_raises_model_file_error_naming_the_file(tmp_path, tiny_text, tiny_priors_path):
    path = _write(tmp_path, _edit(tiny_text, "leak = 0.1", "leak = = 0.1"))
    with pytest.raises(ModelFileError, match=re.escape(str(path)) + r": is not valid TOML: .*line \d+") as info:
        bayesdx.load_model(path, priors=tiny_priors_path)
    assert info.value.key == ""


def test_missing_model_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bayesdx.load_model(tmp_path / "absent.toml")


# ---------------------------------------------------------------------- prior files
PRIOR_CASES = {
    "prior file missing a cause": (
        ('[causes.cold]\nprobability = 0.3\nassumption = "hand-computation example"\n', ""),
        "causes.cold",
        None,
        r"is missing: every cause needs a prior \(2 causes\)",
    ),
    "unknown cause in prior file": (
        ("[causes.flu]", '[causes.flue]\nprobability = 0.2\nassumption = "typo"\n[causes.flu]'),
        "causes.flue",
        "flue",
        r"refers to unknown node 'flue'\. Did you mean 'flu'\?",
    ),
    "qualifier not in scale": (
        ("[causes.flu]\nprobability = 0.1\n", '[scale.terms]\n"often" = 0.6\n[causes.flu]\nqualifier = "sometimes"\n'),
        "causes.flu.qualifier",
        "sometimes",
        r"'sometimes' is not a term of \[scale.terms\]; terms are \['often'\]",
    ),
    "qualifier disagreeing with probability": (
        ("[causes.flu]\nprobability = 0.1\n", '[scale.terms]\n"often" = 0.6\n[causes.flu]\nqualifier = "often"\nprobability = 0.1\n'),
        "causes.flu.probability",
        0.1,
        r"0\.1 disagrees with the scale's 0\.6 for 'often'",
    ),
    "prior without provenance": (
        ('probability = 0.1\nassumption = "hand-computation example"\n', "probability = 0.1\n"),
        "causes.flu",
        None,
        r"needs its provenance: a 'quote' from the article, an 'assumption' or a 'source'",
    ),
    "prior of exactly 1": (
        ("probability = 0.1", "probability = 1.0"),
        "causes.flu.probability",
        1.0,
        r"must be a probability in \(0, 1\), got 1\.0",
    ),
    "prior without probability or qualifier": (
        ("probability = 0.1\n", ""),
        "causes.flu",
        None,
        r"needs a 'probability' or a 'qualifier' from \[scale.terms\]",
    ),
}


@pytest.mark.parametrize(("edit", "key", "value", "message"), list(PRIOR_CASES.values()), ids=list(PRIOR_CASES))
def test_broken_prior_file_raises_model_file_error_naming_file_key_and_value(
    tmp_path, tiny_model_path, tiny_priors_text, edit, key, value, message
):
    path = _write(tmp_path, _edit(tiny_priors_text, *edit), name="broken_priors.toml")
    with pytest.raises(ModelFileError, match=re.escape(f"{path}, key {key!r}: ") + message) as info:
        bayesdx.load_model(tiny_model_path, priors=path)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert info.value.value == value


@pytest.mark.parametrize(
    ("priors", "error", "message"),
    [
        ("tinny", ValueError, r"The 'priors' parameter of load_model must be one of .*Got 'tinny' instead\."),
        ("missing/priors.toml", FileNotFoundError, r"No such prior file: 'missing/priors\.toml'"),
    ],
)
def test_unknown_prior_setting_raises_naming_it(tiny_model_path, priors, error, message):
    with pytest.raises(error, match=message):
        bayesdx.load_model(tiny_model_path, priors=priors)


@pytest.mark.parametrize(
    "argument",
    [
        {"causes": ["flu"]},
        {"tests": ["thermometer"]},
        {"normal_states": {"flu": None}},
        {"presenting": {"fever": "yes"}},
        {"hidden": ["fever"]},
        {"costs": {"fever": 2}},
    ],
)
def test_roles_are_not_arguments_for_a_model_file(tiny_model_path, argument):
    with pytest.raises(
        ValueError,
        match=r"causes=, tests=, normal_states=, presenting=, hidden= and costs= are for "
        r"BIF, XMLBIF and pgmpy networks; a model file declares the role",
    ):
        bayesdx.load_model(tiny_model_path, **argument)
