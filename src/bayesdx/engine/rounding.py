"""A running bound on the rounding errors of a contraction with signed operands.

A noisy CPD carried above its lowest level enters a contraction as signed weights (see
:class:`~bayesdx.engine.network.Decomposition`), so the sums can cancel, and a case's ``Z`` and marginals can
lose every digit without any sign of it. :class:`RunningError` follows each table of the passes with a bound
on its absolute error (running error analysis: Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., 2002, section 3.3). One einsum step ``sum_k x_k y_k`` computed from ``x``, ``y`` with error bounds
``e_x``, ``e_y`` errs by at most ``sum_k |x_k| e_y + e_x (|y_k| + e_y) + gamma_m |x_k| |y_k|``, where
``gamma_m = m u / (1 - m u)`` for ``m`` rounded operations per entry and unit roundoff ``u``.

A table whose entries are all non-negative (the subtree below it holds no signed weight) needs no table of
its own: its error is at most ``k`` times its value, with one number ``k`` per table. Only tables above a
signed operand carry a table of bounds, which costs two einsums per step beside the step itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .kernels import einsum

__all__ = ["RunningError", "terms"]


def terms(spec: str, shapes: Sequence[tuple[int, ...]]) -> int:
    """Rounded operations per entry of ``einsum(spec)`` on operands of ``shapes``: the summed terms and the product."""
    ins, out = spec.split("->")
    dims: dict[str, int] = {}
    for letters, shape in zip(ins.split(","), shapes, strict=True):
        dims.update(zip(letters, shape, strict=True))
    return math.prod(d for letter, d in dims.items() if letter not in out) + len(shapes)


class RunningError:
    """Error bounds for the tables of one run of a program's passes (its operands exact).

    Parameters
    ----------
    values : list of numpy.ndarray
        The operands, CPD operands first then likelihoods; the forward pass appends its tables.
    eps : float
        Machine epsilon of the arithmetic.
    counts : dict
        The program's cache of :func:`terms` per step, keyed by the step's nodes.
    """

    def __init__(self, values: Sequence[np.ndarray], eps: float, counts: dict[tuple[int, ...], int]) -> None:
        self.eps = eps
        self.u = eps / 2
        self.counts = counts  # per step, its rounded operations per entry (the same for every batch size)
        # per table: a number k (error at most k * |value|, for a table with no negative entry below it) or
        # a table of bounds
        self.errors: list[float | np.ndarray] = [0.0] * len(values)
        self.nonnegative = [bool((v >= 0).all()) for v in values]

    def _table(self, k: int, values: Sequence[np.ndarray]) -> np.ndarray | None:
        """Table ``k``'s bound as a table (None: exact)."""
        e = self.errors[k]
        if isinstance(e, float):
            return None if e == 0.0 else e * np.abs(values[k])
        return e

    def _gamma(self, key: tuple[int, ...], spec: str, xs: Sequence[np.ndarray]) -> float:
        """``gamma_m = m u / (1 - m u)`` for one step on operands ``xs``, ``m`` its :func:`terms`."""
        m = self.counts.get(key)
        if m is None:
            m = self.counts[key] = terms(spec, [x.shape for x in xs])
        return m * self.u / (1 - m * self.u)

    def step(self, ins: tuple[int, ...], spec: str, values: Sequence[np.ndarray]) -> None:
        """Record the bound of the forward step ``einsum(spec, *values[ins])`` (before any rescaling)."""
        xs = [values[i] for i in ins]
        g = self._gamma(ins, spec, xs)
        errors, nonnegative = self.errors, self.nonnegative
        if all(nonnegative[i] for i in ins):
            k = [e for e in (errors[i] for i in ins) if isinstance(e, float)]
            if len(k) == len(ins):  # no cancellation below: relative bounds add up
                total = 1.0
                for x in k:
                    total *= 1.0 + x
                errors.append((total - 1.0 + g) / (1.0 - g))
                nonnegative.append(True)
                return
        errors.append(contract_error(spec, xs, [self._table(i, values) for i in ins], g))
        nonnegative.append(all(nonnegative[i] for i in ins))

    def rescaled(self, scale: np.ndarray, out: np.ndarray) -> None:
        """The last table was divided by ``scale`` (per case), giving ``out``."""
        e = self.errors[-1]
        self.errors[-1] = e * (1.0 + self.eps) + self.eps if isinstance(e, float) else e / scale + self.eps * np.abs(out)

    def root(self, values: Sequence[np.ndarray], n: int) -> np.ndarray:
        """The bound on the error of the last table, ``Z`` per case."""
        e = self._table(len(values) - 1, values)
        return np.zeros(n) if e is None else np.broadcast_to(e, (n,))

    def gradient(
        self, node: int, child: int, spec: str, g: np.ndarray, e_g: np.ndarray, other: int, values: Sequence[np.ndarray]
    ) -> np.ndarray:
        """The bound on the error of the backward product ``einsum(spec, g, values[other])`` from ``node`` to
        ``child`` (``other`` -1: ``g`` alone)."""
        if other < 0:
            return contract_error(spec, [g], [e_g], self._gamma((-node, child), spec, [g]))
        y = values[other]
        return contract_error(spec, [g, y], [e_g, self._table(other, values)], self._gamma((-node, child, other), spec, [g, y]))


def contract_error(spec: str, xs: Sequence[np.ndarray], errors: Sequence[np.ndarray | None], g: float) -> np.ndarray:
    """``sum |x| e_y + e_x (|y| + e_y) + g |x| |y|`` contracted as ``spec`` (one operand: ``sum e_x + g |x|``)."""
    if len(xs) == 1:
        a = np.abs(xs[0]) * g
        return einsum(spec, a if errors[0] is None else a + errors[0])
    x, y = np.abs(xs[0]), np.abs(xs[1])
    ex, ey = errors
    total = einsum(spec, x, y * g if ey is None else ey + y * g)
    if ex is not None:
        total += einsum(spec, ex, y if ey is None else y + ey)
    return total
