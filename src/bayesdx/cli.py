"""The ``bayesdx`` command line: ``rank`` one case, ``score`` a CSV file of cases, ``model show|validate|export``.

Exit codes: 0 success, 1 bad input or data (the message is printed as ``Error: ...`` on stderr, without a
traceback), 2 usage errors. Progress bars go to stderr, and only when it is a terminal, ``--quiet`` is not
given and the ``CI`` environment variable is not set.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from . import _resources
from ._cli_common import (
    _PRIORS_HELP,
    _fmt,
    _load,
    _model_options,
    _parse_evidence,
    _quiet,
    _quiet_option,
    _ranking_option,
    _show_progress,
    _table,
    _user_errors,
)
from .exceptions import BayesdxError
from .results import CAVEAT

__all__ = ["main"]

_FORMATS = ("wide", "long")
_ENGINES = ("local", "dask")
_EXPORT_FORMATS = ("bif", "xmlbif")
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
    help="Output CSV. A file is written to a temporary file and renamed only when every row was scored.",
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
            source = _text_stream(sys.stdin, "utf-8-sig", stack, errors="surrogateescape")
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
            except BrokenPipeError:  # the reader of standard output went away (| head): stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                raise SystemExit(1) from None
    if not quiet:
        where = "standard output" if output == "-" else output
        if skip_invalid:
            click.echo(f"scored {summary.scored} rows, {summary.invalid} invalid ({summary.rows} written to {where})", err=True)


# ---------------------------------------------------------------------- model
@main.group("model")
def model_group() -> None:
    """Show, validate or export a model."""


@model_group.command("show")
@_model_options
@_quiet_option
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the model as JSON instead of tables.")
def model_show(model: str | None, priors: str | None, as_json: bool) -> None:
    """Print a model's nodes by role with their states, costs and labels, and its priors with provenance."""
    m = _load(model, priors)
    if as_json:
        click.echo(json.dumps(_model_summary(m), indent=2))
        return
    out = [
        f"Model {m.id} {m.version}" + (f": {m.spec.title}" if m.spec is not None and m.spec.title else ""),
        f"Source: {m.source}",
        f"Priors: {m.priors}" + (f" ({m.prior_setting.path})" if m.prior_setting is not None else ""),
        "",
    ]
    setting = m.prior_setting
    prior = m.prior_probabilities
    rows = []
    provenance = []
    for h in m.hypotheses:
        base = setting.probabilities.get(h.node) if setting is not None else None
        rows.append(
            (h.id, m.labels.get(h.node, h.node), "/".join(m.states[h.node]), _fmt(base) if base is not None else "", _fmt(prior[h.id]))
        )
        if setting is not None and h.node in setting.provenance:
            text = "; ".join(f"{k}: {v}" for k, v in setting.provenance[h.node].items())
            provenance.append(textwrap.fill(f"{h.id}: {text}", width=100, subsequent_indent="    "))
    out.append(f"Causes ({len(m.causes)}): prior as set, and probability before any evidence")
    out.append(_table(["id", "label", "states", "prior", "before evidence"], rows, right=(3, 4)))
    if provenance:
        out.extend(["", "Where the priors come from", *provenance])
    for title, nodes in (
        ("Findings (questions)", m.findings),
        ("Tests", m.tests),
        ("Hidden (never asked)", tuple(getattr(m, "hidden", ()))),
    ):
        if not nodes and title.startswith("Hidden"):
            continue
        out.extend(["", f"{title} ({len(nodes)})"])
        out.append(
            _table(
                ["id", "label", "states", "cost"],
                [(n, m.labels.get(n, n), "/".join(m.states[n]), f"{m.costs.get(n, float('nan')):g}") for n in nodes],
                right=(3,),
            )
        )
    if m.spec is not None and m.spec.cost_scale:
        out.extend(["", "Cost scale: " + " ".join(m.spec.cost_scale.split())])
    out.extend(["", CAVEAT])
    click.echo("\n".join(out))


