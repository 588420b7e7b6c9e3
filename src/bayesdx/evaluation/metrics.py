"""Accuracy, calibration and triage metrics of ranked causes, with bootstrap intervals and McNemar's test.

Every function here works on plain arrays, so each number can be recomputed by hand. For ``n`` cases and
``H`` cause hypotheses (in the model's order):

rank of the true cause
    Its 1-based position in ``rank_causes(...).causes``: hypotheses sorted by decreasing posterior, ties
    keeping the model's order (a stable sort, exactly as the engine does). :func:`true_cause_ranks`.
top-k accuracy
    Share of cases whose true cause has rank ``<= k``.
mean reciprocal rank (MRR)
    Mean of ``1 / rank``.
log loss
    Mean of ``-ln P(true cause | evidence)``; the probability is clipped below at ``1e-15`` (:data:`LOG_LOSS_CLIP`)
    so that a true cause with posterior zero costs ``-ln(1e-15) = 34.5`` instead of infinity.
Brier score
    The causes are separate yes/no variables (several may be present at once, so the posteriors need not
    sum to one). Per case the score is the mean over all ``H`` hypotheses of ``(p_h - 1[h is the true
    cause])**2``; the Brier score is its mean over cases. 0 is perfect; ranking every cause at 0 costs
    ``1 / H``.
expected calibration error (ECE)
    All ``n * H`` (case, hypothesis) posteriors are put into 10 equal-width bins ``[0, 0.1), ...,
    [0.9, 1.0]`` against the 0/1 outcome "this hypothesis is the case's true cause"; the ECE is
    ``sum_b (n_b / (n H)) * |mean predicted_b - observed frequency_b|``. On vignettes with one true cause
    each, a model whose causes may co-occur is expected to over-predict somewhat.
triage accuracy
    Share of cases whose advised triage level equals the vignette's ``true_triage``.
under-triage rate
    Share of cases whose true level is higher than the advice, on the model's ordered levels (bundled:
    ``self_care < routine_appointment < prompt_specialist < emergency``).

Intervals are 95% percentile bootstrap intervals over cases (:func:`scipy.stats.bootstrap`, seeded),
except for emergency recall and the per-cause recalls, which are proportions of few cases and get exact
Clopper-Pearson intervals (:func:`clopper_pearson`, :meth:`scipy.stats.binomtest` ``proportion_ci``).
McNemar's exact test compares two settings' top-1 hits on the same cases (:func:`mcnemar_exact`, by
:func:`statsmodels.stats.contingency_tables.mcnemar`).

Libraries and what is still written here
----------------------------------------
Top-k accuracy, MRR and the Brier score, plain or weighted by a case mix, come from scikit-learn
(:func:`summary_metrics`: ``top_k_accuracy_score``, ``label_ranking_average_precision_score``, which is
the MRR when each case has one true cause, and ``brier_score_loss`` over the (case, hypothesis) pairs).
Three are written here because no library computes them as defined above: the log loss (scikit-learn's
``log_loss`` renormalises each row to sum to one, but the causes may co-occur, so the posteriors are not a
distribution), the ECE (no library function), and the reliability table, which keeps empty bins and counts
and puts a probability on a bin edge in the upper bin (``sklearn.calibration.calibration_curve`` drops empty
bins and puts it in the lower one; the tests check the two agree away from the edges).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "LOG_LOSS_CLIP",
    "McNemarResult",
    "bootstrap_interval",
    "brier_scores",
    "clopper_pearson",
    "expected_calibration_error",
    "log_losses",
    "mcnemar_exact",
    "per_cause_recall",
    "rank_scores",
    "reliability_table",
    "summary_metrics",
    "top_k_accuracy",
    "true_cause_ranks",
    "under_triage",
]

#: Lower clip of the true cause's probability in the log loss.
LOG_LOSS_CLIP = 1e-15


def true_cause_ranks(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of each case's true cause (ties keep the hypotheses' order).

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``(n_cases, n_hypotheses)`` posteriors, columns in the model's hypothesis order.
    truth : numpy.ndarray
        ``(n_cases,)`` column index of each case's true cause.

    Returns
    -------
    numpy.ndarray of int

    Examples
    --------
    >>> true_cause_ranks(np.array([[0.2, 0.5, 0.2], [0.3, 0.3, 0.1]]), np.array([2, 1]))
    array([3, 2])
    """
    probabilities = np.asarray(probabilities, dtype=float)
    truth = np.asarray(truth, dtype=int)
    order = np.argsort(-probabilities, axis=1, kind="stable")
    return np.argmax(order == truth[:, None], axis=1) + 1


