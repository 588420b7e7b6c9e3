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
from typing import overload

import numpy as np

from . import step_rows
from .model import Model
from .step_outcomes import block_outcomes, clamped_outcomes
from .step_rows import RowsBlock, plan_blocks, row_likelihoods, step_candidates

__all__ = ["NextStep", "StepAnalyses", "StepAnalysis", "analyse_steps", "binary_entropy_bits", "step_candidates"]


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

    @property
    def should_stop(self) -> bool:
        return self.settled or not any(s.value > 0 for s in self.steps)


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


def analyse_steps(
    model: Model,
    cases: Sequence[Mapping[str, str]],
    likelihoods: Mapping[str, np.ndarray],
    base: np.ndarray,
    base_log_z: np.ndarray,
    pursued: Sequence[np.ndarray],
    alpha: float,
    weights: np.ndarray | None = None,
) -> Sequence[StepAnalysis]:
    """Next-step analysis for many cases in one batched engine call.

    Every (case, candidate, outcome) is a row of one batch. For a noisy candidate ``X`` without children,
    the rows are ``e + {X <= level y}`` for every level but the top, entered as likelihoods on its parents
    (see :func:`bayesdx.step_rows.candidate_plans`); ``P(X = y | e)`` and ``P(h, X = y | e)`` follow by
    differences of consecutive levels. Other candidates get one row per state, ``e + {X = x}``, or, when they
    have more states in all than there are hypotheses, share rows with each hypothesis clamped (see
    :func:`bayesdx.step_outcomes.clamped_outcomes`). Outcomes with probability below 1e-12 are treated as
    impossible.

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

    Returns
    -------
    sequence of StepAnalysis
        One per case, made when read (:class:`StepAnalyses`).
    """
    from .posteriors import hypothesis_matrix

    n = len(cases)
    plans = step_rows.candidate_plans(model, step_candidates(model))  # (looked up on the module: a test swaps it)
    blocks, row_case = plan_blocks(model, cases, plans)
    if not blocks:
        return [StepAnalysis((), True) for _ in range(n)]
    clamped = clamped_outcomes(model, [b for b in blocks if isinstance(b, RowsBlock)], likelihoods, base, n)
    n_rows = row_case.size
    lik, log_scale = row_likelihoods(model, blocks, plans, n_rows)
    post = model.engine.posterior(likelihoods, model.causes, n, row_case=row_case, row_likelihoods=lik)
    matrix = hypothesis_matrix(model, post.marginals, n_rows)
    matrix[post.impossible] = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        p_rows = np.exp(post.log_evidence + log_scale - base_log_z[row_case])
    p_rows[post.impossible | ~np.isfinite(p_rows)] = 0.0
    # ---- entropies, EIG, stop rule: candidates with the same number of outcomes at once
    mask = np.zeros(base.shape)  # weight of each pursued hypothesis of each case (0 if not pursued)
    for k in range(n):
        mask[k, pursued[k]] = 1.0 if weights is None else weights[pursued[k]]
    s_now = (binary_entropy_bits(base) * mask).sum(axis=1)
    top_now = _top3(base)
    top_now_set = np.sort(top_now, axis=1)
    eig: dict[str, np.ndarray] = {}
    unsettled = np.zeros(n, dtype=bool)
    for group, todo, p_x, post_x in block_outcomes(model, blocks, p_rows, matrix, base, clamped):
        n_states = p_x.shape[1]
        p_x[p_x <= 1e-12] = 0.0
        flat_post = post_x.reshape(-1, base.shape[1])
        flat_case = np.repeat(todo, n_states)
        s_after = (binary_entropy_bits(flat_post) * mask[flat_case]).sum(axis=1).reshape(todo.size, n_states)
        gain = np.maximum(s_now[todo] - (p_x * s_after).sum(axis=1), 0.0)  # EIG >= 0; clip rounding only
        # stop rule: does any possible outcome change the leader or the top-three set?
        top_after = _top3(flat_post)
        changed = (top_after[:, 0] != top_now[flat_case, 0]) | (np.sort(top_after, axis=1) != top_now_set[flat_case]).any(axis=1)
        changed &= p_x.ravel() > 0
        np.logical_or.at(unsettled, flat_case, changed)
        start = 0
        for block in group:
            stop = start + block.todo.size
            eig[block.var] = np.full(n, np.nan)
            eig[block.var][block.todo] = gain[start:stop]
            start = stop
    names = [b.var for b in blocks]
    kinds = [
        "examination" if var in model.examinations else "test" if var in model.tests or var in model.studies else "question"
        for var in names
    ]
    costs = [float(model.studies[var].cost if var in model.studies else model.costs.get(var, 1.0)) for var in names]
    return StepAnalyses(names, kinds, costs, [eig[var] for var in names], unsettled, alpha)


