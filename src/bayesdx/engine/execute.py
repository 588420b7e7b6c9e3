"""Running a :class:`~bayesdx.engine.plan.Program` on a chunk of cases: the forward pass gives ``log Z``,
the backward pass every likelihood's gradient (the marginals, Darwiche 2003), with per-case rescaling where
underflow threatens."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .network import BatchPosterior, CompiledNetwork, Decomposition, Lowered
from .plan import OperandKind, Program

__all__ = ["UNSCALED_FLOOR", "finish", "marginals_of_targets", "passes", "run"]

#: Without per-step rescaling, a case whose probability of evidence (likelihoods scaled to at most 1) comes out
#: below this is recomputed with rescaling: underflow can only have lost terms smaller than about 1e-308.
UNSCALED_FLOOR = 1e-200


def finish(
    net: CompiledNetwork,
    marg: dict[int, np.ndarray],
    log_z: np.ndarray,
    offset: np.ndarray | None,
    *,
    route: str = "contraction",
    extended: np.ndarray | None = None,
    own_contraction: np.ndarray | None = None,
    lowered: dict[str, Lowered] | None = None,
) -> BatchPosterior:
    """The result of a batch: log-evidence offsets applied, impossible cases flagged and their marginals NaN,
    and the route that computed it recorded."""
    if offset is not None:
        log_z = log_z + offset
    impossible = ~np.isfinite(log_z)
    for m in marg.values():
        m[impossible] = np.nan
    n = len(log_z)
    return BatchPosterior(
        {net.variables[t]: m for t, m in marg.items()},
        log_z,
        impossible,
        route,
        np.zeros(n, dtype=bool) if extended is None else extended,
        np.zeros(n, dtype=bool) if own_contraction is None else own_contraction,
        lowered or {},
    )


def _decomposition(decompositions: Sequence[Decomposition | None] | None, v: int) -> Decomposition:
    """The decomposition of a variable a program contracts as one (there is one)."""
    dec = decompositions[v] if decompositions is not None else None
    assert dec is not None
    return dec


def run(
    program: Program,
    tables: Sequence[np.ndarray],
    decompositions: Sequence[Decomposition | None] | None,
    lambdas: list[np.ndarray],
    n: int,
    states: Mapping[int, np.ndarray],
    dtype: type = np.float64,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Forward and backward pass for one chunk of ``n`` cases.

    ``lambdas`` are ``(states, n)`` arrays; ``states`` gives each case's state of the variables observed in
    every case, at which their operands are taken. Returns the gradient of ``log Z`` with respect to each lambda
    operand, in scaled form (``dZ/dlambda / Z``), and ``log Z`` per case.

    A program whose operands are all non-negative (no decomposed CPD weights) first runs without per-step
    rescaling, its likelihoods divided by their largest entry so that every operand is at most 1; a case
    whose ``Z`` then comes out below ``UNSCALED_FLOOR`` (where underflow could have lost terms) is rerun
    with every intermediate table rescaled.
    """
    inputs: list[np.ndarray] = []
    for v, kind, parent, axes in program.sources:
        base: np.ndarray
        if kind is OperandKind.TABLE:
            base = tables[v]
        elif kind is OperandKind.LOWEST_WEIGHT:
            base = _decomposition(decompositions, v).weights[0]
        elif kind is OperandKind.LOWEST_FACTOR:
            base = _decomposition(decompositions, v).factors[parent][0]
        elif kind is OperandKind.WEIGHTS:
            base = _decomposition(decompositions, v).weights
        else:
            base = _decomposition(decompositions, v).factors[parent]
        if axes:  # taken at each case's state of its hard variables: (remaining axes..., cases)
            front = [pos for pos, _ in axes]
            taken = base.transpose(front + [i for i in range(base.ndim) if i not in front])[tuple(states[h] for _, h in axes)]
            base = np.ascontiguousarray(taken.transpose(*range(1, taken.ndim), 0))  # transposes: moveaxis costs more
        inputs.append(base)
    if any(src.kind is OperandKind.WEIGHTS for src in program.sources):  # signed weights: rescale every step
        return passes(program, inputs, lambdas, n, scaled=True, dtype=dtype)
    if all(lam.size == 0 or lam.max() <= 1.0 for lam in lambdas):  # at most 1 already (Quickscore's terms): no overflow
        grads, log_z = passes(program, inputs, lambdas, n, scaled=False, dtype=dtype)
        redo = np.flatnonzero(~(log_z >= math.log(UNSCALED_FLOOR)))  # also zero: underflow, or impossible evidence
    else:
        peaks = [lam.max(axis=0) for lam in lambdas]
        peaks = [np.where(peak > 0, peak, 1.0) for peak in peaks]
        grads, log_z = passes(program, inputs, [lam / peak for lam, peak in zip(lambdas, peaks, strict=True)], n, scaled=False, dtype=dtype)
        redo = np.flatnonzero(~(log_z >= math.log(UNSCALED_FLOOR)))
        for peak in peaks:
            log_z += np.log(peak)
        grads = [g / peak for g, peak in zip(grads, peaks, strict=True)]
    if redo.size:
        per_case = [x[..., redo] if src.hard_axes else x for x, src in zip(inputs, program.sources, strict=True)]
        again, log_again = passes(program, per_case, [lam[:, redo] for lam in lambdas], redo.size, scaled=True, dtype=dtype)
        log_z[redo] = log_again
        for g, h in zip(grads, again, strict=True):
            g[:, redo] = h
    return grads, log_z


