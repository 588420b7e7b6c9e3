"""Case workloads of ``benchmarks/run.py`` besides the sampled cases (issue 16).

``run.py`` times every engine on *sampled* cases: forward samples of a network with a fixed number of
observed findings or tests. This module adds the *vignette* workload: cases shaped like the ones a clinician
enters, the rows of ``evaluation/vignettes/*.csv`` on the bundled model.

Each vignette row is read with :func:`bayesdx.evaluation.vignettes.read_vignettes` (so the columns
``case_id``, ``true_cause``, ``true_triage`` and ``rationale`` are not evidence and an empty cell is not
observed), the rows of all files are pooled, put in a seeded random order (so a small batch mixes the files)
and replicated in that order to the requested number of cases.

The functions here build cases and Markdown; the timing itself stays in ``run.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import bayesdx

#: The workloads ``run.py --workloads`` accepts.
WORKLOADS = ("sampled", "vignettes")
#: The vignette files pooled by default (``evaluation/vignettes/``).
VIGNETTE_DIR = Path(__file__).resolve().parent.parent / "evaluation" / "vignettes"
VIGNETTE_FILES = ("dev.csv", "dev2.csv", "safety.csv")
#: The network label of the vignette workload's rows (the bundled model).
VIGNETTE_NETWORK = "leg_twitch"


def parse_workloads(text: str) -> list[str]:
    """The workloads named in a comma-separated ``text``, in the order of :data:`WORKLOADS`.

    Parameters
    ----------
    text : str
        For example ``"sampled,vignettes"``.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        For an empty list or a name that is not in :data:`WORKLOADS`.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise ValueError(f"unknown workload(s) {unknown!r}; choose from {', '.join(WORKLOADS)}")
    return [w for w in WORKLOADS if w in names]


def vignette_paths(files: Sequence[str | Path] | None = None) -> list[Path]:
    """The vignette files: ``files`` (names are looked up in ``evaluation/vignettes/``) or the default three.

    Parameters
    ----------
    files : sequence of str or Path, optional

    Returns
    -------
    list of Path
    """
    chosen = list(files) if files else list(VIGNETTE_FILES)
    return [Path(f) if Path(f).is_file() else VIGNETTE_DIR / f for f in chosen]


def vignette_pool(model: bayesdx.Model, files: Sequence[str | Path] | None = None) -> list[dict[str, str]]:
    """Every vignette's evidence, file after file, checked against ``model``.

    Parameters
    ----------
    model : bayesdx.Model
        The bundled model (the vignettes are written for it).
    files : sequence of str or Path, optional
        Default :data:`VIGNETTE_FILES`.

    Returns
    -------
    list of dict
        One ``{variable: state}`` per vignette, without the model's presenting complaint.
    """
    from bayesdx.evaluation.vignettes import read_vignettes

    pool: list[dict[str, str]] = []
    for path in vignette_paths(files):
        pool.extend(dict(e) for e in read_vignettes(path, model).evidence)
    return pool


def vignette_cases(model: bayesdx.Model, n: int, seed: int, files: Sequence[str | Path] | None = None) -> tuple[list[dict[str, str]], int]:
    """``n`` vignette-shaped cases: the pooled vignettes in a seeded order, replicated to ``n``.

    Parameters
    ----------
    model : bayesdx.Model
    n : int
        Number of cases wanted (may be fewer or more than there are vignettes).
    seed : int
        Seed of the order.
    files : sequence of str or Path, optional
        Default :data:`VIGNETTE_FILES`.

    Returns
    -------
    cases : list of dict
        ``n`` cases; case ``k`` is vignette ``order[k % len(pool)]``.
    distinct : int
        How many vignettes the pool holds.
    """
    pool = vignette_pool(model, files)
    order = np.random.default_rng(seed).permutation(len(pool))
    return [dict(pool[order[k % len(pool)]]) for k in range(n)], len(pool)


def describe(cases: Sequence[dict[str, str]], distinct: int, files: Sequence[str | Path] | None = None) -> str:
    """One sentence for the Markdown header: the files, the vignette count and the mean observed count.

    Parameters
    ----------
    cases : sequence of dict
    distinct : int
    files : sequence of str or Path, optional

    Returns
    -------
    str
    """
    names = ", ".join(p.name for p in vignette_paths(files))
    mean = float(np.mean([len(c) for c in cases])) if cases else math.nan
    return (
        f"Vignette workload: the {distinct} vignettes of {names} (bundled model; an empty cell is not observed, "
        f"{mean:.1f} observed findings or tests per case on average, plus the presenting complaint), in a seeded "
        f"order and replicated to {len(cases):,} cases."
    )


def side_by_side(rows: Sequence[Any], ratio: Any) -> list[str]:
    """Markdown lines: per task and batch, the sampled and the vignette workload of the same network side by side.

    Parameters
    ----------
    rows : sequence of run.Row
        Rows of both workloads (rows of a network with one workload only are left out).
    ratio : callable
        Formats a speed-up (``run._ratio``).

    Returns
    -------
    list of str
        Empty when no network ran both workloads.
    """
    by_key = {(r.network, r.task, r.batch, r.workload): r for r in rows}
    keys = [(r.network, r.task, r.batch) for r in rows if r.workload == "sampled" and (r.network, r.task, r.batch, "vignettes") in by_key]
    if not keys:
        return []
    lines = [
        "",
        "Sampled and vignette workload side by side (bayesdx ms per case; speed-up = reference ms per case "
        "/ bayesdx ms per case, each on its own workload's cases):",
        "",
        "| network | task | batch | sampled ms/case | vignettes ms/case | sampled vs pgmpy | vignettes vs pgmpy "
        "| sampled vs pyAgrum | vignettes vs pyAgrum |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for network, task, batch in keys:
        s, v = by_key[(network, task, batch, "sampled")], by_key[(network, task, batch, "vignettes")]
        es, ev = ("≈" if s.estimated else ""), ("≈" if v.estimated else "")
        lines.append(
            f"| {network} | {task} | {batch:,} | {es}{s.bayesdx_ms:.4g} | {ev}{v.bayesdx_ms:.4g} | "
            f"{es}{ratio(s.vs_pgmpy)} | {ev}{ratio(v.vs_pgmpy)} | {es}{ratio(s.vs_pyagrum)} | "
            f"{ev}{ratio(v.vs_pyagrum)} |"
        )
    return lines
