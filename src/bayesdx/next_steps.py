"""Cost-aware value of information: which question or test to do next, and when to stop.

For a case with evidence ``e`` every unobserved finding (a question), every test not done and every study
(tests done together, such as EMG with nerve conduction: ``[[studies]]`` in the model file) none of whose
tests is done is a candidate ``X``; a study's outcomes are the combinations of its tests' states. Its
expected information gain, in bits, about the pursued hypotheses ``H`` is

    EIG(X) = S(e) - sum_x P(X = x | e) * S(e, X = x),    S(e) = sum over h in H of h2(P(h | e)),

with ``h2`` the binary entropy. Candidates are ranked by ``value = EIG - alpha * cost`` (GeNIe's
entropy-to-cost ratio), on the model's cost scale. Everything is exact and batched: each candidate's
outcomes are extra rows ``e + {X = x}`` of one engine call, and ``P(X = x | e) = P(e, x) / P(e)``.

With harm weights (:mod:`bayesdx.harm`) each pursued hypothesis's entropy is weighted by what missing it
costs, and every cause is pursued: ``S(e) = sum_h w_h h2(P(h | e))``.

Stop rule: a case should stop when no candidate has positive value, or when its leading cause is settled:
for every candidate and every outcome with positive probability, the leading hypothesis stays first and the
set of the three leading hypotheses stays the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .engine import Decomposition
from .model import Model
from .studies import Study

__all__ = ["NextStep", "StepAnalysis", "analyse_steps", "binary_entropy_bits"]


@dataclass(frozen=True)
class NextStep:
    """A candidate next diagnostic step.

    Attributes
    ----------
    id : str
        The finding to ask about or the test to do.
    kind : str
        ``"question"`` (a finding), ``"examination"`` (a bedside test, see ``Model.examinations``) or
        ``"test"`` (one that is ordered: blood tests, neurophysiology, imaging, biopsy).
    expected_information_gain : float
        In bits, about the pursued hypotheses.
    cost : float
        On the model's cost scale.
    value : float
        ``expected_information_gain - alpha * cost``.
    """

    id: str
    kind: str
    expected_information_gain: float
    cost: float
    value: float


@dataclass(frozen=True)
class StepAnalysis:
    """Next steps of one case."""

    steps: tuple[NextStep, ...]
    settled: bool
    outcome_probabilities: Mapping[str, tuple[float, ...]]

    @property
    def should_stop(self) -> bool:
        return self.settled or not any(s.value > 0 for s in self.steps)


#: A hypothesis node with at least this many hypotheses has its clamped outcomes computed in a batch of its own.
OWN_BATCH_HYPOTHESES = 3

#: How :func:`_candidate_plans` computes a candidate's outcomes: ``("decomposed", Decomposition)`` or ``("rows", None)``.
_Plan = tuple[Literal["decomposed", "rows"], Decomposition | None]


@dataclass(frozen=True, eq=False)
class _Block:
    """One candidate of :func:`analyse_steps`: ``todo`` are the cases that leave it unobserved, each with
    ``per_case`` rows in the main batch. A subclass says how its outcomes are computed."""

    var: str
    todo: np.ndarray
    per_case: int


@dataclass(frozen=True, eq=False)
class _DecomposedBlock(_Block):
    """A noisy candidate without children: one row ``X <= level`` per level but the top."""

    dec: Decomposition


@dataclass(frozen=True, eq=False)
class _StatesBlock(_Block):
    """One row ``e + {X = x}`` per state."""


@dataclass(frozen=True, eq=False)
class _RowsBlock(_Block):
    """No rows in the main batch: outcomes by clamping hypotheses (see :func:`_clamped_outcomes`)."""


@dataclass(frozen=True, eq=False)
class _StudyBlock(_Block):
    """A study: one row per combination of its tests' states (row-major over the tests)."""

    study: Study