def rank_scores(order: np.ndarray) -> np.ndarray:
    """``(n, H)`` scores that decrease along each case's ranked order (``H`` for the first, 1 for the last).

    ``order[i]`` lists case ``i``'s hypothesis indices best first; the scores have no ties, so library
    metrics that take scores reproduce the ranking exactly, ties included as the engine broke them.
    """
    order = np.asarray(order, dtype=int)
    n, n_h = order.shape
    scores = np.empty((n, n_h))
    np.put_along_axis(scores, order, np.broadcast_to(np.arange(n_h, 0, -1, dtype=float), (n, n_h)), axis=1)
    return scores


def summary_metrics(order: np.ndarray, probabilities: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Top-1, top-3, MRR, log loss and Brier score of a set of cases, optionally weighted.

    Parameters
    ----------
    order : numpy.ndarray
        ``(n, H)`` each case's hypothesis indices, best first (the ranking's order).
    probabilities : numpy.ndarray
        ``(n, H)`` posteriors.
    truth : numpy.ndarray
        ``(n,)`` index of each case's true cause.
    weights : numpy.ndarray, optional
        Per-case weights (a case mix, :mod:`bayesdx.evaluation.case_mix`); default: equal.

    Returns
    -------
    dict of str to float
        ``top1``, ``top3``, ``mrr``, ``log_loss``, ``brier``: weighted means over cases.
    """
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        label_ranking_average_precision_score,
        top_k_accuracy_score,
    )

    probabilities = np.asarray(probabilities, dtype=float)
    truth = np.asarray(truth, dtype=int)
    n, n_h = probabilities.shape
    scores = rank_scores(order)
    labels = np.arange(n_h)
    outcome = np.zeros((n, n_h))
    outcome[np.arange(n), truth] = 1.0
    w = None if weights is None else np.asarray(weights, dtype=float)
    # top-1 is the accuracy of the first-ranked cause; with three causes or fewer every case is in the top three
    top3 = float(top_k_accuracy_score(truth, scores, k=3, labels=labels, sample_weight=w)) if n_h > 3 else 1.0
    return {
        "top1": float(accuracy_score(truth, np.asarray(order)[:, 0], sample_weight=w)),
        "top3": top3,
        "mrr": float(label_ranking_average_precision_score(outcome, scores, sample_weight=w)),
        "log_loss": float(np.average(log_losses(probabilities[np.arange(n), truth]), weights=w)),
        "brier": float(brier_score_loss(outcome.ravel(), probabilities.ravel(), sample_weight=None if w is None else np.repeat(w, n_h))),
    }


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion; NaN without trials.

    Examples
    --------
    >>> [round(x, 4) for x in clopper_pearson(7, 7)]  # all 7 emergencies caught: the low end is 0.025 ** (1/7)
    [0.5904, 1.0]
    """
    from scipy import stats

    if trials <= 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def per_cause_recall(ranks: np.ndarray, true_causes: Sequence[str], causes: Sequence[str]) -> pd.DataFrame:
    """Per true cause: how many vignettes, and the share ranked first and within the top three.

    The top-3 recall is the sensitivity a differential list of three has for that cause; both come with
    Clopper-Pearson intervals. Causes without vignettes are left out.

    Returns
    -------
    pandas.DataFrame
        ``cause``, ``n``, ``top1``, ``top1_lo``, ``top1_hi``, ``top3``, ``top3_lo``, ``top3_hi``.
    """
    ranks = np.asarray(ranks)
    labels = np.asarray(true_causes, dtype=object)
    rows = []
    for cause in causes:
        at = labels == cause
        n = int(at.sum())
        if not n:
            continue
        row: dict[str, object] = {"cause": cause, "n": n}
        for k in (1, 3):
            hits = int((ranks[at] <= k).sum())
            row[f"top{k}"] = hits / n
            row[f"top{k}_lo"], row[f"top{k}_hi"] = clopper_pearson(hits, n)
        rows.append(row)
    return pd.DataFrame(rows, columns=["cause", "n", "top1", "top1_lo", "top1_hi", "top3", "top3_lo", "top3_hi"])


