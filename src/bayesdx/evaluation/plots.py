"""Plots of an evaluation, written as PNG files. The only module that uses matplotlib.

matplotlib is imported inside each function (with the non-interactive Agg backend), so importing
:mod:`bayesdx.evaluation` never needs it. Install it with ``pip install bayesdx[plots]``. Every function
takes a table of :class:`~bayesdx.evaluation.EvaluationResult`, writes one figure to ``path`` and returns
the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plot_per_cause", "plot_reliability", "plot_top_k", "plot_tornado"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting an evaluation needs matplotlib. Install it with: pip install 'bayesdx[plots]'") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def plot_reliability(table: pd.DataFrame, path: str | os.PathLike[str], *, title: str = "Reliability diagram") -> Path:
    """Reliability diagram: observed frequency against mean predicted probability, one panel per setting.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``priors``, ``mean_predicted``, ``observed_frequency``, ``n`` (one row per bin).
    path : str or path-like
    title : str
    """
    plt = _pyplot()
    settings = list(dict.fromkeys(table["priors"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], settings, strict=True):
        t = table[(table["priors"] == name) & (table["n"] > 0)]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        sizes = 10 + 140 * np.sqrt(t["n"] / max(float(table["n"].max()), 1.0))
        ax.plot(t["mean_predicted"], t["observed_frequency"], color="C0", lw=1)
        ax.scatter(t["mean_predicted"], t["observed_frequency"], s=sizes, color="C0", zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", title=name)
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("observed frequency")
    fig.suptitle(title + " (marker area ~ pairs in the bin)", fontsize=10)
    return _save(fig, path)


def plot_top_k(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Top-k accuracy against k per setting, with the 95% bootstrap band.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``priors``, ``k``, ``accuracy``, ``lo``, ``hi``.
    path : str or path-like
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    settings = list(dict.fromkeys(table["priors"]))
    offsets = np.linspace(-0.15, 0.15, len(settings)) if len(settings) > 1 else [0.0]
    for i, name in enumerate(settings):
        t = table[table["priors"] == name]
        k = t["k"].to_numpy(dtype=float) + offsets[i]
        acc = t["accuracy"].to_numpy(dtype=float)
        err = np.vstack([acc - t["lo"].to_numpy(dtype=float), t["hi"].to_numpy(dtype=float) - acc])
        ax.errorbar(k, acc, yerr=np.nan_to_num(err), marker="o", ms=3, lw=1, capsize=2, label=name, color=f"C{i}")
    ax.set(
        xlabel="k",
        ylabel="share of cases with the true cause in the top k",
        ylim=(0, 1.02),
        title="Top-k accuracy with 95% bootstrap intervals",
    )
    ax.set_xticks(sorted(table["k"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_tornado(summary: pd.DataFrame, path: str | os.PathLike[str], *, top: int = 20) -> Path:
    """Tornado chart: top-1 accuracy with each cause's prior odds divided and multiplied by 10.

    One panel per setting; causes sorted by the span of the three accuracies (the most influential prior on top).

    Parameters
    ----------
    summary : pandas.DataFrame
        Columns ``priors``, ``cause``, ``top1_at_0.1``, ``top1``, ``top1_at_10``.
    path : str or path-like
    top : int, default 20
        How many causes to show per panel.
    """
    plt = _pyplot()
    settings = list(dict.fromkeys(summary["priors"]))
    n_rows = min(top, int(summary.groupby("priors").size().max()))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.6 * len(settings), 0.3 * n_rows + 1.6), squeeze=False, layout="constrained")
    values = summary[["top1_at_0.1", "top1", "top1_at_10"]].to_numpy(dtype=float)
    lo, hi = max(0.0, float(np.nanmin(values)) - 0.05), min(1.0, float(np.nanmax(values)) + 0.05)
    for ax, name in zip(axes[0], settings, strict=True):
        s = summary[summary["priors"] == name].copy()
        cols = s[["top1_at_0.1", "top1", "top1_at_10"]]
        s["width"] = cols.max(axis=1) - cols.min(axis=1)
        s = s.sort_values("width", ascending=True, kind="stable").tail(top)
        base = float(s["top1"].iloc[0])
        y = np.arange(len(s))
        low = s["top1_at_0.1"].to_numpy(dtype=float) - base
        high = s["top1_at_10"].to_numpy(dtype=float) - base
        ax.barh(y - 0.2, low, height=0.4, left=base, color="C0", label="prior odds / 10")
        ax.barh(y + 0.2, high, height=0.4, left=base, color="C3", label="prior odds x 10")
        ax.axvline(base, color="0.3", lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels(s["cause"], fontsize=7)
        ax.set(xlabel="top-1 accuracy", title=f"{name} (line: unchanged)", xlim=(lo, hi))
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Prior sensitivity: top-1 accuracy when one cause's prior odds change tenfold", fontsize=10)
    return _save(fig, path)


def plot_per_cause(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Per-cause sensitivity: the share of each cause's vignettes ranked within the top three, per setting,
    with Clopper-Pearson intervals (one row per cause, one marker per setting).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``priors``, ``cause``, ``n``, ``top3``, ``top3_lo``, ``top3_hi`` (``per_cause.csv``).
    path : str or path-like
    """
    plt = _pyplot()
    settings = list(dict.fromkeys(table["priors"]))
    causes = list(dict.fromkeys(table["cause"]))
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(causes) + 1.2))
    step = 0.7 / max(len(settings), 1)
    for k, name in enumerate(settings):
        t = table[table["priors"] == name].set_index("cause").reindex(causes)
        y = np.arange(len(causes)) + (k - (len(settings) - 1) / 2) * step
        err = np.vstack([t["top3"] - t["top3_lo"], t["top3_hi"] - t["top3"]]).astype(float)
        ax.errorbar(t["top3"].astype(float), y, xerr=err, fmt="o", ms=4, lw=1, capsize=2, color=f"C{k}", label=name)
    counts = table.drop_duplicates("cause").set_index("cause")["n"].reindex(causes)
    ax.set_yticks(np.arange(len(causes)), [f"{c} (n={int(n)})" for c, n in counts.items()])
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("share of the cause's vignettes ranked in the top 3 (95% Clopper-Pearson)")
    ax.set_title("Per-cause sensitivity of a three-item differential")
    ax.grid(axis="x", color="0.9")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return _save(fig, path)
