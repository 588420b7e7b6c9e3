"""The ``bayesdx`` command line, through click's runner, on the real vignette file and small fixtures.

Reference values come from the Python API (``bayesdx.score``, ``bayesdx.rank_causes``), which the other test
files check against hand calculations, pgmpy and pyAgrum.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

import bayesdx
from bayesdx.cli import main
from bayesdx.ranking import STEP_COLUMNS
from bayesdx.results import CAVEAT

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "evaluation" / "vignettes" / "dev.csv"
CLI_DATA = Path(__file__).parent / "data" / "cli"
ANNOTATIONS = ["true_cause", "true_triage", "rationale"]
#: The wide columns under the default (counterfactual) ranking: the posterior and the ranking's score per cause.
TOP3 = ["cause_1", "probability_1", "score_1", "cause_2", "probability_2", "score_2", "cause_3", "probability_3", "score_3"]


def _run(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _read(text_or_path: str | Path) -> pd.DataFrame:
    source = io.StringIO(text_or_path) if isinstance(text_or_path, str) else text_or_path
    return pd.read_csv(source, dtype=str, keep_default_na=False)


def _probabilities(frame: pd.DataFrame, k: int = 3) -> np.ndarray:
    return frame[[f"probability_{j}" for j in range(1, k + 1)]].astype(float).to_numpy()


@pytest.fixture(scope="module")
def dev() -> pd.DataFrame:
    return _read(DEV)


@pytest.fixture(scope="module")
def dev_reference(dev: pd.DataFrame) -> pd.DataFrame:
    evidence = dev.drop(columns=["case_id", *ANNOTATIONS])
    return bayesdx.score(evidence, top_k=3)


# ---------------------------------------------------------------------- the main job
def test_score_dev_csv_writes_every_row_in_order_with_unrounded_probabilities(tmp_path, dev, dev_reference):
    out = tmp_path / "out" / "dev-scores.csv"  # the folder does not exist yet, as in the README
    result = _run("score", DEV, "-o", out, "--no-next-step")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    frame = _read(out)
    assert list(frame.columns) == ["case_id", *TOP3, *ANNOTATIONS]
    assert len(frame) == len(dev) == 87
    assert frame["case_id"].tolist() == dev["case_id"].tolist()
    assert frame[ANNOTATIONS].equals(dev[ANNOTATIONS])
    assert (
        frame[["cause_1", "cause_2", "cause_3"]].to_numpy().tolist() == dev_reference[["cause_1", "cause_2", "cause_3"]].to_numpy().tolist()
    )
    # written unrounded: the text reads back to exactly the same floats
    assert_array_equal(_probabilities(frame), _probabilities(dev_reference))
    assert list(tmp_path.joinpath("out").iterdir()) == [out]  # no temporary file left behind


def test_score_with_next_steps_matches_the_python_api(tmp_path):
    out = tmp_path / "small-scores.csv"
    result = _run("score", CLI_DATA / "small.csv", "-o", out)
    assert result.exit_code == 0, result.output
    frame = _read(out)
    assert list(frame.columns) == ["case_id", *TOP3, *STEP_COLUMNS, "true_cause", "rationale"]
    assert frame["case_id"].tolist() == ["s1", "s2", "s3"]
    assert frame["rationale"].tolist() == ["cramps at night", "after sport,\ntwo lines", ""]
    evidence = _read(CLI_DATA / "small.csv").drop(columns=["case_id", "true_cause", "rationale"])
    expected = bayesdx.score(evidence, top_k=3, next_step=True)
    assert_array_equal(_probabilities(frame), _probabilities(expected))
    for column in ("next_step", "next_step_kind", "triage", "referral"):
        assert frame[column].tolist() == ["" if pd.isna(v) else v for v in expected[column]], column
    assert frame["should_stop"].tolist() == [str(v) for v in expected["should_stop"]]
    assert_allclose(pd.to_numeric(frame["next_step_value"]).to_numpy(), expected["next_step_value"].to_numpy(), rtol=0, atol=0)


def test_score_reads_standard_input_and_writes_standard_output(dev, dev_reference):
    result = _run("score", "-", "--no-next-step", input=DEV.read_bytes())
    assert result.exit_code == 0, result.output
    # no progress bar off a terminal, no summary without --skip-invalid: the caveat alone (the CSV stays data only)
    assert result.stderr == CAVEAT + "\n"
    assert _run("score", "-", "--no-next-step", "-q", input=DEV.read_bytes()).stderr == ""
    frame = _read(result.stdout)
    assert frame["case_id"].tolist() == dev["case_id"].tolist()
    assert_array_equal(_probabilities(frame), _probabilities(dev_reference))


def test_score_long_format_writes_every_cause_of_every_case(dev, dev_reference):
    result = _run("score", DEV, "--format", "long")
    assert result.exit_code == 0, result.output
    frame = _read(result.stdout)
    n_causes = len(bayesdx.load_model().hypotheses)
    assert list(frame.columns) == ["case_id", "rank", "cause", "probability", "score", *ANNOTATIONS]
    assert len(frame) == len(dev) * n_causes
    assert frame["case_id"].tolist() == np.repeat(dev["case_id"].to_numpy(), n_causes).tolist()
    assert frame["rank"].astype(int).tolist() == list(range(1, n_causes + 1)) * len(dev)
    probs = frame["probability"].astype(float).to_numpy().reshape(len(dev), n_causes)
    scores = frame["score"].astype(float).to_numpy().reshape(len(dev), n_causes)
    assert (np.diff(scores, axis=1) <= 0).all()  # ranked by the counterfactual score
    assert_array_equal(probs[:, :3], _probabilities(dev_reference))


def test_score_top_k_and_keep_column(tmp_path):
    out = tmp_path / "o.csv"
    result = _run("score", CLI_DATA / "no_case_id.csv", "-o", out, "--no-next-step", "--top-k", "1", "--ignore-column", "true_triage")
    assert result.exit_code == 0, result.output
    frame = _read(out)
    assert list(frame.columns) == ["patient", "cause_1", "probability_1", "score_1"]
    assert frame["patient"].tolist() == ["p1", "p2"]


# ---------------------------------------------------------------------- bad input: exit 1, a precise message
def test_unknown_column_is_an_error_unless_ignored():
    result = _run("score", CLI_DATA / "unknown_column.csv", "--no-next-step")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "column 'colour' is neither a variable of model 'leg_twitch' nor a known annotation" in result.stderr
    assert "--ignore-column colour" in result.stderr
    assert "Traceback" not in result.output

    result = _run("score", CLI_DATA / "unknown_column.csv", "--no-next-step", "--ignore-column", "colour")
    assert result.exit_code == 0, result.output
    frame = _read(result.stdout)
    assert "colour" not in frame.columns
    assert frame["case_id"].tolist() == ["u1", "u2"]


def test_ignore_column_must_name_a_column():
    result = _run("score", CLI_DATA / "small.csv", "--ignore-column", "colour")
    assert result.exit_code == 1
    assert "ignore_columns (--ignore-column) names 'colour', which is not a column of the input" in result.stderr


def test_bad_state_names_line_row_case_column_value_and_valid_states(tmp_path):
    out = tmp_path / "o.csv"
    result = _run("score", CLI_DATA / "bad_state.csv", "-o", out, "--no-next-step")
    assert result.exit_code == 1
    # the first record spans lines 2-3, so row 3 starts on line 5
    assert result.stderr == (
        f"Error: {CLI_DATA / 'bad_state.csv'}, line 5 (row 3, case 'b3'): invalid state 'maybe' for column 'fever'. "
        "Valid states are 'yes', 'no' (or an empty cell for not observed).\n"
    )
    assert not out.exists()


def test_malformed_line_names_line_and_field_counts(tmp_path):
    out = tmp_path / "o.csv"
    result = _run("score", CLI_DATA / "malformed.csv", "-o", out, "--no-next-step")
    assert result.exit_code == 1
    assert re.search(r"malformed\.csv, line 3 \(row 2, case 'm2'\): the line has 5 fields; the header has 4\.", result.stderr), (
        result.stderr
    )
    assert not out.exists()


def test_failure_mid_file_leaves_no_output_and_an_existing_output_untouched(tmp_path):
    out = tmp_path / "scores.csv"
    # one row per chunk: rows 1 and 2 are scored and written to the temporary file before row 3 fails
    args = ("score", CLI_DATA / "bad_state.csv", "-o", out, "--no-next-step", "--chunk-size", "1")
    result = _run(*args)
    assert result.exit_code == 1
    assert "row 3" in result.stderr
    assert list(tmp_path.iterdir()) == []

    out.write_text("earlier results\n")
    result = _run(*args)
    assert result.exit_code == 1
    assert out.read_text() == "earlier results\n"
    assert list(tmp_path.iterdir()) == [out]

    nested = tmp_path / "new" / "folder" / "scores.csv"  # folders created for the output go away again
    result = _run("score", CLI_DATA / "bad_state.csv", "-o", nested, "--no-next-step")
    assert result.exit_code == 1
    assert not (tmp_path / "new").exists()


def test_skip_invalid_writes_every_row_with_an_error_column(tmp_path):
    out = tmp_path / "o.csv"
    result = _run("score", CLI_DATA / "bad_state.csv", "-o", out, "--no-next-step", "--skip-invalid", "--chunk-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"scored 3 rows, 1 invalid (4 written to {out})\n{CAVEAT}\n"
    frame = _read(out)
    assert frame["case_id"].tolist() == ["b1", "b2", "b3", "b4"]
    assert list(frame.columns) == ["case_id", *TOP3, "true_cause", "rationale", "error"]
    assert frame["error"].tolist()[:2] == ["", ""]
    assert frame["error"].iloc[3] == ""
    assert frame["error"].iloc[2].startswith("invalid state 'maybe' for column 'fever'.")
    assert (frame.loc[2, TOP3] == "").all()
    assert (frame.loc[[0, 1, 3], "cause_1"] != "").all()
    assert frame["true_cause"].iloc[2] == "stress_anxiety"


def test_skip_invalid_keeps_malformed_lines_in_place():
    result = _run("score", CLI_DATA / "malformed.csv", "--no-next-step", "--skip-invalid", "--format", "long")
    assert result.exit_code == 0, result.output
    assert "scored 2 rows, 2 invalid" in result.stderr
    frame = _read(result.stdout)
    n_causes = len(bayesdx.load_model().hypotheses)
    assert len(frame) == 2 * n_causes + 2  # an invalid case is one row without rank, cause or probability
    firsts = frame.drop_duplicates("case_id")
    assert firsts["case_id"].tolist() == ["m1", "m2", "m3", "m4"]
    errors = dict(zip(firsts["case_id"], firsts["error"], strict=True))
    assert errors["m2"] == "the line has 5 fields; the header has 4."
    assert errors["m4"] == "the line has 2 fields; the header has 4."
    assert errors["m1"] == errors["m3"] == ""
    assert frame.loc[frame["case_id"] == "m2", "rank"].tolist() == [""]


def test_first_column_is_the_case_id_unless_it_is_a_variable(tmp_path):
    bad = tmp_path / "cases.csv"
    bad.write_text("fever,age_group\nyes,adult\n")
    result = _run("score", bad, "--no-next-step")
    assert result.exit_code == 1
    assert "no 'case_id' column and its first column 'fever' is a variable" in result.stderr


def test_unknown_priors_and_models_are_data_errors():
    result = _run("score", CLI_DATA / "small.csv", "--priors", "artcle")
    assert result.exit_code == 1
    assert "The 'priors' parameter of load_model must be one of" in result.stderr
    assert "'artcle'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["score"],
        ["score", "no-such-file.csv"],
        ["score", str(DEV), "--format", "tall"],
        ["score", str(DEV), "--top-k", "0"],
        ["score", str(DEV), "--scheduler", "tcp://127.0.0.1:1"],
        ["score", str(DEV), "--no-such-option"],
        ["rank", "fever"],
        ["model", "export", "--format", "bif"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_with_code_2(args):
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- rank
def test_rank_json_is_the_diagnosis_summary():
    result = _run("rank", "painful_cramps=yes", "age_group=adult", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    dx = bayesdx.rank_causes({"painful_cramps": "yes", "age_group": "adult"})
    assert data["evidence"] == dict(dx.evidence)
    assert {"painful_cramps": "yes", "age_group": "adult"}.items() <= data["evidence"].items()
    assert [c["id"] for c in data["causes"]] == [c.id for c in dx.causes]
    assert_array_equal([c["probability"] for c in data["causes"]], [c.probability for c in dx.causes])
    assert data["next_step"] == (dx.next_step.id if dx.next_step else None)
    assert len(data["next_steps"]) == len(dx.next_steps) > 0
    assert data["caveat"] == bayesdx.CAVEAT


def test_rank_table_shows_causes_steps_triage_and_the_caveat():
    result = _run("rank", "painful_cramps=yes", "age_group=adult", "--top-k", "4")
    assert result.exit_code == 0, result.output
    text = result.stdout
    dx = bayesdx.rank_causes({"painful_cramps": "yes", "age_group": "adult"})
    assert "evidence: " + ", ".join(f"{k}={v}" for k, v in dx.evidence.items()) in text
    assert re.search(rf"^\s*1\s+{dx.causes[0].id}\s+.*{dx.causes[0].probability:.4f}", text, re.M)
    assert dx.causes[4].id not in text.split("next step")[0]
    assert "EIG (bits)" in text
    assert dx.next_steps[0].id in text
    assert "Triage:" in text
    assert "Referral:" in text
    assert bayesdx.CAVEAT in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fever=maybe"], "Invalid state 'maybe' for variable 'fever'"),
        (["fevr=yes"], "Unknown variable 'fevr'. Did you mean 'fever'?"),
    ],
)
def test_rank_bad_evidence_is_a_data_error(args, message):
    result = _run("rank", *args, "--no-next-step")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


# ---------------------------------------------------------------------- model
def test_model_show_lists_roles_states_costs_and_prior_provenance():
    result = _run("model", "show")
    assert result.exit_code == 0, result.output
    m = bayesdx.load_model()
    assert f"Causes ({len(m.causes)})" in result.stdout
    assert "Where the priors come from" in result.stdout
    assert f"Findings (questions) ({len(m.findings)})" in result.stdout
    assert f"Tests ({len(m.tests)})" in result.stdout
    flat = " ".join(result.stdout.split())
    assert "quote: Often, twitching in the leg is caused by unaccustomed overexertion" in flat
    assert re.search(r"^muscle_biopsy\s.*\s100$", result.stdout, re.M)


def test_model_validate_ok_and_bad_file(tmp_path):
    result = _run("model", "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: ")

    bad = tmp_path / "bad.toml"
    bad.write_text("format_version = 2\n")
    result = _run("model", "validate", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad}")

    result = _run("model", "validate", tmp_path / "missing.toml")
    assert result.exit_code == 1
    assert "No such model file" in result.stderr


def _entries(cpd):
    """Every ``({variable: state, parent: state, ...}, probability)`` of a pgmpy CPD."""
    parents = list(cpd.variables[1:])
    cards = [len(cpd.state_names[p]) for p in parents]
    values = cpd.get_values()
    for k, state in enumerate(cpd.state_names[cpd.variable]):
        for column, index in enumerate(np.ndindex(*cards)):
            given = {p: cpd.state_names[p][i] for p, i in zip(parents, index, strict=True)}
            yield {**given, cpd.variable: state}, float(values[k, column])


@pytest.mark.parametrize("fmt", ["bif", "xmlbif"])
def test_model_export_reads_back_in_pgmpy_with_the_same_cpds(tmp_path, fmt):
    from pgmpy.readwrite import BIFReader, XMLBIFReader

    out = tmp_path / f"leg_twitch.{fmt}"
    result = _run("model", "export", "--format", fmt, "-o", out, "--priors", "uniform")
    assert result.exit_code == 0, result.output
    network = (BIFReader if fmt == "bif" else XMLBIFReader)(str(out)).get_model()
    model = bayesdx.load_model(priors="uniform")
    assert sorted(network.nodes()) == sorted(model.network.nodes())
    assert sorted(network.edges()) == sorted(model.network.edges())
    for cpd in model.network.get_cpds():
        other = network.get_cpds(cpd.variable)
        for assignment, expected in _entries(cpd):
            assert abs(other.get_value(**assignment) - expected) <= 1e-12, assignment


def test_model_export_bif_opens_in_pyagrum_with_the_same_cpds(tmp_path):
    gum = pytest.importorskip("pyagrum")
    out = tmp_path / "leg_twitch.bif"
    assert _run("model", "export", "-o", out).exit_code == 0
    bn = gum.loadBN(str(out))
    model = bayesdx.load_model()
    assert sorted(bn.names()) == sorted(model.network.nodes())
    for cpd in model.network.get_cpds():
        table = bn.cpt(cpd.variable)
        for assignment, expected in _entries(cpd):
            # pyAgrum's BIF parser reads numbers in single precision: the file itself holds every digit
            assert abs(table[assignment] - expected) <= 1e-7, assignment


def test_command_line_errors_name_the_options_and_the_path_the_user_gave(tmp_path):
    """Found in a user review (session 15): --sep ',,' and --keep-column nope answered with Python parameter names
    only, and -o file.csv/x.csv with the errno of a temporary file it tried to make. Each now names the option or
    the path as given (and nothing is created)."""
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,fever\nc1,yes\n")
    result = _run("score", cases, "--sep", ",,")
    assert result.exit_code == 1
    assert "The 'sep' parameter (--sep) of score_csv must be one character" in result.stderr
    result = _run("score", cases, "--keep-column", "nope")
    assert "annotation_columns (--keep-column) names 'nope', which is not a column of the input" in result.stderr
    for out in (cases / "x.csv", cases / "sub" / "x.csv"):
        result = _run("score", cases, "-o", out, "--no-next-step")
        assert result.exit_code == 1
        assert f"Error: The output path {str(out)!r} goes through {str(cases)!r}, which is a file, not a folder." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv"]


def test_the_progress_bar_ends_at_its_total_on_a_file_with_a_bom_and_non_ascii_text(tmp_path, monkeypatch):
    """Found in the second review (session 15): the bar's total is the file's size in bytes, the reader counts
    characters, and trailing blank lines were never counted, so a finished run left the bar short (41 of 47). A run
    that reads its input to the end now ends the bar at its total."""
    import bayesdx.cli as cli

    path = tmp_path / "cases.csv"
    path.write_bytes("\ufeffcase_id,fever\nJosé,yes\nRenée,no\n\n\n".encode())
    monkeypatch.setattr(cli, "_show_progress", lambda quiet: True)
    result = _run("score", path, "--no-next-step", "-o", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    size = path.stat().st_size
    final = result.stderr.split("\r")[-1]  # tqdm's last redraw: 100%, n/total (unit-scaled)
    assert final.startswith("scoring: 100%")
    assert f"{size:.1f}/{size:.1f}" in final


def test_a_byte_order_mark_on_standard_input_is_dropped():
    """A BOM is dropped in one place whatever opened the stream (score_csv), standard input included."""
    result = _run("score", "-", "--no-next-step", "-q", input="\ufeffcase_id,fever\nc1,yes\n".encode())
    assert result.exit_code == 0, result.output
    assert _read(result.stdout)["case_id"].tolist() == ["c1"]
