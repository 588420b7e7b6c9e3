"""The result of :func:`~bayesdx.evaluation.evaluate` and the report it writes.

A report folder holds:

``metrics.csv``
    One row per prior setting (per setting and case mix when several are given): ``priors``, ``ranking``,
    ``n``, then each metric of :data:`METRICS` followed by its ``_lo``/``_hi`` 95% bounds (bootstrap;
    Clopper-Pearson for ``emergency_recall``, with ``emergencies`` the number of emergency vignettes), then
    ``case_mix`` and each metric of :data:`WEIGHTED_METRICS` weighted by it (``_weighted``, ``_weighted_lo``,
    ``_weighted_hi``; see :mod:`bayesdx.evaluation.case_mix`). Unrounded.
``per_cause.csv``
    One row per setting and true cause: ``n`` vignettes, the share ranked first (``top1``) and within the top
    three (``top3``, the sensitivity of a three-item differential), each with a Clopper-Pearson interval.
``cases.csv``
    One row per vignette: ``case_id``, ``true_cause``, ``true_triage``, then per setting ``rank_<s>``
    (rank of the true cause), ``probability_<s>`` (its posterior), ``top1_<s>``, ``triage_<s>``,
    ``cost_to_top1_<s>`` and, with the Monte Carlo, ``stability_<s>``.
``sensitivity.csv``, ``sensitivity_summary.csv``, ``stability.csv``, ``prior_uncertainty.csv``,
``mcnemar.csv``, ``top_k.csv``, ``reliability.csv``, ``self_consistency.csv``
    The other tables of :class:`EvaluationResult`.
``report.md``
    The tables, rounded for display, and the PNG plots of :mod:`bayesdx.evaluation.plots`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import OutputPathError
from ..results import CAVEAT
from .case_mix import CaseMix

__all__ = ["METRICS", "WEIGHTED_METRICS", "EvaluationResult", "metrics_columns"]

#: The metrics of ``metrics.csv``, in column order (each followed by ``_lo`` and ``_hi``).
METRICS = (
    "top1",
    "top3",
    "mrr",
    "log_loss",
    "brier",
    "ece",
    "triage_accuracy",
    "under_triage",
    "over_triage",
    "safe_triage",
    "emergency_recall",
    "policy_auc",
    "cost_to_top1",
    "policy_top1",
)

#: The metrics that ``case_mix`` reweights (columns ``<metric>_weighted`` with ``_lo`` and ``_hi``).
WEIGHTED_METRICS = ("top1", "top3", "mrr", "log_loss", "brier")

_DESCRIPTIONS = {
    "top1": "top-1 accuracy (higher is better)",
    "top3": "top-3 accuracy (higher is better)",
    "mrr": "mean reciprocal rank of the true cause (higher is better)",
    "log_loss": "mean -ln P(true cause), clipped at 1e-15 (lower is better)",
    "brier": "mean over cases and hypotheses of (p - 1[true cause])^2 (lower is better)",
    "ece": "expected calibration error, 10 bins over all (case, hypothesis) pairs (lower is better)",
    "triage_accuracy": "advised triage level equals the vignette's (higher is better)",
    "under_triage": "true level above the advice (lower is better)",
    "over_triage": "advice above the true level (lower is better, but safer than under-triage)",
    "safe_triage": "advice at the true level, more cautious, or one level less; emergencies only as emergencies "
    "(Gilbert 2020; higher is better)",
    "emergency_recall": "share of the vignettes' emergencies advised as emergencies, with an exact Clopper-Pearson "
    "interval (higher is better)",
    "policy_auc": "simulated consultation: share of the cost range 0-100 during which the true cause leads "
    "(the area under the accuracy-cost curve; higher is better)",
    "cost_to_top1": "simulated consultation: cost spent when the true cause first leads, over the cases where it does (lower is better)",
    "policy_top1": "simulated consultation: true cause first when the consultation ends (higher is better)",
}

#: File name of each table of the report folder.
TABLES = {
    "metrics": "metrics.csv",
    "cases": "cases.csv",
    "sensitivity": "sensitivity.csv",
    "sensitivity_summary": "sensitivity_summary.csv",
    "stability": "stability.csv",
    "prior_uncertainty": "prior_uncertainty.csv",
    "mcnemar": "mcnemar.csv",
    "top_k": "top_k.csv",
    "consultation": "consultation.csv",
    "per_cause": "per_cause.csv",
    "reliability": "reliability.csv",
    "self_consistency": "self_consistency.csv",
    "self_consistency_summary": "self_consistency_summary.csv",
}


def metrics_columns() -> list[str]:
    """The columns of ``metrics.csv``, in order."""
    return (
        ["priors", "ranking", "n"]
        + [c for m in METRICS for c in (m, f"{m}_lo", f"{m}_hi")]
        + ["emergencies", "case_mix"]
        + [c for m in WEIGHTED_METRICS for c in (f"{m}_weighted", f"{m}_weighted_lo", f"{m}_weighted_hi")]
    )


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Prior settings compared on vignettes (returned by :func:`~bayesdx.evaluation.evaluate`).

    Attributes
    ----------
    settings : tuple of str
        The prior settings, in the order given.
    metrics : pandas.DataFrame
        One row per setting; columns :func:`metrics_columns` (``priors``, ``n``, each metric with ``_lo``
        and ``_hi`` bootstrap bounds).
    cases : pandas.DataFrame
        One row per vignette (see the module docstring for the columns).
    sensitivity : pandas.DataFrame
        One row per setting, case and hypothesis: ``priors``, ``case_id``, ``cause``, ``posterior``,
        ``top1`` (the hypothesis leads the case), ``factor`` (rank-flip factor of its prior odds: < 1 for the
        leader, > 1 for the others, 0 or inf when no factor flips the top-1, NaN when not varied) and
        ``flips_to`` (the new leader just beyond the factor). See :mod:`bayesdx.evaluation.robustness`.
    sensitivity_summary : pandas.DataFrame
        One row per setting and hypothesis: ``cases_leading``, ``median_factor_down``, ``median_factor_up``,
        ``share_flip_within_10``, and the top-1 accuracy at that prior's odds divided by 10
        (``top1_at_0.1``), unchanged (``top1``) and multiplied by 10 (``top1_at_10``).
    stability : pandas.DataFrame
        One row per setting and case: ``top1``, ``stability`` (share of prior draws in which the top-1
        holds) and ``true_cause_top1`` (share in which the true cause leads). Like the rank-flip factors,
        these are on the posterior (the leader by probability), whatever the ranking. Empty without prior
        draws.
    prior_uncertainty : pandas.DataFrame
        One row per setting: the top-1 accuracy over prior draws (mean, 2.5% and 97.5% quantiles) and the
        median stability.
    mcnemar : pandas.DataFrame
        One row per pair of settings: ``a``, ``b``, ``both``, ``a_only``, ``b_only``, ``neither``, and the
        exact McNemar ``p_value`` on top-1 hits.
    top_k : pandas.DataFrame
        ``priors``, ``k``, ``accuracy``, ``lo``, ``hi`` for k = 1 .. number of hypotheses.
    per_cause : pandas.DataFrame
        Per setting and true cause: ``n``, ``top1`` and ``top3`` recall with Clopper-Pearson bounds.
    consultation : pandas.DataFrame
        The accuracy-cost curve of the simulated consultations (:mod:`bayesdx.evaluation.consultation`):
        ``priors``, ``budget``, ``accuracy``.
    reliability : pandas.DataFrame
        Reliability table of the vignettes' posteriors per setting.
    self_consistency, self_consistency_summary : pandas.DataFrame
        Reliability table and ECE of cases sampled from each setting's network.
    source : str
        The vignettes.
    model_id, model_version : str
    options : mapping
        The options that produced the result (bootstrap size, draws, spread, seed, ...).
    case_mixes : tuple of CaseMix
        The case mixes the weighted columns are for (:mod:`bayesdx.evaluation.case_mix`).
    """

    settings: tuple[str, ...]
    metrics: pd.DataFrame
    cases: pd.DataFrame
    sensitivity: pd.DataFrame
    sensitivity_summary: pd.DataFrame
    stability: pd.DataFrame
    prior_uncertainty: pd.DataFrame
    mcnemar: pd.DataFrame
    top_k: pd.DataFrame
    reliability: pd.DataFrame
    consultation: pd.DataFrame
    self_consistency: pd.DataFrame
    self_consistency_summary: pd.DataFrame
    source: str
    model_id: str
    model_version: str
    options: Mapping[str, Any]
    per_cause: pd.DataFrame = field(default_factory=pd.DataFrame)
    case_mixes: tuple[CaseMix, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The metrics table (a copy)."""
        return self.metrics.copy()

    def __repr__(self) -> str:
        parts = ", ".join(f"{r.priors}: top1={r.top1:.3f}" for r in self.metrics.drop_duplicates("priors").itertuples())
        return f"<EvaluationResult {len(self.cases)} cases | {parts} | model={self.model_id} {self.model_version}>"

    def _repr_html_(self) -> str:
        return f"<div><p>{html.escape(repr(self))}</p>{_display_metrics(self.metrics).to_html(index=False)}</div>"

    # ------------------------------------------------------------------ markdown
    def metrics_markdown(self) -> str:
        """The metrics table as Markdown, each value with its interval, rounded for display (and, with case
        mixes, the weighted metrics after it)."""
        text = _markdown_table(_display_metrics(self.metrics.drop_duplicates("priors")))
        if self.case_mixes:
            text += "\n\nWeighted by case mix:\n\n" + _markdown_table(_display_weighted(self.metrics))
        return text

    def safety_markdown(self) -> str:
        """Triage safety per setting as the field reports it (Gilbert 2020): safe advice, under- and
        over-triage, and emergency recall as caught/total with its exact interval."""
        rows = []
        for r in self.metrics.drop_duplicates("priors").to_dict("records"):
            caught = r["emergency_recall"] * r["emergencies"] if r["emergencies"] else math.nan
            recall = (
                "n/a"
                if not r["emergencies"]
                else f"{round(caught)}/{r['emergencies']} = {r['emergency_recall']:.3f} "
                f"[{r['emergency_recall_lo']:.3f}, {r['emergency_recall_hi']:.3f}]"
            )
            rows.append(
                {
                    "priors": r["priors"],
                    **{
                        m: _with_interval(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
                        for m in ("safe_triage", "under_triage", "over_triage", "triage_accuracy")
                    },
                    "emergency_recall": recall,
                }
            )
        return _markdown_table(pd.DataFrame(rows))

    def case_mix_markdown(self) -> str:
        """Balanced against weighted results, with the numbers that explain the difference."""
        if not self.case_mixes:
            return ""
        balanced = self.metrics.drop_duplicates("priors").set_index("priors")["top1"]
        truth = self.cases["true_cause"]
        counts = truth.value_counts()
        out = [
            "Vignette sets are balanced by cause, so each cause's share among the vignettes is the writers' "
            "choice. On a balanced set a flat prior matches the test distribution by construction, and a prior "
            "close to the real case mix is penalised for being right about the population: the prior-shift "
            "problem (Saerens, Latinne and Decaestecker, Neural Computation 2002). Vignette studies of symptom "
            "checkers make the same point (Kopka et al., RepVig, 2025; base-rate stratified vignettes, Frontiers "
            "in Digital Health 2024): accuracy must be weighted by the case mix of the population it is claimed "
            "for. Each vignette of cause c is weighted by pi(c) / n(c) (`bayesdx.evaluation.case_mix`); intervals "
            "resample vignettes within each cause.",
            "",
        ]
        best = balanced.idxmax()
        out.append(f"On the {len(truth)} vignettes as written, `{best}` ranks the most first ({balanced.at[best]:.3f}).")
        for mix in self.case_mixes:
            rows = self.metrics[self.metrics["case_mix"] == mix.name].set_index("priors")["top1_weighted"]
            lead = rows.idxmax()
            heavy = sorted(mix.shares.items(), key=lambda kv: -kv[1])[:3]
            out.append(
                f"Weighted by `{mix.name}`, `{lead}` does ({rows.at[lead]:.3f}): that case mix gives "
                + ", ".join(f"{c} {share:.0%} (vignettes: {counts.get(c, 0) / len(truth):.0%})" for c, share in heavy)
                + "."
            )
        out += ["", _markdown_table(_display_weighted(self.metrics)), ""]
        shares = pd.DataFrame({"cause": counts.index, "vignettes": counts.to_numpy(), "share_in_vignettes": counts.to_numpy() / len(truth)})
        for mix in self.case_mixes:
            shares[mix.name] = shares["cause"].map(mix.shares).astype(float)
        out += ["Each cause's share among the vignettes and in each case mix:", "", _markdown_table(shares, digits=3)]
        return "\n".join(out)

    def to_markdown(self, images: Mapping[str, str] | None = None) -> str:
        """The report as Markdown; ``images`` maps plot names to file names to embed."""
        images = images or {}
        o = self.options
        out = [
            f"# Prior settings compared on {self.source}",
            "",
            f"Model `{self.model_id}` {self.model_version}; prior settings: "
            + ", ".join(f"`{s}`" for s in self.settings)
            + f"; {len(self.cases)} vignettes.",
            f"Options: bootstrap resamples {o.get('n_bootstrap')}, prior draws {o.get('n_prior_draws')} "
            f"(log-odds spread {o.get('prior_spread')}), sampled cases {o.get('n_self_consistency')}, "
            f"simulated consultations {_steps_option(o)}, "
            f"seed {o.get('seed')}.",
            "",
            f"> {CAVEAT}",
            "",
            "## Metrics",
            "",
            "Each value with its 95% percentile bootstrap interval over cases.",
            "",
            self.metrics_markdown(),
            "",
            *[f"- `{m}`: {_DESCRIPTIONS[m]}" for m in METRICS],
            "",
        ]
        if self.case_mixes:
            out += ["## Case mix: balanced against weighted", "", self.case_mix_markdown(), ""]
        if self.metrics["emergencies"].notna().any() and self.metrics["safe_triage"].notna().any():
            out += [
                "## Safety",
                "",
                "Safe advice (Gilbert 2020): at the vignette's level, more cautious, or one level less cautious, "
                "and emergencies only as emergencies. Emergency recall with its exact (Clopper-Pearson) interval.",
                "",
                self.safety_markdown(),
                "",
            ]
        if len(self.per_cause):
            wide = self.per_cause.pivot(index="cause", columns="priors", values="top3")
            wide = wide.reindex(columns=list(self.settings)).reset_index()
            wide.insert(1, "n", wide["cause"].map(self.per_cause.drop_duplicates("cause").set_index("cause")["n"]))
            out += [
                "## Per-cause sensitivity",
                "",
                "Share of each cause's vignettes ranked within the top three (`per_cause.csv` has top-1 and the Clopper-Pearson bounds).",
                "",
            ]
            if "per_cause" in images:
                out += [f"![Per-cause top-3 recall with 95% intervals]({images['per_cause']})", ""]
            out += [_markdown_table(wide, digits=3), ""]
        if len(self.mcnemar):
            out += ["## Paired comparison of top-1 hits (exact McNemar)", "", _markdown_table(self.mcnemar, digits=4), ""]
        if len(self.consultation):
            wide = self.consultation.pivot(index="budget", columns="priors", values="accuracy").reset_index()
            out += [
                "## The next-step policy: accuracy against cost",
                "",
                "Simulated consultations (`bayesdx.evaluation.consultation`): from age and sex, the engine asks "
                "its recommended step, the vignette answers (or 'unknown'), until the stop rule. Share of cases "
                "whose cause leads after spending at most each budget (questions cost 1, a blood test 5, an "
                "EMG 30, an MRI 50).",
                "",
                _markdown_table(wide, digits=3),
                "",
            ]
        out += ["## Top-k accuracy", ""]
        if "top_k" in images:
            out += [f"![Top-k accuracy per setting with 95% intervals]({images['top_k']})", ""]
        out += [
            "## Calibration on the vignettes",
            "",
            "Every (case, hypothesis) posterior against whether the hypothesis is the vignette's true cause.",
            "",
        ]
        if "reliability" in images:
            out += [f"![Reliability diagram per setting]({images['reliability']})", ""]
        out += [
            "## Robustness of the ranking to the priors",
            "",
            "Rank-flip factor: the factor by which a cause's prior odds must be multiplied before the case's "
            "top-1 changes (exact; see `bayesdx.evaluation.robustness`). Medians over cases, by whether the "
            "cause leads the case (factor < 1) or not (factor > 1); share of cases a factor within "
            "[1/10, 10] flips; top-1 accuracy with the cause's prior odds divided and multiplied by 10.",
            "",
        ]
        if "tornado" in images:
            out += [f"![Tornado chart of prior sensitivity]({images['tornado']})", ""]
        if len(self.sensitivity_summary):
            out += [_markdown_table(self.sensitivity_summary, digits=3), ""]
        if len(self.prior_uncertainty):
            out += [
                "### Prior uncertainty (Monte Carlo)",
                "",
                "Every prior perturbed on the log-odds scale; top-1 accuracy over the draws and the median "
                "share of draws in which a case keeps its top-1.",
                "",
                _markdown_table(self.prior_uncertainty, digits=3),
                "",
            ]
            least = self.stability.sort_values(["priors", "stability"]).groupby("priors", sort=False).head(5)
            out += ["Least stable cases per setting:", "", _markdown_table(least, digits=3), ""]
        if len(self.self_consistency_summary):
            out += [
                "## Self-consistency",
                "",
                "Cases sampled from each setting's own network, causes hidden, half the findings and tests "
                "observed: exact inference must be calibrated up to sampling noise.",
                "",
                _markdown_table(self.self_consistency_summary, digits=4),
                "",
            ]
            if "self_consistency" in images:
                out += [f"![Self-consistency reliability curve]({images['self_consistency']})", ""]
        cols = ["case_id", "true_cause"] + [f"rank_{s}" for s in self.settings]
        out += ["## Rank of the true cause per case", "", _markdown_table(self.cases[cols]), ""]
        return "\n".join(out)

    # ------------------------------------------------------------------ files
    def write(self, report_dir: str | os.PathLike[str], *, plots: bool = True) -> Path:
        """Write the CSV tables, the PNG plots (``plots=True``, needs matplotlib) and ``report.md``.

        Returns
        -------
        pathlib.Path
            The report folder.

        Raises
        ------
        ImportError
            If ``plots=True`` and matplotlib is not installed (install ``bayesdx[plots]``).
        OutputPathError
            If the report folder cannot be created (a file stands in the way, say).
        """
        folder = Path(report_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder should be, no permission, ...
            raise OutputPathError(os.fspath(report_dir), f"the report folder cannot be created ({exc.strerror or exc})") from exc
        for attr, name in TABLES.items():
            getattr(self, attr).to_csv(folder / name, index=False)
        images: dict[str, str] = {}
        if plots:
            from . import plots as p

            figures: dict[str, tuple[Callable[..., Path], pd.DataFrame]] = {
                "reliability": (p.plot_reliability, self.reliability),
                "top_k": (p.plot_top_k, self.top_k),
                "tornado": (p.plot_tornado, self.sensitivity_summary),
                "per_cause": (p.plot_per_cause, self.per_cause),
                "self_consistency": (p.plot_reliability, self.self_consistency),
            }
            for key, (function, data) in figures.items():
                if len(data):
                    kwargs = {"title": "Self-consistency: sampled cases"} if key == "self_consistency" else {}
                    function(data, folder / f"{key}.png", **kwargs)
                    images[key] = f"{key}.png"
        (folder / "report.md").write_text(self.to_markdown(images), encoding="utf-8")
        return folder


def _steps_option(options: Mapping[str, Any]) -> str:
    if not options.get("next_steps"):
        return "off"
    return f"on the first {options['step_cases']} cases" if options.get("step_cases") else "on all cases"


def _display_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in metrics.to_dict("records"):
        row: dict[str, Any] = {"priors": r["priors"], "n": r["n"]}
        for m in METRICS:
            row[m] = _with_interval(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["priors", "n", *METRICS])


def _display_weighted(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in metrics[metrics["case_mix"].astype(str) != ""].to_dict("records"):
        row: dict[str, Any] = {"case_mix": r["case_mix"], "priors": r["priors"], "top1 (balanced)": f"{r['top1']:.3f}"}
        for m in WEIGHTED_METRICS:
            row[f"{m}_weighted"] = _with_interval(r[f"{m}_weighted"], r[f"{m}_weighted_lo"], r[f"{m}_weighted_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def _with_interval(value: float, lo: float, hi: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(lo, float) and math.isnan(lo):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return "" if value is None else str(value).replace("|", "\\|")


def _markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    columns: Sequence[str] = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)
