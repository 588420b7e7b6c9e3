"""``bayesdx interview``: hold a consultation with the engine, one question or test at a time.

Each round ranks the causes with next steps (:func:`bayesdx.rank_causes`), shows the leading causes, the
triage and the referral, and asks the recommended step: a prompt on its own line ending with the valid
answers in brackets, ``Fever? [yes/no/skip/quit]``. ``skip`` leaves the item unobserved and never asks it
again; ``quit`` (or the end of the input) ends the consultation. A bad answer is named and asked again,
nothing lost. The consultation ends at the stop rule, when no unasked step is worth its cost, on ``quit``,
or after ``--max-steps``. Then it prints the final ranking, triage and referral and the evidence as a
``bayesdx rank`` command line, and with ``--save`` writes the case as JSON.

It works on a terminal and with answers piped on standard input, one per line.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ._cli_common import (
    _fmt,
    _load,
    _model_options,
    _parse_evidence,
    _quiet,
    _quiet_option,
    _ranking_option,
    _table,
    _user_errors,
)

__all__ = ["interview"]

SKIP, QUIT = "skip", "quit"


def _leading(dx: Any, top_k: int) -> str:
    rows = [(k, c.id, _fmt(c.score(dx.ranking)), _fmt(c.probability)) for k, c in enumerate(dx.causes[:top_k], start=1)]
    score = "probability" if dx.ranking == "posterior" else dx.ranking.replace("_", " ")
    table = _table(["rank", "cause", score, "probability"], rows, right=(0, 2, 3))
    return f"{table}\nTriage: {dx.triage}    Referral: {dx.referral}"


def _question(model: Any, variable: str, kind: str) -> str:
    label = model.labels.get(variable, variable)
    answers = "/".join([*model.answers(variable), SKIP, QUIT])
    what = "result" if kind != "question" else ""
    return f"{label}{' ' + what if what else ''}? [{answers}]"


def _ask(model: Any, variable: str, kind: str) -> str | None:
    """The answer (a state, an alias, or ``skip``), or None for quit / end of input. Re-asks on a bad answer."""
    valid = (*model.answers(variable), SKIP, QUIT)
    while True:
        try:
            raw = click.prompt(_question(model, variable, kind), prompt_suffix=" ", default="", show_default=False)
        except click.Abort:
            click.echo("")
            return None
        answer = raw.strip()
        if not sys.stdin.isatty():  # piped answers are not echoed: show them, so the transcript reads as asked
            click.echo(answer)
        folded = {v.lower(): v for v in valid}
        if len(folded) == len(valid):  # "Yes" is "yes" (where no two answers differ by case alone)
            answer = folded.get(answer.lower(), answer)
        if answer == QUIT:
            return None
        if answer in valid:
            return answer
        click.echo(f"{answer!r} is not a valid answer for {variable}. Valid answers are {', '.join(valid)}.")


def _command_line(evidence: dict[str, str], model_name: str | None, priors: str | None) -> str:
    parts = ["bayesdx", "rank"]
    if model_name:
        parts += ["--model", model_name]
    if priors:
        parts += ["--priors", priors]
    parts += [f"{k}={v}" for k, v in evidence.items()]
    return " ".join(shlex.quote(p) for p in parts)


@click.command("interview")
@click.argument("evidence", nargs=-1, metavar="[VARIABLE=STATE]...")
@_model_options
@_ranking_option
@_quiet_option
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Leading causes shown each round.")
@click.option("--max-steps", type=click.IntRange(min=1), default=40, show_default=True, help="Ask at most this many steps.")
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the case (evidence, skipped items, final result) as JSON to this file.",
)
def interview(
    evidence: tuple[str, ...], model: str | None, priors: str | None, ranking: str | None, top_k: int, max_steps: int, save: Path | None
) -> None:
    """Hold a consultation: answer the recommended question or test, one per line (or pipe the answers in).

    Starts from the given evidence (e.g. `bayesdx interview age_group=adult sex=female`). Answer with a state,
    `skip` (unknown; not asked again) or `quit`.
    """
    from .evidence import normalize_evidence
    from .ranking import rank_causes
    from .results import CAVEAT

    m = _load(model, priors)
    with _user_errors():
        observed = normalize_evidence(_parse_evidence(evidence), m)
        dx = rank_causes(observed, model=m, ranking=ranking)
    skipped: list[str] = []
    asked = 0
    ended = "the stop rule: no further step is worth its cost or could change the leading causes"
    click.echo(f"Consultation with model {m.id} {m.version}, priors {m.priors}. {CAVEAT}")
    while True:
        click.echo("")
        click.echo(_leading(dx, top_k))
        steps = [s for s in dx.next_steps if s.id not in skipped and s.value > 0]
        if dx.should_stop or not steps:
            break
        if asked >= max_steps:
            ended = f"--max-steps {max_steps}"
            break
        step = steps[0]
        click.echo(
            f"Next: {step.kind} {step.id} (value {step.value:.3f} = EIG {step.expected_information_gain:.3f} - alpha x cost {step.cost:g})"
        )
        items = m.studies[step.id].tests if step.id in m.studies else (step.id,)
        if step.id in m.studies:
            click.echo(f"{m.studies[step.id].label}: {', '.join(items)}")
        answers = {}
        for item in items:
            answer = _ask(m, item, step.kind)
            if answer is None:
                break
            answers[item] = answer
        if len(answers) < len(items):  # quit inside a study: keep the results already given
            observed.update({v: a for v, a in answers.items() if a != SKIP})
            if answers:
                with _user_errors():
                    dx = rank_causes(observed, model=m, ranking=ranking)
            ended = "quit"
            break
        asked += 1
        if all(a == SKIP for a in answers.values()):
            skipped.append(step.id)
        known = {v: a for v, a in answers.items() if a != SKIP}
        skipped.extend(v for v, a in answers.items() if a == SKIP and v != step.id)
        if not known:
            continue
        observed.update(known)
        with _user_errors():
            dx = rank_causes(observed, model=m, ranking=ranking)
    click.echo("")
    click.echo(f"Consultation ended ({ended}) after {asked} answer(s).")
    click.echo("Final ranking:")
    click.echo(_leading(dx, top_k))
    if dx.triage_reasons:
        click.echo("Triage reasons: " + "; ".join(dx.triage_reasons))
    if dx.referral_reason:
        click.echo(f"Referral reason: {dx.referral_reason}")
    click.echo("Evidence as a command line:")
    click.echo(_command_line(dict(observed.items()), model, priors))
    click.echo(CAVEAT)
    if save is not None:
        record = {"evidence": dict(observed), "skipped": skipped, "ended": ended, "result": dx.to_dict()}
        with _user_errors():
            save.parent.mkdir(parents=True, exist_ok=True)
            save.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if not _quiet():
            click.echo(f"Saved to {save}", err=True)
