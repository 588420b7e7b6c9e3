"""Evidence on noisy-OR / noisy-MAX leaves as a sum of product terms (Heckerman's Quickscore, generalised).

A noisy leaf ``v`` with parents ``pa`` has ``P(v <= level t | pa) = L(t) prod_i C_i(t, pa_i)`` (see
:class:`~bayesdx.engine.network.Decomposition`). Its evidence, a likelihood ``lambda`` over its states,
contributes ``sum_t a_t prod_i G_i[t, pa_i]`` with ``a = W @ lambda``: a few terms, each a product of one
likelihood per parent, so a case becomes a few rows of one contraction over the rest of the network, however
its findings differ from other cases'. Positive findings give signed terms that can cancel; a finding with
at most ``TELESCOPE_PARENTS`` parents the case leaves free is entered as positive telescoped terms instead
(:func:`~bayesdx.engine.telescope.telescoped`).

A worked example (the one of ``tests/test_hand_computed.py``): one cause ``c`` with ``P(c) = 0.1`` and one
noisy-OR finding ``f`` with leak 0.05 and link 0.8, observed ``yes``. Signed, ``P(f = yes | c) = 1 -
0.95 * g(c)`` with ``g = (0.2, 1)`` for ``c`` present, absent: two terms, ``+1`` with likelihood ``(1, 1)``
and ``-0.95`` with likelihood ``(0.2, 1)``, so ``P(e) = 1 - 0.95 * (0.1 * 0.2 + 0.9) = 0.126``. The cause is
the finding's only free parent, so it is telescoped instead: one positive likelihood ``(1 - 0.95 * 0.2,
1 - 0.95) = (0.81, 0.05)`` and ``P(e) = 0.1 * 0.81 + 0.9 * 0.05 = 0.126``, with no cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .cancellation import cancellation
from .execute import finish
from .network import BatchPosterior, Decomposition, Lowered
from .telescope import telescoped

if TYPE_CHECKING:
    from .engine import InferenceEngine

__all__ = ["ERROR_BUDGET", "FORECAST", "FORECAST_ROWS", "MAX_TERMS", "ROWS_PER_BLOCK", "TELESCOPE_PARENTS", "expand", "lowerable"]

#: Most signed terms a case may expand into (2**k for k positive binary findings); above, its own contraction.
MAX_TERMS = 2**12
#: A noisy finding observed above its lowest level, with at most this many parents the case does not
#: observe, enters as positive telescoped terms instead of two signed ones (see :func:`~bayesdx.engine.telescope.telescoped`).
#: With one, that is a single exact likelihood. Two (until session 13) also saved vignettes extended precision,
#: but a telescoped finding gives no lowered case (:class:`~bayesdx.engine.network.Lowered`), so the counterfactual
#: scores asked the engine for its row: with one, 10,000 vignettes rank in 0.34 against 0.38 ms a case (one
#: process, alternating), and no measured workload is slower (sampled cases, next steps, single calls).
TELESCOPE_PARENTS = 1
#: Largest relative rounding error allowed for a case computed as a signed sum of terms, bounded by machine
#: epsilon times sum_r |term_r| * (50 + |log Z_r|) / |sum| (each term comes back from its log, log Z_r).
ERROR_BUDGET = 1e-10
#: A case's likelihood on a parent whose largest entry may have fallen below 2 to this power, as single terms
#: multiply into it, is scaled back up.
_TINY_LOG2 = -256
#: Rows of expanded terms contracted together in double precision (bounds the memory of one block: at 2**16
#: rows, 10,000 vignettes with next steps peaked at 566 MiB of process memory); half as many in extended precision.
ROWS_PER_BLOCK = 2**15
#: Forecast each case's cancellation (:func:`cancellation`) and start it at the precision it will need, when
#: a call has at least ``FORECAST_ROWS`` rows of terms.
FORECAST = True
FORECAST_ROWS = 1024


def lowerable(dec: Decomposition) -> bool:
    """Whether the lowest level's likelihood is the term ``t = 0`` alone: then :func:`expand` gives a leaf's
    ``lowered`` cases (:class:`~bayesdx.engine.network.Lowered`)."""
    low = _lowest_weights(dec)
    return bool(low[0] != 0 and np.count_nonzero(low) == 1)


def _lowest_weights(dec: Decomposition) -> np.ndarray:
    """``W[:, lowest state]``: the weight of each level on the lowest level's state."""
    return dec.weights[:, dec.order[0] if dec.order else int(np.argmax(dec.weights[0] > 0))]


