"""Posteriors of cause hypotheses from the engine: the presenting complaint, the hypothesis matrix and the
evidence each case carries (the layer between the inference engine and the pipeline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .engine.network import Lowered
from .exceptions import ImpossibleEvidenceError
from .model import Model

__all__ = [
    "add_presenting",
    "hypothesis_matrix",
    "observed_from_likelihoods",
    "posterior_matrix",
    "posteriors_and_lowered",
    "with_presenting",
]


def with_presenting(model: Model, observed: Mapping[str, str]) -> dict[str, str]:
    """The case's evidence plus the model's presenting complaint, unless the case states it otherwise."""
    return {**model.presenting, **observed}


def add_presenting(model: Model, likelihoods: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Likelihood arrays with the presenting complaint set in every case that leaves it unobserved."""
    result = dict(likelihoods)
    for var, state in model.presenting.items():
        onehot = np.zeros(len(model.states[var]))
        onehot[model.states[var].index(state)] = 1.0
        if var not in result:
            result[var] = np.tile(onehot, (n, 1))
        else:
            arr = result[var].copy()
            arr[(arr == 1.0).all(axis=1)] = onehot
            result[var] = arr
    return result


def hypothesis_matrix(model: Model, marginals: Mapping[str, np.ndarray], n_cases: int) -> np.ndarray:
    """``(n_cases, n_hypotheses)`` posteriors from the engine's per-node marginals."""
    # one fancy index per run of consecutive hypotheses of one node (a cause's states are listed together),
    # none where the run is every state of the node in order
    parts = [marginals[node] if idx is None else marginals[node][:, idx] for node, idx in model._hypothesis_columns]
    if not parts:
        return np.empty((n_cases, 0))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def posterior_matrix(
    model: Model, likelihoods: Mapping[str, np.ndarray], n_cases: int, labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of every hypothesis for ``n_cases`` cases, as an ``(n_cases, n_hypotheses)`` array.

    Returns the matrix and ``log P(e)`` per case. Raises :class:`ImpossibleEvidenceError` naming the cases
    (by ``labels`` where given, else by position) whose evidence has probability zero.
    """
    matrix, log_z, _, _ = posteriors_and_lowered(model, likelihoods, n_cases, labels)
    return matrix, log_z


def posteriors_and_lowered(
    model: Model,
    likelihoods: Mapping[str, np.ndarray],
    n_cases: int,
    labels: Sequence[Any] | None = None,
    lower: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, dict[str, Lowered], dict[str, np.ndarray]]:
    """:func:`posterior_matrix` and, from the same engine call, the cases with each finding of ``lower``
    observed at its lowest level where the engine gives them, and every cause's marginals (both for the
    counterfactual scores)."""
    post = model.engine.posterior(likelihoods, model.causes, n_cases, lower=lower)
    if post.impossible.any():
        where = np.flatnonzero(post.impossible)
        raise ImpossibleEvidenceError([labels[int(k)] if labels is not None else int(k) for k in where])
    return hypothesis_matrix(model, post.marginals, n_cases), post.log_evidence, post.lowered, post.marginals


def observed_from_likelihoods(model: Model, likelihoods: Mapping[str, np.ndarray], n: int) -> list[dict[str, str]]:
    """The ``{variable: state}`` evidence of each case from one-hot likelihood arrays."""
    observed: list[dict[str, str]] = [{} for _ in range(n)]
    for var, arr in likelihoods.items():
        hit = np.flatnonzero(arr.sum(axis=1) == 1.0)
        states = model.states[var]
        for row, code in zip(hit.tolist(), arr[hit].argmax(axis=1).tolist(), strict=True):
            observed[row][var] = states[code]
        for alias in model.aliases.get(var, {}):
            vector = model.answer_vector(var, alias)
            for row in np.flatnonzero((arr == vector).all(axis=1)).tolist():
                observed[row][var] = alias
    return observed
