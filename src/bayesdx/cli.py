"""The ``bayesdx`` command line: ``rank`` one case, ``score`` a CSV file of cases, ``model show|validate|export``.

Exit codes: 0 success, 1 bad input or data (the message is printed as ``Error: ...`` on stderr, without a
traceback), 2 usage errors. Progress bars go to stderr, and only when it is a terminal, ``--quiet`` is not
given and the ``CI`` environment variable is not set.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from ._cli_common import (
    _fmt,
    _load,
    _model_options,
    _parse_evidence,
    _quiet_option,
    _ranking_option,
    _show_progress,
    _table,
    _user_errors,
)
from .exceptions import BayesdxError

__all__ = ["main"]

_FORMATS = ("wide", "long")
_ENGINES = ("local", "dask")
_DEFAULT_STEPS_SHOWN = 5


# ---------------------------------------------------------------------- the group
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bayesdx", prog_name="bayesdx")
def main() -> None:
    """Exact, explainable Bayesian differential diagnosis (decision support, not a diagnosis)."""


# ---------------------------------------------------------------------- rank
@main.command()
@click.argument("evidence", nargs=-1, metavar="[VARIABLE=STATE]...")
@_model_options
@click.option("--top-k", type=click.IntRange(min=1), default=None, show_default="all", help="Causes to list.")
@click.option(
    "--steps", type=click.IntRange(min=0), default=_DEFAULT_STEPS_SHOWN, show_default=True, help="Next steps to list (0 for none)."
)
@click.option("--next-step/--no-next-step", default=True, show_default=True, help="Compute the next steps and the stop rule.")
@click.option("--json", "as_json", is_flag=True, default=False, show_default=True, help="Print the full result as JSON instead of a table.")
@_ranking_option
@_quiet_option
def rank(
    evidence: tuple[str, ...],
    model: str | None,
    priors: str | None,
    top_k: int | None,
    steps: int,
    next_step: bool,
    as_json: bool,
    ranking: str | None,
) -> None:
    """Rank the causes of one case given its evidence, e.g. `bayesdx rank painful_cramps=yes age_group=adult`.

    An empty state (fever=) means not observed.
    """
    from .ranking import rank_causes

    observed = _parse_evidence(evidence)
    m = _load(model, priors)
    with _user_errors():
        dx = rank_causes(observed, model=m, next_steps=next_step, ranking=ranking)
    if as_json:
        click.echo(dx.to_json(top_k=top_k, indent=2))  # --top-k limits the causes, in JSON as in the table
        return
    click.echo(_format_diagnosis(dx, m, top_k, steps))


def _format_diagnosis(dx: Any, model: Any, top_k: int | None, steps: int) -> str:
    shown = dx.causes if top_k is None else dx.causes[:top_k]
    prior = dx.prior_probabilities
    out = [
        f"Model {dx.model_id} {dx.model_version}, priors {dx.priors}; "
        f"evidence: {', '.join(f'{k}={v}' for k, v in dx.evidence.items()) or 'none'}",
        "",
    ]
    if dx.ranking == "posterior":
        out.append(
            _table(
                ["rank", "cause", "label", "probability", "prior"],
                [
                    (k, c.id, dx.labels.get(c.node, c.node), _fmt(c.probability), _fmt(prior.get(c.id, float("nan"))))
                    for k, c in enumerate(shown, start=1)
                ],
                right=(0, 3, 4),
            )
        )
    else:
        out.append(
            f"Ranked by {dx.ranking.replace('_', ' ')}: what curing the cause alone would switch off "
            "(disablement: of the twitching; expected disablement: of all positive findings)."
        )
        out.append(
            _table(
                ["rank", "cause", "label", "exp. disablement", "disablement", "probability", "prior"],
                [
                    (
                        k,
                        c.id,
                        dx.labels.get(c.node, c.node),
                        _fmt(c.expected_disablement),
                        _fmt(c.disablement),
                        _fmt(c.probability),
                        _fmt(prior.get(c.id, float("nan"))),
                    )
                    for k, c in enumerate(shown, start=1)
                ],
                right=(0, 3, 4, 5, 6),
            )
        )
    if len(shown) < len(dx.causes):
        out.append(f"({len(dx.causes) - len(shown)} more causes; --top-k to show them)")
    if dx.should_stop is not None:
        out.append("")
        if steps and dx.next_steps:
            out.append(
                _table(
                    ["next step", "kind", "EIG (bits)", "cost", "value"],
                    [(s.id, s.kind, _fmt(s.expected_information_gain), f"{s.cost:g}", _fmt(s.value)) for s in dx.next_steps[:steps]],
                    right=(2, 3, 4),
                )
            )
        if dx.should_stop:
            out.append("Stop: no further step is worth its cost or could change the leading causes.")
        elif dx.next_step is not None:
            out.append(f"Recommended next step: {dx.next_step.id} ({dx.next_step.kind}).")
    out.append("")
    if dx.triage is not None:
        reasons = f" ({'; '.join(dx.triage_reasons)})" if dx.triage_reasons else ""
        out.append(f"Triage: {dx.triage}{reasons}")
    else:
        out.append("Triage: none (the model declares no triage rules)" if model.triage_policy is None else "Triage: none")
    out.append(f"Referral: {dx.referral} ({dx.referral_reason})" if dx.referral is not None else "Referral: none")
    out.extend(["", dx.caveat])
    return "\n".join(out)


# ---------------------------------------------------------------------- score
class _Progress:
    """A tqdm bar on stderr: input read (when the size is known), rows written and their rate."""

    def __init__(self, total_chars: int | None) -> None:
        from tqdm import tqdm

        width = shutil.get_terminal_size(fallback=(100, 24)).columns or 100  # a fresh pty may report 0
        self.bar = tqdm(
            total=total_chars, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc="scoring", ncols=width, leave=True
        )
        self.rows = 0

    def __call__(self, rows: int, chars: int) -> None:
        self.rows += rows
        elapsed = self.bar.format_dict.get("elapsed", 0) or 0
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        self.bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s", refresh=False)
        self.bar.update(chars)

    def complete(self) -> None:
        """The input is read to its end: the bar at its total (which counts bytes, where the reader counted
        characters: a BOM, a non-ASCII character and trailing blank lines left it short)."""
        if self.bar.total is not None and self.bar.n < self.bar.total:
            self.bar.update(self.bar.total - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _dask_scorer(
    model: Any, top_k: int, next_step: bool, scheduler: str | None, workers: int, stack: contextlib.ExitStack, ranking: str | None = None
) -> Callable[[Any], Any]:
    try:
        import dask.dataframe as dd
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise click.ClickException('--engine dask needs Dask: python -m pip install "bayesdx[dask]"') from None
    from .dask import score_dask
    from .ranking import score

    with _user_errors():
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler, timeout="10s"))
    n_parts = max(1, len(client.scheduler_info().get("workers", {})) or workers)

    def scorer(evidence: Any) -> Any:
        if len(evidence) == 0:
            return score(evidence, model=model, top_k=top_k, next_step=next_step, ranking=ranking)
        try:
            parts = dd.from_pandas(evidence, npartitions=min(n_parts, len(evidence)), sort=False)
            return score_dask(parts, model=model, top_k=top_k, next_step=next_step, ranking=ranking).compute()
        except BayesdxError:
            raise  # the input's fault: reported like any bad row
        except Exception as exc:  # never a silent fallback: the user chose Dask
            raise click.ClickException(
                f"the Dask engine failed ({type(exc).__name__}: {exc}). Score without --engine dask to run locally."
            ) from exc

    return scorer


def _exit_on_termination() -> None:
    """SIGTERM and SIGHUP end the command like Ctrl-C: by an exception, so the temporary output is removed."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, stop)


