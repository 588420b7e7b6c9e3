""":func:`evaluate`: compare prior settings on vignettes (accuracy, calibration, triage, steps, robustness).

Each metric is defined in :mod:`bayesdx.evaluation.metrics`, the step protocol in
:mod:`bayesdx.evaluation.consultation`, the prior robustness in :mod:`bayesdx.evaluation.robustness` and the
self-consistency check in :mod:`bayesdx.evaluation.self_consistency`. Randomness (bootstrap, prior draws,
sampled cases) comes from generators seeded by ``seed`` and a fixed tag per component, so each part is
reproducible on its own; the prior draws are the same for every setting.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from .._resources import available
from .._validation import check_int
from ..model import Model, load_model
from .case_mix import CaseMix, CaseMixSource, case_mix_weights, stratified_bootstrap
from .consultation import CURVE_BUDGETS, Consultations, simulate_consultations
from .metrics import (
    bootstrap_interval,
    brier_scores,
    clopper_pearson,
    expected_calibration_error,
    log_losses,
    mcnemar_exact,
    over_triage,
    per_cause_recall,
    reliability_table,
    safe_triage,
    summary_metrics,
    under_triage,
)
from .report import METRICS, WEIGHTED_METRICS, EvaluationResult, metrics_columns
from .robustness import flip_analysis, prior_monte_carlo, sensitivity_frames
from .scoring import SettingScores, score_setting
from .self_consistency import self_consistency
from .vignettes import read_vignettes

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)

# Seed tags: one independent stream per component.
_BOOTSTRAP, _PRIOR_DRAWS, _SAMPLES, _TOP_K, _CASE_MIX = 1, 2, 3, 4, 5


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *tags]))


def _settings(priors: Any, model: Model | None) -> list[Model]:
    if isinstance(priors, (str, os.PathLike)):
        priors = (priors,)
    if not isinstance(priors, Sequence) or not priors:
        raise ValueError(
            "The 'priors' parameter of evaluate must be a non-empty sequence of prior settings (names such as "
            f"'article' or paths to prior files). Got {priors!r} instead."
        )
    bundled = available("priors")
    models = []
    for p in priors:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"The 'priors' parameter of evaluate must hold str or path-like items. Got {p!r}.")
        is_path = not isinstance(p, str) or p.lower().endswith(".toml")
        if is_path and not Path(p).is_file():
            raise FileNotFoundError(f"No such prior file: {os.fspath(p)!r}")
        if model is not None and model.spec is None:
            if p != model.priors:
                raise ValueError(
                    f"Model {model.id!r} carries its own prior tables, so only priors=({model.priors!r},) can be "
                    f"evaluated with it. Got {p!r}."
                )
            models.append(model)
            continue
        if not is_path and p not in bundled and model is None:
            raise ValueError(
                f"The 'priors' parameter of evaluate must name prior settings among {', '.join(map(repr, bundled))} "
                f"or paths to prior files (.toml). Got {p!r} instead."
            )
        models.append(load_model(priors=p) if model is None else model.with_priors(p))
    names = [m.priors for m in models]
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise ValueError(f"The 'priors' parameter of evaluate names the setting {dup!r} twice.")
    return models


def _case_mixes(case_mix: Any, model: Model, true_causes: list[str]) -> list[CaseMix]:
    if case_mix is None:
        return []
    refs = [case_mix] if isinstance(case_mix, (str, os.PathLike, Mapping)) else list(case_mix)
    mixes = [case_mix_weights(ref, model, true_causes) for ref in refs]
    names = [mix.name for mix in mixes]
    if len(set(names)) != len(names):
        raise ValueError(f"The 'case_mix' parameter of evaluate names {next(x for x in names if names.count(x) > 1)!r} twice.")
    return mixes


def _weighted(
    mix: CaseMix | None,
    s: SettingScores,
    per_case: Mapping[str, np.ndarray],
    true_causes: list[str],
    n_bootstrap: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The ``_weighted`` columns of one setting under one case mix (NaN without a case mix)."""
    out: dict[str, Any] = {"case_mix": "" if mix is None else mix.name}
    if mix is None:
        for metric in WEIGHTED_METRICS:
            out[f"{metric}_weighted"] = out[f"{metric}_weighted_lo"] = out[f"{metric}_weighted_hi"] = np.nan
        return out
    assert s.order is not None  # score_setting always sets it
    value = summary_metrics(s.order, s.probabilities, s.truth, mix.weights)
    for metric in WEIGHTED_METRICS:
        lo, hi = stratified_bootstrap(per_case[metric], true_causes, mix.shares, n_resamples=n_bootstrap, rng=rng)
        out[f"{metric}_weighted"], out[f"{metric}_weighted_lo"], out[f"{metric}_weighted_hi"] = value[metric], lo, hi
    return out


