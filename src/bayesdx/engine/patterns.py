"""A batch split by each case's pattern of observed variables (the ``patterns`` route of the engine)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .plan import Program

__all__ = ["split_by_pattern", "union_costs_more"]

#: A batch whose one program builds more than this many entries per case, and more than SPLIT_WORTH_RATIO times
#: what one case's own program builds, is split by each case's pattern of observed variables instead.
SPLIT_WORTH_ENTRIES = 2**12
SPLIT_WORTH_RATIO = 4
#: ... and with at most this many patterns, split when the batch's program builds more than FEW_PATTERNS_RATIO
#: times the tables of the patterns' programs for their cases (diabetes: 2 patterns, 3 times as large).
FEW_PATTERNS = 8
FEW_PATTERNS_RATIO = 1.25


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


def union_costs_more(
    program: Program,
    lam: Mapping[int, np.ndarray],
    target_ids: Sequence[int],
    lowest_rows: Mapping[int, np.ndarray],
    own_program: Callable[[Mapping[int, np.ndarray]], Program | None],
) -> bool:
    """Whether one program for the whole batch costs much more than one program per pattern.

    The batch's ``program`` carries every variable some case observes; where other cases leave it unobserved
    it stays a likelihood to sum over, where one program per pattern takes it at the case's state and
    slices it out of every table. On networks with large tables (mildew, pathfinder, diabetes) that makes
    the batch's tables many times larger than a case's. With at most ``FEW_PATTERNS`` patterns, every
    pattern's program is compiled (the split would need them) and the tables they build for their cases
    are compared with the batch program's; with more, the first case's program stands for the others'.
    ``own_program`` gives the program of cases with the likelihoods it is given (None: too large).
    """
    if program.entries_per_case <= SPLIT_WORTH_ENTRIES:
        return False
    n = next(iter(lam.values())).shape[0]
    parts = split_by_pattern(lam, target_ids, lowest_rows)
    if len(parts) <= FEW_PATTERNS:
        split_cost = 0
        for rows, sub in parts:
            own = own_program(sub)
            if own is None:
                return False
            split_cost += rows.size * own.entries_per_case
        return program.entries_per_case * n > FEW_PATTERNS_RATIO * split_cost
    first = own_program({v: a[:1] for v, a in lam.items() if v in set(target_ids) or not (a[0] == 1.0).all()})
    return first is not None and program.entries_per_case > SPLIT_WORTH_RATIO * first.entries_per_case
