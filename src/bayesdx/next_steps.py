"""Cost-aware value of information: which question or test to do next, and when to stop.

For a case with evidence ``e`` every unobserved finding (a question) and every test not done is a
candidate ``X``. Its expected information gain, in bits, about the pursued hypotheses ``H`` is

    EIG(X) = S(e) - sum_x P(X = x | e) * S(e, X = x),    S(e) = sum over h in H of h2(P(h | e)),

with ``h2`` the binary entropy. Candidates are ranked by ``value = EIG - alpha * cost`` (GeNIe's
entropy-to-cost ratio), on the model's cost scale. Everything is exact and batched: each candidate's
outcomes are extra rows ``e + {X = x}`` of one engine call, and ``P(X = x | e) = P(e, x) / P(e)``.

Stop rule: a case should stop when no candidate has positive value, or when its leading cause is settled:
for every candidate and every outcome with positive probability, the leading hypothesis stays first and the
set of the three leading hypotheses stays the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .model import Model

__all__ = ["NextStep", "StepAnalysis", "analyse_steps", "binary_entropy_bits"]


@dataclass(frozen=True)
class NextStep:
    """A candidate next diagnostic step.

    Attributes
    ----------
    id : str
        The finding to ask about or the test to do.
    kind : str
        ``"question"`` (a finding) or ``"test"``.
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


def binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits, elementwise, with ``0 log 0 = 0``."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0.0))
    return h


def default_pursued(row: np.ndarray, n_pursued: int, min_probability: float) -> np.ndarray:
    """Indices of the pursued hypotheses: the ``n_pursued`` leading ones and any above ``min_probability``."""
    order = np.argsort(-row, kind="stable")
    chosen = set(order[:n_pursued].tolist()) | set(np.flatnonzero(row >= min_probability).tolist())
    return np.array(sorted(chosen, key=lambda k: (-row[k], k)), dtype=int)


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
) -> list[StepAnalysis]:
    """Next-step analysis for many cases in one batched pass per candidate variable.

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
    """
    from .ranking import hypothesis_matrix

    n = len(cases)
    candidates = model.findings + model.tests
    hyp_nodes = {h.node for h in model.hypotheses}
    mask = np.zeros(base.shape, dtype=bool)  # pursued hypotheses of each case
    for k in range(n):
        mask[k, pursued[k]] = True
    s_now = (binary_entropy_bits(base) * mask).sum(axis=1)
    eig: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    unsettled = np.zeros(n, dtype=bool)
    top_now = _top3(base)
    top_now_set = np.sort(top_now, axis=1)
    for var in candidates:
        if var in hyp_nodes:
            continue
        todo = np.array([k for k in range(n) if var not in cases[k]], dtype=int)
        if todo.size == 0:
            continue
        n_states = len(model.states[var])
        rows = np.repeat(todo, n_states)  # case of each row
        outcome = np.tile(np.arange(n_states), todo.size)
        lik = {v: a[rows] for v, a in likelihoods.items() if v != var}
        onehot = np.zeros((rows.size, n_states))
        onehot[np.arange(rows.size), outcome] = 1.0
        lik[var] = onehot
        post = model.engine.posterior(lik, model.causes, rows.size)
        matrix = hypothesis_matrix(model, post.marginals, rows.size)
        with np.errstate(invalid="ignore"):
            p_x = np.exp(post.log_evidence - base_log_z[rows])
        p_x[post.impossible] = 0.0
        matrix[post.impossible] = 0.0
        s_after = (binary_entropy_bits(matrix) * mask[rows]).sum(axis=1)
        expected = (p_x * s_after).reshape(todo.size, n_states).sum(axis=1)
        gain = np.full(n, np.nan)
        gain[todo] = np.maximum(s_now[todo] - expected, 0.0)  # EIG >= 0; clip rounding only
        eig[var] = gain
        p_full = np.full((n, n_states), np.nan)
        p_full[todo] = p_x.reshape(todo.size, n_states)
        probs[var] = p_full
        # stop rule: does any possible outcome change the leader or the top-three set?
        top_after = _top3(matrix)
        changed = (top_after[:, 0] != top_now[rows, 0]) | (np.sort(top_after, axis=1) != top_now_set[rows]).any(axis=1)
        changed &= p_x > 0
        np.logical_or.at(unsettled, rows, changed)
    results = []
    for k in range(n):
        steps = []
        for var in candidates:
            if var not in eig or np.isnan(eig[var][k]):
                continue
            cost = float(model.costs.get(var, 1.0))
            gain = float(eig[var][k])
            steps.append(NextStep(var, "test" if var in model.tests else "question", gain, cost, gain - alpha * cost))
        steps.sort(key=lambda s: (-s.value, s.cost, s.id))
        results.append(StepAnalysis(
            steps=tuple(steps),
            settled=not bool(unsettled[k]),
            outcome_probabilities={v: tuple(float(x) for x in probs[v][k]) for v in probs if not np.isnan(probs[v][k]).any()},
        ))
    return results
