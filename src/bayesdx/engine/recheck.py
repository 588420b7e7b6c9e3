"""A second look at the cases a batch found impossible, computed again with programs of their own.

A program shared by cases that observe different variables (the universal program of a small network, or one
for a batch of mixed patterns) carries an observed variable as a likelihood against its whole CPD, so a CPD
entry of 1e-200 at an observed state can meet another before the evidence removes the larger entries that
set the per-case scale: the product underflows to zero and possible evidence comes out impossible (1e-400,
found in review). A program for the cases that observe the same variables in one state takes each of them at
its state, its operands scaled per case (:func:`~bayesdx.engine.execute.run`), and gets it right. Only cases
found impossible pay for the second look: one engine call per such pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import ModelTooLargeError
from .execute import finish
from .network import BatchPosterior

if TYPE_CHECKING:
    from .engine import InferenceEngine

__all__ = ["recheck_impossible"]


def recheck_impossible(
    engine: InferenceEngine,
    lam: Mapping[int, np.ndarray],
    result: BatchPosterior,
    target_ids: list[int],
    targets: Sequence[str],
    tables: Sequence[np.ndarray],
    *,
    wanted: bool = True,
) -> BatchPosterior:
    """``result`` with the cases it found impossible computed again, those that observe the same variables in one
    state together, with their own program (not split by pattern, so evidence on noisy leaves stays inside it); a
    case that then comes out possible takes that answer. Not ``wanted`` (rows, extended precision): ``result`` as it is."""
    where = np.flatnonzero(result.impossible)
    if not wanted or not where.size:
        return result
    net = engine.network
    variables = sorted(lam)
    one_hot = (
        np.stack([np.count_nonzero(lam[v][where], axis=1) == 1 for v in variables], axis=1) if variables else np.zeros((where.size, 0))
    )
    patterns, group = np.unique(one_hot, axis=0, return_inverse=True)
    marg = {engine._index[t]: result.marginals[t].copy() for t in targets}
    log_z = result.log_evidence.copy()
    found = False
    for g in range(len(patterns)):
        rows = where[group.ravel() == g]
        sub = {v: lam[v][rows] for v in variables}
        try:  # one program for the group (not split: splitting calls posterior, which would look again)
            again = engine._route(sub, target_ids, targets, rows.size, tables, False, True, np.float64, None, None, (), shared=False)
        except ModelTooLargeError:
            continue  # (as impossible as the first look said)
        possible = ~again.impossible
        if not possible.any():
            continue
        found = True
        log_z[rows[possible]] = again.log_evidence[possible]
        for t in target_ids:
            marg[t][rows[possible]] = again.marginals[net.variables[t]][possible]
    if not found:
        return result
    return finish(
        net, marg, log_z, None, route=result.route, extended=result.extended, own_contraction=result.own_contraction, lowered=result.lowered
    )
