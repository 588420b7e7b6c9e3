"""numpy's C ``einsum`` without its Python wrapper.

``numpy.einsum`` without ``optimize`` hands its arguments to the C function ``c_einsum``; the wrapper and its
``__array_function__`` dispatch cost about 1 microsecond a call, as much as contracting the small tables of one
case. The engine calls ``einsum`` once per step of a program, so a single call on a small network spends a
third of its contraction time in that wrapper (hailfinder: 120 steps a call). ``einsum`` here is the C
function where numpy exposes it and ``numpy.einsum`` otherwise; both take ``(subscripts, *operands)`` and give
the same result.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["einsum"]


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