def _model_summary(m: Any) -> dict[str, Any]:
    """``model show --json``: the model as plain values."""
    setting = m.prior_setting

    def node(n: str) -> dict[str, Any]:
        return {
            "id": n,
            "label": m.labels.get(n, n),
            "states": list(m.states[n]),
            "cost": m.costs.get(n),
            "aliases": {a: list(v) for a, v in m.aliases.get(n, {}).items()},
        }

    return {
        "id": m.id,
        "version": m.version,
        "title": m.spec.title if m.spec is not None else "",
        "source": m.source,
        "priors": m.priors,
        "presenting": dict(m.presenting),
        "causes": [
            {
                "id": h.id,
                "label": m.labels.get(h.node, h.node),
                "states": list(m.states[h.node]),
                "prior": setting.probabilities.get(h.node) if setting is not None else None,
                "before_evidence": m.prior_probabilities[h.id],
                "provenance": dict(setting.provenance.get(h.node, {})) if setting is not None else {},
                "harm": m.harm.weights.get(h.id) if m.harm is not None else None,
            }
            for h in m.hypotheses
        ],
        "findings": [node(n) for n in m.findings],
        "tests": [node(n) for n in m.tests],
        "hidden": list(m.hidden),
        "studies": [{"id": st.id, "label": st.label, "tests": list(st.tests), "cost": st.cost} for st in m.studies.values()],
        "triage_levels": list(m.triage_policy.levels) if m.triage_policy is not None else [],
        "triage_rules": len(m.triage_policy.rules) if m.triage_policy is not None else 0,
        "caveat": CAVEAT,
    }


@model_group.command("validate")
@_quiet_option
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--priors", "priors", metavar="NAME", default=None, help=_PRIORS_HELP)
def model_validate(path: str | None, priors: str | None) -> None:
    """Check a .toml model file (default: the bundled model) and its priors; print OK or the first problem."""
    from .model import check_model_file

    target = Path(path) if path is not None else _resources.data_dir("models") / f"{_resources.BUNDLED_MODEL}.toml"
    with _user_errors():
        if not target.is_file():
            raise FileNotFoundError(f"No such model file: {str(target)!r}")
        m = check_model_file(target, priors)
    click.echo(
        f"OK: {target} (model {m.id} {m.version}, priors {m.priors}; {len(m.causes)} causes, "
        f"{len(m.findings)} findings, {len(m.tests)} tests)"
    )


@model_group.command("export")
@_model_options
@_quiet_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_EXPORT_FORMATS),
    default="bif",
    show_default=True,
    help="bif (GeNIe, pyAgrum, Netica) or xmlbif (name the file .bifxml for pyAgrum).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, writable=True),
    required=True,
    help="The file to write (- for standard output).  [required]",
)
def model_export(model: str | None, priors: str | None, fmt: str, output: str) -> None:
    """Export the model's network (with the chosen priors) through pgmpy's BIF or XMLBIF writer."""
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    from .batch import atomic_output

    m = _load(model, priors)
    network = m.network.copy()
    network.name = m.id
    text = str(BIFWriter(network)) if fmt == "bif" else str(XMLBIFWriter(network))
    if output == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    with _user_errors(), atomic_output(output) as handle:
        handle.write(text)
    # BIF and XMLBIF carry the network only: say what a reload needs to give the same answers
    roles = [f"causes={list(m.causes)!r}", f"tests={list(m.tests)!r}"]
    if m.presenting:
        roles.append(f"presenting={dict(m.presenting)!r}")
    if _quiet():
        return
    click.echo(
        f"Wrote {output}. {fmt.upper()} carries no roles, presenting complaint, costs, triage or "
        f"priors' sources; reload with bayesdx.load_model({output!r}, {', '.join(roles)}) "
        "(the __part nodes are hidden by default).",
        err=True,
    )


from .cli_evaluate import evaluate  # noqa: E402  (the evaluation command lives in its own module)
from .cli_interview import interview  # noqa: E402  (so does the consultation)

main.add_command(evaluate)
main.add_command(interview)
