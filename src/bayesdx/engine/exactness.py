"""Own contractions that cancelled past the rounding budget, computed again until they are within it.

A contraction that carries a noisy finding above its lowest level holds the CPD's signed weights (see
:class:`~bayesdx.engine.network.Decomposition`), so its ``Z`` is a sum of products of both signs. Its
rounding error is bounded as the contraction runs (a running error bound, see
:func:`~bayesdx.engine.execute.passes`). A case whose bound exceeds
:data:`~bayesdx.engine.quickscore.ERROR_BUDGET` is computed again in extended precision (where the platform
has it), and failing that by :meth:`~bayesdx.engine.InferenceEngine.positive_twin`, the same network with every
noisy CPD as non-negative terms (:attr:`~bayesdx.engine.network.Decomposition.positive`): a larger
contraction with nothing to cancel. (Full CPD tables, the obvious alternative, cost ten times as much on the
190 vignette-workload cases that needed it before plan.POSITIVE_PARENTS: 40 ms a case against 4. The twin
enters every noisy CPD in that form, also those with many parents, whose hidden index grows to one term per
parent per level: it can be far larger than the signed contraction, and where it is too large the call
raises ModelTooLargeError rather than give an answer past the budget.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import ModelTooLargeError
from . import quickscore
from .execute import Passes
from .plan import Program

if TYPE_CHECKING:
    from .engine import InferenceEngine

__all__ = ["cancelled", "compute_again", "rounding_error"]


def rounding_error(program: Program, columns: Sequence[np.ndarray], passes: Passes, targets: Collection[int]) -> np.ndarray:
    """Per case, the bound on the relative error of ``Z`` and on the absolute error of every target's marginal
    (``lambda * grad``) that a signed program's passes carried."""
    assert passes.z_error is not None  # a signed program's passes
    assert passes.grad_errors is not None
    error = passes.z_error.astype(np.float64)
    for v, column, e in zip(program.lambda_vars, columns, passes.grad_errors, strict=True):
        if v in targets:
            error = np.maximum(error, (column * e).max(axis=0))
    return error


def cancelled(error: np.ndarray) -> np.ndarray:
    """The cases whose rounding bound exceeds the budget."""
    return np.flatnonzero(~(error <= quickscore.ERROR_BUDGET))


def compute_again(
    engine: InferenceEngine,
    lam: Mapping[int, np.ndarray],
    target_ids: Sequence[int],
    tables: Sequence[np.ndarray],
    cases: np.ndarray,
    log_z: np.ndarray,
    marg: dict[int, np.ndarray],
    offset: np.ndarray | None,
    dtype: type,
) -> None:
    """Fill in ``log_z`` (without ``offset``) and ``marg`` for ``cases``, computed again: in extended precision
    when ``dtype`` is double (its own bound checked again), else by the engine's positive twin."""
    net = engine.network
    sub = {net.variables[v]: a[cases] for v, a in lam.items()}
    targets = [net.variables[t] for t in target_ids]
    if np.finfo(np.longdouble).eps < np.finfo(dtype).eps:
        part = engine.posterior(sub, targets, cases.size, tables=tables, expand=False, dtype=np.longdouble)
    else:  # the same network with every noisy CPD as non-negative terms: nothing to cancel
        try:
            part = engine.positive_twin().posterior(sub, targets, cases.size, tables=tables, expand=False, dtype=np.float64)
        except ModelTooLargeError as error:  # an answer past the budget is never given: say why instead
            raise ModelTooLargeError(
                error.largest_intermediate,
                error.limit,
                f"{cases.size} case(s) cancel past extended precision with their findings in their own contraction, "
                "and the same contraction with non-negative noisy CPDs (one term per parent) is too large. ",
            ) from error
    log_z[cases] = part.log_evidence
    if offset is not None:
        log_z[cases] -= np.where(np.isfinite(offset[cases]), offset[cases], 0.0)
    for t, name in zip(target_ids, targets, strict=True):
        marg[t][cases] = part.marginals[name]
