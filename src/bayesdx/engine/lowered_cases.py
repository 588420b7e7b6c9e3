"""Lowered cases the routes cannot read off their own sums, computed as extra cases of the same call.

A lowered case (:class:`~bayesdx.engine.network.Lowered`) is a case with one of its noisy findings observed at
its lowest level instead. Quickscore reads it off the case's signed terms, where the finding entered as two
terms, one of them its lowest level; a sweep reads it off a slot held in state 0. A finding with at most
``TELESCOPE_PARENTS`` free parents enters Quickscore as positive telescoped terms instead
(:mod:`~bayesdx.engine.telescope`), none of them its lowest level: its lowered case is not among the sums.
Such findings are the common ones with one or two causes (emotional stress, a recent injury, fever), and
asking for their lowered cases afterwards costs a second engine call, more than the rest of a single case.

:func:`with_lowered_cases` appends each such lowered case to the batch as a case of its own, with the
finding's likelihood one-hot at its lowest level, runs the route once, and returns the original cases with
those lowered cases filled in. Every value comes from the same exact routes as the cases themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from .network import BatchPosterior, CompiledNetwork, Lowered
from .quickscore import TELESCOPE_PARENTS

__all__ = ["telescoped_lowered", "with_lowered_cases"]


def telescoped_lowered(
    net: CompiledNetwork,
    lam: Mapping[int, np.ndarray],
    leaves: Sequence[int],
    lower: Sequence[int],
    n: int,
    swept: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(case, leaf)`` pairs whose lowered case the route will likely not give: leaf ``v`` in ``lower``
    observed one-hot above its lowest level with at most ``TELESCOPE_PARENTS`` parents the case does not observe
    one-hot (telescoped in Quickscore). Not in cases a sweep takes, whose held slots give them: with
    ``swept = (slots, units)``, at least ``slots`` of the noisy ``leaves`` above their lowest level in a call
    of at least ``units`` cases. Returns the cases and the leaves."""
    observed = {v: np.count_nonzero(a, axis=1) == 1 for v, a in lam.items()}
    decs = net.decompositions or ()
    orders = [decs[v].order if decs[v] is not None else () for v in leaves]  # type: ignore[union-attr]
    skip = None
    if n >= swept[1] and all(orders):  # (a sweep needs every leaf's CDFs)
        above = np.zeros(n, dtype=np.int64)
        for v, order in zip(leaves, orders, strict=True):
            above += lam[v][:, order[0]] < lam[v].max(axis=1)
        skip = above >= swept[0]
    found: list[np.ndarray] = []
    found_leaf: list[np.ndarray] = []
    for v in lower:
        dec = net.decompositions[v] if net.decompositions is not None else None
        if dec is None or not dec.order or v not in lam:
            continue
        a = lam[v]
        free = np.zeros(n, dtype=np.int64)
        for p in net.parents[v]:
            free += ~observed[p] if p in observed else 1
        hit = observed[v] & (a[:, dec.order[0]] == 0) & (free <= TELESCOPE_PARENTS)
        if skip is not None:
            hit &= ~skip
        at = np.flatnonzero(hit)
        if at.size:
            found.append(at)
            found_leaf.append(np.full(at.size, v))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found), np.concatenate(found_leaf)


def with_lowered_cases(
    run: Callable[[dict[int, np.ndarray], int], BatchPosterior],
    net: CompiledNetwork,
    lam: Mapping[int, np.ndarray],
    n: int,
    cases: np.ndarray,
    leaves: np.ndarray,
) -> BatchPosterior:
    """``run(lam, n)`` with the lowered cases ``(cases[j], leaves[j])`` appended as cases of their own; the
    result has the ``n`` cases, and those lowered cases filled in where the route left them unavailable and
    they are possible."""
    m = cases.size
    if not m:
        return run(dict(lam), n)
    extended = {v: np.concatenate([a, a[cases]]) for v, a in lam.items()}
    for v in np.unique(leaves):
        dec = net.decompositions[v]  # type: ignore[index]
        assert dec is not None  # telescoped_lowered takes decomposed leaves only
        lowest = np.zeros(len(net.states[v]))
        lowest[dec.order[0]] = 1.0
        extended[v][n + np.flatnonzero(leaves == v)] = lowest
    result = run(extended, n + m)
    assert result.extended is not None  # finish() fills both
    assert result.own_contraction is not None
    lowered = {}
    for name, low in result.lowered.items():
        got = Lowered(low.log_evidence[:n].copy(), {t: a[:n].copy() for t, a in low.marginals.items()}, low.available[:n].copy())
        mine = np.flatnonzero(np.asarray([net.variables[v] == name for v in leaves.tolist()], dtype=bool))
        # where the route left it, and possible (an impossible lowered case has no posterior: not available)
        fill = mine[~got.available[cases[mine]] & np.isfinite(result.log_evidence[n + mine])]
        if fill.size:
            at = cases[fill]
            got.log_evidence[at] = result.log_evidence[n + fill]
            for t, a in got.marginals.items():
                a[at] = result.marginals[t][n + fill]
            got.available[at] = True
        lowered[name] = got
    return replace(
        result,
        marginals={t: a[:n] for t, a in result.marginals.items()},
        log_evidence=result.log_evidence[:n],
        impossible=result.impossible[:n],
        extended=result.extended[:n],
        own_contraction=result.own_contraction[:n],
        lowered=lowered,
    )
