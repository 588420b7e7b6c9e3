"""The engine's einsum (src/bayesdx/engine/kernels.py) is numpy's own C contraction: the same numbers as
``numpy.einsum`` for the step shapes the programs use, in double and extended precision."""

from __future__ import annotations

import numpy as np
import pytest

from bayesdx.engine.kernels import einsum


def test_it_is_numpys_c_einsum_where_numpy_has_one():
    try:
        from numpy._core.multiarray import c_einsum
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import c_einsum
    assert einsum is c_einsum


@pytest.mark.parametrize("dtype", [np.float64, np.longdouble])
@pytest.mark.parametrize(
    ("spec", "shapes"),
    [
        ("az,abz->bz", [(3, 1), (3, 4, 5)]),
        ("abz,bz->az", [(2, 3, 7), (3, 7)]),
        ("abcz->cz", [(2, 3, 4, 6)]),
        ("ts,st->t", [(5, 3), (3, 5)]),
    ],
)
def test_same_numbers_as_numpy_einsum(spec, shapes, dtype):
    rng = np.random.default_rng(1)
    operands = [rng.random(s).astype(dtype) for s in shapes]
    got = einsum(spec, *operands)
    assert got.dtype == np.result_type(*operands)
    np.testing.assert_array_equal(got, np.einsum(spec, *operands))
