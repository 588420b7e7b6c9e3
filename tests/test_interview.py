"""``bayesdx interview`` (issue 13): a consultation through a pipe and through a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest
from click.testing import CliRunner

import bayesdx
from bayesdx.cli import main

SEIZURE = ["age_group=adult", "twitch_appearance=visible_jerk", "loss_of_consciousness=yes"]


def test_piped_answers_hold_a_consultation_with_reprompts_skip_and_quit(tmp_path):
    save = tmp_path / "case.json"
    result = CliRunner().invoke(main, ["interview", *SEIZURE, "--save", str(save)], input="no\nmaybe\nyes\nabnormal\nskip\nquit\n")
    assert result.exit_code == 0, result.output
    out = result.output
    # the first question is fever (febrile convulsion or epilepsy?), with its valid answers in brackets
    assert "Fever? [yes/no/skip/quit]" in out
    # the second is the EEG; a bad answer is named and asked again, nothing lost
    assert "Electroencephalography result? [normal/abnormal/skip/quit]" in out
    assert "'maybe' is not a valid answer for eeg. Valid answers are normal, abnormal, skip, quit." in out
    assert "'yes' is not a valid answer for eeg" in out
    assert "Consultation ended (quit)" in out
    record = json.loads(save.read_text())
    assert record["evidence"] == {
        "age_group": "adult",
        "twitch_appearance": "visible_jerk",
        "loss_of_consciousness": "yes",
        "fever": "no",
        "eeg": "abnormal",
    }
    assert len(record["skipped"]) == 1
    assert record["skipped"][0] not in record["evidence"]
    # the printed command line reproduces the final ranking
    line = next(line for line in out.splitlines() if line.startswith("bayesdx rank "))
    assert line.split()[2:] == [f"{k}={v}" for k, v in record["evidence"].items()]
    dx = bayesdx.rank_causes(record["evidence"])
    assert record["result"]["causes"][0]["id"] == dx.causes[0].id
    assert record["result"]["triage"] == dx.triage == "emergency"
    assert "Triage: emergency    Referral: emergency department" in out


def test_the_end_of_the_input_ends_the_consultation_cleanly():
    result = CliRunner().invoke(main, ["interview", *SEIZURE], input="no\n")
    assert result.exit_code == 0, result.output
    assert "Consultation ended (quit) after 1 answer(s)." in result.output


def test_a_consultation_runs_to_the_stop_rule():
    """A single bout after a first long run: the article's "If twitching in the leg occurs once, a doctor is
    definitely not necessary"; the engine stops without asking anything."""
    result = CliRunner().invoke(
        main,
        [
            "interview",
            "age_group=adult",
            "sex=male",
            "frequency=once",
            "duration=hours",
            "recent_overexertion=yes",
            "twitch_appearance=fine_flicker",
            "both_legs=yes",
            "emotional_stress=no",
            "muscle_weakness=no",
            "fever=no",
            "rhythm=arrhythmic",
        ],
        input="",
    )
    assert result.exit_code == 0, result.output
    assert "Consultation ended (the stop rule" in result.output
    assert "Triage: self_care" in result.output


def test_bad_evidence_on_the_command_line_is_a_clear_error():
    result = CliRunner().invoke(main, ["interview", "fever=perhaps"])
    assert result.exit_code == 1
    assert "Invalid state 'perhaps' for variable 'fever'" in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_consultation_through_a_real_pseudo_terminal(tmp_path):
    save = tmp_path / "case.json"
    env = {**os.environ, "COLUMNS": "120"}
    child = pexpect.spawn(
        sys.executable, ["-m", "bayesdx", "interview", *SEIZURE, "--save", str(save)], env=env, encoding="utf-8", timeout=120
    )
    child.expect_exact("Fever? [yes/no/skip/quit]")
    child.sendline("no")
    child.expect_exact("Electroencephalography result? [normal/abnormal/skip/quit]")
    child.sendline("dunno")
    child.expect_exact("'dunno' is not a valid answer for eeg.")
    child.expect_exact("Electroencephalography result? [normal/abnormal/skip/quit]")
    child.sendline("normal")
    child.expect(r"\? \[")  # the next question, whatever it is
    child.sendline("quit")
    child.expect_exact("Consultation ended (quit) after 2 answer(s).")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert json.loads(Path(save).read_text())["evidence"]["eeg"] == "normal"


def test_a_study_asks_each_of_its_tests():
    """EMG and nerve conduction are one study (the model file's [[studies]]): both results are asked."""
    result = CliRunner().invoke(
        main,
        ["interview", "age_group=older_adult", "twitch_appearance=fine_flicker", "muscle_weakness=yes", "muscle_wasting=yes"],
        input="neurogenic\nnormal\nquit\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "EMG and nerve conduction study: electromyography, electroneurography" in out
    assert "Electromyography result? [normal/myopathic/neurogenic/abnormal/skip/quit]" in out
    assert "Electroneurography result? [normal/abnormal/skip/quit]" in out
    line = next(line for line in out.splitlines() if line.startswith("bayesdx rank "))
    assert "electromyography=neurogenic" in line
    assert "electroneurography=normal" in line


def test_quitting_inside_a_study_keeps_the_result_already_given(tmp_path):
    save = tmp_path / "case.json"
    result = CliRunner().invoke(
        main,
        ["interview", "age_group=older_adult", "muscle_weakness=yes", "muscle_wasting=yes", "--save", str(save)],
        input="neurogenic\nquit\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(save.read_text())["evidence"]["electromyography"] == "neurogenic"


def test_answers_are_taken_whatever_their_case(tmp_path):
    """Found in a user review (session 15): "Yes" was refused and asked again, while surrounding spaces were
    forgiven. Answers now match the states whatever their case (the model's states never differ by case alone),
    and are recorded as the model spells them."""
    save = tmp_path / "case.json"
    result = CliRunner().invoke(main, ["interview", *SEIZURE, "--save", str(save)], input="No\n ABNORMAL \nQuit\n")
    assert result.exit_code == 0, result.output
    assert "is not a valid answer" not in result.output
    assert "Consultation ended (quit)" in result.output
    record = json.loads(save.read_text())
    assert record["evidence"] == {**dict(a.split("=") for a in SEIZURE), "fever": "no", "eeg": "abnormal"}
