"""A batch split by each case's pattern of observed variables (the ``patterns`` route of the engine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["split_by_pattern"]


def split_by_pattern(
    lam: Mapping[int, np.ndarray], target_ids: Sequence[int], lowest_rows: Mapping[int, np.ndarray]
) -> list[tuple[np.ndarray, dict[int, np.ndarray]]]:
    """The batch split by each case's pattern of observed variables: ``(rows, their likelihoods)`` per pattern.

    Parameters
    ----------
    lam : mapping of int to numpy.ndarray
        Per variable, ``(n_cases, n_states)`` likelihoods (all ones where a case does not observe it).
    target_ids : sequence of int
        Targets are carried by every program, whatever their likelihood: they do not split the batch.
    lowest_rows : mapping of int to numpy.ndarray
        Per noisy variable, the cases that observe it at its lowest level: those need no level index, so
        they form a pattern of their own.

    Returns
    -------
    list of (numpy.ndarray, dict of int to numpy.ndarray)
        Per pattern, the rows of its cases and their likelihoods on the variables the pattern observes
        (and on the targets).
    """
    always = {v for v in lam if v in set(target_ids)}
    observed = {v: ~(a == 1.0).all(axis=1) for v, a in lam.items() if v not in always}
    names = list(observed)
    n = next(iter(lam.values())).shape[0]
    keys = np.zeros((n, 2 * len(names)), dtype=bool)
    for k, v in enumerate(names):
        keys[:, 2 * k] = observed[v]
        keys[:, 2 * k + 1] = lowest_rows.get(v, False)
    patterns, inverse = np.unique(keys, axis=0, return_inverse=True)
    out = []
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        sub = {names[k]: lam[names[k]][rows] for k in np.flatnonzero(pattern[0::2])}
        sub.update({v: lam[v][rows] for v in always})
        out.append((rows, sub))
    return out
