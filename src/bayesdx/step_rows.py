"""The rows of a next-step analysis (:func:`bayesdx.next_steps.analyse_steps`): which candidate outcomes become
rows of one engine call, and each row's likelihoods on top of its case's evidence.

Each candidate that a case leaves unobserved is a block of rows (:class:`Block`), laid out block by block and,
within a block, case by case. A noisy candidate without children takes one row ``X <= level`` per level but
the top: a likelihood on each of its parents and the leak's CDF (:class:`DecomposedBlock`). Those likelihoods
are read from one table per model (:func:`_templates`), so that a call pays a few array operations for all
such candidates rather than several per candidate and level.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .engine import Decomposition
from .model import Model
from .studies import Study

__all__ = [
    "Block",
    "DecomposedBlock",
    "Plan",
    "RowsBlock",
    "StatesBlock",
    "StudyBlock",
    "StudyDecomposedBlock",
    "candidate_plans",
    "plan_blocks",
    "row_likelihoods",
    "step_candidates",
]

#: How :func:`candidate_plans` computes a candidate's outcomes: ``("decomposed", Decomposition)`` or ``("rows", None)``.
Plan = tuple[Literal["decomposed", "rows"], Decomposition | None]


@dataclass(frozen=True, eq=False)
class Block:
    """One candidate: ``todo`` are the cases that leave it unobserved, each with ``per_case`` rows in the main
    batch (``rows``: their positions, ``(cases, per_case)``). A subclass says how its outcomes are computed."""

    var: str
    todo: np.ndarray
    per_case: int
    rows: np.ndarray


@dataclass(frozen=True, eq=False)
class DecomposedBlock(Block):
    """A noisy candidate without children: one row ``X <= level`` per level but the top."""

    dec: Decomposition


@dataclass(frozen=True, eq=False)
class StatesBlock(Block):
    """One row ``e + {X = x}`` per state."""


@dataclass(frozen=True, eq=False)
class RowsBlock(Block):
    """No rows in the main batch: outcomes by clamping hypotheses (see ``step_outcomes.clamped_outcomes``)."""


@dataclass(frozen=True, eq=False)
class StudyBlock(Block):
    """A study: one row per combination of its tests' states (row-major over the tests)."""

    study: Study


@dataclass(frozen=True, eq=False)
class StudyDecomposedBlock(Block):
    """A study of noisy leaves: one cumulative row ``X_1 <= a_1, ..., X_k <= a_k`` per combination of levels
    but the all-top one; ``decs`` are its tests' decompositions, in the order of ``study.tests``."""

    study: Study
    decs: tuple[Decomposition, ...]


def step_candidates(model: Model) -> list[str]:
    """The findings and tests that can be a next step (every one that is not a hypothesis node)."""
    hyp_nodes = {h.node for h in model.hypotheses}
    return [v for v in model.findings + model.tests if v not in hyp_nodes]


def candidate_plans(model: Model, candidates: Sequence[str]) -> dict[str, Plan]:
    """How to compute each candidate's outcomes: ``("decomposed", Decomposition)`` or ``("rows", None)``.

    A noisy candidate without children needs no extra variable: ``X <= level y`` multiplies the joint by
    ``L(y) * prod_i C_i(y, pa_i)``, one likelihood on each parent.
    """
    net = model.compiled
    index = net.index()
    with_children = {p for ps in net.parents for p in ps}
    plans: dict[str, Plan] = {}
    for var in candidates:
        i = index[var]
        dec = net.decompositions[i] if net.decompositions else None
        if dec is not None and dec.leak_cdf is not None and i not in with_children:
            plans[var] = ("decomposed", dec)
        else:
            plans[var] = ("rows", None)
    return plans


def plan_blocks(model: Model, cases: Sequence[Mapping[str, str]], plans: Mapping[str, Plan]) -> tuple[list[Block], np.ndarray]:
    """The blocks of ``cases`` (every candidate, then every study, some case leaves unobserved) and each row's case.

    Candidates without a decomposition get one row per state (``e + {X = x}``) when they have fewer states in
    all than there are hypotheses to clamp, else clamped hypotheses (no rows here).
    """
    n = len(cases)
    by_state = sum(len(model.states[v]) for v, (plan, _) in plans.items() if plan == "rows") <= len(model.hypotheses) + 1
    blocks: list[Block] = []
    start = 0
    for var, (_, dec) in plans.items():
        todo = np.array([k for k in range(n) if var not in cases[k]], dtype=int)
        if todo.size == 0:
            continue
        # (candidate_plans gives "decomposed" with its decomposition, "rows" with None)
        per_case = len(dec.order) - 1 if dec is not None else len(model.states[var]) if by_state else 0
        rows = np.arange(start, start + todo.size * per_case).reshape(todo.size, per_case)
        start += rows.size
        if dec is not None:
            blocks.append(DecomposedBlock(var, todo, per_case, rows, dec))
        elif by_state:
            blocks.append(StatesBlock(var, todo, per_case, rows))
        else:
            blocks.append(RowsBlock(var, todo, 0, rows))
    for study in model.studies.values():  # tests done together: one candidate, outcomes over all their states
        todo = np.array([k for k in range(n) if not any(t in cases[k] for t in study.tests)], dtype=int)
        if not todo.size:
            continue
        per_case = int(np.prod([len(model.states[t]) for t in study.tests]))
        decomposed = all(plans.get(t, ("rows", None))[0] == "decomposed" for t in study.tests)
        if decomposed:
            # every test a noisy leaf: the cumulative rows X_1 <= a_1, ..., X_k <= a_k are single likelihoods on
            # the parents (the all-top combination is e itself), as for one decomposed candidate
            per_case -= 1
        rows = np.arange(start, start + todo.size * per_case).reshape(todo.size, per_case)
        start += rows.size
        if decomposed:
            decs = tuple(d for t in study.tests if (d := plans[t][1]) is not None)  # all of them: each plan is "decomposed"
            blocks.append(StudyDecomposedBlock(study.id, todo, per_case, rows, study, decs))
        else:
            blocks.append(StudyBlock(study.id, todo, per_case, rows, study))
    row_case = np.concatenate([np.zeros(0, dtype=int)] + [np.repeat(b.todo, b.per_case) for b in blocks])
    return blocks, row_case


