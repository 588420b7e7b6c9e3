"""The outcomes of each next-step candidate (:func:`bayesdx.next_steps.analyse_steps`): ``P(X = x | e)`` and
``P(h | e, X = x)`` per case, from the rows of :mod:`bayesdx.step_rows` or by clamping hypotheses.

The cumulative rows of the noisy candidates (``X <= level``) are differenced all at once, per number of
levels (:func:`decomposed_outcomes`): a call pays a few array operations for all of them, not several per
candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .model import Model
from .step_rows import Block, DecomposedBlock, RowsBlock, StatesBlock, StudyBlock, StudyDecomposedBlock

__all__ = ["OWN_BATCH_HYPOTHESES", "Outcomes", "block_outcomes", "clamped_outcomes", "decomposed_outcomes"]

#: A hypothesis node with at least this many hypotheses has its clamped outcomes computed in a batch of its own.
OWN_BATCH_HYPOTHESES = 3

#: Outcomes of candidates with the same number of outcomes: the blocks, their cases one after the other
#: (``todo``), ``P(X = x | e)`` per such case and state, and ``P(h | e, X = x)`` per case, state and hypothesis.
Outcomes = tuple[list[Block], np.ndarray, np.ndarray, np.ndarray]


def clamped_outcomes(
    model: Model,
    blocks: Sequence[RowsBlock],
    likelihoods: Mapping[str, np.ndarray],
    base_all: np.ndarray,
    n_all: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Outcome probabilities and posteriors of candidates without a decomposition, by clamping hypotheses.

    One batch holds the current evidence of each case, and one batch per hypothesis node the evidence with
    each of its hypotheses clamped (the node set to its state, so the engine slices it out). The backward
    passes give ``P(X = x | e)`` and ``P(X = x | e, h)`` for every candidate ``X`` at once, and Bayes' rule
    gives ``P(h | e, x) = P(x | e, h) P(h | e) / P(x | e)``: a few engine calls instead of one per candidate
    outcome.

    Only the cases that leave at least one of these candidates unobserved are computed. Returns, per
    variable, ``p[case, state]`` and ``posterior[case, state, hypothesis]`` for all cases (zeros elsewhere).
    """
    if not blocks:
        return {}
    variables = [b.var for b in blocks]
    need = np.unique(np.concatenate([b.todo for b in blocks]))
    likelihoods = {v: a[need] for v, a in likelihoods.items()}
    base = base_all[need]
    n = need.size
    hyps = model.hypotheses
    n_h = len(hyps)
    states_of = {v: len(model.states[v]) for v in variables}
    p_x_given_h = {v: np.zeros((n, n_h, states_of[v])) for v in variables}
    # a node with many hypotheses (pathfinder's 63 faults) gets a batch of its own: its state is then fixed
    # in every row, so the engine slices it out; the other hypotheses share one batch (fewer engine calls)
    by_node: dict[str, list[int]] = {}
    for i, h in enumerate(hyps):
        by_node.setdefault(h.node, []).append(i)
    groups: list[list[int | None]] = [[*js] for js in by_node.values() if len(js) >= OWN_BATCH_HYPOTHESES]
    # None: the unclamped row, P(x | e); it joins the shared batch
    groups.append([None, *[j for js in by_node.values() if len(js) < OWN_BATCH_HYPOTHESES for j in js]])
    p_x: dict[str, np.ndarray] = {}
    for group in groups:
        size = len(group)
        row_case = np.repeat(np.arange(n), size)
        clamps: dict[str, np.ndarray] = {}
        for k, j in enumerate(group):
            if j is None:
                continue
            node, states = hyps[j].node, model.states[hyps[j].node]
            if node not in clamps:
                clamps[node] = np.ones((row_case.size, len(states)))
            clamps[node][k::size] = np.eye(len(states))[states.index(hyps[j].state)]
        post = model.engine.posterior(likelihoods, variables, n, row_case=row_case, row_likelihoods=clamps)
        clamped = [k for k, j in enumerate(group) if j is not None]
        clamped_hyps = [j for j in group if j is not None]  # group[k] for k in clamped
        for v in variables:
            marg = np.nan_to_num(post.marginals[v], nan=0.0).reshape(n, size, -1)
            if group[0] is None:
                p_x[v] = marg[:, 0, :]
            p_x_given_h[v][:, clamped_hyps, :] = marg[:, clamped, :]
    result = {}
    for var in variables:
        joint = p_x_given_h[var] * base[:, :, None]  # P(x, h | e)
        with np.errstate(invalid="ignore", divide="ignore"):
            posterior = np.where(p_x[var][:, None, :] > 1e-12, joint / p_x[var][:, None, :], 0.0)
        full_p = np.zeros((n_all, states_of[var]))
        full_post = np.zeros((n_all, states_of[var], base_all.shape[1]))
        full_p[need] = p_x[var]
        full_post[need] = np.clip(np.transpose(posterior, (0, 2, 1)), 0.0, 1.0)
        result[var] = (full_p, full_post)
    return result


