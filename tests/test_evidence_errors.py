"""Bad evidence raises errors that name the item and say what is valid; unobserved values change nothing."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx import ImpossibleEvidenceError, InvalidStateError, UnknownVariableError

ATOL = 1e-9


# ---------------------------------------------------------------------- unknown variables
@pytest.mark.parametrize(
    ("name", "suggestions"),
    [
        ("fevr", ("fever",)),
        ("thermometr", ("thermometer",)),
        ("Flu", ("flu",)),
    ],
)
def test_unknown_variable_is_named_with_close_matches(tiny_model, name, suggestions):
    hint = " or ".join(repr(s) for s in suggestions)
    with pytest.raises(UnknownVariableError, match=re.escape(f"Unknown variable {name!r}. Did you mean {hint}?")) as info:
        bayesdx.rank_causes({name: "yes"}, model=tiny_model)
    assert info.value.variable == name
    assert info.value.suggestions == suggestions
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)


def test_unknown_variable_without_close_match_points_to_model_variables(tiny_model):
    with pytest.raises(UnknownVariableError, match=r"Unknown variable 'xyzzy'\. See model\.variables for the valid names\.") as info:
        bayesdx.rank_causes({"xyzzy": "yes"}, model=tiny_model)
    assert info.value.suggestions == ()
    assert str(info.value) == "Unknown variable 'xyzzy'. See model.variables for the valid names."


def test_unknown_variable_in_score_names_the_case(tiny_model):
    with pytest.raises(UnknownVariableError, match=r"Unknown variable 'fevr' in case 1\. Did you mean 'fever'\?"):
        bayesdx.score([{"fever": "yes"}, {"fevr": "yes"}], model=tiny_model)


# ---------------------------------------------------------------------- invalid states
@pytest.mark.parametrize(
    ("evidence", "variable", "state", "valid"),
    [
        ({"fever": "high"}, "fever", "high", ("yes", "no")),
        ({"fever": "Yes"}, "fever", "Yes", ("yes", "no")),  # state names are exact
        ({"thermometer": "yes"}, "thermometer", "yes", ("normal", "abnormal")),
        ({"flu": "yes"}, "flu", "yes", ("present", "absent")),
        ({"thermometer": True}, "thermometer", True, ("normal", "abnormal")),  # no yes/true/present state
    ],
)
def test_invalid_state_lists_the_valid_states(tiny_model, evidence, variable, state, valid):
    listed = ", ".join(repr(s) for s in valid)
    message = f"Invalid state {state!r} for variable {variable!r}. Valid states are {listed}."
    with pytest.raises(InvalidStateError, match=re.escape(message)) as info:
        bayesdx.rank_causes(evidence, model=tiny_model)
    assert info.value.variable == variable
    assert info.value.state == state
    assert info.value.valid_states == valid


def test_invalid_state_in_a_dataframe_names_the_row_label(tiny_model):
    frame = pd.DataFrame({"fever": ["yes", "warm"]}, index=["ann", "bob"])
    with pytest.raises(
        InvalidStateError, match=re.escape("Invalid state 'warm' for variable 'fever' in case 'bob'. Valid states are 'yes', 'no'.")
    ):
        bayesdx.score(frame, model=tiny_model)


def test_frames_read_again_check_only_new_cells_and_still_reject_bad_ones(tiny_model, monkeypatch):
    """A text column's answers are looked up in the model's answer table (no check; a missing cell needs none).
    In a column of objects a valid answer read once is not checked again for the same model and column (many
    small frames with many columns: batches of a few cases), and missing cells (each NaN a different object)
    are never kept. A bad cell in a later frame still raises naming its row."""
    from bayesdx import evidence

    model = bayesdx.load_model(tiny_model.network, causes=list(tiny_model.causes))  # a model no other test has read
    checked: list[object] = []
    original = evidence.to_state

    def counted(model_: object, variable: str, value: object, where: str = "") -> str | None:
        checked.append(value)
        return original(model_, variable, value, where)  # type: ignore[arg-type]

    monkeypatch.setattr(evidence, "to_state", counted)
    first = evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["yes", "no", None, "yes"]}))
    again = evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["no", "yes", float("nan"), "yes"]}))
    assert checked == []  # text columns: answers from the table, missing cells -1
    assert_allclose(again["fever"], [first["fever"][1], first["fever"][0], [1.0, 1.0], first["fever"][0]])
    objects = evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["no", None]}, dtype=object))
    assert checked == ["no", None]
    assert_allclose(objects["fever"], [first["fever"][1], [1.0, 1.0]])
    checked.clear()
    evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["no", "yes", None]}, dtype=object))
    assert checked == ["yes", None]  # 'no' was read before; the missing cell was not kept
    with pytest.raises(InvalidStateError, match=re.escape("'warm' for variable 'fever' in row 'bob'")):
        evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["yes", "warm"]}, index=["ann", "bob"]))
    with pytest.raises(InvalidStateError, match=re.escape("'warm' for variable 'fever' in row 'bob'")):
        evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": ["yes", "warm"]}, index=["ann", "bob"], dtype=object))
    # the first bad cell in row order is the one named, however often the texts repeat
    frame = pd.DataFrame({"fever": ["yes", "hot", "warm", "hot", "warm"]}, index=["ann", "bob", "cy", "di", "ed"])
    with pytest.raises(InvalidStateError, match=re.escape("'hot' for variable 'fever' in row 'bob'")):
        evidence.likelihoods_from_frame(model, frame)
    with pytest.raises(InvalidStateError, match=re.escape("'warm' for variable 'fever' in row 'cy'")):
        evidence.likelihoods_from_frame(model, frame.iloc[[0, 2, 1, 4]])
    for _ in range(3):
        for dtype in (None, object):
            empty = evidence.likelihoods_from_frame(model, pd.DataFrame({"fever": [float("nan"), None, ""]}, dtype=dtype))
            assert "fever" not in empty  # nothing observed
    assert set(evidence._ANSWER_CODES[model]["fever"]) == {(str, "yes"), (str, "no")}


def test_invalid_state_in_a_list_of_cases_names_the_position(tiny_model):
    with pytest.raises(InvalidStateError, match=r"Invalid state 'warm' for variable 'fever' in case 2\."):
        bayesdx.score([{}, {"fever": "no"}, {"fever": "warm"}], model=tiny_model)


# ---------------------------------------------------------------------- wrong types
@pytest.mark.parametrize(
    ("evidence", "got"),
    [
        (["fever", "yes"], "list"),
        ("fever=yes", "str"),
        (42, "int"),
        ((("fever", "yes"),), "tuple"),
    ],
)
def test_non_mapping_evidence_raises_type_error_saying_what_was_expected(tiny_model, evidence, got):
    with pytest.raises(
        TypeError,
        match=r"Evidence must be a mapping of variable to state, such as "
        r"\{'painful_cramps': 'yes'\}\. Got " + got + r" instead\.",
    ):
        bayesdx.rank_causes(evidence, model=tiny_model)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1, "int 1"), (0, "int 0"), (1.5, "float 1.5"), (["yes"], r"list \['yes'\]")],
)
def test_non_state_value_raises_type_error_listing_valid_states(tiny_model, value, shown):
    with pytest.raises(
        TypeError,
        match=r"Evidence for 'fever' must be a state name \(str\), a bool, or None/NaN/'' "
        r"for not observed\. Got " + shown + r"; valid states are 'yes', 'no'\.",
    ):
        bayesdx.rank_causes({"fever": value}, model=tiny_model)


def test_non_str_key_raises_type_error(tiny_model):
    with pytest.raises(TypeError, match=r"Evidence must be keyed by variable names \(str\)\. Got int 3\."):
        bayesdx.rank_causes({3: "yes"}, model=tiny_model)


def test_non_state_value_in_a_dataframe_names_row_and_column(tiny_model):
    frame = pd.DataFrame({"fever": ["yes", 7]}, index=["ann", "bob"], dtype=object)
    with pytest.raises(TypeError, match=r"Evidence for 'fever' in case 'bob' must be a state name"):
        bayesdx.score(frame, model=tiny_model)


@pytest.mark.parametrize("cases", ["fever", 3, {"fever": "yes"}])
def test_score_rejects_cases_that_are_neither_frame_nor_list(tiny_model, cases):
    with pytest.raises(
        TypeError,
        match=r"The 'cases' parameter of score must be a pandas DataFrame or a list of "
        r"mappings\. Got \w+ instead\.",
    ):
        bayesdx.score(cases, model=tiny_model)


def test_model_argument_must_be_a_model(tiny_model):
    with pytest.raises(
        TypeError,
        match=r"The 'model' parameter of rank_causes must be a bayesdx Model \(from "
        r"load_model\)\. Got str instead\.",
    ):
        bayesdx.rank_causes({"fever": "yes"}, model="tiny")


# ---------------------------------------------------------------------- bools and unobserved values
@pytest.mark.parametrize(
    ("value", "state"),
    [(True, "yes"), (False, "no"), (np.bool_(True), "yes"), (np.str_("no"), "no")],
)
def test_bools_map_to_yes_and_no(tiny_model, value, state):
    dx = bayesdx.rank_causes({"fever": value}, model=tiny_model)
    assert dx.evidence == {"fever": state}
    expected = bayesdx.rank_causes({"fever": state}, model=tiny_model)
    assert [(c.id, c.probability) for c in dx.causes] == [(c.id, c.probability) for c in expected.causes]


def test_bools_map_to_present_and_absent_on_a_cause(tiny_model):
    assert bayesdx.rank_causes({"flu": True}, model=tiny_model).evidence == {"flu": "present"}
    assert bayesdx.rank_causes({"flu": False}, model=tiny_model).evidence == {"flu": "absent"}


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, "", pd.NA])
def test_unobserved_values_change_nothing(tiny_model, missing):
    base = bayesdx.rank_causes({"fever": "yes"}, model=tiny_model)
    dx = bayesdx.rank_causes({"fever": "yes", "thermometer": missing, "cold": missing}, model=tiny_model)
    assert dx.evidence == {"fever": "yes"}
    assert [(c.id, c.probability) for c in dx.causes] == [(c.id, c.probability) for c in base.causes]
    assert dx.log_evidence == base.log_evidence


def test_none_evidence_means_nothing_observed(tiny_model):
    dx = bayesdx.rank_causes(None, model=tiny_model)
    assert dx.evidence == {}
    assert_allclose(dx.probability("flu"), 0.1, atol=ATOL, rtol=0)  # the prior of tests/data/priors/tiny.toml


# ---------------------------------------------------------------------- impossible evidence
IMPOSSIBLE = {"fever": "yes", "thermometer": "normal"}  # P(normal | yes) = 0 in the impossible model


def test_impossible_evidence_in_rank_causes_names_the_observations_that_conflict(impossible_model):
    """Found in a user review (session 15): rank_causes named the case 'evidence' (its internal label) and not the
    observations. It now names a set that cannot hold together and is smallest in that dropping any one of them
    leaves possible evidence: here fever=yes and thermometer=normal (P(normal | yes) = 0), not the cold also
    observed absent, which is possible with either."""
    with pytest.raises(
        ImpossibleEvidenceError,
        match=r"The evidence has probability zero under the model: these observations cannot all hold: "
        r"fever='yes', thermometer='normal' \(without any one of them the rest is possible\)\. Check them",
    ) as info:
        bayesdx.rank_causes({**IMPOSSIBLE, "cold": "absent"}, model=impossible_model)
    assert info.value.cases == ("evidence",)
    assert info.value.conflict == IMPOSSIBLE
    assert isinstance(info.value, ValueError)
    for name in IMPOSSIBLE:  # each alone is possible
        bayesdx.rank_causes({name: IMPOSSIBLE[name]}, model=impossible_model)


def test_possible_evidence_on_the_impossible_model_is_exact(impossible_model):
    dx = bayesdx.rank_causes({"thermometer": "normal"}, model=impossible_model)
    # P(normal) = P(fever=no) * 0.95 = 0.7038 * 0.95 and fever must be "no": P(flu | normal) = 0.0153 / 0.7038
    assert_allclose(dx.probability("flu"), 0.0153 / 0.7038, atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, math.log(0.7038 * 0.95), atol=ATOL, rtol=0)
    assert all(not math.isnan(c.probability) for c in dx.causes)


def test_impossible_evidence_in_score_names_the_dataframe_index_labels(impossible_model):
    frame = pd.DataFrame(
        [{"fever": "no"}, IMPOSSIBLE, {"thermometer": "abnormal"}, IMPOSSIBLE],
        index=["ann", "bob", "cy", "dee"],
    )
    with pytest.raises(ImpossibleEvidenceError, match=r"The evidence of case 'bob', 'dee' has probability zero") as info:
        bayesdx.score(frame, model=impossible_model)
    assert info.value.cases == ("bob", "dee")


def test_impossible_evidence_in_score_of_a_list_names_the_positions(impossible_model):
    with pytest.raises(ImpossibleEvidenceError, match=r"The evidence of case 2 has probability zero") as info:
        bayesdx.score([{}, {"fever": "yes"}, IMPOSSIBLE], model=impossible_model)
    assert info.value.cases == (2,)


def test_many_impossible_cases_are_summarised(impossible_model):
    with pytest.raises(ImpossibleEvidenceError, match=r"case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more has probability") as info:
        bayesdx.score([IMPOSSIBLE] * 12, model=impossible_model)
    assert info.value.cases == tuple(range(12))


def test_engine_reports_impossible_cases_without_nan_in_the_possible_ones(impossible_model):
    model = impossible_model
    likelihoods = {
        "fever": np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]),
        "thermometer": np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    }
    post = model.engine.posterior(likelihoods, model.causes, 3)
    assert post.impossible.tolist() == [True, False, False]
    assert post.log_evidence[0] == -np.inf
    assert np.isfinite(post.log_evidence[1:]).all()
    for cause in model.causes:
        assert not np.isnan(post.marginals[cause][1:]).any()
