"""The passes of a sweep (:mod:`~bayesdx.engine.sweep`): one forward and one backward sweep for a group of cases
with the same number of slots and the same hard evidence.

The forward sweep multiplies the tables in, step by step (:class:`~bayesdx.engine.sweep_plan.SweepPlan`),
applies the slot transitions of each variable as it enters and sums out the variables that leave; its last
table, at "every slot in state 1", is ``P(e)``. The backward sweep runs the transposed steps from that end
state; at the step where a target enters, the forward table times the backward one, summed over everything
else, is the target's joint with the evidence. Both rescale per case to a largest entry of one.

A slot whose range starts just above its finding's lowest level, held in state 0 to the end, is the case with
that finding at its lowest level (:class:`LoweredSlots`): its end state is in the forward sweep's last table,
and one more backward sweep from it (the slot's axis kept at that one state) gives its marginals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from .kernels import einsum
from .network import CompiledNetwork
from .sweep_factors import LeafFactors
from .sweep_plan import SweepPlan

__all__ = ["LoweredSlots", "sweep_passes"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"
#: A case whose ``P(e)`` or a target's joint with the evidence falls below this, relative to the largest entry
#: of its table, may have lost digits to underflow: it is computed again with its findings inside a contraction.
UNDERFLOW = 1e-250


class Transition(NamedTuple):
    """The chain of one slot as a parent's state enters: per state of the parent and unit, ``(states, units)``."""

    stay0: np.ndarray  # below the range: stays below, C(lo - 1, x)
    rise: np.ndarray  # below the range: moves into it, C(hi, x) - C(lo - 1, x)
    stay1: np.ndarray | None  # in the range: stays in it, C(hi, x) (None: one everywhere)
    moving: tuple[int, ...]  # the parent's states that are not the identity for some unit


class LoweredSlots(NamedTuple):
    """Per unit and slot, the unit with that slot's finding at its lowest level instead (the rest unchanged)."""

    log_evidence: np.ndarray  # (units, slots)
    marginals: dict[int, np.ndarray]  # target -> (units, slots, states)
    available: np.ndarray  # (units, slots): asked for, the range starts at level 1, possible, clear of underflow
    leaf: np.ndarray  # (units, slots): the slot's leaf, a position in the leaves


