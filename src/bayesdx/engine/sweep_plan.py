"""The order of a sweep (:mod:`~bayesdx.engine.sweep`): which variable enters at each step, which CPD tables
come in with it and which variables leave after it.

A sweep multiplies the network's tables into one running table, one variable at a time, and sums a
variable out as soon as every table holding it is in. The order is topological and greedy: next is the
variable, among those whose parents are in, whose step builds the smallest table (ties: the smaller table
after the sums, then the lower variable id). Taking any variable instead let a hub wait: on the bundled
model, the causes entered before the age group they all depend on, each held until it came (393,216 entries). Variables
observed in one state in every case ("hard") are not swept: their tables are taken at each case's state.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["SweepPlan", "SweepStep", "sweep_plan"]


@dataclass(frozen=True)
class SweepStep:
    """One step of a sweep.

    Attributes
    ----------
    variable : int
        The variable that enters.
    tables : tuple of int
        The variables whose CPD tables are multiplied in at this step (every other variable of each is in).
    scope : tuple of int
        The running table's variables once ``variable`` is in: those kept by the step before, then ``variable``.
    kept : tuple of int
        Its variables after the step's sums (a subsequence of ``scope``): those with a table still to come.
    """

    variable: int
    tables: tuple[int, ...]
    scope: tuple[int, ...]
    kept: tuple[int, ...]


@dataclass(frozen=True)
class SweepPlan:
    """The steps of a sweep over the free variables of ``core``, and the tables taken whole at the cases' states.

    Attributes
    ----------
    steps : tuple of SweepStep
    constant : tuple of int
        Variables whose CPD table holds hard variables only: one number per case.
    largest : int
        Entries of the largest running table, per case and per state of the carried findings.
    entries : int
        Entries of all the running tables, per case and per state of the carried findings (the work).
    """

    steps: tuple[SweepStep, ...]
    constant: tuple[int, ...]
    largest: int
    entries: int


def sweep_plan(parents: Sequence[Sequence[int]], cards: Sequence[int], core: Collection[int], hard: Collection[int]) -> SweepPlan:
    """The greedy sweep order over ``core`` (closed under parents) with ``hard`` variables taken at their states.

    Parameters
    ----------
    parents : sequence of sequence of int
        Each variable's parents.
    cards : sequence of int
        Each variable's number of states.
    core : collection of int
        The variables whose tables the sweep multiplies (every parent of one is in ``core``).
    hard : collection of int
        Variables of ``core`` observed in one state in every case.

    Returns
    -------
    SweepPlan

    Examples
    --------
    A chain ``0 -> 1 -> 2``: 0 enters with its table, 1 with its own (0 then leaves), 2 with its own (1 leaves).

    >>> plan = sweep_plan([(), (0,), (1,)], [2, 2, 2], {0, 1, 2}, set())
    >>> [(s.variable, s.tables, s.scope, s.kept) for s in plan.steps]
    [(0, (0,), (0,), (0,)), (1, (1,), (0, 1), (1,)), (2, (2,), (1, 2), ())]
    """
    hard_set = set(hard)
    free = sorted(set(core) - hard_set)
    variables_of = {v: frozenset(({v} | set(parents[v])) - hard_set) for v in sorted(core)}
    constant = tuple(v for v, vs in variables_of.items() if not vs)
    holders: dict[int, set[int]] = {x: set() for x in free}
    for v, vs in variables_of.items():
        for x in vs:
            holders[x].add(v)
    entered: set[int] = set()
    applied: set[int] = set(constant)
    kept: tuple[int, ...] = ()
    steps: list[SweepStep] = []
    largest = 1
    entries = 0
    remaining = set(free)
    while remaining:
        best = None
        ready = [x for x in sorted(remaining) if all(q in entered or q in hard_set for q in parents[x])]
        for x in ready:  # parents first (a variable's table then comes in with it): a topological order
            inside = entered | {x}
            now = {v for v in holders[x] if v not in applied and variables_of[v] <= inside}
            done = applied | now
            scope = (*kept, x)
            after = tuple(y for y in scope if not holders[y] <= done)
            key = (math.prod(cards[y] for y in scope), math.prod(cards[y] for y in after), x)
            if best is None or key < best[0]:
                best = (key, x, tuple(sorted(now)), scope, after)
        assert best is not None
        (peak, _, _), x, now_tables, scope, after = best
        largest = max(largest, peak)
        entries += peak
        steps.append(SweepStep(x, now_tables, scope, after))
        entered.add(x)
        applied.update(now_tables)
        remaining.discard(x)
        kept = after
    return SweepPlan(tuple(steps), constant, largest, entries)
