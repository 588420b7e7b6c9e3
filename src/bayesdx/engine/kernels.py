"""numpy's C ``einsum`` without its Python wrapper.

``numpy.einsum`` without ``optimize`` hands its arguments to the C function ``c_einsum``; the wrapper and its
``__array_function__`` dispatch cost about 1 microsecond a call, as much as contracting the small tables of one
case. The engine calls ``einsum`` once per step of a program, so a single call on a small network spends a
third of its contraction time in that wrapper (hailfinder: 120 steps a call). ``einsum`` here is the C
function where numpy exposes it and ``numpy.einsum`` otherwise; both take ``(subscripts, *operands)`` and give
the same result.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MATMUL_CASES", "MATMUL_LOOP", "MATMUL_MATRIX", "einsum", "pairwise"]


def _c_einsum() -> Callable[..., Any]:
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            function: Callable[..., Any] = importlib.import_module(name).c_einsum
        except (ImportError, AttributeError):
            continue
        return function
    return np.einsum  # pragma: no cover - numpy without c_einsum


#: ``einsum(subscripts, *operands)``: explicit subscripts (``"ab,bc->ac"``), no ``optimize``.
einsum: Callable[..., Any] = _c_einsum()


#: A pairwise contraction runs as a batched matrix product where its loop (the product of every index's size)
#: reaches this many iterations, each matrix has at least two rows, columns and summed entries ...
MATMUL_LOOP = 10_000
#: ... and at least this many products (rows x summed x columns: thousands of 2 x 2 products stay with
#: ``c_einsum``, which a review timed 3-8x faster on them) ...
MATMUL_MATRIX = 32
#: ... and its last axis, when an operand's last axis too (the engine's cases), has at most this many
#: entries: ``c_einsum`` runs a long contiguous last axis well, while a matrix product would first move it
#: to the front (a copy) and then multiply many small matrices.
MATMUL_CASES = 16


@functools.lru_cache(maxsize=4096)
def _matmul_plan(
    subscripts: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, int, int], tuple[int, ...], tuple[int, int, int], tuple[int, ...], tuple[int, ...]] | None:
    """How ``a, b -> out`` runs as ``matmul``: the transposes and shapes of both operands (batch, rows, summed;
    batch, summed, columns) and of the product, or None where ``c_einsum`` does it better (a small loop, a
    matrix of one row or column or one summed entry: a dot product or an outer product, thousands of 2 x 2
    matrices, many cases on the last axis) or cannot be expressed so (an index repeated in an operand, or summed
    in one operand only, a broadcast axis, numpy's ellipsis or implicit output)."""
    if subscripts.count("->") != 1 or "." in subscripts or " " in subscripts:
        return None  # implicit output, ellipsis, spaces: c_einsum reads them
    inputs, out = subscripts.split("->")
    ia, ib = inputs.split(",")
    if len(ia) != len(shape_a) or len(ib) != len(shape_b) or any(c not in ia + ib for c in out):
        return None
    size = dict(zip(ia, shape_a, strict=True))
    if any(c in size and size[c] != s for c, s in zip(ib, shape_b, strict=True)):
        return None  # an axis of size one broadcast against the other operand's
    size.update(zip(ib, shape_b, strict=True))
    if len(set(ia)) < len(ia) or len(set(ib)) < len(ib) or any(c not in out and (c not in ia or c not in ib) for c in size):
        return None
    batch = [c for c in out if c in ia and c in ib]
    rows = [c for c in out if c in ia and c not in ib]
    columns = [c for c in out if c in ib and c not in ia]
    summed = [c for c in ia if c in ib and c not in out]
    b, m, k, n = (math.prod(size[c] for c in group) for group in (batch, rows, summed, columns))
    cases = size[out[-1]] if out and out[-1] in (ia[-1:], ib[-1:]) else 1
    if math.prod(size.values()) < MATMUL_LOOP or min(m, k, n) < 2 or m * k * n < MATMUL_MATRIX or cases > MATMUL_CASES:
        return None
    product = batch + rows + columns
    return (
        tuple(ia.index(c) for c in batch + rows + summed),
        (b, m, k),
        tuple(ib.index(c) for c in batch + summed + columns),
        (b, k, n),
        tuple(size[c] for c in product),
        tuple(product.index(c) for c in out),
    )


def pairwise(subscripts: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``einsum(subscripts, a, b)`` for two operands: ``c_einsum``, or for a large contraction in double precision
    a batched matrix product (``numpy.matmul``, BLAS), which ``c_einsum``'s loops run up to ten times slower
    (pathfinder: a table of 63 x 4 x 4 x 2 entries times one of 63 x 4 x 4 x 2 x 2, 470 against 55 us). The
    result may be a transposed view; its values are the same sums, added in another order."""
    if a.size * b.size < MATMUL_LOOP or a.dtype != np.float64 or b.dtype != np.float64:
        return einsum(subscripts, a, b)
    plan = _matmul_plan(subscripts, a.shape, b.shape)
    if plan is None:
        return einsum(subscripts, a, b)
    perm_a, shape_a, perm_b, shape_b, shape, perm = plan
    return np.matmul(a.transpose(perm_a).reshape(shape_a), b.transpose(perm_b).reshape(shape_b)).reshape(shape).transpose(perm)