def top_k_accuracy(ranks: np.ndarray, k: int) -> float:
    """Share of cases whose true cause has rank ``<= k``."""
    return float(np.mean(np.asarray(ranks) <= k))


def log_losses(p_true: np.ndarray) -> np.ndarray:
    """Per case ``-ln max(P(true cause), 1e-15)``."""
    return -np.log(np.clip(np.asarray(p_true, dtype=float), LOG_LOSS_CLIP, 1.0))


def brier_scores(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per case the mean over hypotheses of ``(p_h - 1[h is the true cause])**2``."""
    probabilities = np.asarray(probabilities, dtype=float)
    outcome = np.zeros_like(probabilities)
    outcome[np.arange(len(truth)), np.asarray(truth, dtype=int)] = 1.0
    return ((probabilities - outcome) ** 2).mean(axis=1)


def _bins(predicted: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.floor(predicted * n_bins).astype(int), 0, n_bins - 1)  # 1.0 goes in the last bin


def reliability_table(predicted: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Binned predicted probabilities against observed frequencies (a reliability diagram's data).

    Parameters
    ----------
    predicted : numpy.ndarray
        Probabilities in [0, 1], any shape.
    outcome : numpy.ndarray
        0/1 outcomes of the same shape.
    n_bins : int, default 10
        Equal-width bins on [0, 1]; 1.0 falls in the last bin.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin_lo``, ``bin_hi``, ``n``, ``mean_predicted``, ``observed_frequency``
        (NaN for empty bins).
    """
    p = np.asarray(predicted, dtype=float).ravel()
    y = np.asarray(outcome, dtype=float).ravel()
    b = _bins(p, n_bins)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / n
        freq = np.bincount(b, weights=y, minlength=n_bins) / n
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "n": n, "mean_predicted": mean_p, "observed_frequency": freq})