def sweep_passes(
    net: CompiledNetwork,
    factors: LeafFactors,
    tables: Sequence[np.ndarray],
    plan: SweepPlan,
    hard: frozenset[int],
    lam: dict[int, np.ndarray],
    kinds: Sequence[tuple[np.ndarray, ...]],
    leaves: Sequence[int],
    k: int,
    target_ids: Sequence[int],
    units: np.ndarray,
    marg: dict[int, np.ndarray],
    log_z: np.ndarray,
    lower: np.ndarray | None = None,
) -> tuple[np.ndarray, LoweredSlots | None]:
    """One forward and one backward sweep for ``units`` (each with ``k`` slots); returns the units that fail
    (``P(e)`` or a marginal's sum may have lost digits to underflow, or ``P(e)`` is zero) and, where ``lower``
    (a flag per leaf) asks for them, the lowered slots (:class:`LoweredSlots`)."""
    m = units.size
    cols = np.arange(m)
    lam = {v: a.copy() for v, a in lam.items()}  # (units, states); folded terms multiply in
    states = {v: np.argmax(lam[v] != 0, axis=1) for v in hard}
    rows = np.array([factors.rows[v] for v in leaves])
    kind, lo, hi, value = (np.stack([part[j] for part in kinds]) for j in range(4))  # (leaves, units)
    log_scale = np.log(value).sum(axis=0)  # a_t of each single product (L(t) included), each slot's likelihood
    top = factors.levels - 1  # a factor of ones for every leaf
    fold_level = np.where(kind == 0, hi, top)  # a single product's level: the top of its range
    # the slots: each unit's findings in leaf order, k of them
    unit_at, leaf_at = np.nonzero((kind == 2).T)
    slot_row = rows[leaf_at].reshape(m, k)
    below = lo[leaf_at, unit_at].reshape(m, k) - 1
    above = hi[leaf_at, unit_at].reshape(m, k)
    slot_leaf = leaf_at.reshape(m, k)
    slot_value = value[leaf_at, unit_at].reshape(m, k)
    start0 = factors.leak[slot_row, below]
    start1 = factors.leak[slot_row, above] - start0
    coef: dict[tuple[int, int], Transition] = {}  # (variable, slot)
    for p in sorted({p for v in leaves for p in net.parents[v]}):
        cdf = factors.cdf(p)
        children = np.flatnonzero(factors.is_parent(p)[rows])
        levels = fold_level[children]
        if (levels != top).any():  # single products on p: one likelihood, multiplied as logs (many leaves may share p)
            with np.errstate(divide="ignore"):
                logs = np.log(cdf[rows[children][:, None], levels]).sum(axis=0)  # (units, states)
            peak = logs.max(axis=1)
            peak = np.where(np.isfinite(peak), peak, 0.0)
            factor = np.exp(logs - peak[:, None])
            log_scale += peak
            lam[p] = lam[p] * factor if p in lam else factor
        par = factors.is_parent(p)[slot_row]  # (units, slots)
        if not par.any():
            continue
        low, high = cdf[slot_row, below], cdf[slot_row, above]  # (units, slots, states)
        if p in hard:  # at each unit's state: into the slots' start
            x = states[p][:, None]
            a, d = low[cols[:, None], np.arange(k), x], high[cols[:, None], np.arange(k), x]
            start1 = d * start1 + (d - a) * start0
            start0 = a * start0
            peak = np.maximum(start0, start1)  # each slot's start scaled to a largest entry of one, before the
            peak = np.where(peak > 0, peak, 1.0)  # starts of all slots multiply (several small ones underflowed)
            start0, start1 = start0 / peak, start1 / peak
            log_scale += np.log(peak).sum(axis=1)
            continue
        # per slot, the states of p that move some unit's chain (an absent cause produces the lowest level: it
        # does not), and the chain's numbers as (slots, states, units): each slot's a contiguous block
        moves = ((low != 1.0) | (high != 1.0)).any(axis=0)  # (slots, states)
        stay0 = np.ascontiguousarray(low.transpose(1, 2, 0))
        rise = np.ascontiguousarray((high - low).transpose(1, 2, 0))
        stay1 = np.ascontiguousarray(high.transpose(1, 2, 0))
        ones = (stay1 == 1.0).reshape(k, -1).all(axis=1)  # per slot: stays in the range with probability one
        for s in np.flatnonzero(par.any(axis=0)):
            moving = tuple(np.flatnonzero(moves[s]).tolist())
            if moving:
                coef[p, int(s)] = Transition(stay0[s], rise[s], None if ones[s] else stay1[s], moving)
    start = np.stack([start0.T, start1.T], axis=1)  # (slots, 2, units)
    with np.errstate(divide="ignore"):
        for v in hard:
            log_scale += np.log(lam[v][cols, states[v]])
    targets = [t for t in target_ids if t not in hard]
    for t in target_ids:
        if t in hard:
            marg[t][units] = 0.0
            marg[t][units, states[t]] = 1.0
    with np.errstate(divide="ignore"):
        for v in plan.constant:
            log_scale += np.log(tables[v][tuple(states[x] for x in (v, *net.parents[v]))])
    gathered = {v: _gathered(net, tables[v], v, hard, states) for step in plan.steps for v in step.tables}
    # each case's own tables and likelihoods scaled to a largest entry of one (logs kept): a tiny one (a CPD
    # taken at an observed child's rare state) would otherwise scale a whole running table towards the
    # subnormal range in one step, where its small entries lose their digits before the rescale
    with np.errstate(divide="ignore"):
        for v, (axes, table, batched) in gathered.items():
            if batched:
                table, log_scale = _rescaled(table, log_scale, m)
                gathered[v] = (axes, table, batched)
        for v in lam:
            if v not in hard:
                scaled, log_scale = _rescaled(lam[v].T, log_scale, m)
                lam[v] = scaled.T
    bits = _LETTERS[-k:] if k else ""
    alpha = np.ones((2,) * k + (m,))
    for slot in range(k):
        shape = [1] * k + [m]
        shape[slot] = 2
        alpha = alpha * start[slot].reshape(shape)
    kept_alpha: dict[int, tuple[int, np.ndarray]] = {}
    for i, step in enumerate(plan.steps):
        x = step.variable
        letter = {v: _LETTERS[j] for j, v in enumerate(step.scope)}
        before = step.scope[:-1]
        specs, operands = _entering(x, step.tables, lam, gathered, letter)
        specs.insert(0, "".join(letter[v] for v in before) + bits + "Z")
        operands.insert(0, alpha)
        if x not in lam and not any(x in gathered[v][0] for v in step.tables):
            specs.append(letter[x])  # x enters before any of its tables: a row of ones
            operands.append(np.ones(net.cards[x]))
        out = "".join(letter[v] for v in step.scope) + bits + "Z"
        alpha = einsum(",".join(specs) + "->" + out, *operands)
        _transitions(alpha, coef, x, len(step.scope) - 1, len(step.scope), k, forward=True)
        if x in targets:
            kept_alpha[i] = (x, alpha)
        drop = tuple(j for j, v in enumerate(step.scope) if v not in step.kept)
        if drop:
            alpha = alpha.sum(axis=drop)
        alpha, log_scale = _rescaled(alpha, log_scale, m)
    end = alpha[(1,) * k]
    with np.errstate(divide="ignore"):
        log_z[units] = log_scale + np.log(end)
    # every slot in state 1 far below the largest end state (or at zero): its digits may have gone to underflow
    # (findings that all but rule each other out), or the evidence is impossible: for a contraction to settle
    bad = end < UNDERFLOW
    wanted = np.zeros((m, k), dtype=bool) if lower is None else lower[slot_leaf] & (below == 0)
    beta = np.zeros((2,) * k + (m,))
    beta[(1,) * k] = 1.0
    for x, joint in (_backward(net, plan, kept_alpha, coef, lam, gathered, k, m, beta) if targets else {}).items():
        total = joint.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            bad |= ~(total > UNDERFLOW) & np.isfinite(log_z[units])
            marg[x][units] = (joint / total).T
    if not wanted.any():
        return bad, None
    # a slot whose range starts just above the lowest level, held in state 0 to the end: the case with that
    # finding at its lowest level instead (its likelihood there one, not the slot's value)
    low_log = np.full((m, k), -np.inf)
    low_marg = {x: np.full((m, k, net.cards[x]), np.nan) for x in target_ids}
    ok = wanted.copy()  # (a unit whose own end state underflowed may still have its held ones)
    for j in np.flatnonzero(ok.any(axis=0)):
        held = (1,) * j + (0,) + (1,) * (k - j - 1)
        with np.errstate(divide="ignore"):
            low_log[:, j] = log_scale + np.log(alpha[held]) - np.log(slot_value[:, j])
        ok[:, j] &= (alpha[held] >= UNDERFLOW) & np.isfinite(low_log[:, j])  # (-inf: a single product at zero)
        if not kept_alpha or not ok[:, j].any():
            continue
        beta = np.zeros((2,) * j + (1,) + (2,) * (k - j - 1) + (m,))
        beta[held] = 1.0
        sliced = {i: (x, a[(slice(None),) * (a.ndim - 1 - k + j) + (slice(0, 1),)]) for i, (x, a) in kept_alpha.items()}
        for x, joint in _backward(net, plan, sliced, coef, lam, gathered, k, m, beta).items():
            total = joint.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                ok[:, j] &= total > UNDERFLOW
                low_marg[x][:, j] = (joint / total).T
    return bad, LoweredSlots(low_log, low_marg, ok, slot_leaf)