def _text_stream(stream: Any, encoding: str, stack: contextlib.ExitStack, errors: str = "strict") -> IO[str]:
    """``stream`` (standard input or output) re-opened as text with ``encoding`` and untranslated newlines."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    wrapper = io.TextIOWrapper(buffer, encoding=encoding, newline="", errors=errors)
    stack.callback(wrapper.detach)  # leave the underlying stream open

    def flush() -> None:
        with contextlib.suppress(OSError, ValueError):
            wrapper.flush()

    stack.callback(flush)
    return wrapper


@main.command("score")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, writable=True),
    default="-",
    show_default="-, standard output",
    help="Output CSV. A file is written to a temporary file and renamed only when the run completes: every row "
    "scored, or with --skip-invalid written with its error.",
)
@_model_options
@click.option("--top-k", type=click.IntRange(min=1), default=None, show_default="3 wide, all long", help="Causes per case.")
@click.option(
    "--next-step/--no-next-step",
    default=True,
    show_default=True,
    help="Write the next step, its kind and value, triage, referral and should_stop (wide format).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="wide",
    show_default=True,
    help="wide: one row per case; long: one row per case and cause (rank, cause, probability).",
)
@click.option(
    "--ignore-column",
    "ignore_columns",
    metavar="NAME",
    multiple=True,
    default=(),
    show_default="none",
    help="Drop this input column (repeatable).",
)
@click.option(
    "--keep-column",
    "keep_columns",
    metavar="NAME",
    multiple=True,
    default=(),
    show_default="none",
    help="Pass this extra column through to the output, like true_cause (repeatable).",
)
@click.option("--id-column", metavar="NAME", default=None, show_default="case_id, else the first column", help="The case id column.")
@click.option(
    "--skip-invalid",
    is_flag=True,
    default=False,
    show_default=True,
    help="Write bad rows with an error column instead of stopping; print a summary to stderr.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    show_default="10000, or 200 with next steps",
    help="Rows read and scored at a time.",
)
@click.option(
    "--engine",
    type=click.Choice(_ENGINES),
    default="local",
    show_default=True,
    help="local: score in this process; dask: score on a Dask cluster (needs bayesdx[dask]).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    show_default="a local cluster",
    help="Address of an existing Dask scheduler (with --engine dask).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Workers of the local Dask cluster (with --engine dask and no --scheduler).",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    default=False,
    show_default=True,
    help="No progress bar and no summary on stderr (errors are still printed).",
)
@click.option(
    "--sep",
    metavar="CHAR",
    default=None,
    show_default="detected from the header (, ; tab |)",
    help="The input's delimiter. The output is always comma-separated.",
)
@_ranking_option
def score_command(
    input_path: str,
    output: str,
    model: str | None,
    priors: str | None,
    top_k: int | None,
    next_step: bool,
    fmt: str,
    ignore_columns: tuple[str, ...],
    keep_columns: tuple[str, ...],
    id_column: str | None,
    skip_invalid: bool,
    chunk_size: int | None,
    engine: str,
    scheduler: str | None,
    workers: int,
    quiet: bool,
    sep: str | None,
    ranking: str | None,
) -> None:
    """Score a CSV file of cases (INPUT, or - for standard input): one output row per input row, in order.

    The input has a case id column (case_id, or the first column), one column per variable of the model
    (an empty cell is not observed) and annotation columns (true_cause, true_triage, rationale, ...) that
    pass through. A bad row stops the run with exit code 1 and no output file, unless --skip-invalid.
    """
    from .batch import score_csv

    _exit_on_termination()
    if scheduler is not None and engine != "dask":
        raise click.UsageError("--scheduler needs --engine dask.")
    m = _load(model, priors)
    progress: _Progress | None = None
    with contextlib.ExitStack() as stack:
        scorer = None
        if engine == "dask":
            n_hyp = len(m.hypotheses)
            k = min(top_k if top_k is not None else (3 if fmt == "wide" else n_hyp), n_hyp)
            scorer = _dask_scorer(m, k, next_step and fmt == "wide", scheduler, workers, stack, ranking)
        source: IO[str] | str
        destination: IO[str] | str
        if input_path == "-":
            source = _text_stream(sys.stdin, "utf-8", stack, errors="surrogateescape")  # a BOM: score_csv drops it
            total = None
        else:
            source = input_path
            total = Path(input_path).stat().st_size
        destination = _text_stream(sys.stdout, "utf-8", stack) if output == "-" else output
        if _show_progress(quiet):
            progress = _Progress(total)
            stack.callback(progress.close)
        with _user_errors():
            try:
                summary = score_csv(
                    source,
                    destination,
                    model=m,
                    top_k=top_k,
                    next_step=next_step,
                    format=fmt,
                    ignore_columns=ignore_columns,
                    annotation_columns=keep_columns,
                    id_column=id_column,
                    skip_invalid=skip_invalid,
                    chunksize=chunk_size,
                    scorer=scorer,
                    on_progress=progress,
                    ranking=ranking,
                    sep=sep,
                )
                if progress is not None:
                    progress.complete()
            except BrokenPipeError:  # the reader of standard output went away (| head): stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                raise SystemExit(1) from None
    if not quiet:
        where = "standard output" if output == "-" else output
        if skip_invalid:
            click.echo(f"scored {summary.scored} rows, {summary.invalid} invalid ({summary.rows} written to {where})", err=True)
        from .results import CAVEAT

        click.echo(CAVEAT, err=True)  # the scores carry it too: on stderr, so that the CSV stays data only


# ---------------------------------------------------------------------- model
from .cli_evaluate import evaluate  # noqa: E402  (the evaluation command lives in its own module)
from .cli_interview import interview  # noqa: E402  (so does the consultation)
from .cli_model import model_group  # noqa: E402  (and bayesdx model show / validate / export)

main.add_command(evaluate)
main.add_command(model_group)
main.add_command(interview)
