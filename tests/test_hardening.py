"""Issue 15: no silent wrong answer, no lost row. One test per defect fixed, each as reproduced in the issue."""

from __future__ import annotations

import decimal
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import bayesdx
from bayesdx.batch import InputFileError, score_csv
from bayesdx.cli import main
from bayesdx.exceptions import ModelFileError

REPO = Path(__file__).resolve().parents[1]
CASES = "case_id,fever,age_group\nc1,yes,adult\nc2,no,child\n"


def _frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


# ---------------------------------------------------------------------- 3, 4: columns and delimiters
def test_keeping_a_model_variable_as_an_annotation_is_refused():
    """Defect 3: --keep-column fever silently dropped that evidence."""
    with pytest.raises(InputFileError, match="names 'fever', a variable of model 'leg_twitch'"):
        score_csv(io.StringIO(CASES), io.StringIO(), annotation_columns=["fever"])


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_file_separated_otherwise_is_detected_and_scored_like_a_comma_file(sep):
    """Defect 4: a semicolon- or tab-separated file was scored as 'nothing observed', exit 0."""
    expected = io.StringIO()
    score_csv(io.StringIO(CASES), expected)
    got = io.StringIO()
    score_csv(io.StringIO(CASES.replace(",", sep)), got)
    assert got.getvalue() == expected.getvalue()
    given = io.StringIO()
    score_csv(io.StringIO(CASES.replace(",", sep)), given, sep=sep)
    assert given.getvalue() == expected.getvalue()


def test_a_file_with_no_variable_column_is_refused():
    with pytest.raises(InputFileError, match="no column is a variable of model 'leg_twitch'"):
        score_csv(io.StringIO("just_one\nx\ny\n"), io.StringIO())
    result = CliRunner().invoke(main, ["score", "-", "--sep", ","], input="case_id;fever\nc1;yes\n")
    assert result.exit_code == 1
    assert "no column is a variable" in result.output


