"""The engine's einsum (src/bayesdx/engine/kernels.py) is numpy's own C contraction: the same numbers as
``numpy.einsum`` for the step shapes the programs use, in double and extended precision. Its pairwise steps
run large contractions as batched matrix products: the same sums as ``numpy.einsum`` (to the order of their
terms), and pathfinder's posteriors still match pgmpy's VariableElimination."""

from __future__ import annotations

import numpy as np
import pytest

import bayesdx
from bayesdx.engine import kernels
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


# ------------------------------------------------------------------ pairwise steps as matrix products
def _random_pair(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray, bool]:
    """A random two-operand contraction with batch, summed and kept indices, on operands that may be
    transposed views; True where it is large enough for the matrix product."""
    letters = list("abcdefghij")
    rng.shuffle(letters)
    n = int(rng.integers(3, 9))
    role = rng.choice(["batch", "summed", "a", "b"], size=n)
    size = {c: int(rng.integers(1, 9)) for c in letters[:n]}
    ia = [c for c, r in zip(letters[:n], role, strict=True) if r in ("batch", "summed", "a")]
    ib = [c for c, r in zip(letters[:n], role, strict=True) if r in ("batch", "summed", "b")]
    rng.shuffle(ia)
    rng.shuffle(ib)
    out = [c for c in letters[:n] if c in ia + ib and role[letters.index(c)] != "summed"]
    rng.shuffle(out)
    a = rng.random([size[c] for c in ia])
    b = rng.random([size[c] for c in ib])
    if a.ndim > 1 and rng.random() < 0.5:  # a transposed view, as the passes hand over
        perm = rng.permutation(a.ndim)
        a = np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    spec = "".join(ia) + "," + "".join(ib) + "->" + "".join(out)
    return spec, a, b, kernels._matmul_plan(spec, a.shape, b.shape) is not None


def test_pairwise_steps_give_the_same_numbers_as_numpy_einsum_with_or_without_the_matrix_product():
    """numpy's C einsum runs some pairwise contractions up to ten times slower than a batched matrix product
    (BLAS); ``pairwise`` takes the product where the loop is large. The sums are the same up to the order of
    their terms (a relative 1e-13 here)."""
    rng = np.random.default_rng(7)
    taken = 0
    for _ in range(400):
        spec, a, b, large = _random_pair(rng)
        got = kernels.pairwise(spec, a, b)
        np.testing.assert_allclose(got, np.einsum(spec, a, b), rtol=1e-13, atol=0, err_msg=spec)
        taken += large
    assert taken >= 40  # the matrix product was exercised


@pytest.mark.parametrize(
    ("spec", "shapes"),
    [
        ("ab,ab->", [(200, 100), (200, 100)]),  # a dot product: one row and one column
        ("aab,bc->ac", [(50, 50, 10), (10, 40)]),  # a diagonal
        ("ab,bc->c", [(100, 100), (100, 100)]),  # an index summed in one operand only
        ("mkz,knz->mnz", [(20, 30, 100), (30, 20, 100)]),  # a hundred cases on the last axis (contiguous)
        ("xmkz,xknz->xmnz", [(1000, 2, 2, 16), (1000, 2, 2, 16)]),  # thousands of 2 x 2 products: 2.6x slower as matmul
        ("mk,kn->nm", [(200, 1), (200, 200)]),  # k broadcast from size one (numpy.einsum accepts it)
        ("...mk,...kn->...mn", [(4, 100, 100), (4, 100, 100)]),  # an ellipsis
        ("bmk,bkn", [(4, 100, 100), (4, 100, 100)]),  # implicit output
    ],
)
def test_pairwise_leaves_to_c_einsum_what_a_matrix_product_cannot_do_well(spec, shapes):
    rng = np.random.default_rng(3)
    a, b = (rng.random(s) for s in shapes)
    assert kernels._matmul_plan(spec, a.shape, b.shape) is None
    np.testing.assert_array_equal(kernels.pairwise(spec, a, b), einsum(spec, a, b))
    wide = a.astype(np.longdouble)  # extended precision: always c_einsum
    np.testing.assert_array_equal(kernels.pairwise(spec, wide, b), einsum(spec, wide, b))


def test_pathfinder_single_cases_use_matrix_products_and_match_variable_elimination(pathfinder_normalized, ve_reference, monkeypatch):
    """pathfinder's Fault (63 states) makes pairwise steps of tens of thousands of iterations for one case:
    they run as matrix products, and the posteriors still match pgmpy's VariableElimination to 1e-9."""
    from pgmpy.sampling import BayesianModelSampling

    from bayesdx.engine import engine as engine_module
    from bayesdx.engine import execute

    large = []

    def counting(spec, a, b):
        large.append(kernels._matmul_plan(spec, a.shape, b.shape) is not None and a.size * b.size >= kernels.MATMUL_LOOP)
        return kernels.pairwise(spec, a, b)

    monkeypatch.setattr(execute, "pairwise", counting)
    monkeypatch.setattr(engine_module, "posterior_of_one", lambda *args: None)  # the program route, not the single-target one
    network = pathfinder_normalized
    leaves = sorted(str(v) for v in network.nodes() if not list(network.successors(v)))
    samples = BayesianModelSampling(network).forward_sample(size=3, seed=11, show_progress=False)
    model = bayesdx.load_model(network, causes=["Fault"])
    for k in range(3):
        evidence = {v: str(samples.iloc[k][v]) for v in leaves[k::3]}
        dx = bayesdx.rank_causes(evidence, model=model, next_steps=False)
        expected = ve_reference(network, model, evidence)
        got = {c.id: c.probability for c in dx.causes}
        np.testing.assert_allclose([got[h] for h in expected], list(expected.values()), atol=1e-9, rtol=0)
    assert any(large)
