"""A second look at the cases a batch found impossible, each computed again with a program of its own.

A program shared by cases that observe different variables (the universal program of a small network, or one
for a batch of mixed patterns) carries an observed variable as a likelihood against its whole CPD, so a CPD
entry of 1e-200 at an observed state can meet another before the evidence removes the larger entries that
set the per-case scale: the product underflows to zero and possible evidence comes out impossible (1e-400,
found in review). A case's own program takes each variable it observes in one state at that state, its
operands scaled per case (:func:`~bayesdx.engine.execute.run`), and gets it right. Only cases found
impossible pay for the second look, at most ``RECHECK_CASES`` of them per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .execute import finish
from .network import BatchPosterior

if TYPE_CHECKING:
    from .engine import InferenceEngine

__all__ = ["RECHECK_CASES", "recheck_impossible"]

#: At most this many impossible cases of one call are computed again (truly impossible evidence stays so, and a
#: batch full of it should not pay a program per case).
RECHECK_CASES = 64


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
    """``result`` with each case it found impossible computed again alone, with its own program (evidence on noisy
    leaves expanded, the default route); a case that then comes out possible takes that answer. Not ``wanted``
    (rows, extended precision): ``result`` as it is."""
    where = np.flatnonzero(result.impossible)[:RECHECK_CASES]
    if not wanted or not where.size:
        return result
    net = engine.network
    marg = {engine._index[t]: result.marginals[t].copy() for t in targets}
    log_z = result.log_evidence.copy()
    found = False
    for i in where.tolist():
        one = {v: a[i : i + 1] for v, a in lam.items()}
        again = engine._route(one, target_ids, targets, 1, tables, True, True, np.float64, None, None, (), shared=False)
        if again.impossible[0]:
            continue
        found = True
        log_z[i] = again.log_evidence[0]
        for t in target_ids:
            marg[t][i] = again.marginals[net.variables[t]][0]
    if not found:
        return result
    return finish(
        net, marg, log_z, None, route=result.route, extended=result.extended, own_contraction=result.own_contraction, lowered=result.lowered
    )