# ---------------------------------------------------------------------- 6, 10: output targets
def test_an_existing_output_keeps_its_mode_and_a_symlink_is_written_through(tmp_path):
    """Defect 6: rewriting a 0600 output left it 0644 (patient data); a symlink output was replaced."""
    source = tmp_path / "cases.csv"
    source.write_text(CASES)
    target = tmp_path / "private.csv"
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    score_csv(source, link)
    assert link.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _frame(target.read_text())["case_id"].tolist() == ["c1", "c2"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_output_is_written_directly_and_stays_a_fifo(tmp_path):
    source = tmp_path / "cases.csv"
    source.write_text(CASES)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    score_csv(source, fifo)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert _frame(received[0])["case_id"].tolist() == ["c1", "c2"]


def test_dev_null_stays_a_device():
    score_csv(io.StringIO(CASES), "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize(("output", "message"), [("", "The output path is empty"), ("missing/", "ends with a separator")])
def test_an_empty_or_folder_output_is_an_error_before_scoring(tmp_path, output, message):
    """Defect 10: -o "" scored everything and then failed; -o missing/ wrote a file named missing."""
    source = tmp_path / "cases.csv"
    source.write_text(CASES)
    result = CliRunner().invoke(main, ["score", str(source), "-o", output if output else "", "-q"])
    assert result.exit_code == 1
    assert message in result.output
    assert not (Path.cwd() / "missing").exists()


# ---------------------------------------------------------------------- 7: signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_midway_leaves_no_temporary_file(tmp_path, signum):
    """Defect 7: SIGTERM or SIGHUP midway left .out.csv.XXXX.tmp behind (SIGINT cleaned up)."""
    rows = "\n".join(f"c{k},yes,adult" for k in range(200_000))
    source = tmp_path / "big.csv"
    source.write_text("case_id,fever,age_group\n" + rows + "\n")
    out = tmp_path / "out.csv"
    child = subprocess.Popen(
        [sys.executable, "-m", "bayesdx", "score", str(source), "-o", str(out), "-q", "--no-next-step", "--chunk-size", "500"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.*.tmp")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "finished before it could be interrupted"
    child.send_signal(signum)
    child.wait(timeout=60)
    assert child.returncode != 0
    assert not list(tmp_path.glob(".out.csv.*.tmp"))
    assert not out.exists()


# ---------------------------------------------------------------------- 9: files that must fail cleanly
def test_non_finite_costs_are_refused_with_the_file_and_key(tmp_path, tiny_model_path):
    text = tiny_model_path.read_text()
    for bad in ("nan", "inf"):
        path = tmp_path / f"cost_{bad}.toml"
        bad_text = text.replace(
            'role = "test"\nstates = ["normal", "abnormal"]\ncost = 2.0', f'role = "test"\nstates = ["normal", "abnormal"]\ncost = {bad}'
        )
        assert bad_text != text
        path.write_text(bad_text)
        with pytest.raises(ModelFileError, match=r"nodes\.thermometer\.cost.*must be a finite number"):
            bayesdx.load_model(path)


def test_a_vanishing_prior_nested_toml_and_malformed_xmlbif_are_model_file_errors(tmp_path):
    text = (REPO / "priors" / "uniform.toml").read_text()
    prior = tmp_path / "tiny_prior.toml"
    prior.write_text(text.replace("[causes.als]\nprobability = 0.05", "[causes.als]\nprobability = 1e-300"))
    assert prior.read_text() != text
    with pytest.raises(ModelFileError, match=r"causes\.als\.probability.*must lie between"):
        bayesdx.load_model(priors=prior)
    nested = tmp_path / "nested.toml"
    nested.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ModelFileError, match="nested too deeply"):
        bayesdx.load_model(nested)
    xml = tmp_path / "bad.xmlbif"
    xml.write_text("<BIF><NETWORK><oops>")
    with pytest.raises(ModelFileError, match="is not a valid XMLBIF network"):
        bayesdx.load_model(xml, causes=["x"])


# ---------------------------------------------------------------------- 11: NaN spellings
@pytest.mark.parametrize(
    "value",
    [np.float32("nan"), np.float16("nan"), np.longdouble("nan"), decimal.Decimal("NaN"), pd.NaT, np.datetime64("NaT")],
    ids=lambda v: type(v).__name__,
)
def test_every_nan_spelling_means_not_observed(bundled_model, value):
    dx = bayesdx.rank_causes({"fever": value, "age_group": "adult"}, model=bundled_model, next_steps=False)
    assert "fever" not in dx.evidence


def test_duplicate_dataframe_columns_name_the_column(bundled_model):
    frame = pd.DataFrame([["yes", "no"]], columns=["fever", "fever"])
    with pytest.raises(ValueError, match="the column 'fever' more than once"):
        bayesdx.score(frame, model=bundled_model)


# ---------------------------------------------------------------------- 12: no silent Dask fallback
def test_a_failing_dask_engine_is_reported_not_replaced_by_local_scoring(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    import bayesdx.dask as bdask

    def broken(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(bdask, "score_dask", broken)
    source = tmp_path / "cases.csv"
    source.write_text(CASES)
    result = CliRunner().invoke(
        main, ["score", str(source), "-o", str(tmp_path / "out.csv"), "--engine", "dask", "--workers", "1", "-q", "--no-next-step"]
    )
    assert result.exit_code == 1
    assert "the Dask engine failed (RuntimeError: worker lost)" in result.output
    assert not (tmp_path / "out.csv").exists()


# ---------------------------------------------------------------------- interfaces
def test_results_pickle_deepcopy_and_serialise(bundled_model):
    """Diagnosis did not pickle or deepcopy (a mappingproxy field); to_dict and to_json are public."""
    import copy
    import json
    import pickle

    dx = bayesdx.rank_causes({"fever": "yes", "age_group": "child"}, model=bundled_model)
    again = pickle.loads(pickle.dumps(dx))
    assert [c.id for c in again.causes] == [c.id for c in dx.causes]
    assert (again.triage, again.referral, again.next_step) == (dx.triage, dx.referral, dx.next_step)
    assert copy.deepcopy(dx) == dx
    import dataclasses

    plain = dataclasses.asdict(dx)  # the result only: the model is not a field
    assert plain["causes"][0]["id"] == dx.causes[0].id
    assert "model" not in plain
    assert again.model is not None  # and still carried, for explain()
    data = json.loads(dx.to_json())
    assert data == json.loads(json.dumps(dx.to_dict()))
    assert data["causes"][0]["id"] == dx.causes[0].id
    assert data["causes"][0]["label"] == bundled_model.labels[dx.causes[0].node]
    assert data["triage"] == dx.triage
    assert data["referral_reason"] == dx.referral_reason
    result = CliRunner().invoke(main, ["rank", "fever=yes", "age_group=child", "--json"])
    assert json.loads(result.output)["causes"][0]["id"] == dx.causes[0].id


def test_score_takes_a_frame_in_the_vignette_layout(bundled_model):
    """bayesdx.score(pd.read_csv("evaluation/vignettes/dev.csv")) failed on case_id."""
    frame = pd.read_csv(REPO / "evaluation" / "vignettes" / "dev.csv")
    scored = bayesdx.score(frame, model=bundled_model, top_k=1)
    assert scored.index.name == "case_id"
    assert scored.index.tolist() == frame["case_id"].tolist()
    assert scored["true_cause"].tolist() == frame["true_cause"].tolist()
    evidence = frame.drop(columns=["case_id", "true_cause", "true_triage", "rationale"])
    plain = bayesdx.score(evidence, model=bundled_model, top_k=1)
    assert scored["cause_1"].tolist() == plain["cause_1"].tolist()
    dropped = bayesdx.score(frame, model=bundled_model, top_k=1, ignore_columns=["rationale", "fever"])
    assert "rationale" not in dropped.columns
    with pytest.raises(ValueError, match="no column 'nope'"):
        bayesdx.score(frame, model=bundled_model, ignore_columns=["nope"])


def test_rank_json_honours_top_k():
    import json

    result = CliRunner().invoke(main, ["rank", "fever=yes", "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["causes"]) == 2


def test_notebook_views_show_triage_referral_next_steps_and_explanations(bundled_model):
    dx = bayesdx.rank_causes({"fever": "yes", "age_group": "child", "loss_of_consciousness": "yes"}, model=bundled_model)
    page = dx._repr_html_()
    assert bundled_model.labels["febrile_infection"] in page
    assert "Triage:</b> emergency" in page
    assert "Referral:</b> emergency department" in page
    assert dx.next_steps[0].id in page
    assert "expected disablement" in page
    explanation = dx.explain("febrile_infection")._repr_html_()
    assert "febrile_infection" in explanation
    assert "log-likelihood ratio" in explanation


def test_the_bif_export_reloads_to_the_same_answers(tmp_path, bundled_model):
    """Reloading the model's own BIF export lost the presenting complaint and offered __part nodes as next
    steps; presenting= and the default hidden parts give the same posteriors (pgmpy's BIF round trip)."""
    out = tmp_path / "leg_twitch.bif"
    result = CliRunner().invoke(main, ["model", "export", "--format", "bif", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "presenting={'leg_twitching': 'yes'}" in result.stderr
    again = bayesdx.load_model(
        out, causes=list(bundled_model.causes), tests=list(bundled_model.tests), presenting=dict(bundled_model.presenting)
    )
    assert again.hidden
    assert all("__part" in h for h in again.hidden)
    evidence = {"muscle_weakness": "yes", "age_group": "older_adult", "electromyography": "neurogenic"}
    ours = bayesdx.rank_causes(evidence, model=bundled_model, ranking="posterior", next_steps=False)
    theirs = bayesdx.rank_causes(evidence, model=again)
    np.testing.assert_allclose([theirs.probability(c.id) for c in ours.causes], [c.probability for c in ours.causes], atol=1e-9, rtol=0)
    assert not [s.id for s in theirs.next_steps if "__part" in s.id]
    with pytest.raises(ValueError, match="presenting=, hidden= and costs= are for BIF"):
        bayesdx.load_model(presenting={"fever": "yes"})


def test_one_name_per_idea_and_quiet_everywhere(tmp_path):
    """next_steps (as rank_causes) is accepted by score and score_csv, chunk_size by score_csv, --no-next-step
    by evaluate, and -q by every subcommand."""
    cases = [{"fever": "yes"}, {"fever": "no"}]
    assert bayesdx.score(cases, next_steps=True).columns.tolist() == bayesdx.score(cases, next_step=True).columns.tolist()
    a, b = io.StringIO(), io.StringIO()
    score_csv(io.StringIO(CASES), a, next_steps=False, chunk_size=1)
    score_csv(io.StringIO(CASES), b, next_step=False, chunksize=1)
    assert a.getvalue() == b.getvalue()
    runner = CliRunner()
    for args in (
        ["rank", "-q", "fever=yes", "--no-next-step"],
        ["model", "show", "-q"],
        ["model", "validate", "-q"],
        ["model", "export", "-q", "-o", str(tmp_path / "m.bif")],
        ["interview", "-q", "--help"],
        ["evaluate", "--help"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    assert "--no-next-steps, --no-next-step" in result.output  # evaluate takes both spellings (session 15)
    export = runner.invoke(main, ["model", "export", "-q", "-o", str(tmp_path / "m2.bif")])
    assert export.stderr == ""


def test_a_bif_network_loads_on_the_command_line_with_its_roles(tmp_path):
    path = tmp_path / "lt.bif"
    CliRunner().invoke(main, ["model", "export", "-q", "-o", str(path)])
    result = CliRunner().invoke(
        main,
        [
            "rank",
            "--model",
            str(path),
            "--causes",
            "als,epilepsy",
            "--presenting",
            "leg_twitching=yes",
            "muscle_weakness=yes",
            "--no-next-step",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "evidence: leg_twitching=yes, muscle_weakness=yes" in result.output
    missing = CliRunner().invoke(main, ["rank", "--model", str(path), "fever=yes"])
    assert missing.exit_code == 1
    assert "--causes NODES" in missing.output


def test_model_show_as_json(bundled_model):
    import json

    result = CliRunner().invoke(main, ["model", "show", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [c["id"] for c in data["causes"]] == [h.id for h in bundled_model.hypotheses]
    assert next(t for t in data["tests"] if t["id"] == "electromyography")["aliases"] == {"abnormal": ["myopathic", "neurogenic"]}
    assert data["studies"][0]["tests"] == ["electromyography", "electroneurography"]
    assert data["presenting"] == {"leg_twitching": "yes"}


def test_a_report_folder_blocked_by_a_file_is_an_output_path_error(tmp_path):
    from bayesdx.evaluation import evaluate

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    frame = pd.DataFrame({"case_id": ["a"], "true_cause": ["febrile_infection"], "fever": ["yes"]})
    with pytest.raises(bayesdx.OutputPathError, match="the report folder cannot be created") as info:
        evaluate(frame, next_steps=False, n_bootstrap=5, n_prior_draws=0, n_self_consistency=0, report_dir=blocker / "sub")
    assert info.value.path == str(blocker / "sub")
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(REPO / "evaluation" / "vignettes" / "dev.csv"),
            "--no-next-step",
            "--prior-draws",
            "0",
            "--samples",
            "0",
            "--bootstrap",
            "5",
            "-q",
            "-o",
            str(blocker / "sub"),
        ],
    )
    assert result.exit_code == 1
    assert "Cannot write to" in result.output


# ---------------------------------------------------------------------- user review (session 15)
@pytest.mark.parametrize("alpha", ["banana", -3, float("nan")])
def test_score_checks_alpha_even_without_next_steps(alpha):
    """Found in a user review (session 15): score() ignored a bad alpha unless next_step=True, while rank_causes
    refuses it either way."""
    with pytest.raises(ValueError, match=r"The 'alpha' parameter of score must be a finite number >= 0"):
        bayesdx.score([{"fever": "yes"}], alpha=alpha)
    with pytest.raises(ValueError, match=r"The 'alpha' parameter of rank_causes must be a finite number >= 0"):
        bayesdx.rank_causes({"fever": "yes"}, alpha=alpha, next_steps=False)


@pytest.mark.parametrize(("top_k", "error"), [(-1, ValueError), (0, ValueError), ("2", TypeError), (2.5, TypeError)])
def test_to_json_refuses_a_top_k_that_is_not_a_positive_int(top_k, error):
    """Found in a user review (session 15): to_json(top_k=-1) returned 19 of 20 causes (a slice), 0 none, and a
    string or float raised Python's own slice error."""
    dx = bayesdx.rank_causes({"fever": "yes"})
    with pytest.raises(error, match=r"The 'top_k' parameter of Diagnosis.to_json must be an int >= 1"):
        dx.to_json(top_k=top_k)
    assert [c["id"] for c in json.loads(dx.to_json(top_k=2))["causes"]] == [c.id for c in dx.causes[:2]]


def test_a_cause_named_twice_is_refused():
    """Found in a user review (session 15): causes=["tub", "tub", "lung"] loaded, and every ranking listed tub twice,
    taking a place of the top k."""
    from references import example_network

    with pytest.raises(ValueError, match=r"The causes of load_model name 'tub' more than once"):
        bayesdx.load_model(example_network("asia"), causes=["tub", "tub", "lung"])
    with pytest.raises(ValueError, match=r"The tests of load_model name 'xray' more than once"):
        bayesdx.load_model(example_network("asia"), causes=["tub"], tests=["xray", "xray"])
