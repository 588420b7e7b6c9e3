"""The public ranking API: :func:`rank_causes` for one case, :func:`score` for many."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_positive_int
from .evidence import likelihoods_from_evidence, likelihoods_from_frame, normalize_evidence
from .exceptions import ImpossibleEvidenceError
from .model import Model, _model_or_default
from .results import Diagnosis, RankedCause

__all__ = ["posterior_matrix", "rank_causes", "score"]


def posterior_matrix(model: Model, likelihoods: Mapping[str, np.ndarray], n_cases: int,
                     labels: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of every hypothesis for ``n_cases`` cases, as an ``(n_cases, n_hypotheses)`` array.

    Returns the matrix and ``log P(e)`` per case. Raises :class:`ImpossibleEvidenceError` naming the cases
    (by ``labels`` where given, else by position) whose evidence has probability zero.
    """
    post = model.engine.posterior(likelihoods, model.causes, n_cases)
    if post.impossible.any():
        where = np.flatnonzero(post.impossible)
        raise ImpossibleEvidenceError([labels[k] if labels is not None else int(k) for k in where])
    columns = [post.marginals[h.node][:, model.states[h.node].index(h.state)] for h in model.hypotheses]
    return np.column_stack(columns) if columns else np.empty((n_cases, 0)), post.log_evidence


def rank_causes(
    evidence: Mapping[str, Any] | None = None,
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
) -> Diagnosis:
    """Rank the cause hypotheses of one case by their exact posterior probability.

    Parameters
    ----------
    evidence : mapping of str to str or bool, optional
        Observed findings, tests (and known causes) as ``{variable: state}``. ``True``/``False`` map to
        ``yes``/``no``; ``None``, ``NaN`` and ``""`` mean not observed.
    model : Model, optional
        Defaults to the bundled leg-twitch model.
    priors : str or path-like, optional
        A prior setting to use instead of the model's (model files only).

    Returns
    -------
    Diagnosis

    Raises
    ------
    UnknownVariableError, InvalidStateError, TypeError
        For bad evidence.
    ImpossibleEvidenceError
        If the evidence has probability zero under the model.

    Examples
    --------
    >>> import bayesdx
    >>> dx = bayesdx.rank_causes({"painful_cramps": "yes", "age_group": "adult"})
    >>> round(sum(c.probability for c in dx.causes[:1]), 6) <= 1.0
    True
    >>> dx.causes[0].id in dx.to_frame()["id"].tolist()
    True
    """
    model = _model_or_default(model, priors, "rank_causes")
    observed = normalize_evidence(evidence, model)
    matrix, log_z = posterior_matrix(model, likelihoods_from_evidence(model, [observed]), 1, ["evidence"])
    return _diagnosis(model, observed, matrix[0], float(log_z[0]))


def _diagnosis(model: Model, observed: Mapping[str, str], row: np.ndarray, log_z: float) -> Diagnosis:
    order = np.argsort(-row, kind="stable")
    hyps = model.hypotheses
    causes = tuple(RankedCause(hyps[k].id, hyps[k].node, hyps[k].state, float(row[k])) for k in order)
    return Diagnosis(
        causes=causes,
        evidence=dict(observed),
        model_id=model.id,
        model_version=model.version,
        priors=model.priors,
        log_evidence=log_z,
        prior_probabilities=model.prior_probabilities,
        labels={c: model.labels.get(c, c) for c in model.causes},
    )


def score(
    cases: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
    top_k: int = 3,
) -> pd.DataFrame:
    """Rank causes for many cases at once.

    Parameters
    ----------
    cases : pandas.DataFrame or sequence of mappings
        One row (or mapping) per case, one column (or key) per variable; missing values mean not
        observed. Every column must be a variable of the model.
    model : Model, optional
        Defaults to the bundled leg-twitch model.
    priors : str or path-like, optional
        A prior setting to use instead of the model's (model files only).
    top_k : int, default 3
        How many causes to report per case.

    Returns
    -------
    pandas.DataFrame
        One row per case in input order (a DataFrame's index is kept), with columns ``cause_1``,
        ``probability_1``, ..., ``cause_k``, ``probability_k``; probabilities are exact and unrounded.

    Raises
    ------
    UnknownVariableError, InvalidStateError, TypeError
        For bad input, naming the case and column.
    ImpossibleEvidenceError
        Naming every case whose evidence has probability zero.

    Examples
    --------
    >>> import bayesdx
    >>> frame = bayesdx.score([{"fever": "yes", "age_group": "child"}, {"urge_to_move": "yes"}], top_k=2)
    >>> list(frame.columns)
    ['cause_1', 'probability_1', 'cause_2', 'probability_2']
    """
    check_positive_int("score", "top_k", top_k)
    model = _model_or_default(model, priors, "score")
    if isinstance(cases, pd.DataFrame):
        index = cases.index
        likelihoods = likelihoods_from_frame(model, cases, row_label="case")
        n = len(cases)
    elif isinstance(cases, Sequence) and not isinstance(cases, (str, bytes)):
        observed = [normalize_evidence(c, model, where=f" in case {k}") for k, c in enumerate(cases)]
        index = pd.RangeIndex(len(observed))
        likelihoods = likelihoods_from_evidence(model, observed)
        n = len(observed)
    else:
        raise TypeError(
            "The 'cases' parameter of score must be a pandas DataFrame or a list of mappings. "
            f"Got {type(cases).__name__} instead."
        )
    k = min(top_k, len(model.hypotheses))
    columns = [name for j in range(1, k + 1) for name in (f"cause_{j}", f"probability_{j}")]
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c.startswith("cause") else float) for c in columns}, index=index)
    matrix, _ = posterior_matrix(model, likelihoods, n, list(index))
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    ids = np.array([h.id for h in model.hypotheses], dtype=object)
    data: dict[str, Any] = {}
    for j in range(k):
        data[f"cause_{j + 1}"] = ids[order[:, j]]
        data[f"probability_{j + 1}"] = matrix[np.arange(n), order[:, j]]
    return pd.DataFrame(data, index=index, columns=columns)