def expand(
    engine: InferenceEngine,
    lam: dict[int, np.ndarray],
    target_ids: list[int],
    tables: Sequence[np.ndarray],
    leaves: list[int],
    n: int,
    row_case: np.ndarray | None = None,
    row_lam: Mapping[int, np.ndarray] | None = None,
    dtype: type = np.float64,
    lower: Sequence[int] = (),
    rescue: Callable[[np.ndarray, np.ndarray, bool, dict[int, np.ndarray], np.ndarray, Mapping[int, Lowered]], np.ndarray] | None = None,
) -> BatchPosterior:
    """Evidence on noisy leaves as a signed sum of products (Heckerman's Quickscore, generalised).

    For a noisy leaf ``v`` with likelihood ``lambda``, ``sum_y lambda(y) P(v = y | pa)`` equals
    ``sum_t a_t * prod_i G_i[t, pa_i]`` with ``a = W @ lambda`` (see :class:`Decomposition`): a few
    terms, each a product of one likelihood per parent. A negative finding has one term (``L(0)``), a
    positive binary finding two (``1`` and ``-L(0)``), an unobserved one a single term of ones.
    Single terms fold into the parents' likelihoods of the case. A case with several multi-term leaves
    becomes one row per combination of their terms, with a signed coefficient; every row is the same
    contraction over the rest of the network, so a whole batch shares one compiled program however its
    findings differ. The case's ``P(e)`` and joint marginals are the signed sums over its rows.

    The terms can cancel: the rows' relative rounding errors (about ``eps * (50 + |log Z_r|)``: the steps
    of the contraction and the way back from ``log Z_r``) grow by ``sum|terms| / |sum|``.
    A case whose bound exceeds ``ERROR_BUDGET`` is recomputed in extended precision (``np.longdouble``,
    where the platform has it), and failing that, or with more than ``MAX_TERMS`` rows, through the
    pattern-splitting path, which keeps its findings inside the contraction. With ``rescue``, the cases (rows)
    past double precision's budget, forecast or found, and those with too many terms are first offered to
    ``rescue(units, terms per unit, costly, marginals, log_evidence, lowered)``, which fills in those it can (and
    the lowered cases it can, per leaf: the :class:`Lowered` it returns, filled in place) and returns
    a mask of them (``costly``: the cases that would need contractions of their own, not extended precision).

    ``lower`` (leaves; cases without rows only) also gives each case with that leaf observed at its lowest
    level instead (:class:`~bayesdx.engine.network.Lowered`): where the leaf entered the case as signed
    terms, one of them its lowest level ``t = 0``, the rows taking that term sum, with the coefficient
    ``W[0, lowest] / a_0`` in place of ``a_0``, to exactly that case. Its own rounding bound is checked.
    """
    net = engine.network
    decs = net.decompositions
    assert decs is not None
    leaf_set = set(leaves)
    case_lam = {v: a for v, a in lam.items() if v not in leaf_set}
    copied: set[int] = set()
    case_coef = np.ones(n)  # product of the single terms; common to all rows of a case, so an input
    case_log = np.zeros(n)  # log of the scale taken out of each leaf's coefficients (no under- or overflow)
    counts: np.ndarray = np.ones(n)
    multi = []  # leaves with several signed terms in some case: (v, coefficients, term order, count per case)
    # leaves with several positive terms in some case: (count per case, place, coefficients, factors)
    positive: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]] = []
    # each case's state of the variables it observes (one-hot likelihood), -1 elsewhere: a leaf's observed
    # parents are constants of the case, its other parents are free
    observed_state = {v: np.where(np.count_nonzero(a, axis=1) == 1, np.argmax(a != 0, axis=1), -1) for v, a in lam.items()}
    lower_coef: dict[int, np.ndarray] = {}  # per lowered leaf, W[0, lowest] / a_0 per case (0: not available)

    floor: dict[int, float] = {}  # per parent folded into, a lower bound on log2 of each case's largest entry there

    def fold(rows: np.ndarray, coef: np.ndarray, factors: Sequence[tuple[int, np.ndarray]]) -> None:
        """Multiply a single term into its cases: the coefficient, and a likelihood on each parent."""
        case_coef[rows] *= coef
        for p, factor in factors:
            smallest = float(factor.min())
            if smallest == 1.0 and (factor == 1.0).all():
                continue  # an unobserved leaf: its term is all ones
            if p not in copied:
                base = case_lam.get(p)
                case_lam[p] = np.ones((n, len(net.states[p]))) if base is None else base.copy()
                copied.add(p)
                floor[p] = 0.0 if base is None else _log2_floor(case_lam[p])
            lam_p = case_lam[p]
            lam_p[rows] *= factor
            # many single terms on one parent (80 negative findings it causes, 1e-5 each) multiplied it to zero,
            # and possible evidence came out impossible: where the bound says a case's largest entry there may
            # have fallen below 2^-256, such cases are scaled back up by a power of two (exact: the scale goes to
            # case_log). The bound costs one number per term; the check, a pass over the parent's likelihoods.
            # (at most one: the cases outside ``rows`` are multiplied by one, and a weight above one lifts only its own)
            floor[p] += math.log2(min(smallest, 1.0)) if smallest > 0 else -math.inf
            if floor[p] < _TINY_LOG2:
                peak = lam_p.max(axis=1)
                low = np.flatnonzero((peak < 2.0**_TINY_LOG2) & (peak > 0))
                _, exponent = np.frexp(peak[low])
                lam_p[low] = np.ldexp(lam_p[low], -exponent[:, None])
                case_log[low] += exponent * math.log(2.0)
                floor[p] = _log2_floor(lam_p)

    for v in leaves:
        dec = decs[v]
        assert dec is not None  # leaves are decomposed variables
        # a = W @ lambda per case, as products then sums: equal likelihoods cancel to exactly zero (BLAS may not)
        a = (lam[v][:, None, :] * dec.weights[None, :, :]).sum(axis=2)  # (n, levels)
        tel = telescoped(engine.network, v, lam[v], observed_state, n, TELESCOPE_PARENTS)
        if tel is not None:
            rows, t_count, t_coef, t_factors = tel
            a[rows] = 0.0
            a[rows, 0] = 1.0  # a placeholder single term, replaced by the telescoped terms below
        scale = np.abs(a).max(axis=1)
        scale = np.where(scale > 0, scale, 1.0)
        a = a / scale[:, None]
        # the lowest level's likelihood is the term t = 0 alone, its weight W[0, lowest]
        if v in lower and row_case is None and lowerable(dec):
            with np.errstate(divide="ignore"):
                coef = np.where(a[:, 0] != 0, _lowest_weights(dec)[0] / (a[:, 0] * scale), 0.0)  # scaled back: the case's a_0
            if tel is not None:
                coef[rows] = 0.0  # telescoped there: no term of its own
            lower_coef[v] = coef
        case_log += np.log(scale)
        nonzero = a != 0
        count = nonzero.sum(axis=1)
        order = np.argsort(~nonzero, axis=1, kind="stable")  # the nonzero terms first, in level order
        single = np.flatnonzero(count == 1)
        if tel is not None:
            single = np.setdiff1d(single, rows, assume_unique=True)
            scale_t = np.abs(t_coef).max(axis=1)
            scale_t = np.where(scale_t > 0, scale_t, 1.0)
            t_coef = t_coef / scale_t[:, None]
            case_log[rows] += np.log(scale_t)
            one = t_count == 1
            if one.any():
                fold(rows[one], t_coef[one, 0], [(p, f[one, 0]) for p, f in t_factors])
            if (~one).any():
                full = np.ones(n, dtype=np.int64)
                full[rows] = t_count
                place = np.full(n, -1)
                place[rows] = np.arange(rows.size)
                positive.append((full, place, t_coef, t_factors))
            count = count.copy()
            count[rows] = t_count
        counts = np.minimum(counts * count, MAX_TERMS + 1)
        if single.size:
            term = order[single, 0]
            fold(single, a[single, term], [(p, dec.factors[i][term]) for i, p in enumerate(net.parents[v])])
        signed = count > 1
        if tel is not None:
            signed[rows] = False
        if signed.any():
            multi.append((v, a, order, np.where(signed, count, 1)))
    if row_case is None:  # one row per case
        row_case = np.arange(n)
    row_lam = row_lam or {}
    # (states, cases) and (states, rows) copies: gathering along their last axis is what the terms do
    case_columns = {v: np.ascontiguousarray(a.T) for v, a in case_lam.items()}
    row_columns = {v: np.ascontiguousarray(a.T) for v, a in row_lam.items()}
    live_states: dict[tuple[int, int], np.ndarray] = {}
    units = row_case.size
    case_counts = counts.astype(np.int64)
    counts = case_counts[row_case]  # per row of the result
    target_names = [net.variables[t] for t in target_ids]
    marg = {t: np.full((units, len(net.states[t])), np.nan) for t in target_ids}
    log_z = np.full(units, -np.inf)
    # the lowered cases, filled in by the signed sums and by ``rescue``
    lowered = {
        v: Lowered.unknown(units, {name: len(net.states[t]) for t, name in zip(target_ids, target_names, strict=True)}) for v in lower_coef
    }

    def case_terms(
        cases: np.ndarray, dtype: type, base: bool = True
    ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
        """The terms of ``cases``: where each case's start, their coefficients, (states, terms) likelihoods and
        the level each term takes of every lowered leaf (-1: not one of its signed terms).

        Built in ``dtype``: the terms of a case differ, so their rounding errors are independent and
        need the precision. Without ``base``, the likelihoods are the terms' own factors only (without the
        case's single terms and observations), on the variables some term touches.
        """
        c_count = case_counts[cases]
        term_start = np.zeros(n, dtype=np.int64)
        term_start[cases] = np.cumsum(c_count) - c_count
        term_case = np.repeat(cases, c_count)
        within = np.arange(term_case.size) - np.repeat(term_start[cases], c_count)
        term_coef = case_coef[term_case].astype(dtype)
        term_lam: dict[int, np.ndarray] = (
            {v: a.take(term_case, axis=1).astype(dtype, copy=False) for v, a in case_columns.items()} if base else {}
        )
        stride = np.ones(term_case.size, dtype=np.int64)
        choice = {v: np.full(term_case.size, -1, dtype=np.int8) for v in lower_coef}
        for v, a, order, count in multi:
            c = count.take(term_case)
            sel = np.flatnonzero(c > 1)  # the terms of the cases where this leaf has several
            if not sel.size:
                continue
            at = term_case.take(sel)
            term = order.take(at * order.shape[1] + (within.take(sel) // stride.take(sel)) % c.take(sel))
            if v in choice:
                choice[v][sel] = term
            stride[sel] *= c[sel]
            term_coef[sel] *= a.take(at * a.shape[1] + term)
            dec = decs[v]
            assert dec is not None  # v is a decomposed leaf
            ones = np.flatnonzero(dec.trivial)  # a level whose factors are all ones (the top of a CDF)
            every = ones.size and 2 * sel.size > term_case.size  # most terms: gather a level for every term, no scattered writes
            if every:
                level = np.full(term_case.size, ones[0])
                level[sel] = term
            for i, p in enumerate(net.parents[v]):
                g = dec.factors[i]  # (levels, states)
                if (v, i) not in live_states:  # a parent's state whose factor is one at every level: skipped
                    live_states[v, i] = np.flatnonzero((g != 1.0).any(axis=0))
                live = live_states[v, i]
                if live.size and p not in term_lam:
                    term_lam[p] = np.ones((len(net.states[p]), term_case.size), dtype=dtype)
                for state in live:  # one state at a time: gathers from a vector, not a table
                    if every:
                        term_lam[p][state] *= g[:, state].take(level)
                    else:
                        row = term_lam[p][state]
                        row[sel] *= g[:, state].take(term)
        for full, place, t_coef, t_factors in positive:
            c = full.take(term_case)
            sel = np.flatnonzero(c > 1)
            if not sel.size:
                continue
            term = (within[sel] // stride[sel]) % c[sel]
            stride[sel] *= c[sel]
            at = place[term_case[sel]]
            term_coef[sel] *= t_coef[at, term]
            for p, factor in t_factors:
                if p not in term_lam:
                    term_lam[p] = np.ones((len(net.states[p]), term_case.size), dtype=dtype)
                term_lam[p][:, sel] *= factor[at, term].T
        return term_start, term_coef, term_lam, choice

    def lowered_sums(
        block: np.ndarray,
        index: np.ndarray,
        position: np.ndarray,
        choice: Mapping[int, np.ndarray],
        weight: np.ndarray,
        error: np.ndarray,
        terms_marg: Sequence[np.ndarray],
        peak: np.ndarray,
        eps: float,
    ) -> None:
        """The lowered leaves of the cases ``block``: the sums over the rows that take the lowest level's term."""
        stacked = np.concatenate(terms_marg, axis=1) if terms_marg else np.zeros((weight.size, 0))  # (rows, all targets' states)
        widths = np.cumsum([0] + [m.shape[1] for m in terms_marg])
        for v, picked in choice.items():
            low = np.flatnonzero(picked[index] == 0)
            if not low.size:
                continue
            at = position[low]  # each such row's case, as a position in the block (ascending)
            first = np.flatnonzero(np.concatenate([[True], at[1:] != at[:-1]]))
            unit = at[first]
            z0 = np.add.reduceat(weight[low], first)
            value = z0 * lower_coef[v][block[unit]]
            fine = (value > 0) & (eps * np.add.reduceat(error[low], first) <= ERROR_BUDGET * np.abs(z0))
            if not fine.any():
                continue
            cases = block[unit[fine]]
            lowered[v].available[cases] = True
            lowered[v].log_evidence[cases] = peak[unit[fine]] + np.log(value[fine]) + case_log[cases]
            joint = np.add.reduceat(stacked[low] * weight[low, None], first, axis=0)[fine] / z0[fine, None]
            for k, name in enumerate(target_names):
                lowered[v].marginals[name][cases] = joint[:, widths[k] : widths[k + 1]]

    def forecast(cases: np.ndarray) -> np.ndarray:
        """The precision each case's signed sum will likely need: 0 double, 1 extended, 2 beyond (see
        :func:`cancellation`)."""
        level = np.zeros(n, dtype=np.int8)
        cases = cases[case_counts[cases] > 1]
        if not cases.size:
            return level
        touched = sorted(
            {p for v, *_ in multi for p in net.parents[v]} | {p for *_, t_factors in positive for p, _ in t_factors} | set(target_ids)
        )
        base = engine.term_rows({v: np.ascontiguousarray(a[cases].T) for v, a in case_lam.items()}, touched, cases.size, tables)
        if base is None:
            return level
        ends = np.cumsum(case_counts[cases])
        first = 0
        while first < cases.size:
            done = ends[first - 1] if first else 0
            last = max(first + 1, int(np.searchsorted(ends, done + ROWS_PER_BLOCK, side="right")))
            _, coef, factors, _ = case_terms(cases[first:last], np.float64, base=False)
            marginals = {v: base.marginals[net.variables[v]][first:last] for v in factors}
            ratio = cancellation(coef, factors, marginals, case_counts[cases[first:last]])
            steps = 50.0 + np.abs(np.nan_to_num(base.log_evidence[first:last], posinf=0.0, neginf=0.0))
            for precision in (np.float64, np.longdouble):
                level[cases[first:last]] += float(np.finfo(precision).eps) * steps * ratio > ERROR_BUDGET
            first = last
        return level

    def signed_sums(todo: np.ndarray, dtype: type) -> np.ndarray:
        """Fill in the rows ``todo``; returns those whose rounding bound exceeds the budget."""
        eps = float(np.finfo(dtype).eps)
        per_block = ROWS_PER_BLOCK * 8 // np.dtype(dtype).itemsize  # the same bytes in extended precision
        todo = todo[np.argsort(row_case[todo], kind="stable")]  # a case's rows together: its terms once per block
        ends = np.cumsum(counts[todo])
        unstable = []
        first = 0
        while first < todo.size:
            done = ends[first - 1] if first else 0
            last = max(first + 1, int(np.searchsorted(ends, done + per_block, side="right")))
            block = todo[first:last]
            first = last
            term_start, term_coef, term_lam, choice = case_terms(np.unique(row_case[block]), dtype)
            m = counts[block]
            starts = np.concatenate([[0], np.cumsum(m)[:-1]])
            rows = int(m.sum())
            row_unit = np.repeat(block, m)
            index = np.repeat(term_start[row_case[block]] - starts, m) + np.arange(rows)  # each row's term
            coef = term_coef[index]
            # likelihoods as (states, rows), the layout of the contraction
            core = {v: a.take(index, axis=1) for v, a in term_lam.items()}
            for v, column in row_columns.items():
                own = column.take(row_unit, axis=1)
                core[v] = core[v] * own if v in core else np.ascontiguousarray(own, dtype=dtype)
            post = engine.term_rows(core, target_ids, rows, tables, dtype)
            if post is None:
                post = engine.posterior(
                    {net.variables[v]: a.T for v, a in core.items()}, target_names, rows, tables=tables, expand=False, dtype=dtype
                )
            peak = np.maximum.reduceat(post.log_evidence, starts)
            finite_peak = np.where(np.isfinite(peak), peak, 0.0)
            with np.errstate(invalid="ignore"):
                weight = np.where(post.impossible, 0.0, coef * np.exp(post.log_evidence - np.repeat(finite_peak, m)))
            z = np.add.reduceat(weight, starts)
            # each weight is exp(log Z_r - peak): relative error about eps * (steps + |log Z_r|), independent
            # between rows; the sum's relative error is at most their sum over |z| (with 50 for the steps)
            error = np.abs(weight) * (50.0 + np.abs(np.where(post.impossible, 0.0, post.log_evidence)))
            spread = np.add.reduceat(error, starts)
            ok = z > 0  # a signed sum at or below zero: the evidence is impossible
            bad = (spread > 0) & (~ok | (eps * spread > ERROR_BUDGET * z))
            unstable.append(block[bad])
            keep = ~bad
            with np.errstate(divide="ignore", invalid="ignore"):
                log_z[block[keep]] = np.where(ok, finite_peak + np.log(np.where(ok, z, 1.0)), -np.inf)[keep]
                log_z[block[keep]] += case_log[row_case[block[keep]]]
                terms_marg = []
                for t, name in zip(target_ids, target_names, strict=True):
                    m_t = post.marginals[name]
                    if post.impossible.any():  # NaN there, with weight 0
                        m_t = np.where(post.impossible[:, None], 0.0, m_t)
                    terms_marg.append(m_t)
                    joint = np.add.reduceat(weight[:, None] * m_t, starts, axis=0)
                    marg[t][block[keep]] = (joint / z[:, None])[keep]
            if choice:
                lowered_sums(block, index, np.repeat(np.arange(block.size), m), choice, weight, error, terms_marg, finite_peak, eps)
        return np.concatenate(unstable) if unstable else np.zeros(0, dtype=np.int64)

    todo = np.flatnonzero((counts > 0) & (counts <= MAX_TERMS))  # no term: impossible
    longer = np.finfo(np.longdouble).eps < np.finfo(dtype).eps
    # cases forecast to cancel past a precision's budget skip it (each row's bound is still checked)
    # (not for a few rows: the forecast's own contraction and terms then cost more than the attempt it saves)
    worth = FORECAST and dtype is np.float64 and int(counts[todo].sum()) >= FORECAST_ROWS
    level = forecast(np.unique(row_case[todo]))[row_case[todo]] if worth else np.zeros(todo.size)
    if not longer:
        level = np.where(level > 0, 2, 0)
    straight = todo[level == 1]  # to extended precision
    beyond = todo[level == 2]  # to one contraction per pattern
    todo = todo[level == 0]
    if longer and units > n:
        # many rows per case (next steps, counterfactuals): the rows of a case share its terms and, nearly
        # always, their cancellation; one row per case first, and the other rows of a case whose row
        # cancelled past the budget go straight to extended precision (each row's bound is still checked)
        probe = todo[np.unique(row_case[todo], return_index=True)[1]]
        unstable = signed_sums(probe, dtype)
        cancels = np.zeros(n, dtype=bool)
        cancels[row_case[unstable]] = True
        rest = np.setdiff1d(todo, probe, assume_unique=True)
        direct = cancels[row_case[rest]]
        unstable = np.concatenate([unstable, signed_sums(rest[~direct], dtype), rest[direct]])
    else:
        unstable = signed_sums(todo, dtype)
    unstable = np.concatenate([unstable, straight])
    many = np.flatnonzero(counts > MAX_TERMS)
    if rescue is not None:  # past double precision's budget, or too many terms: another method first
        costly = np.concatenate([beyond, many])  # else a contraction of their own
        left = np.zeros(units, dtype=bool)
        left[costly[~rescue(costly, counts[costly], True, marg, log_z, lowered)]] = True
        left[unstable[~rescue(unstable, counts[unstable], False, marg, log_z, lowered)]] = True
        unstable, beyond, many = unstable[left[unstable]], beyond[left[beyond]], many[left[many]]
    extended = np.zeros(units, dtype=bool)
    if unstable.size and longer:
        extended[unstable] = True
        unstable = signed_sums(unstable, np.longdouble)
        if rescue is not None and unstable.size:  # past extended precision too
            done = rescue(unstable, counts[unstable], True, marg, log_z, lowered)
            extended[unstable[done]] = False
            unstable = unstable[~done]
    retry = np.concatenate([many, unstable, beyond])
    own = np.zeros(units, dtype=bool)
    own[retry] = True
    extended[retry] = False
    if retry.size:  # too many terms, or too much cancellation: one contraction per pattern instead
        sub = {v: a[row_case[retry]] for v, a in lam.items()}
        for v, a in row_lam.items():
            sub[v] = sub[v] * a[retry] if v in sub else a[retry]
        part = engine.posterior(
            {net.variables[v]: a for v, a in sub.items()}, target_names, retry.size, tables=tables, expand=False, dtype=dtype
        )
        log_z[retry] = part.log_evidence
        for t, name in zip(target_ids, target_names, strict=True):
            marg[t][retry] = part.marginals[name]
    by_name = {net.variables[v]: low for v, low in lowered.items()}
    return finish(net, marg, log_z, None, route="quickscore", extended=extended, own_contraction=own, lowered=by_name)


def _log2_floor(lam: np.ndarray) -> float:
    """A lower bound on log2 of every case's largest likelihood entry (cases with one above zero): log2 of the
    smallest positive entry of all (0 where there is none)."""
    positive = lam[lam > 0]
    return math.log2(float(positive.min())) if positive.size else 0.0