def _per_case_metrics(
    s: SettingScores, true_triage: Sequence[str | None], levels: Sequence[str] | None, consult: Consultations | None
) -> dict[str, np.ndarray]:
    """Per-case values whose mean is each metric (ECE is not a mean; it is computed separately)."""
    values = {
        "top1": (s.ranks <= 1).astype(float),
        "top3": (s.ranks <= 3).astype(float),
        "mrr": 1.0 / s.ranks,
        "log_loss": log_losses(s.p_true),
        "brier": brier_scores(s.probabilities, s.truth),
    }
    known = np.array([t is not None and a is not None for t, a in zip(true_triage, s.triage, strict=True)])
    if levels is not None and known.any():
        adv = [a for a, k in zip(s.triage, known, strict=True) if k and a is not None]  # k implies both known
        tru = [t for t, k in zip(true_triage, known, strict=True) if k and t is not None]
        values["triage_accuracy"] = np.array([float(a == t) for a, t in zip(adv, tru, strict=True)])
        values["under_triage"] = under_triage(adv, tru, levels)
        values["over_triage"] = over_triage(adv, tru, levels)
        values["safe_triage"] = safe_triage(adv, tru, levels)
        top = levels[-1]
        values["emergency_recall"] = np.array([float(a == top) for a, t in zip(adv, tru, strict=True) if t == top])
    else:
        values["triage_accuracy"] = values["under_triage"] = np.array([])
        values["over_triage"] = values["safe_triage"] = values["emergency_recall"] = np.array([])
    if consult is None:
        values["policy_auc"] = values["cost_to_top1"] = values["policy_top1"] = np.array([])
    else:
        cost = consult.cost_to_top1()
        values["policy_auc"] = consult.auc()
        values["cost_to_top1"] = cost[~np.isnan(cost)]
        values["policy_top1"] = consult.top1_final()
    return values


