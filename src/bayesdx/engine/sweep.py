"""Positive findings on noisy leaves carried through a sweep of the network: exact, with no signed terms.

Quickscore (:mod:`~bayesdx.engine.quickscore`) enters a noisy finding observed above its lowest level as
``F(y) - F(y - 1)``, two products of opposite sign, so ``k`` such findings make ``2**k`` signed terms whose
sum is the small ``P(e)``. On the bundled model's vignettes (about five such findings a case) the terms
cancel by more than ``1e4`` in half of the cases and by more than ``1e7`` in a tenth: those cases are
recomputed in extended precision, or in contractions of their own.

A sweep never subtracts. It multiplies the CPD tables of the other variables into one running table, one
variable at a time (:mod:`~bayesdx.engine.sweep_plan`), and carries for each such finding (a *slot*) one
binary state: whether the largest level its causes have produced so far is below the observed range
(state 0) or in it (state 1). This is the sequential form of a noisy-MAX CPD (Heckerman and Breese 1996,
"Causal independence for probability assessment and inference using Bayesian networks", IEEE Trans. SMC-A
26:826-831): the child's level is the largest of the levels its causes produce one by one, so ``P(level in
[lo, hi] | pa)`` is the probability that a two-state chain over the parents ends in state 1. With the
CDF factors of :class:`~bayesdx.engine.network.Decomposition`, ``C_i(t, x)`` (the probability that parent
``i`` in state ``x`` produces at most level ``t``) and the leak's ``L(t)``:

- start: state 0 with ``L(lo - 1)``, state 1 with ``L(hi) - L(lo - 1)``;
- a parent in state ``x``: 0 stays 0 with ``C(lo - 1, x)`` and moves to 1 with ``C(hi, x) - C(lo - 1, x)``;
  1 stays 1 with ``C(hi, x)`` (the rest leaves the range);
- the finding's likelihood is the probability of ending in state 1, times the likelihood's value there.

Every number is a probability, every operation a product or a sum of non-negative numbers, so each result
carries a relative rounding error of a few machine epsilons per step, whatever the findings: nothing
cancels. What remains is range: the end state a case needs can be far smaller than the largest entry of its
table (findings that all but rule each other out). Below 1e-250 of it, or at zero, the case is computed
again with its findings inside a contraction of its own. The
transitions of one slot commute (the largest level does not depend on the order the causes are taken in),
so each is applied when its parent enters; a parent observed in every case folds into the slot's start.

Marginals come from a backward sweep (the transposed steps, from the end state "every slot in state 1")
met with the forward tables: ``P(x, e) = sum alpha_i * beta_i`` over everything but ``x`` at the step where
``x`` enters. Both sweeps rescale their table per case to a largest entry of one and keep the logs.

A slot whose range starts just above the lowest level, held in state 0 to the end, is the case with that
finding at its lowest level instead (every cause and the leak produced the lowest level): its end state is
that case's ``P(e)``, and one backward sweep from it gives its marginals, the rows counterfactual scores ask
for (``lower``), with no sweep of their own.

Findings at their lowest level, or observed in a range that starts there (one product each), fold into
their parents' likelihoods as in Quickscore. A case whose findings are not of these forms (soft evidence
that is not constant on a range of levels) is left to Quickscore.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .execute import finish
from .network import BatchPosterior, CompiledNetwork, Lowered
from .quickscore import expand, lowerable
from .sweep_factors import LeafFactors
from .sweep_plan import SweepPlan, sweep_plan
from .sweep_run import LoweredSlots, sweep_passes

if TYPE_CHECKING:
    from .engine import InferenceEngine

__all__ = ["SWEEP", "SWEEP_ENTRIES", "SWEEP_SLOTS", "positive_findings"]

#: Use the sweep at all (the routes of Quickscore only without it).
SWEEP = True
#: A case (or row) is swept when it has at least this many findings above their lowest level ...
SWEEP_SLOTS = 6
#: ... and at least this many cases of the call share its number of slots and its hard evidence (a group);
#: fewer cost less in Quickscore than a group's fixed cost (2-4 ms, its steps' numpy calls).
SWEEP_UNITS = 16
#: ... and its running table has at most this many entries per case. A larger one costs more than
#: Quickscore's terms in double precision (one contraction step per variable against a sweep's step and
#: a few operations per slot): such cases are swept only where Quickscore's terms cancel (below).
DIRECT_ENTRIES = 2**10
#: A group of this many cases Quickscore finds past double precision's budget is swept instead of redone in
#: extended precision, where a case's sweep (its running tables: ``2**k`` times the plan's entries) is at most
#: ``RESCUE_RATIO`` times its number of terms: on the bundled model a term in extended precision took about
#: 4 us, an entry of a sweep's tables 0.02-0.07 us. A case Quickscore would give a contraction of its own is
#: always swept (where it fits ``SWEEP_ENTRIES``).
RESCUE_UNITS = 16
RESCUE_RATIO = 80.0
#: A chunk of at least this many units gives its lowered cases itself (one backward sweep per slot held in
#: state 0); a smaller one leaves them to the caller, who asks for them in one batch with the other cases' rows.
HELD_UNITS = 16
#: Largest running table of a sweep, in entries per case (its slots' states included); larger: Quickscore.
SWEEP_ENTRIES = 2**14
#: Entries of the forward tables kept for the marginals, per chunk of cases.
CHUNK_ENTRIES = 2**21


class _Cache:
    """What a sweep keeps per engine: the plans (per core and hard evidence), the leaves' factors and the
    cores (per evidence, rows and targets)."""

    def __init__(self, net: CompiledNetwork) -> None:
        self.plans: dict[tuple[frozenset[int], frozenset[int]], SweepPlan] = {}
        self.factors = LeafFactors(net)
        self.cores: dict[tuple[frozenset[int], frozenset[int], tuple[int, ...], tuple[int, ...]], frozenset[int]] = {}


_caches: weakref.WeakKeyDictionary[InferenceEngine, _Cache] = weakref.WeakKeyDictionary()


def _cache(engine: InferenceEngine) -> _Cache:
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches[engine] = _Cache(engine.network)
    return cache


def positive_findings(
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
) -> BatchPosterior:
    """Evidence on noisy leaves (same arguments as :func:`~bayesdx.engine.quickscore.expand`): Quickscore, with
    the sweep for the cases (rows) it fits.

    Cases with at least ``SWEEP_SLOTS`` findings above their lowest level are swept straight away in groups
    of ``SWEEP_UNITS`` whose tables are at most ``DIRECT_ENTRIES`` a case. Cases with at least two are swept
    where Quickscore's signed terms would cancel past double precision's budget: in place of extended
    precision where the sweep costs less (``RESCUE_UNITS``, ``RESCUE_RATIO``), always in place of a
    contraction of their own. A swept case gives its ``lowered`` values where a finding's slot starts just
    above the lowest level (held in state 0: one backward sweep per slot, in chunks of at least
    ``HELD_UNITS``); elsewhere they are not ``available``: ask the engine for them.
    """
    net = engine.network
    units = n if row_case is None else row_case.size
    row_lam = row_lam or {}
    decs = net.decompositions or ()
    with_cdfs = all(decs[v] is not None and decs[v].leak_cdf is not None and decs[v].order for v in leaves)  # type: ignore[union-attr]
    if not SWEEP or dtype is not np.float64 or units == 0 or not with_cdfs:  # (a sweep needs each leaf's CDFs)
        return expand(engine, lam, target_ids, tables, leaves, n, row_case, row_lam, dtype, lower)
    case_of = np.arange(n) if row_case is None else row_case
    known: dict[str, np.ndarray] = {}

    def many() -> np.ndarray:
        """Per unit, an upper bound on its slots: the findings whose likelihood is below its largest at the
        lowest level (computed once, when first needed: a single call mostly does not)."""
        if "many" not in known:
            above = np.zeros(n, dtype=np.int64)
            for v in leaves:
                a = lam[v]
                lowest: int = decs[v].order[0]  # type: ignore[union-attr]
                above += a[:, lowest] < a.max(axis=1)
            known["many"] = above[case_of]
        return known["many"]

    cores = _cache(engine).cores
    key = (frozenset(lam), frozenset(row_lam), tuple(leaves), tuple(target_ids))
    core = cores.get(key)
    if core is None:
        if len(cores) > 4096:
            cores.clear()
        core = cores[key] = _core(net, lam, row_lam, leaves, target_ids)
    if not core:
        return expand(engine, lam, target_ids, tables, leaves, n, row_case, row_lam, dtype, lower)

    def sweeper(units_: np.ndarray) -> _Sweeper:
        return _Sweeper(engine, lam, row_lam, case_of, units_, core, target_ids, tables, leaves)

    marg = {t: np.full((units, len(net.states[t])), np.nan) for t in target_ids}
    log_z = np.full(units, -np.inf)
    lowered: dict[int, Lowered] = {}  # per lowered leaf, where some cases are swept straight away
    swept = np.zeros(units, dtype=bool)
    direct = np.flatnonzero(many() >= SWEEP_SLOTS) if units >= SWEEP_UNITS else np.zeros(0, dtype=np.int64)
    if direct.size >= SWEEP_UNITS:
        states = {net.variables[t]: net.cards[t] for t in target_ids}
        lowered = {  # cases without rows only, as in Quickscore
            v: Lowered.unknown(units, states)
            for v in (lower if row_case is None else ())
            if lowerable(decs[v])  # type: ignore[arg-type]
        }
        first = sweeper(direct)
        take = np.flatnonzero(first.slots >= SWEEP_SLOTS)
        done = first.run(take, first.units[take], marg, log_z, SWEEP_UNITS, DIRECT_ENTRIES, lowered=lowered)
        swept[first.units[take[done]]] = True
    rest = np.flatnonzero(~swept)
    whole = rest.size == units

    def rescue(
        pending: np.ndarray,
        terms: np.ndarray,
        costly: bool,
        part_marg: dict[int, np.ndarray],
        part_log_z: np.ndarray,
        part_lowered: Mapping[int, Lowered],
    ) -> np.ndarray:
        """Sweep the units ``pending`` (positions in Quickscore's batch, with ``terms`` signed terms each) that
        fit: all where they would need contractions of their own (``costly``), else where the sweep costs less
        than the terms in extended precision; a mask of those done."""
        done = np.zeros(pending.size, dtype=bool)
        if not pending.size or (not costly and pending.size < RESCUE_UNITS):
            return done  # extended precision costs them less than a sweep's fixed cost
        unit = pending if whole else rest[pending]
        asked = np.flatnonzero(many()[unit] >= 2)
        if not asked.size or (not costly and asked.size < RESCUE_UNITS):
            return done
        order = np.argsort(unit[asked], kind="stable")
        asked = asked[order]
        second = sweeper(unit[asked])  # its units ascending: a subset of unit[asked]
        where = np.searchsorted(unit[asked], second.units)
        smallest, terms_of = (1, None) if costly else (RESCUE_UNITS, terms[asked[where]])
        done[asked[where]] = second.run(
            np.arange(second.units.size), pending[asked[where]], part_marg, part_log_z, smallest, terms=terms_of, lowered=part_lowered
        )
        return done

    if whole:
        return expand(engine, lam, target_ids, tables, leaves, n, row_case, row_lam, dtype, lower, rescue=rescue)
    extended = np.zeros(units, dtype=bool)
    own = np.zeros(units, dtype=bool)
    if rest.size:
        if row_case is None:
            sub = {v: a[rest] for v, a in lam.items()}
            part = expand(engine, sub, target_ids, tables, leaves, rest.size, dtype=dtype, lower=lower, rescue=rescue)
            for v, low in lowered.items():
                got = part.lowered[net.variables[v]]
                low.log_evidence[rest] = got.log_evidence
                low.available[rest] = got.available
                for target, values in got.marginals.items():
                    low.marginals[target][rest] = values
        else:
            part = expand(
                engine, lam, target_ids, tables, leaves, n, row_case[rest], {v: a[rest] for v, a in row_lam.items()}, dtype, rescue=rescue
            )
        log_z[rest] = part.log_evidence
        for t in target_ids:
            marg[t][rest] = part.marginals[net.variables[t]]
        if part.extended is not None:
            extended[rest] = part.extended
        if part.own_contraction is not None:
            own[rest] = part.own_contraction
    route = "sweep" if not rest.size else "quickscore"
    by_name = {net.variables[v]: low for v, low in lowered.items()}
    return finish(net, marg, log_z, None, route=route, extended=extended, own_contraction=own, lowered=by_name)


def _kind(net: CompiledNetwork, v: int, lam_v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How each case's evidence on noisy leaf ``v`` enters a sweep.

    The likelihoods a sweep takes are a constant ``c`` on a range of levels ``[lo, hi]`` and zero elsewhere.
    From the lowest level (``lo = 0``) that is one product, ``c P(level <= hi | pa) = c L(hi) prod_i C_i(hi,
    pa_i)``: kind 0 at level ``hi``, value ``c L(hi)`` (an unobserved leaf, all ones, is one at its top level).
    Above it, kind 2: a slot for ``[lo, hi]``, value ``c``. Anything else is kind -1 (left to Quickscore).

    Returns ``(kind, lo, hi, value)`` per case.
    """
    dec = net.decompositions[v]  # type: ignore[index]
    assert dec is not None
    assert dec.leak_cdf is not None
    by_level = lam_v[:, list(dec.order)]
    positive = by_level > 0
    lo = np.argmax(positive, axis=1)
    hi = by_level.shape[1] - 1 - np.argmax(positive[:, ::-1], axis=1)
    value = by_level[np.arange(lam_v.shape[0]), lo]
    flat = (positive.sum(axis=1) == hi - lo + 1) & (np.where(positive, by_level, value[:, None]) == value[:, None]).all(axis=1)
    kind = np.where(flat & (value > 0), np.where(lo == 0, 0, 2), -1)
    return kind, lo, hi, np.where(kind == 0, value * dec.leak_cdf[hi], value)


def _core(
    net: CompiledNetwork, lam: Mapping[int, np.ndarray], row_lam: Mapping[int, np.ndarray], leaves: Sequence[int], target_ids: Sequence[int]
) -> frozenset[int]:
    """The variables a sweep multiplies in: ancestors of the evidence (the leaves excluded, their parents
    included) and of the targets. Empty where a leaf is also a parent here (not a leaf then)."""
    leaf_set = set(leaves)
    seeds = {p for v in leaves for p in net.parents[v]} | (set(lam) - leaf_set) | set(row_lam) | set(target_ids)
    core = net.ancestors(sorted(seeds))
    return frozenset() if core & leaf_set else frozenset(core)


class _Sweeper:
    """The units of a batch a sweep may take (at least two findings above their lowest level, every finding of
    a form it takes: :func:`_kind`), and what their groups share."""

    def __init__(
        self,
        engine: InferenceEngine,
        lam: Mapping[int, np.ndarray],
        row_lam: Mapping[int, np.ndarray],
        case_of: np.ndarray,
        candidates: np.ndarray,
        core: frozenset[int],
        target_ids: Sequence[int],
        tables: Sequence[np.ndarray],
        leaves: Sequence[int],
    ) -> None:
        net = engine.network
        kinds = [_kind(net, v, lam[v][case_of[candidates]]) for v in leaves]
        slots = sum([(kind == 2).astype(np.int64) for kind, *_ in kinds], np.zeros(candidates.size, dtype=np.int64))
        fits = slots >= 2
        for kind, *_ in kinds:
            fits &= kind >= 0
        self.units = candidates[fits]  # ascending
        self.slots = slots[fits]
        self._kinds = [tuple(a[fits] for a in kind) for kind in kinds]
        self._net, self._engine, self._core, self._targets, self._tables, self._leaves = net, engine, core, target_ids, tables, leaves
        self._all_lam, self._row_lam, self._case_of = lam, row_lam, case_of
        targets = set(target_ids)
        self._observed = sorted(v for v in core if v in lam or v in row_lam)
        # each unit's likelihood on a core variable: its case's times its row's
        self._lam = {v: _unit(lam, row_lam, v, case_of, self.units) for v in self._observed}
        # observed in one state by the unit's case (a row's own likelihood, a clamped hypothesis say, is not
        # counted: grouping by those split the rows of next steps into many small groups)
        self._one_hot = {v: np.count_nonzero(self._lam[v], axis=1) == 1 for v in self._observed if v in lam and v not in targets}
        for v, flags in self._one_hot.items():
            flags &= np.count_nonzero(lam[v][case_of[self.units]], axis=1) == 1
        self._factors = _cache(engine).factors

    def run(
        self,
        idx: np.ndarray,
        out: np.ndarray,
        marg: dict[int, np.ndarray],
        log_z: np.ndarray,
        smallest: int = 1,
        largest: int = SWEEP_ENTRIES,
        terms: np.ndarray | None = None,
        lowered: Mapping[int, Lowered] | None = None,
    ) -> np.ndarray:
        """Sweep the units ``self.units[idx]`` into positions ``out`` of ``marg`` and ``log_z``, grouped by their
        number of slots and the core variables they observe in one state. Returns a mask over ``idx`` of the
        units done (not: a group of fewer than ``smallest`` units, a running table larger than ``largest``
        entries per unit, a unit whose sweep costs more than its ``terms`` would in extended precision (see
        ``RESCUE_RATIO``), or an underflow). ``lowered`` (per leaf, in the positions ``out``) gets the units with
        that leaf at its lowest level instead where a slot gives them (see :class:`LoweredSlots`)."""
        net = self._net
        done = np.zeros(idx.size, dtype=bool)
        if not idx.size:
            return done
        targets = set(self._targets)
        wanted = None if not lowered else np.array([v in lowered for v in self._leaves])
        one_hot = self._one_hot
        key = np.stack([self.slots[idx], *[one_hot[v][idx] for v in one_hot]], axis=1)
        groups, group_of = np.unique(key, axis=0, return_inverse=True)
        plans = _cache(self._engine).plans
        for g, row in enumerate(groups):
            at = np.flatnonzero(group_of.ravel() == g)
            hard = frozenset(v for v, flag in zip(one_hot, row[1:], strict=True) if flag)
            plan = plans.get((self._core, hard))
            if plan is None:
                plan = plans[self._core, hard] = sweep_plan(net.parents, net.cards, self._core, hard)
            k = int(row[0])
            if terms is not None:
                at = at[2**k * plan.entries <= RESCUE_RATIO * terms[at]]
            if at.size < smallest:
                continue
            if plan.largest * 2**k > largest:
                continue
            per_unit = max(1, sum(math.prod(net.cards[v] for v in s.scope) for s in plan.steps if s.variable in targets) * 2**k)
            chunk = max(1, CHUNK_ENTRIES // per_unit)
            for start in range(0, at.size, chunk):
                part = at[start : start + chunk]
                mine = idx[part]
                lam_part = {v: self._lam[v][mine] for v in self._observed}
                kinds = [_at(kind, mine) for kind in self._kinds]
                bad, low = sweep_passes(
                    net,
                    self._factors,
                    self._tables,
                    plan,
                    hard,
                    lam_part,
                    kinds,
                    self._leaves,
                    k,
                    self._targets,
                    out[part],
                    marg,
                    log_z,
                    wanted if part.size >= HELD_UNITS else None,
                )
                if low is not None:
                    self._lowered(low, out[part], lowered)  # type: ignore[arg-type]
                if bad.any():  # underflow: the findings inside a contraction of the case's own (signed terms fare worse)
                    self._contracted(mine[bad], out[part][bad], marg, log_z)
                done[part] = True
        return done

    def _lowered(self, low: LoweredSlots, out: np.ndarray, lowered: Mapping[int, Lowered]) -> None:
        """The lowered slots ``low`` of the units at positions ``out``, into ``lowered`` per leaf."""
        names = [self._net.variables[t] for t in self._targets]
        for j in range(low.available.shape[1]):
            done = np.flatnonzero(low.available[:, j])
            for li in np.unique(low.leaf[done, j]):
                at = done[low.leaf[done, j] == li]
                into = lowered[self._leaves[li]]
                into.log_evidence[out[at]] = low.log_evidence[at, j]
                into.available[out[at]] = True
                for t, name in zip(self._targets, names, strict=True):
                    into.marginals[name][out[at]] = low.marginals[t][at, j]

    def _contracted(self, idx: np.ndarray, out: np.ndarray, marg: dict[int, np.ndarray], log_z: np.ndarray) -> None:
        """The units ``self.units[idx]`` with their findings inside the contraction, into positions ``out``."""
        net = self._net
        cases = self._case_of[self.units[idx]]
        sub = {v: a[cases] for v, a in self._all_lam.items()}
        for v, a in self._row_lam.items():
            own = a[self.units[idx]]
            sub[v] = sub[v] * own if v in sub else own
        names = {net.variables[v]: a for v, a in sub.items()}
        part = self._engine.posterior(names, [net.variables[t] for t in self._targets], idx.size, tables=self._tables, expand=False)
        log_z[out] = part.log_evidence
        for t in self._targets:
            marg[t][out] = part.marginals[net.variables[t]]


def _at(kind: tuple[np.ndarray, ...], units: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(a[units] for a in kind)


def _unit(lam: Mapping[int, np.ndarray], row_lam: Mapping[int, np.ndarray], v: int, case_of: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The likelihoods of ``v`` of the units ``chosen``."""
    a = lam[v][case_of[chosen]] if v in lam else None
    if v in row_lam:
        own = row_lam[v][chosen]
        return own if a is None else a * own
    assert a is not None
    return a