@dataclass(frozen=True)
class _Templates:
    """One row per (decomposed candidate, level but the top): its first row per candidate, ``log L(level)``,
    and per parent the likelihood each row puts on it (ones where the candidate is not its child)."""

    first: dict[str, int]
    log_leak: np.ndarray
    factors: dict[str, np.ndarray]
    parents: dict[str, tuple[str, ...]]


_TEMPLATES: weakref.WeakKeyDictionary[Model, dict[tuple[str, ...], _Templates]] = weakref.WeakKeyDictionary()


def _templates(model: Model, plans: Mapping[str, Plan]) -> _Templates:
    """The rows of every decomposed candidate of ``plans``, built once per model (and set of such candidates)."""
    decomposed = {v: dec for v, (plan, dec) in plans.items() if plan == "decomposed" and dec is not None}
    known = _TEMPLATES.setdefault(model, {})
    key = tuple(decomposed)
    got = known.get(key)
    if got is not None:
        return got
    net = model.compiled
    index = net.index()
    first: dict[str, int] = {}
    total = 0
    for v, dec in decomposed.items():
        first[v] = total
        total += len(dec.order) - 1
    log_leak = np.zeros(total)
    factors: dict[str, np.ndarray] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for v, dec in decomposed.items():
        assert dec.leak_cdf is not None  # candidate_plans decomposes only with a leak CDF
        at = slice(first[v], first[v] + len(dec.order) - 1)
        with np.errstate(divide="ignore"):
            log_leak[at] = np.log(dec.leak_cdf[: len(dec.order) - 1])
        names = tuple(net.variables[p] for p in net.parents[index[v]])
        parents[v] = names
        for name, factor in zip(names, dec.factors, strict=True):
            if name not in factors:
                factors[name] = np.ones((total, len(model.states[name])))
            factors[name][at] = factor[: len(dec.order) - 1]
    got = known[key] = _Templates(first, log_leak, factors, parents)
    return got


def row_likelihoods(
    model: Model, blocks: Sequence[Block], plans: Mapping[str, Plan], n_rows: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each row's own likelihoods (on top of its case's evidence) and ``log L(y)`` of the cumulative rows."""
    net = model.compiled
    index = net.index()
    lik: dict[str, np.ndarray] = {}
    log_scale = np.zeros(n_rows)

    def on(name: str) -> np.ndarray:
        if name not in lik:
            lik[name] = np.ones((n_rows, len(net.states[index[name]])))
        return lik[name]

    decomposed = [b for b in blocks if isinstance(b, DecomposedBlock)]
    if decomposed:  # all at once: row r is template t (its candidate and level), each parent's likelihood a gather
        templates = _templates(model, plans)
        rows = np.concatenate([b.rows.ravel() for b in decomposed])
        which = np.concatenate([np.tile(templates.first[b.var] + np.arange(b.per_case), b.todo.size) for b in decomposed])
        log_scale[rows] = templates.log_leak[which]
        touched = dict.fromkeys(name for b in decomposed for name in templates.parents[b.var])
        for name in touched:
            on(name)[rows] = templates.factors[name][which]
    for block in blocks:
        rows = block.rows
        if isinstance(block, StatesBlock):
            states = model.states[block.var]
            for j in range(block.per_case):
                r = rows[:, j]
                on(block.var)[r] = on(block.var)[r] * np.eye(len(states))[j]
        elif isinstance(block, StudyBlock):  # one row per combination of the tests' states (row-major over the tests)
            sizes = [len(model.states[t]) for t in block.study.tests]
            for j, combo in enumerate(np.ndindex(*sizes)):
                r = rows[:, j]
                for t, code in zip(block.study.tests, combo, strict=True):
                    on(t)[r] = on(t)[r] * np.eye(len(model.states[t]))[code]
        elif isinstance(block, StudyDecomposedBlock):
            study, decs = block.study, block.decs
            grid = tuple(len(d.order) for d in decs)
            for j, combo in enumerate(c for c in np.ndindex(*grid) if c != tuple(g - 1 for g in grid)):
                r = rows[:, j]
                for t, d, level in zip(study.tests, decs, combo, strict=True):
                    if level == len(d.order) - 1:
                        continue  # X_t <= top level: always true
                    assert d.leak_cdf is not None  # candidate_plans decomposes only with a leak CDF
                    with np.errstate(divide="ignore"):
                        log_scale[r] += np.log(d.leak_cdf[level])
                    for p, factor in zip(net.parents[index[t]], d.factors, strict=True):
                        name = net.variables[p]
                        on(name)[r] = on(name)[r] * factor[level]
    return lik, log_scale