class StepAnalyses(Sequence[StepAnalysis]):
    """The next steps of a batch of cases (:func:`analyse_steps`), each case's :class:`StepAnalysis` made when it
    is read.

    A batch's objects all at once (about 50 :class:`NextStep` a case on the bundled model) lived long enough
    for the cyclic garbage collector to walk the whole heap several times a batch: ``score(next_step=True)``
    on sampled cases spent 15-25% of its time there. Read case by case and dropped, they never accumulate.
    Each read makes new objects, equal to the last.

    Parameters
    ----------
    names, kinds : sequence of str
        Each candidate's id and kind (see :class:`NextStep`).
    costs : sequence of float
        Each candidate's cost.
    gains : sequence of numpy.ndarray
        Per candidate, ``(n_cases,)`` expected information gains; NaN where the case observed the candidate
        (not one of its steps).
    unsettled : numpy.ndarray
        ``(n_cases,)`` bool: some outcome of some candidate would change the case's leading causes.
    alpha : float
        The entropy-to-cost ratio: a step's value is its gain less ``alpha`` times its cost.
    """

    def __init__(
        self,
        names: Sequence[str],
        kinds: Sequence[str],
        costs: Sequence[float],
        gains: Sequence[np.ndarray],
        unsettled: np.ndarray,
        alpha: float,
    ) -> None:
        self._n = n = unsettled.size
        self._names, self._kinds, self._costs, self._alpha = list(names), list(kinds), list(costs), alpha
        # per candidate, as Python floats (converted once per candidate, not once per case and candidate)
        self._gains = [g.tolist() for g in gains]  # NaN: observed in the case, not a candidate
        self._unsettled = unsettled.tolist()
        # each case's candidates best first, by (-value, cost, id) as a sort of its steps would order them, for all
        # cases at once; the observed ones (NaN) after every candidate (their own key: a value of -inf, from a
        # huge cost, must not tie with them), and left out
        gain = np.column_stack(gains) if gains else np.zeros((n, 0))
        cost = np.broadcast_to(np.asarray(costs, dtype=float), gain.shape)
        by_id = np.empty(len(self._names), dtype=np.int64)
        by_id[sorted(range(len(self._names)), key=self._names.__getitem__)] = np.arange(len(self._names))
        unobserved = ~np.isnan(gain)
        with np.errstate(over="ignore", invalid="ignore"):  # as Python's floats: inf, no warning
            worse = -(gain - alpha * cost)
        self._order = np.lexsort((np.broadcast_to(by_id, gain.shape), cost, worse, ~unobserved), axis=1).tolist()
        self._count = unobserved.sum(axis=1).tolist()

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, k: int) -> StepAnalysis: ...

    @overload
    def __getitem__(self, k: slice) -> list[StepAnalysis]: ...

    def __getitem__(self, k: int | slice) -> StepAnalysis | list[StepAnalysis]:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self._n))]
        if not -self._n <= k < self._n:
            raise IndexError(f"case {k} of {self._n}")
        k %= self._n
        alpha, names, kinds, costs, gains = self._alpha, self._names, self._kinds, self._costs, self._gains
        cls = NextStep
        steps = []
        for j in self._order[k][: self._count[k]]:
            gain = gains[j][k]
            # a frozen dataclass's __init__ sets each field through object.__setattr__: filling the instance's
            # dict costs half as much (as RankedCause._many), with the same object
            step = cls.__new__(cls)
            step.__dict__.update(id=names[j], kind=kinds[j], expected_information_gain=gain, cost=costs[j], value=gain - alpha * costs[j])
            steps.append(step)
        return StepAnalysis(steps=tuple(steps), settled=not self._unsettled[k])