def expected_calibration_error(predicted: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> float:
    """``sum_b (n_b / N) |mean predicted_b - observed frequency_b|`` over equal-width bins.

    Examples
    --------
    >>> round(expected_calibration_error(np.array([0.05, 0.05, 0.95, 0.95]), np.array([0, 0, 1, 0])), 12)
    0.25
    """
    p = np.asarray(predicted, dtype=float).ravel()
    y = np.asarray(outcome, dtype=float).ravel()
    if p.size == 0:
        return float("nan")
    b = _bins(p, n_bins)
    gap = np.abs(np.bincount(b, weights=p - y, minlength=n_bins))
    return float(gap.sum() / p.size)


def under_triage(advised: Sequence[str], true: Sequence[str], levels: Sequence[str]) -> np.ndarray:
    """Per case 1.0 where the true level is higher than the advised one, else 0.0 (levels lowest first)."""
    rank = {level: k for k, level in enumerate(levels)}
    return np.array([float(rank[t] > rank[a]) for a, t in zip(advised, true, strict=True)])


def safe_triage(advised: Sequence[str], true: Sequence[str], levels: Sequence[str]) -> np.ndarray:
    """Per case 1.0 where the advice is safe (Gilbert 2020, BMJ Open): at the vignette's level, more cautious,
    or one level less cautious, and an emergency (the top level) only as an emergency."""
    rank = {level: k for k, level in enumerate(levels)}
    top = len(levels) - 1
    return np.array([float(rank[a] == top if rank[t] == top else rank[a] >= rank[t] - 1) for a, t in zip(advised, true, strict=True)])


def over_triage(advised: Sequence[str], true: Sequence[str], levels: Sequence[str]) -> np.ndarray:
    """Per case 1.0 where the advised level is above the vignette's."""
    rank = {level: k for k, level in enumerate(levels)}
    return np.array([float(rank[a] > rank[t]) for a, t in zip(advised, true, strict=True)])


def bootstrap_interval(
    data: Sequence[np.ndarray] | np.ndarray,
    statistic: Callable[..., float] | None = None,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over cases (:func:`scipy.stats.bootstrap`).

    Parameters
    ----------
    data : numpy.ndarray or sequence of numpy.ndarray
        Per-case values (one array), or several arrays resampled together (paired by case).
    statistic : callable, optional
        Called with the resampled arrays (each with cases on the first axis); default: the mean of one
        array.
    n_resamples : int
    rng : numpy.random.Generator
    confidence : float, default 0.95

    Returns
    -------
    tuple of float
        ``(low, high)``; NaN when there are fewer than two cases.
    """
    from scipy import stats

    arrays = (np.asarray(data),) if isinstance(data, np.ndarray) else tuple(np.asarray(a) for a in data)
    n = len(arrays[0])
    if n < 2 or n_resamples < 1:
        return float("nan"), float("nan")
    if statistic is None and len(arrays) == 1 and arrays[0].ndim == 1:
        values = arrays[0].astype(float)
        if np.all(values == values[0]):
            return float(values[0]), float(values[0])
        res = stats.bootstrap(
            (values,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            random_state=rng,
            vectorized=True,
            axis=-1,
        )
    else:
        stat = statistic if statistic is not None else (lambda a: float(np.mean(a)))
        index = np.arange(n)

        def on_index(idx: np.ndarray) -> float:
            idx = idx.astype(int)
            return stat(*(a[idx] for a in arrays))

        res = stats.bootstrap(
            (index,),
            on_index,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            random_state=rng,
            vectorized=False,
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of two settings' top-1 hits on the same cases.

    Attributes
    ----------
    a, b : str
        The two settings.
    both, a_only, b_only, neither : int
        Cases right under both, only ``a``, only ``b``, neither.
    p_value : float
        Two-sided exact binomial test of ``a_only`` among the ``a_only + b_only`` discordant cases against
        1/2 (:func:`statsmodels.stats.contingency_tables.mcnemar` with ``exact=True``); 1.0 when there are no
        discordant cases.
    """

    a: str
    b: str
    both: int
    a_only: int
    b_only: int
    neither: int
    p_value: float


def mcnemar_exact(hits_a: np.ndarray, hits_b: np.ndarray, a: str = "a", b: str = "b") -> McNemarResult:
    """Exact McNemar test on paired 0/1 hits (see :class:`McNemarResult`).

    Examples
    --------
    >>> r = mcnemar_exact(np.array([1, 1, 1, 0, 1]), np.array([1, 0, 0, 0, 0]))
    >>> (r.a_only, r.b_only, r.p_value)
    (3, 0, 0.25)
    """
    from statsmodels.stats.contingency_tables import mcnemar

    ha = np.asarray(hits_a, dtype=bool)
    hb = np.asarray(hits_b, dtype=bool)
    both, a_only = int(np.sum(ha & hb)), int(np.sum(ha & ~hb))
    b_only, neither = int(np.sum(~ha & hb)), int(np.sum(~ha & ~hb))
    p = float(mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue)
    return McNemarResult(a, b, both, a_only, b_only, neither, min(p, 1.0))