@dataclass(frozen=True, eq=False)
class _StudyDecomposedBlock(_Block):
    """A study of noisy leaves: one cumulative row ``X_1 <= a_1, ..., X_k <= a_k`` per combination of levels
    but the all-top one; ``decs`` are its tests' decompositions, in the order of ``study.tests``."""

    study: Study
    decs: tuple[Decomposition, ...]


def step_candidates(model: Model) -> list[str]:
    """The findings and tests that can be a next step (every one that is not a hypothesis node)."""
    hyp_nodes = {h.node for h in model.hypotheses}
    return [v for v in model.findings + model.tests if v not in hyp_nodes]


def outcome_rows_per_case(model: Model) -> int:
    """Entries of outcome rows one case needs at most (bounds the memory of a block of cases)."""
    candidates = step_candidates(model)
    study_rows = sum(int(np.prod([len(model.states[t]) for t in s.tests])) for s in model.studies.values())
    return max(1, len(candidates)) * (1 + len(model.hypotheses)) * max((len(model.states[v]) for v in candidates), default=1) + study_rows


def binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits, elementwise, with ``0 log 0 = 0``."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0.0))


def default_pursued(row: np.ndarray, n_pursued: int, min_probability: float) -> np.ndarray:
    """Indices of the pursued hypotheses: the ``n_pursued`` leading ones and any above ``min_probability``."""
    values = row.tolist()  # a handful of hypotheses: Python's sort costs less than numpy's calls
    order = sorted(range(len(values)), key=lambda k: (-values[k], k))
    chosen = order[:n_pursued] + [k for k in order[n_pursued:] if values[k] >= min_probability]
    return np.array(chosen, dtype=int)


def _top3(matrix: np.ndarray) -> np.ndarray:
    return np.argsort(-matrix, axis=1, kind="stable")[:, :3]


def _candidate_plans(model: Model, candidates: Sequence[str]) -> dict[str, _Plan]:
    """How to compute each candidate's outcomes: ``("decomposed", Decomposition)`` or ``("rows", None)``.

    A noisy candidate without children needs no extra variable: ``X <= level y`` multiplies the joint by
    ``L(y) * prod_i C_i(y, pa_i)``, one likelihood on each parent.
    """
    net = model.compiled
    index = net.index()
    with_children = {p for ps in net.parents for p in ps}
    plans: dict[str, _Plan] = {}
    for var in candidates:
        i = index[var]
        dec = net.decompositions[i] if net.decompositions else None
        if dec is not None and dec.leak_cdf is not None and i not in with_children:
            plans[var] = ("decomposed", dec)
        else:
            plans[var] = ("rows", None)
    return plans


