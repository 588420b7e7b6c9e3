"""Variables observed in one state in every case ("hard" evidence), found for all variables at once.

A program takes such a variable at each case's state instead of summing over it (see
:func:`~bayesdx.engine.plan.compile_program`). Finding them, their states and the log of their likelihoods
there took a handful of numpy calls per variable; a case of pathfinder observes 23 variables. Here the
likelihoods are laid side by side once and every question is one segmented reduction (``reduceat``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np

__all__ = ["one_hot_variables", "states_and_log_likelihood"]


def _one_case(lam: Mapping[int, np.ndarray]) -> bool:
    """One case in double precision, where Python floats hold the likelihoods exactly."""
    first = next(iter(lam.values()))
    return first.shape[0] == 1 and all(a.dtype == np.float64 for a in lam.values())


def _side_by_side(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The ``(cases, states)`` arrays concatenated along their states, and where each one starts."""
    starts = np.zeros(len(arrays), dtype=np.intp)
    np.cumsum([a.shape[1] for a in arrays[:-1]], out=starts[1:])
    return np.concatenate(arrays, axis=1), starts


def one_hot_variables(lam: Mapping[int, np.ndarray]) -> frozenset[int]:
    """The variables whose likelihood has exactly one nonzero entry in every case (none when there are no cases).

    Parameters
    ----------
    lam : mapping of int to numpy.ndarray
        Per variable, ``(cases, states)`` likelihoods, the same number of cases for all.
    """
    variables = list(lam)
    if not variables or next(iter(lam.values())).shape[0] == 0:
        return frozenset()
    if _one_case(lam):  # a single call: a few Python comparisons per variable cost less than the numpy calls
        return frozenset(v for v in variables if sum(x != 0 for x in lam[v][0].tolist()) == 1)
    flat, starts = _side_by_side([lam[v] for v in variables])
    counts = np.add.reduceat(flat != 0, starts, axis=1, dtype=np.intp)  # (cases, variables)
    return frozenset(v for v, ok in zip(variables, (counts == 1).all(axis=0), strict=True) if ok)


def states_and_log_likelihood(lam: Mapping[int, np.ndarray], hard: Collection[int]) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Each case's state of every ``hard`` variable, and per case the sum of the logs of their likelihoods there.

    Parameters
    ----------
    lam : mapping of int to numpy.ndarray
        Per variable, ``(cases, states)`` likelihoods.
    hard : collection of int
        Variables with exactly one nonzero likelihood per case (see :func:`one_hot_variables`).

    Returns
    -------
    (dict of int to numpy.ndarray, numpy.ndarray or None)
        The states (position of the nonzero entry, per case) and the log-likelihood that multiplies ``P(e)``
        (``-inf`` where a likelihood there is zero, which a hard variable's is not); None without ``hard``.
    """
    variables = sorted(hard)
    if not variables:
        return {}, None
    if _one_case(lam):
        states: dict[int, np.ndarray] = {}
        total = 0.0
        for v in variables:
            row = lam[v][0].tolist()
            pos = next(k for k, x in enumerate(row) if x != 0)
            states[v] = np.array([pos], dtype=np.intp)
            x = row[pos]
            total += math.log(x) if x > 0 else math.nan  # as np.log: NaN for a negative (invalid) likelihood
        return states, np.array([total])
    flat, starts = _side_by_side([lam[v] for v in variables])
    where = np.where(flat != 0, np.arange(flat.shape[1]), -1)
    at = np.maximum.reduceat(where, starts, axis=1)  # (cases, variables): the one nonzero entry's column
    with np.errstate(divide="ignore"):
        log_likelihood = np.log(np.take_along_axis(flat, at, axis=1)).sum(axis=1)
    return {v: at[:, k] - starts[k] for k, v in enumerate(variables)}, log_likelihood