def _backward(
    net: CompiledNetwork,
    plan: SweepPlan,
    kept_alpha: Mapping[int, tuple[int, np.ndarray]],
    coef: Mapping[tuple[int, int], Transition],
    lam: Mapping[int, np.ndarray],
    gathered: Mapping[int, tuple[tuple[int, ...], np.ndarray, bool]],
    k: int,
    m: int,
    beta: np.ndarray,
) -> dict[int, np.ndarray]:
    """The backward sweep from the end table ``beta``: each target's joint with the evidence, ``(states, units)``
    up to a scale per unit, met with the forward table kept where it enters (``kept_alpha``). A slot axis of
    one state in ``beta`` (and in the kept tables) is a slot held in state 0."""
    bits = _LETTERS[-k:] if k else ""
    joints = {}
    for i in range(len(plan.steps) - 1, -1, -1):
        step = plan.steps[i]
        x = step.variable
        letter = {v: _LETTERS[j] for j, v in enumerate(step.scope)}
        kept_text = "".join(letter[v] for v in step.kept) + bits + "Z"
        if i in kept_alpha:
            _, a = kept_alpha[i]
            joints[x] = einsum("".join(letter[v] for v in step.scope) + bits + "Z," + kept_text + "->" + letter[x] + "Z", a, beta)
        if i == 0:
            break
        # beta with x's axis (where x left at this step), then the transposed transitions, then the tables
        with_x = tuple(v for v in step.scope if v in step.kept or v == x)
        if x in step.kept:
            full = beta.copy()
        else:
            pos = with_x.index(x)
            full = np.ascontiguousarray(np.broadcast_to(np.expand_dims(beta, pos), (*beta.shape[:pos], net.cards[x], *beta.shape[pos:])))
        _transitions(full, coef, x, with_x.index(x), len(with_x), k, forward=False)
        specs, operands = _entering(x, step.tables, lam, gathered, letter)
        specs.insert(0, "".join(letter[v] for v in with_x) + bits + "Z")
        operands.insert(0, full)
        beta = einsum(",".join(specs) + "->" + "".join(letter[v] for v in step.scope[:-1]) + bits + "Z", *operands)
        beta, _ = _rescaled(beta, np.zeros(m), m)
    return joints