def _clamped_outcomes(
    model: Model,
    blocks: Sequence[_RowsBlock],
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


def analyse_steps(
    model: Model,
    cases: Sequence[Mapping[str, str]],
    likelihoods: Mapping[str, np.ndarray],
    base: np.ndarray,
    base_log_z: np.ndarray,
    pursued: Sequence[np.ndarray],
    alpha: float,
    weights: np.ndarray | None = None,
) -> list[StepAnalysis]:
    """Next-step analysis for many cases in one batched engine call.

    Every (case, candidate, outcome) is a row of one batch. For a noisy candidate ``X`` without children,
    the rows are ``e + {X <= level y}`` for every level but the top, entered as likelihoods on its parents
    (see :func:`_candidate_plans`); ``P(X = y | e)`` and ``P(h, X = y | e)`` follow by differences of
    consecutive levels. Other candidates get one row per state, ``e + {X = x}``, or, when they have more
    states in all than there are hypotheses, share rows with each hypothesis clamped (see
    :func:`_clamped_outcomes`). Outcomes with probability below 1e-12 are treated as impossible.

    Parameters
    ----------
    model : Model
    cases : sequence of mapping
        The normalized evidence of each case (to know what is still unobserved).
    likelihoods : mapping of str to numpy.ndarray
        The cases' likelihood arrays, ``(n_cases, n_states)`` per observed variable.
    base : numpy.ndarray
        ``(n_cases, n_hypotheses)`` posteriors at the current evidence.
    base_log_z : numpy.ndarray
        ``log P(e)`` per case.
    pursued : sequence of numpy.ndarray
        Per case, the indices of the pursued hypotheses.
    alpha : float
        The entropy-to-cost ratio.
    weights : numpy.ndarray, optional
        ``(n_hypotheses,)`` harm weights of the pursued hypotheses (see :mod:`bayesdx.harm`): the entropy of
        each is weighted by it. Default: weight 1.
    """
    from .posteriors import hypothesis_matrix

    n = len(cases)
    net = model.compiled
    index = net.index()
    candidates = step_candidates(model)
    # ---- plan the rows
    plans = _candidate_plans(model, candidates)
    # candidates without a decomposition: one row per state (e + {X = x}) when they have fewer states in all
    # than there are hypotheses to clamp, else clamped hypotheses (see _clamped_outcomes)
    by_state = sum(len(model.states[v]) for v, (plan, _) in plans.items() if plan == "rows") <= len(model.hypotheses) + 1
    blocks: list[_Block] = []
    row_case_parts = [np.zeros(0, dtype=int)]
    for var in candidates:
        todo = np.array([k for k in range(n) if var not in cases[k]], dtype=int)
        if todo.size == 0:
            continue
        plan, dec = plans[var]
        block: _Block
        if plan == "decomposed":
            assert dec is not None  # _candidate_plans gives "decomposed" with its decomposition
            block = _DecomposedBlock(var, todo, len(dec.order) - 1, dec)
        elif by_state:
            block = _StatesBlock(var, todo, len(model.states[var]))
        else:
            block = _RowsBlock(var, todo, 0)
        blocks.append(block)
        row_case_parts.append(np.repeat(todo, block.per_case))
    for study in model.studies.values():  # tests done together: one candidate, outcomes over all their states
        todo = np.array([k for k in range(n) if not any(t in cases[k] for t in study.tests)], dtype=int)
        if todo.size:
            per_case = int(np.prod([len(model.states[t]) for t in study.tests]))
            if all(plans.get(t, ("rows", None))[0] == "decomposed" for t in study.tests):
                # every test a noisy leaf: the cumulative rows X_1 <= a_1, ..., X_k <= a_k are single likelihoods on
                # the parents (the all-top combination is e itself), as for one decomposed candidate
                decs = tuple(d for t in study.tests if (d := plans[t][1]) is not None)  # all of them: each plan is "decomposed"
                blocks.append(_StudyDecomposedBlock(study.id, todo, per_case - 1, study, decs))
                row_case_parts.append(np.repeat(todo, per_case - 1))
            else:
                blocks.append(_StudyBlock(study.id, todo, per_case, study))
                row_case_parts.append(np.repeat(todo, per_case))
    if not blocks:
        return [StepAnalysis((), True, {}) for _ in range(n)]
    clamped = _clamped_outcomes(model, [b for b in blocks if isinstance(b, _RowsBlock)], likelihoods, base, n)
    row_case = np.concatenate(row_case_parts)
    n_rows = row_case.size
    lik: dict[str, np.ndarray] = {}  # each row's own likelihoods, on top of its case's evidence
    log_scale = np.zeros(n_rows)  # log L(y) of decomposed rows
    start = 0
    for block in blocks:
        var, todo, per_case = block.var, block.todo, block.per_case
        rows = np.arange(start, start + todo.size * per_case).reshape(todo.size, per_case)
        start += rows.size
        if isinstance(block, _DecomposedBlock):
            dec = block.dec
            assert dec.leak_cdf is not None  # _candidate_plans decomposes only with a leak CDF
            for level in range(per_case):
                r = rows[:, level]
                with np.errstate(divide="ignore"):
                    log_scale[r] = np.log(dec.leak_cdf[level])
                for p, factor in zip(net.parents[index[var]], dec.factors, strict=True):
                    name = net.variables[p]
                    if name not in lik:
                        lik[name] = np.ones((n_rows, len(net.states[p])))
                    lik[name][r] = lik[name][r] * factor[level]
        elif isinstance(block, _StatesBlock):
            states = model.states[var]
            if var not in lik:
                lik[var] = np.ones((n_rows, len(states)))
            for j in range(per_case):
                r = rows[:, j]
                lik[var][r] = lik[var][r] * np.eye(len(states))[j]
        elif isinstance(block, _StudyBlock):  # one row per combination of the tests' states (row-major over the tests)
            sizes = [len(model.states[t]) for t in block.study.tests]
            for j, combo in enumerate(np.ndindex(*sizes)):
                r = rows[:, j]
                for t, code in zip(block.study.tests, combo, strict=True):
                    if t not in lik:
                        lik[t] = np.ones((n_rows, len(model.states[t])))
                    lik[t][r] = lik[t][r] * np.eye(len(model.states[t]))[code]
        elif isinstance(block, _StudyDecomposedBlock):
            study, decs = block.study, block.decs
            grid = tuple(len(d.order) for d in decs)
            for j, combo in enumerate(c for c in np.ndindex(*grid) if c != tuple(g - 1 for g in grid)):
                r = rows[:, j]
                for t, d, level in zip(study.tests, decs, combo, strict=True):
                    if level == len(d.order) - 1:
                        continue  # X_t <= top level: always true
                    assert d.leak_cdf is not None  # _candidate_plans decomposes only with a leak CDF
                    with np.errstate(divide="ignore"):
                        log_scale[r] += np.log(d.leak_cdf[level])
                    for p, factor in zip(net.parents[index[t]], d.factors, strict=True):
                        name = net.variables[p]
                        if name not in lik:
                            lik[name] = np.ones((n_rows, len(net.states[p])))
                        lik[name][r] = lik[name][r] * factor[level]
    post = model.engine.posterior(likelihoods, model.causes, n, row_case=row_case, row_likelihoods=lik)
    matrix = hypothesis_matrix(model, post.marginals, n_rows)
    matrix[post.impossible] = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        p_rows = np.exp(post.log_evidence + log_scale - base_log_z[row_case])
    p_rows[post.impossible | ~np.isfinite(p_rows)] = 0.0
    # ---- entropies, EIG, stop rule
    mask = np.zeros(base.shape)  # weight of each pursued hypothesis of each case (0 if not pursued)
    for k in range(n):
        mask[k, pursued[k]] = 1.0 if weights is None else weights[pursued[k]]
    s_now = (binary_entropy_bits(base) * mask).sum(axis=1)
    top_now = _top3(base)
    top_now_set = np.sort(top_now, axis=1)
    eig: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    unsettled = np.zeros(n, dtype=bool)
    start = 0
    for block in blocks:
        var, todo, per_case = block.var, block.todo, block.per_case
        rows = np.arange(start, start + todo.size * per_case).reshape(todo.size, per_case)
        start += rows.size
        n_states = (
            per_case
            if isinstance(block, _StudyBlock)
            else per_case + 1
            if isinstance(block, _StudyDecomposedBlock)
            else len(model.states[var])
        )
        p_x = np.zeros((todo.size, n_states))
        post_x = np.zeros((todo.size, n_states, base.shape[1]))
        if isinstance(block, _DecomposedBlock):
            dec = block.dec
            # cumulative: F[level] = P(X <= level | e), J[level] = P(h, X <= level | e); the top level is e
            levels = len(dec.order)
            cum_p = np.concatenate([p_rows[rows], np.ones((todo.size, 1))], axis=1)
            cum_j = np.concatenate([matrix[rows] * p_rows[rows][..., None], base[todo][:, None, :]], axis=1)
            prev_p = np.zeros(todo.size)
            prev_j = np.zeros((todo.size, base.shape[1]))
            for level in range(levels):
                state = dec.order[level]
                p_x[:, state] = np.maximum(cum_p[:, level] - prev_p, 0.0)
                post_x[:, state] = cum_j[:, level] - prev_j
                prev_p, prev_j = cum_p[:, level], cum_j[:, level]
            ok = p_x > 1e-12
            post_x = np.where(ok[..., None], post_x / np.where(ok, p_x, 1.0)[..., None], 0.0)
            post_x = np.clip(post_x, 0.0, 1.0)
        elif isinstance(block, _StatesBlock | _StudyBlock):
            p_x = p_rows[rows]
            post_x = matrix[rows]
        elif isinstance(block, _StudyDecomposedBlock):
            # cumulative grid F[a_1, ..., a_k] = P(X_1 <= a_1, ..., | e) (and J with the hypotheses), then the
            # joint probabilities by differences along every axis; outcomes in the tests' state order (row-major)
            study, decs = block.study, block.decs
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
            for j, states in enumerate(np.ndindex(*sizes)):  # state combination j -> its levels
                cell: tuple[slice | int, ...] = (slice(None), *(d.order.index(state) for d, state in zip(decs, states, strict=True)))
                p_x[:, j] = np.maximum(cum_p[cell], 0.0)
                post_x[:, j] = cum_j[cell]
            ok = p_x > 1e-12
            post_x = np.where(ok[..., None], post_x / np.where(ok, p_x, 1.0)[..., None], 0.0)
            post_x = np.clip(post_x, 0.0, 1.0)
        else:  # _RowsBlock
            p_x, post_x = clamped[var]
            p_x, post_x = p_x[todo], post_x[todo]
        p_x[p_x <= 1e-12] = 0.0
        flat_post = post_x.reshape(-1, base.shape[1])
        flat_case = np.repeat(todo, n_states)
        s_after = (binary_entropy_bits(flat_post) * mask[flat_case]).sum(axis=1).reshape(todo.size, n_states)
        expected = (p_x * s_after).sum(axis=1)
        gain = np.full(n, np.nan)
        gain[todo] = np.maximum(s_now[todo] - expected, 0.0)  # EIG >= 0; clip rounding only
        eig[var] = gain
        p_full = np.full((n, n_states), np.nan)
        p_full[todo] = p_x
        probs[var] = p_full
        # stop rule: does any possible outcome change the leader or the top-three set?
        top_after = _top3(flat_post)
        changed = (top_after[:, 0] != top_now[flat_case, 0]) | (np.sort(top_after, axis=1) != top_now_set[flat_case]).any(axis=1)
        changed &= p_x.ravel() > 0
        np.logical_or.at(unsettled, flat_case, changed)
    # per case, as Python objects (converted once per candidate, not once per case and candidate)
    names = [b.var for b in blocks]
    kinds = [
        "examination" if var in model.examinations else "test" if var in model.tests or var in model.studies else "question"
        for var in names
    ]
    costs = [float(model.studies[var].cost if var in model.studies else model.costs.get(var, 1.0)) for var in names]
    gains = [eig[var].tolist() for var in names]
    outcomes = [[tuple(row) for row in probs[var].tolist()] for var in names]
    unsettled_list = unsettled.tolist()
    results = []
    for k in range(n):
        steps = []
        outcome_probabilities = {}
        for j, var in enumerate(names):
            gain = gains[j][k]
            if gain != gain:  # NaN: observed in this case, not a candidate
                continue
            steps.append(NextStep(var, kinds[j], gain, costs[j], gain - alpha * costs[j]))
            outcome_probabilities[var] = outcomes[j][k]
        steps.sort(key=lambda s: (-s.value, s.cost, s.id))
        results.append(StepAnalysis(steps=tuple(steps), settled=not unsettled_list[k], outcome_probabilities=outcome_probabilities))
    return results