def _conditional(p_x: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Joint probabilities ``P(h, X = x | e)`` divided by ``P(X = x | e)`` where that is above 1e-12, else 0."""
    ok = p_x > 1e-12
    return np.clip(np.where(ok[..., None], joint / np.where(ok, p_x, 1.0)[..., None], 0.0), 0.0, 1.0)


def decomposed_outcomes(blocks: Sequence[DecomposedBlock], p_rows: np.ndarray, matrix: np.ndarray, base: np.ndarray) -> Outcomes:
    """Blocks of noisy candidates with the same number of levels, at once: the cumulative
    ``F[level] = P(X <= level | e)`` and ``J[level] = P(h, X <= level | e)`` (the top level is ``e``), differenced
    along the levels, each level then put at its state."""
    rows = np.concatenate([b.rows for b in blocks])  # (cases of all blocks, levels - 1)
    todo = np.concatenate([b.todo for b in blocks])
    cum_p = np.concatenate([p_rows[rows], np.ones((todo.size, 1))], axis=1)
    cum_j = np.concatenate([matrix[rows] * p_rows[rows][..., None], base[todo][:, None, :]], axis=1)
    by_level = np.maximum(np.diff(cum_p, axis=1, prepend=0.0), 0.0)
    joint = np.diff(cum_j, axis=1, prepend=0.0)
    level_of = np.repeat(np.array([np.argsort(b.dec.order) for b in blocks]), [b.todo.size for b in blocks], axis=0)  # state -> level
    p_x = np.take_along_axis(by_level, level_of, axis=1)
    return list(blocks), todo, p_x, _conditional(p_x, np.take_along_axis(joint, level_of[..., None], axis=1))


def _study_decomposed(
    model: Model, block: StudyDecomposedBlock, p_rows: np.ndarray, matrix: np.ndarray, base: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A study of noisy leaves: the cumulative grid ``F[a_1, ..., a_k] = P(X_1 <= a_1, ... | e)`` (and ``J`` with
    the hypotheses), then the joint probabilities by differences along every axis; outcomes in the tests'
    state order (row-major)."""
    study, decs, todo, rows = block.study, block.decs, block.todo, block.rows
    grid = tuple(len(d.order) for d in decs)
    h = base.shape[1]
    cum_p = np.ones((todo.size, *grid))
    cum_j = np.broadcast_to(base[todo][:, *([None] * len(grid)), :], (todo.size, *grid, h)).copy()
    combos = [c for c in np.ndindex(*grid) if c != tuple(g - 1 for g in grid)]
    for j, combo in enumerate(combos):
        cum_p[(slice(None), *combo)] = p_rows[rows[:, j]]
        cum_j[(slice(None), *combo)] = matrix[rows[:, j]] * p_rows[rows[:, j]][:, None]
    for axis in range(1, len(grid) + 1):
        cum_p = np.diff(cum_p, axis=axis, prepend=0.0)
        cum_j = np.diff(cum_j, axis=axis, prepend=0.0)
    sizes = [len(model.states[t]) for t in study.tests]
    p_x = np.zeros((todo.size, int(np.prod(sizes))))
    post_x = np.zeros((todo.size, int(np.prod(sizes)), h))
    for j, states in enumerate(np.ndindex(*sizes)):  # state combination j -> its levels
        cell: tuple[slice | int, ...] = (slice(None), *(d.order.index(state) for d, state in zip(decs, states, strict=True)))
        p_x[:, j] = np.maximum(cum_p[cell], 0.0)
        post_x[:, j] = cum_j[cell]
    return p_x, _conditional(p_x, post_x)


def block_outcomes(
    model: Model,
    blocks: Sequence[Block],
    p_rows: np.ndarray,
    matrix: np.ndarray,
    base: np.ndarray,
    clamped: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> list[Outcomes]:
    """The outcomes of every block: noisy candidates grouped by their number of levels, the others one by one.

    ``p_rows`` and ``matrix`` are each row's ``P(e + row | e)`` and hypothesis posteriors, ``base`` the cases'
    posteriors, ``clamped`` the outcomes of :func:`clamped_outcomes`.
    """
    groups: dict[int, list[DecomposedBlock]] = {}
    result: list[Outcomes] = []
    for block in blocks:
        if isinstance(block, DecomposedBlock):
            groups.setdefault(block.per_case, []).append(block)
        elif isinstance(block, StatesBlock | StudyBlock):
            result.append(([block], block.todo, p_rows[block.rows], matrix[block.rows]))
        elif isinstance(block, StudyDecomposedBlock):
            result.append(([block], block.todo, *_study_decomposed(model, block, p_rows, matrix, base)))
        else:  # RowsBlock
            p_x, post_x = clamped[block.var]
            result.append(([block], block.todo, p_x[block.todo], post_x[block.todo]))
    return [decomposed_outcomes(group, p_rows, matrix, base) for group in groups.values()] + result