def _entering(
    x: int,
    tables: Sequence[int],
    lam: Mapping[int, np.ndarray],
    gathered: Mapping[int, tuple[tuple[int, ...], np.ndarray, bool]],
    letter: Mapping[int, str],
) -> tuple[list[str], list[np.ndarray]]:
    """The einsum subscripts and operands of what comes in with ``x``: its likelihood and the CPD ``tables``."""
    specs, operands = [], []
    if x in lam:
        specs.append(letter[x] + "Z")
        operands.append(lam[x].T)
    for v in tables:
        axes, table, batched = gathered[v]
        specs.append("".join(letter[a] for a in axes) + ("Z" if batched else ""))
        operands.append(table)
    return specs, operands


def _transitions(
    table: np.ndarray,
    coef: Mapping[tuple[int, int], Transition],
    x: int,
    axis: int,
    n_scope: int,
    k: int,
    *,
    forward: bool,
) -> None:
    """Apply (or, backward, transpose) the slot transitions of variable ``x`` in place; ``x`` is axis ``axis``
    of the ``n_scope`` scope axes, the ``k`` slot axes follow. Only the states of ``x`` that move a chain
    are touched (the others are the identity)."""
    before: tuple[slice | int, ...] = (slice(None),) * axis
    for s in range(k):
        c = coef.get((x, s))
        if c is None:
            continue
        for state in c.moving:
            sub = table[(*before, state)]  # a view without x's axis: slot s is axis n_scope - 1 + s
            stay0, rise = c.stay0[state], c.rise[state]  # (units,): the last axis
            zero = (slice(None),) * (n_scope - 1 + s) + (0,)
            if sub.shape[n_scope - 1 + s] == 1:  # a slot held in state 0 (backward only): it stays there
                sub[zero] *= stay0
                continue
            one = (slice(None),) * (n_scope - 1 + s) + (1,)
            t0, t1 = sub[zero], sub[one]
            if forward:
                moved = rise * t0
                if c.stay1 is not None:
                    t1 *= c.stay1[state]
                t1 += moved
                t0 *= stay0
            else:
                t0 *= stay0
                t0 += rise * t1
                if c.stay1 is not None:
                    t1 *= c.stay1[state]


def _rescaled(table: np.ndarray, log_scale: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The table scaled per case (last axis) to a largest entry of one, and the logs of the scales added."""
    peak = table.reshape(-1, m).max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    return table / peak, log_scale + np.log(peak)


def _gathered(
    net: CompiledNetwork, table: np.ndarray, v: int, hard: frozenset[int], states: Mapping[int, np.ndarray]
) -> tuple[tuple[int, ...], np.ndarray, bool]:
    """Variable ``v``'s CPD table with its hard axes taken at each case's state: ``(free axes, table, per case)``."""
    axes = (v, *net.parents[v])
    taken = [j for j, a in enumerate(axes) if a in hard]
    if not taken:
        return axes, table, False
    free = tuple(a for a in axes if a not in hard)
    moved = np.moveaxis(table, taken, list(range(len(taken))))
    per_case = moved[tuple(states[axes[j]] for j in taken)]  # (cases, free axes...)
    return free, np.ascontiguousarray(np.moveaxis(per_case, 0, -1)), True
