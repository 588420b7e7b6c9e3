"""The ``bayesdx evaluate`` command: compare prior settings on vignettes (see :mod:`bayesdx.evaluation`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

__all__ = ["evaluate"]


def _stage_printer(enabled: bool) -> Callable[[str], None] | None:
    """Stage messages with elapsed time on stderr, only on a terminal (quiet when piped or in CI)."""
    start = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=True)

    return say if enabled else None


@click.command("evaluate")
@click.argument("vignettes", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--priors",
    "priors",
    multiple=True,
    metavar="SETTING",
    help="A prior setting to compare, by bundled name or path to a prior file; repeat for several. Default: article.",
)
@click.option(
    "--model",
    "model_source",
    default=None,
    metavar="MODEL",
    help="Model name or model file (.toml) whose priors are swapped. Default: the bundled leg-twitch model.",
)
@click.option(
    "-o",
    "--output",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the report (metrics.csv, cases.csv, report.md, PNG plots) to this folder. Default: no report.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=1),
    default=1000,
    show_default=False,
    help="Bootstrap resamples for the 95% intervals. Default: 1000.",
)
@click.option(
    "--prior-draws",
    "n_prior_draws",
    type=click.IntRange(min=0),
    default=0,
    help="Draws of perturbed priors in the Monte Carlo over prior uncertainty (about 0.1 s per draw and "
    "setting on 87 vignettes; the committed report uses 1000). Default: 0, skipped.",
)
@click.option(
    "--prior-spread",
    type=click.FloatRange(min=0.0),
    default=0.5,
    help="Standard deviation of each prior's log-odds perturbation. Default: 0.5.",
)
@click.option(
    "--samples",
    "n_self_consistency",
    type=click.IntRange(min=0),
    default=2000,
    help="Cases sampled from the network for the self-consistency check (0 skips it). Default: 2000.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seed of every random component. Default: 0.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No stage messages on stderr.")
@click.option(
    "--next-steps/--no-next-steps",
    "--next-step/--no-next-step",  # both spellings, as bayesdx score and rank take --next-step/--no-next-step
    "next_steps",
    default=False,
    help="Hold simulated consultations for policy_auc, cost_to_top1 and policy_top1 (about 11 s per "
    "setting on 87 vignettes). Default: --no-next-steps, those metrics empty.",
)
@click.option("--no-steps", "no_steps", is_flag=True, default=False, hidden=True)
@click.option(
    "--step-cases", type=click.IntRange(min=1), default=None, help="Simulate consultations of the first N cases only. Default: all cases."
)
@click.option(
    "--case-mix",
    "case_mix",
    multiple=True,
    metavar="REF",
    help="Also report metrics weighted by a case mix: a prior setting (its probability of each cause in a "
    "person who presents) or a CSV of cause,weight; repeat for several. Each vignette of cause c "
    "weighs pi(c)/n(c). Default: none.",
)
@click.option(
    "--ranking",
    type=click.Choice(["expected_disablement", "disablement", "posterior"]),
    default=None,
    help="What the causes are ranked by for top-1, top-3 and MRR (see bayesdx rank --help). Default: expected_disablement.",
)
def evaluate(
    vignettes: Path,
    priors: tuple[str, ...],
    model_source: str | None,
    report_dir: Path | None,
    n_bootstrap: int,
    n_prior_draws: int,
    prior_spread: float,
    n_self_consistency: int,
    seed: int,
    next_steps: bool,
    no_steps: bool,
    step_cases: int | None,
    ranking: str | None,
    quiet: bool,
    case_mix: tuple[str, ...],
) -> None:
    """Compare prior settings on VIGNETTES.csv: accuracy, calibration, triage, steps and robustness.

    Prints the metrics table (each value with its 95% bootstrap interval) and, with -o, writes the report.
    """
    import bayesdx
    from bayesdx.evaluation import evaluate as run

    try:
        model = bayesdx.load_model(model_source) if model_source is not None else None
        result = run(
            vignettes,
            priors=priors or ("article",),
            model=model,
            next_steps=next_steps and not no_steps,
            n_bootstrap=n_bootstrap,
            n_prior_draws=n_prior_draws,
            prior_spread=prior_spread,
            seed=seed,
            report_dir=report_dir,
            n_self_consistency=n_self_consistency,
            step_cases=step_cases,
            progress=_stage_printer(sys.stderr.isatty() and not quiet),
            ranking=ranking,
            case_mix=list(case_mix) or None,
        )
    except (bayesdx.BayesdxError, ValueError, TypeError, OSError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.metrics_markdown())
    if report_dir is not None and not quiet:
        click.echo(f"Report written to {report_dir / 'report.md'}", err=True)
