"""A noisy finding observed above its lowest level, with few free parents, as positive telescoped terms.

The signed expansion of :mod:`~bayesdx.engine.quickscore` enters such a finding as two terms that cancel; the
telescoped form needs one term per free parent (plus one) and never cancels (see :func:`telescoped`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .network import CompiledNetwork

__all__ = ["telescoped"]


def telescoped(
    net: CompiledNetwork, v: int, lam_v: np.ndarray, observed_state: Mapping[int, np.ndarray], n: int, max_free: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]] | None:
    """Positive terms for a noisy leaf observed above its lowest level in cases where few parents are free.

    Observed at level ``y > 0`` the leaf contributes ``F(y) - F(y - 1)`` with ``F(t) = L(t) prod_i C_i(t)``:
    a difference of two products, which the signed expansion enters as two terms that cancel (the
    cancellation grows with every rare finding, and a case past the error budget is redone in extended
    precision). With ``A_i = C_i(y)`` and ``B_i = C_i(y - 1)`` (``A_i >= B_i``: the CDFs grow with the
    level) the difference telescopes into positive terms,

        prod_{i=0..f} A_i - prod_{i=0..f} B_i = sum_m (A_m - B_m) prod_{i<m} B_i prod_{i>m} A_i,

    one per free parent plus one for the constants (the leak and the parents the case observes). With no
    free parent that is one number, with one a likelihood on it: exact, a single term and no cancellation;
    with up to ``max_free`` free parents (``quickscore.TELESCOPE_PARENTS``), ``f + 1`` positive terms instead
    of two signed ones.

    Returns ``(cases, terms per case, coefficients (cases, T), [(parent, factors (cases, T, states))])``
    for the cases this applies to, or None.
    """
    dec = net.decompositions[v]  # type: ignore[index]
    if dec is None or dec.leak_cdf is None:
        return None
    if sum(p not in observed_state for p in net.parents[v]) > max_free:
        return None  # more parents than that free in every case (the common leaf of many causes): no array work
    onehot = np.count_nonzero(lam_v, axis=1) == 1
    observed = np.argmax(lam_v != 0, axis=1)
    level_of = np.full(lam_v.shape[1], -1)
    level_of[list(dec.order)] = np.arange(len(dec.order))
    level = level_of[observed]
    parents = net.parents[v]
    free = (
        np.stack([observed_state[p] < 0 if p in observed_state else np.ones(n, dtype=bool) for p in parents], axis=1)
        if parents
        else np.zeros((n, 0), dtype=bool)
    )
    n_free = free.sum(axis=1)
    rows = np.flatnonzero(onehot & (level > 0) & (n_free <= max_free) & (np.abs(lam_v[np.arange(n), observed]) > 0))
    if not rows.size:
        return None
    y = level[rows]
    m = rows.size
    f = n_free[rows]
    is_free = free[rows]
    # the constants: the leak and the observed parents' factors at their states (one where a parent is free),
    # a_c = weight * prod A and b_c = weight * prod B, and their difference d_c telescoped too: taken as a_c - b_c,
    # the rounding of the two products (about 1e-16 of each) was left on a difference that can be far smaller
    # (a leak of 1e-11 observed with a weight: digits lost from the sixth; found in review)
    weight = lam_v[rows, observed[rows]]
    const_a, const_b = [dec.leak_cdf[y]], [dec.leak_cdf[y - 1]]
    a_par, b_par = [], []
    for i, p in enumerate(parents):
        g = dec.factors[i]
        a_i, b_i = g[y], g[y - 1]  # (m, states)
        a_par.append(a_i)
        b_par.append(b_i)
        hard = ~is_free[:, i]
        if hard.any():
            s_obs = observed_state[p][rows[hard]]
            at_a, at_b = np.ones(m), np.ones(m)
            at_a[hard], at_b[hard] = a_i[hard, s_obs], b_i[hard, s_obs]
            const_a.append(at_a)
            const_b.append(at_b)
    difference, prod_b = _difference(const_a, const_b)
    b_c = weight * prod_b
    d_c = weight * difference  # a_c - b_c, from positive terms
    width = max(1, int(f.max()) + 1)
    count = np.where(f <= 1, 1, f + 1)
    coef = np.zeros((m, width))
    coef[:, 0] = np.where(f == 1, 1.0, d_c)
    many = f >= 2
    for t in range(1, width):
        coef[:, t] = np.where(many & (t <= f), b_c, 0.0)
    position = np.cumsum(is_free, axis=1) - 1  # rank of each free parent among the case's free parents
    factors: list[tuple[int, np.ndarray]] = []
    for i, p in enumerate(parents):
        if not is_free[:, i].any():
            continue
        a_i, b_i = a_par[i], b_par[i]
        out = np.ones((m, width, a_i.shape[1]))
        mine = is_free[:, i]
        single = mine & (f == 1)
        out[single, 0] = d_c[single, None] * a_i[single] + b_c[single, None] * (a_i[single] - b_i[single])  # a_c a_i - b_c b_i
        several = mine & many
        out[several, 0] = a_i[several]
        for t in range(1, width):
            here = several & (t <= f)
            before = here & (position[:, i] < t - 1)
            at = here & (position[:, i] == t - 1)
            after = here & (position[:, i] > t - 1)
            out[before, t] = b_i[before]
            out[at, t] = a_i[at] - b_i[at]
            out[after, t] = a_i[after]
        factors.append((p, out))
    return rows, count, coef, factors


def _difference(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``prod_j a_j - prod_j b_j`` for factors with ``a_j >= b_j >= 0``, and ``prod_j b_j`` (made on the way), as the telescoped sum
    ``sum_m (a_m - b_m) prod_{i<m} b_i prod_{i>m} a_i``: positive terms, each difference of two stored numbers
    (exact where they are within a factor of two of each other, Sterbenz's lemma), so the result carries a few
    roundings of its own size, not of the products'."""
    after = [np.ones_like(a[0])]  # after[k]: the product of the last k of a
    for x in reversed(a[1:]):
        after.append(after[-1] * x)
    total = np.zeros_like(a[0])
    before = np.ones_like(a[0])
    for m in range(len(a)):
        total += (a[m] - b[m]) * before * after[len(a) - 1 - m]
        before = before * b[m]
    return total, before