def evaluate(
    vignettes: str | os.PathLike[str] | pd.DataFrame,
    *,
    priors: Sequence[str | os.PathLike[str]] = ("article",),
    model: Model | None = None,
    next_steps: bool = False,
    n_bootstrap: int = 1000,
    n_prior_draws: int = 0,
    prior_spread: float = 0.5,
    seed: int = 0,
    report_dir: str | os.PathLike[str] | None = None,
    n_self_consistency: int = 2000,
    step_cases: int | None = None,
    progress: Callable[[str], None] | None = None,
    ranking: str | None = None,
    case_mix: CaseMixSource | Sequence[CaseMixSource] | None = None,
) -> EvaluationResult:
    """Compare prior settings on vignettes: accuracy, calibration, triage, steps and robustness.

    Parameters
    ----------
    vignettes : str, path-like or pandas.DataFrame
        Cases with ``case_id``, ``true_cause``, optionally ``true_triage`` and ``rationale``, and one column per
        observed variable (see :mod:`bayesdx.evaluation.vignettes`).
    priors : sequence of str or path-like, default ("article",)
        The prior settings to compare, by bundled name or as paths to prior files.
    model : Model, optional
        The model whose priors are swapped; defaults to the bundled leg-twitch model. A model that carries its
        own prior tables (a pgmpy network) can only be evaluated with ``priors=(model.priors,)``.
    next_steps : bool, default False
        Hold simulated consultations (:mod:`bayesdx.evaluation.consultation`) for ``policy_auc``,
        ``cost_to_top1``, ``policy_top1`` and the accuracy-cost curve. They cost one batched next-step analysis
        per round (about 11 s per setting on 87 vignettes), so they are off by default and those metrics NaN.
    n_bootstrap : int, default 1000
        Bootstrap resamples for the 95% intervals (percentile method).
    n_prior_draws : int, default 0
        Draws of perturbed priors in the Monte Carlo over prior uncertainty; 0 (the default) skips it. Each
        draw is an exact posterior of every case (about 0.1 s per draw per setting on 87 vignettes); the
        committed report uses 1000. The exact rank-flip factors always run.
    prior_spread : float, default 0.5
        Standard deviation of the log-odds perturbation of each prior.
    seed : int, default 0
        Seeds every random component.
    report_dir : str or path-like, optional
        If given, the report is written there (:meth:`EvaluationResult.write`).
    n_self_consistency : int, default 2000
        Cases sampled from each setting's network for the self-consistency check (0 skips it).
    step_cases : int, optional
        Simulate consultations of the first ``step_cases`` cases only (default: all).
    progress : callable, optional
        Called with a short message as each stage starts (the command line shows these).
    ranking : {"expected_disablement", "disablement", "posterior"}, optional
        What the causes are ranked by for top-1, top-3 and MRR (as :func:`bayesdx.rank_causes`); log loss,
        Brier, calibration, triage and the robustness analyses always use the posteriors.
    case_mix : str, path-like, mapping, or a list of them, optional
        The population the comparison is for (:mod:`bayesdx.evaluation.case_mix`): a prior setting (its
        probability of each cause in a person who presents), a CSV of ``cause,weight``, or a mapping. Each
        vignette is weighted by ``pi(c_i) / n(c_i)`` and the metrics table gains ``top1_weighted``,
        ``top3_weighted``, ``mrr_weighted``, ``log_loss_weighted`` and ``brier_weighted`` with stratified
        bootstrap intervals, and a ``case_mix`` column; with several case mixes, one row per setting and
        case mix. Default: none (the vignettes as they are, weighted columns NaN).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    FileNotFoundError
        For a missing vignette or prior file.
    VignetteError
        For vignettes that cannot be evaluated (naming the file, case and value).
    ValueError, TypeError
        For bad parameters (an unknown prior setting, a negative count, ...).
    ImpossibleEvidenceError
        If a vignette's evidence has probability zero under a setting.

    Examples
    --------
    >>> from bayesdx.evaluation import evaluate
    >>> result = evaluate("evaluation/vignettes/dev.csv", priors=["article", "uniform"],
    ...                   next_steps=False, n_prior_draws=0, n_self_consistency=0)  # doctest: +SKIP
    >>> result.metrics[["priors", "top1", "top1_lo", "top1_hi"]]  # doctest: +SKIP
    """
    if not isinstance(next_steps, bool):
        raise TypeError(f"The 'next_steps' parameter of evaluate must be a bool. Got {next_steps!r} instead.")
    n_bootstrap = check_int("evaluate", "n_bootstrap", n_bootstrap, 1)
    n_prior_draws = check_int("evaluate", "n_prior_draws", n_prior_draws, 0)
    n_self_consistency = check_int("evaluate", "n_self_consistency", n_self_consistency, 0)
    seed = check_int("evaluate", "seed", seed, 0)
    if step_cases is not None:
        step_cases = check_int("evaluate", "step_cases", step_cases, 1)
    if (
        isinstance(prior_spread, bool)
        or not isinstance(prior_spread, (int, float))
        or not (math.isfinite(prior_spread) and prior_spread >= 0)
    ):
        raise ValueError(f"The 'prior_spread' parameter of evaluate must be a finite number >= 0. Got {prior_spread!r} instead.")
    if model is not None and not isinstance(model, Model):
        raise TypeError(f"The 'model' parameter of evaluate must be a bayesdx Model (from load_model). Got {type(model).__name__} instead.")
    say = progress or (lambda message: None)

    models = _settings(priors, model)
    first = models[0]
    cases = read_vignettes(vignettes, first)
    n = len(cases)
    ids = [h.id for h in first.hypotheses]
    levels = first.triage_policy.levels if first.triage_policy is not None else None
    draws = _rng(seed, _PRIOR_DRAWS).normal(0.0, float(prior_spread), size=(n_prior_draws, len(ids)))
    mixes = _case_mixes(case_mix, first, list(cases.true_cause))

    case_cols: dict[str, Any]  # one column per entry
    metric_rows, case_cols, top_k_rows, reliability_rows, curve_rows, cause_rows = [], {}, [], [], [], []
    sens_rows, sens_summary, stab_rows, mc_rows, sc_rows, sc_summary = [], [], [], [], [], []
    hits: dict[str, np.ndarray] = {}
    case_cols["case_id"] = list(cases.case_ids)
    case_cols["true_cause"] = list(cases.true_cause)
    case_cols["true_triage"] = list(cases.true_triage)
    for index, m in enumerate(models):
        name = m.priors
        say(f"{name}: scoring {n} cases")
        logger.info("scoring %d cases with priors %r", n, name)
        s = score_setting(m, cases, ranking)
        consult = None
        if next_steps:
            k = n if step_cases is None else min(step_cases, n)
            say(f"{name}: simulated consultations of {k} cases")

            def rounds(r: int, still_open: int, name: str = name) -> None:
                say(f"{name}: consultation round {r}, {still_open} cases open")

            consult = simulate_consultations(
                m, cases.evidence[:k], list(cases.true_cause[:k]), list(cases.case_ids[:k]), ranking=ranking, progress=rounds
            )
            curve_rows.append(consult.curve(CURVE_BUDGETS).assign(priors=name))
        per_case = _per_case_metrics(s, cases.true_triage, levels, consult)
        outcome = np.zeros_like(s.probabilities)
        outcome[np.arange(n), s.truth] = 1.0

        row: dict[str, Any] = {"priors": name, "ranking": s.ranking, "n": n}
        assert s.order is not None  # score_setting always sets it
        summary = summary_metrics(s.order, s.probabilities, s.truth)  # scikit-learn; equal to the per-case means
        boot = _rng(seed, _BOOTSTRAP, index)
        for metric in METRICS:
            if metric == "ece":
                value = expected_calibration_error(s.probabilities, outcome)
                lo, hi = bootstrap_interval((s.probabilities, outcome), expected_calibration_error, n_resamples=n_bootstrap, rng=boot)
            else:
                values = per_case[metric]
                value = summary.get(metric, float(values.mean()) if values.size else float("nan"))
                if metric == "emergency_recall":  # few cases: an exact interval, not a bootstrap
                    lo, hi = clopper_pearson(int(values.sum()), values.size)
                else:
                    lo, hi = bootstrap_interval(values, n_resamples=n_bootstrap, rng=boot) if values.size else (np.nan, np.nan)
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = value, lo, hi
        row["emergencies"] = per_case["emergency_recall"].size
        for mix_index, mix in enumerate(mixes or [None]):
            metric_rows.append(
                {**row, **_weighted(mix, s, per_case, list(cases.true_cause), n_bootstrap, _rng(seed, _CASE_MIX, index, mix_index))}
            )
        cause_rows.append(per_cause_recall(s.ranks, list(cases.true_cause), ids).assign(priors=name))
        hits[name] = s.ranks == 1

        topk_rng = _rng(seed, _TOP_K, index)
        for k in range(1, len(ids) + 1):
            values = (s.ranks <= k).astype(float)
            lo, hi = bootstrap_interval(values, n_resamples=n_bootstrap, rng=topk_rng)
            top_k_rows.append({"priors": name, "k": k, "accuracy": float(values.mean()), "lo": lo, "hi": hi})
        reliability_rows.append(reliability_table(s.probabilities, outcome).assign(priors=name))

        case_cols[f"rank_{name}"] = s.ranks
        case_cols[f"probability_{name}"] = s.p_true
        case_cols[f"top1_{name}"] = list(s.top1)
        case_cols[f"triage_{name}"] = list(s.triage)
        cost_col = np.full(n, np.nan)
        if consult is not None:
            cost_col[: len(consult.history)] = consult.cost_to_top1()
        case_cols[f"cost_to_top1_{name}"] = cost_col

        say(f"{name}: rank-flip factors")
        flips = flip_analysis(m, cases.evidence, s.probabilities, cases.case_ids)
        per, flip_summary = sensitivity_frames(name, m, cases.case_ids, s.truth, flips)
        sens_rows.append(per)
        sens_summary.append(flip_summary)

        if n_prior_draws:
            say(f"{name}: {n_prior_draws} prior draws x {n} cases")
            # the prior robustness analyses are on the posterior (the leader by probability), whatever the ranking
            top1 = np.argmax(s.probabilities, axis=1)  # first maximum: ties in model order, as the stable sort

            def draws_done(done: int, total: int, name: str = name) -> None:
                say(f"{name}: prior draws {done}/{total}")

            stability, true_top, accuracy = prior_monte_carlo(m, cases.evidence, draws, s.truth, top1, progress=draws_done)
            case_cols[f"stability_{name}"] = stability
            stab_rows.append(
                pd.DataFrame(
                    {
                        "priors": name,
                        "case_id": list(cases.case_ids),
                        "top1": [ids[j] for j in top1],
                        "stability": stability,
                        "true_cause_top1": true_top,
                    }
                )
            )
            mc_rows.append(
                {
                    "priors": name,
                    "n_draws": n_prior_draws,
                    "prior_spread": float(prior_spread),
                    "top1_mean": float(accuracy.mean()),
                    "top1_q025": float(np.quantile(accuracy, 0.025)),
                    "top1_q975": float(np.quantile(accuracy, 0.975)),
                    "median_stability": float(np.median(stability)),
                }
            )

        if n_self_consistency:
            say(f"{name}: self-consistency on {n_self_consistency} sampled cases")
            sc = self_consistency(m, n_samples=n_self_consistency, rng=_rng(seed, _SAMPLES, index))
            sc_rows.append(sc.reliability.assign(priors=name))
            sc_summary.append({"priors": name, "n_samples": sc.n_samples, "ece": sc.ece})

    mcnemar = pd.DataFrame(
        [vars(mcnemar_exact(hits[a], hits[b], a, b)) for a, b in itertools.combinations(list(hits), 2)],
        columns=["a", "b", "both", "a_only", "b_only", "neither", "p_value"],
    )

    def frame(rows: list[Any], columns: Sequence[str]) -> pd.DataFrame:
        out = pd.concat(rows, ignore_index=True) if rows and isinstance(rows[0], pd.DataFrame) else pd.DataFrame(rows)
        return out.reindex(columns=list(columns))

    result = EvaluationResult(
        settings=tuple(m.priors for m in models),
        metrics=pd.DataFrame(metric_rows, columns=metrics_columns()),
        cases=pd.DataFrame(case_cols),
        sensitivity=frame(sens_rows, ["priors", "case_id", "cause", "posterior", "top1", "factor", "flips_to"]),
        sensitivity_summary=frame(
            sens_summary,
            [
                "priors",
                "cause",
                "cases_leading",
                "median_factor_down",
                "median_factor_up",
                "share_flip_within_10",
                "top1_at_0.1",
                "top1",
                "top1_at_10",
            ],
        ),
        stability=frame(stab_rows, ["priors", "case_id", "top1", "stability", "true_cause_top1"]),
        prior_uncertainty=frame(mc_rows, ["priors", "n_draws", "prior_spread", "top1_mean", "top1_q025", "top1_q975", "median_stability"]),
        mcnemar=mcnemar,
        top_k=frame(top_k_rows, ["priors", "k", "accuracy", "lo", "hi"]),
        per_cause=frame(cause_rows, ["priors", "cause", "n", "top1", "top1_lo", "top1_hi", "top3", "top3_lo", "top3_hi"]),
        consultation=frame(curve_rows, ["priors", "budget", "accuracy"]),
        reliability=frame(reliability_rows, ["priors", "bin_lo", "bin_hi", "n", "mean_predicted", "observed_frequency"]),
        self_consistency=frame(sc_rows, ["priors", "bin_lo", "bin_hi", "n", "mean_predicted", "observed_frequency"]),
        self_consistency_summary=frame(sc_summary, ["priors", "n_samples", "ece"]),
        source=cases.source,
        model_id=first.id,
        model_version=first.version,
        options=MappingProxyType(
            {
                "next_steps": next_steps,
                "step_cases": step_cases,
                "n_bootstrap": n_bootstrap,
                "n_prior_draws": n_prior_draws,
                "prior_spread": float(prior_spread),
                "seed": seed,
                "n_self_consistency": n_self_consistency,
                "case_mix": tuple(mix.name for mix in mixes),
            }
        ),
        case_mixes=tuple(mixes),
    )
    if report_dir is not None:
        say(f"writing the report to {os.fspath(report_dir)}")
        result.write(report_dir)
    return result