def passes(
    program: Program, inputs: list[np.ndarray], lambdas: list[np.ndarray], n: int, *, scaled: bool, dtype: type = np.float64
) -> tuple[list[np.ndarray], np.ndarray]:
    """The forward and backward passes; with ``scaled``, every batched table is rescaled per case."""
    values = [x.astype(dtype, copy=False) for x in inputs] + lambdas
    scales: list[np.ndarray | None] = []
    work = np.result_type(*lambdas, dtype)
    log_z: np.ndarray = np.zeros(n, dtype=work)
    dead = np.zeros(n, dtype=bool)
    for ins, spec, batched in program.forward:
        if len(ins) == 1:
            raw = np.einsum(spec, values[ins[0]])
            if scaled:
                raw = raw.copy()  # einsum may return a view, and it is divided in place
        else:
            raw = np.einsum(spec, values[ins[0]], values[ins[1]], optimize=False)
        if batched and scaled:
            scale = np.abs(raw).reshape(-1, n).max(axis=0) if raw.ndim > 1 else np.abs(raw)
            zero = scale <= 0
            if zero.any():
                dead |= zero
                scale[zero] = 1.0
            raw /= scale
            log_z += np.log(scale)
            scales.append(scale)
        else:
            scales.append(None)
        values.append(raw)
    root = np.broadcast_to(values[-1], (n,))
    dead |= ~(root > 0)  # a sum with negative terms (decomposed CPDs) that came out at or below zero, or NaN
    with np.errstate(divide="ignore"):
        log_z += np.log(np.where(dead, 1.0, root))
    # backward: gradient of log Z, i.e. dZ/d(table) / Z, scaled like the forward values
    grads: dict[int, np.ndarray] = {len(values) - 1: 1.0 / np.where(dead, 1.0, root).astype(work)}
    for step, node, plans in program.backward:
        g = grads.pop(node, None)
        if g is None:
            continue
        scale = scales[step]
        if scale is not None:
            g = g / scale
        for child, other, spec, mask in plans:
            dg = np.einsum(spec, g, values[other], optimize=False) if other >= 0 else np.einsum(spec, g)
            if mask is not None:
                shape = values[child].shape
                dg = np.broadcast_to(dg.reshape([d if keep else 1 for d, keep in zip(shape, mask, strict=True)]), shape)
            grads[child] = grads[child] + dg if child in grads else dg
    out_grads = []
    first_lambda = len(program.sources)
    for k, lam in enumerate(lambdas):
        g = grads.get(first_lambda + k)
        out_grads.append(np.zeros_like(lam) if g is None else g)
    log_z[dead] = -np.inf
    return out_grads, log_z


def marginals_of_targets(
    program: Program, columns: Sequence[np.ndarray], grads: Sequence[np.ndarray], marg: dict[int, np.ndarray], start: int, stop: int
) -> None:
    """Fill ``marg[v][start:stop]`` for the targets among the program's likelihood operands: likelihood times gradient."""
    for v, column, g in zip(program.lambda_vars, columns, grads, strict=True):
        if v in marg:
            m = column * g
            onehot = np.count_nonzero(column, axis=0) == 1  # observed: the marginal is the state itself, exactly
            if onehot.any():
                m[:, onehot] = column[:, onehot] != 0
            marg[v][start:stop] = m.T
