"""Running a :class:`~bayesdx.engine.plan.Program` on a chunk of cases: the forward pass gives ``log Z``,
the backward pass every likelihood's gradient (the marginals, Darwiche 2003), with per-case rescaling where
underflow threatens."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from .kernels import einsum, pairwise
from .network import BatchPosterior, CompiledNetwork, Decomposition, Lowered
from .plan import OperandKind, Program
from .rounding import RunningError

__all__ = ["UNSCALED_FLOOR", "Passes", "finish", "marginals_of_targets", "operands", "passes", "run"]

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
    if impossible.any():
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


def operands(
    program: Program,
    tables: Sequence[np.ndarray],
    decompositions: Sequence[Decomposition | None] | None,
    states: Mapping[int, np.ndarray],
) -> list[np.ndarray]:
    """The program's CPD operands, taken at each case's state of its hard variables."""
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
        elif kind is OperandKind.FACTOR:
            base = _decomposition(decompositions, v).factors[parent]
        elif kind is OperandKind.POSITIVE_WEIGHTS:
            base = _decomposition(decompositions, v).positive[0]
        else:
            base = _decomposition(decompositions, v).positive[1][parent]
        if axes:  # taken at each case's state of its hard variables: (remaining axes..., cases)
            front = [pos for pos, _ in axes]
            taken = base.transpose(front + [i for i in range(base.ndim) if i not in front])[tuple(states[h] for _, h in axes)]
            base = np.ascontiguousarray(taken.transpose(*range(1, taken.ndim), 0))  # transposes: moveaxis costs more
        inputs.append(base)
    return inputs


def run(
    program: Program,
    tables: Sequence[np.ndarray],
    decompositions: Sequence[Decomposition | None] | None,
    lambdas: list[np.ndarray],
    n: int,
    states: Mapping[int, np.ndarray],
    dtype: type = np.float64,
    targets: Collection[int] = (),
) -> Passes:
    """Forward and backward pass for one chunk of ``n`` cases.

    ``lambdas`` are ``(states, n)`` arrays; ``states`` gives each case's state of the variables observed in
    every case, at which their operands are taken. Returns the gradient of ``log Z`` with respect to each lambda
    operand, in scaled form (``dZ/dlambda / Z``), and ``log Z`` per case (:class:`Passes`).

    A program with signed operands (a noisy CPD's weights, carried above its lowest level) rescales every
    step and bounds the rounding errors of its cancellation as it goes (``z_error`` and ``grad_errors``).

    A program whose operands are all non-negative (no decomposed CPD weights) first runs without per-step
    rescaling, its likelihoods divided by their largest entry so that every operand is at most 1; a case
    whose ``Z`` then comes out below ``UNSCALED_FLOOR`` (where underflow could have lost terms) is rerun
    with every intermediate table rescaled.
    """
    inputs = operands(program, tables, decompositions, states)
    if program.weighted:  # signed: rescale every step, and bound the errors of the cancellation
        inputs, log_scale = _per_case_scaled(program, inputs, n)
        done = passes(program, inputs, lambdas, n, scaled=True, dtype=dtype, bounded=targets)
        return done._replace(log_z=done.log_z + log_scale)
    # the likelihoods the gradients are taken with respect to, where not ``lambdas``: a case's likelihoods scaled to
    # a largest entry of one keep their gradients (unscaled, a subnormal largest entry such as 1e-310 makes a
    # gradient of about 1e310, and its marginals came out inf), and the engine multiplies the two
    used: list[np.ndarray] | None = None
    if all(lam.size == 0 or lam.max() <= 1.0 for lam in lambdas):  # at most 1 already (Quickscore's terms): no overflow
        grads, log_z, *_ = passes(program, inputs, lambdas, n, scaled=False, dtype=dtype)
        redo = np.flatnonzero(~(log_z >= math.log(UNSCALED_FLOOR)))  # also zero: underflow, or impossible evidence
    else:
        peaks = [lam.max(axis=0) for lam in lambdas]
        peaks = [np.where(peak > 0, peak, 1.0) for peak in peaks]
        used = [lam / peak for lam, peak in zip(lambdas, peaks, strict=True)]
        grads, log_z, *_ = passes(program, inputs, used, n, scaled=False, dtype=dtype)
        redo = np.flatnonzero(~(log_z >= math.log(UNSCALED_FLOOR)))
        for peak in peaks:
            log_z += np.log(peak)
    if redo.size:
        # every likelihood scaled to a largest entry of one per case, as in the unscaled pass: a likelihood of
        # 1e-300 would otherwise make its gradient (about 1 / likelihood) overflow on the way back, and the
        # infinities times zeros came out as NaN marginals
        per_case = [x[..., redo] if src.hard_axes else x for x, src in zip(inputs, program.sources, strict=True)]
        per_case, log_again = _per_case_scaled(program, per_case, redo.size)
        tops = [lam[:, redo].max(axis=0) for lam in lambdas]
        tops = [np.where(top > 0, top, 1.0) for top in tops]
        again, log_scaled, *_ = passes(
            program, per_case, [lam[:, redo] / top for lam, top in zip(lambdas, tops, strict=True)], redo.size, scaled=True, dtype=dtype
        )
        log_again = log_again + log_scaled
        for top in tops:
            log_again += np.log(top)
        log_z[redo] = log_again
        used = [lam.copy() for lam in lambdas] if used is None else used
        for g, h, lam, u, top in zip(grads, again, lambdas, used, tops, strict=True):
            g[:, redo] = h
            u[:, redo] = lam[:, redo] / top
    return Passes(grads, log_z, columns=used)


def _per_case_scaled(program: Program, inputs: list[np.ndarray], n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The operands taken at each case's hard states, each scaled per case by a power of two to a largest
    magnitude in ``[0.5, 1)`` (exact: only exponents change), and per case the log of what that took out of
    ``Z``. Without it, two CPD rows of 1e-200 taken at observed states multiplied to zero before the passes'
    first rescale, and possible evidence came out impossible."""
    log_scale = np.zeros(n)
    scaled = []
    for x, src in zip(inputs, program.sources, strict=True):
        if src.hard_axes and x.size:
            peak = np.abs(x).reshape(-1, n).max(axis=0)
            _, exponent = np.frexp(np.where(peak > 0, peak, 1.0))
            exponent = np.where(peak > 0, exponent, 0)  # all zero: left as it is (the evidence is impossible)
            x = np.ldexp(x, -exponent)
            log_scale += exponent * math.log(2.0)
        scaled.append(x)
    return scaled, log_scale


class Passes(NamedTuple):
    """What one run of a program gives, per case.

    Attributes
    ----------
    grads : list of numpy.ndarray
        The gradient of ``log Z`` with respect to each likelihood operand, ``(states, cases)``.
    log_z : numpy.ndarray
        ``log Z`` (``-inf`` where ``Z`` came out at or below zero).
    z_error : numpy.ndarray or None
        For a signed program (see :func:`run`): a bound on the relative rounding error of ``Z``.
    grad_errors : list of numpy.ndarray or None
        ... and on the absolute rounding error of each entry of ``grads``.
    columns : list of numpy.ndarray or None
        The likelihoods ``grads`` are gradients with respect to, where they are not the ones given (cases computed
        again rescaled keep their likelihoods scaled to a largest entry of one): a marginal is their product.
    """

    grads: list[np.ndarray]
    log_z: np.ndarray
    z_error: np.ndarray | None = None
    grad_errors: list[np.ndarray] | None = None
    columns: list[np.ndarray] | None = None


def passes(
    program: Program,
    inputs: list[np.ndarray],
    lambdas: list[np.ndarray],
    n: int,
    *,
    scaled: bool,
    dtype: type = np.float64,
    bounded: Collection[int] | None = None,
) -> Passes:
    """The forward and backward passes; with ``scaled``, every batched table is rescaled per case. With
    ``bounded`` (target variables), every table also carries a running bound on its rounding error (the operands
    are exact), which the result gives for ``Z`` and for the gradients of the targets' likelihoods (zero for
    the others)."""
    values = [x.astype(dtype, copy=False) for x in inputs] + lambdas
    work = np.result_type(*lambdas, dtype)
    eps = float(np.finfo(work).eps)
    tape = RunningError(values, eps, program.terms) if bounded is not None else None
    wanted: set[int] = set()  # the tables with a target's likelihood below them: their gradients' bounds matter
    if bounded is not None:
        first = len(program.sources)
        wanted = {first + k for k, v in enumerate(program.lambda_vars) if v in bounded}
        for k, (ins, _, _) in enumerate(program.forward):
            if not wanted.isdisjoint(ins):
                wanted.add(len(inputs) + len(lambdas) + k)
    scales: list[np.ndarray | None] = []
    log_z: np.ndarray = np.zeros(n, dtype=work)
    dead = np.zeros(n, dtype=bool)
    for ins, spec, batched in program.forward:
        if len(ins) == 1:
            raw = einsum(spec, values[ins[0]])
            if scaled:
                raw = raw.copy()  # einsum may return a view, and it is divided in place
        else:
            raw = pairwise(spec, values[ins[0]], values[ins[1]])
        if tape is not None:
            tape.step(ins, spec, values)
        if batched and scaled:
            scale = np.abs(raw).reshape(-1, n).max(axis=0) if raw.ndim > 1 else np.abs(raw)
            zero = scale <= 0
            if zero.any():
                dead |= zero
                scale[zero] = 1.0
            raw /= scale
            log_z += np.log(scale)
            scales.append(scale)
            if tape is not None:
                tape.rescaled(scale, raw)
        else:
            scales.append(None)
        values.append(raw)
    root = np.broadcast_to(values[-1], (n,)) if values else np.ones(n, dtype=work)  # no operands: no evidence, no targets
    dead |= ~(root > 0)  # a sum with negative terms (decomposed CPDs) that came out at or below zero, or NaN
    # backward: gradient of log Z, i.e. dZ/d(table) / Z, scaled like the forward values (a Z below 1e-308 makes
    # it infinite: such a case is below UNSCALED_FLOOR, and run() computes it again with rescaling)
    with np.errstate(divide="ignore", over="ignore"):
        log_z += np.log(np.where(dead, 1.0, root))
        top = 1.0 / np.where(dead, 1.0, root).astype(work)
    grads: dict[int, np.ndarray] = {len(values) - 1: top}
    grad_errors: dict[int, np.ndarray] = {}
    if tape is not None:
        grad_errors[len(values) - 1] = np.abs(top) * eps  # 1/Z's own rounding (Z's: at the end)
    for step, node, plans in program.backward:
        g = grads.pop(node, None)
        if g is None:
            continue
        e = grad_errors.pop(node, None) if tape is not None else None
        scale = scales[step]
        if scale is not None:
            with np.errstate(over="ignore"):  # a subnormal scale: inf, and the case's bound sends it to be computed again
                g = g / scale
            if e is not None:
                e = e / scale + eps * np.abs(g)
        for child, other, spec, mask in plans:
            dg = pairwise(spec, g, values[other]) if other >= 0 else einsum(spec, g)
            de = tape.gradient(node, child, spec, g, e, other, values) if tape is not None and e is not None and child in wanted else None
            if mask is not None:
                shape = values[child].shape
                shaped = [d if keep else 1 for d, keep in zip(shape, mask, strict=True)]
                dg = np.broadcast_to(dg.reshape(shaped), shape)
                if de is not None:
                    de = np.broadcast_to(de.reshape(shaped), shape)
            grads[child] = grads[child] + dg if child in grads else dg
            if de is not None:
                grad_errors[child] = grad_errors[child] + de + eps * np.abs(grads[child]) if child in grad_errors else de
    first = len(program.sources)  # the first likelihood operand
    out_grads = [grads.get(first + k, np.zeros_like(lam)) for k, lam in enumerate(lambdas)]
    z_error = out_errors = None
    if tape is not None:
        # a bound on Z's relative error; a Z at or below zero is a cancellation where its bound is not zero
        root_error = tape.root(values, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_error = np.where(dead, np.where(root_error > 0, np.inf, 0.0), root_error / np.where(dead, 1.0, root))
        relative = np.where(dead, 0.0, z_error)  # 1/Z's error from Z's scales every gradient alike
        out_errors = [grad_errors.get(first + k, np.zeros(g.shape)) + relative * np.abs(g) for k, g in enumerate(out_grads)]
    log_z[dead] = -np.inf
    return Passes(out_grads, log_z, z_error, out_errors)


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
