"""The public ranking API: :func:`rank_causes` for one case, :func:`score` for many.

Both are thin: the work is the pipeline of :mod:`bayesdx.pipeline` (and :func:`bayesdx.scoring.score_frame`
for tables). The names that used to live here are imported back for compatibility.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._validation import check_positive_int
from .evidence import likelihoods_from_evidence, normalize_evidence
from .exceptions import ImpossibleEvidenceError
from .model import Model, _model_or_default
from .pipeline import (  # noqa: F401  (re-exported)
    STEP_BLOCK,
    STEP_BLOCK_ENTRIES,
    analyse_cases,
    rank_order,
    ranking_scores,
    resolve_ranking,
    triage_and_referral,
)
from .posteriors import (  # noqa: F401  (re-exported)
    add_presenting,
    hypothesis_matrix,
    observed_from_likelihoods,
    posterior_matrix,
    with_presenting,
)
from .results import Diagnosis
from .scoring import SCORE_BLOCK, STEP_COLUMNS, score_frame  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["analyse_cases", "hypothesis_matrix", "posterior_matrix", "rank_causes", "score"]


def rank_causes(
    evidence: Mapping[str, Any] | None = None,
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
    pursue: Sequence[str] | None = None,
    alpha: float | None = None,
    next_steps: bool = True,
    ranking: str | None = None,
) -> Diagnosis:
    """Rank the cause hypotheses of one case and recommend the next diagnostic step.

    Parameters
    ----------
    evidence : mapping of str to str or bool, optional
        Observed findings, tests (and known causes) as ``{variable: state}``. ``True``/``False`` map to
        ``yes``/``no``; ``None``, ``NaN`` and ``""`` mean not observed.
    model : Model, optional
        Defaults to the bundled leg-twitch model.
    priors : str or path-like, optional
        A prior setting to use instead of the model's (model files only).
    pursue : sequence of str, optional
        The cause hypotheses whose uncertainty the next step should reduce. Default: the five leading
        hypotheses plus any with posterior >= 0.2 (see ``bayesdx.options.DEFAULTS``).
    alpha : float, optional
        Entropy-to-cost ratio: bits one unit of cost is worth (default 0.01). A step's value is
        ``EIG - alpha * cost``.
    next_steps : bool, default True
        Compute the next steps and the stop rule (one extra batched pass per candidate).
    ranking : {"expected_disablement", "disablement", "posterior"}, optional
        What the causes are ranked by (default ``"expected_disablement"`` for model files, ``"posterior"``
        for networks of full tables): see :mod:`bayesdx.counterfactual`. Every result keeps the posterior
        and, under a counterfactual ranking, both counterfactual scores of every cause.

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
    >>> 0.0 <= dx.causes[0].probability <= 1.0
    True
    >>> dx.triage in ("self_care", "routine_appointment", "prompt_specialist", "emergency")
    True
    """
    model = _model_or_default(model, priors, "rank_causes")
    if not isinstance(next_steps, bool):
        raise TypeError(f"The 'next_steps' parameter of rank_causes must be a bool. Got {next_steps!r} instead.")
    observed = with_presenting(model, normalize_evidence(evidence, model))
    try:
        return analyse_cases(
            model,
            [observed],
            likelihoods_from_evidence(model, [observed]),
            ["evidence"],
            pursue=pursue,
            alpha=alpha,
            next_steps=next_steps,
            ranking=ranking,
        )[0]
    except ImpossibleEvidenceError as exc:
        raise ImpossibleEvidenceError(exc.cases, conflict=_conflict(model, observed)) from None


def _conflict(model: Model, observed: Mapping[str, str]) -> dict[str, str]:
    """Observations of an impossible case that cannot hold together, none of which can be left out: each is
    dropped in turn where the rest stays impossible (one engine call each; only when the case is impossible)."""
    kept = dict(observed)
    for name in list(observed):
        rest = {k: v for k, v in kept.items() if k != name}
        post = model.engine.posterior(likelihoods_from_evidence(model, [rest]), model.causes[:1], 1)
        if post.impossible[0]:
            kept = rest
    return kept


def score(
    cases: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
    top_k: int = 3,
    next_step: bool = False,
    alpha: float | None = None,
    ranking: str | None = None,
    id_column: str | None = None,
    ignore_columns: Sequence[str] = (),
    next_steps: bool | None = None,
) -> pd.DataFrame:
    """Rank causes for many cases at once.

    Parameters
    ----------
    cases : pandas.DataFrame, dask.dataframe.DataFrame or sequence of mappings
        One row (or mapping) per case, one column (or key) per variable; missing values mean not
        observed. Every column must be a variable of the model. A Dask DataFrame is scored partition by
        partition (``map_partitions``, see :func:`bayesdx.dask.score_dask`) and a Dask DataFrame returned.
    model : Model, optional
        Defaults to the bundled leg-twitch model.
    priors : str or path-like, optional
        A prior setting to use instead of the model's (model files only).
    top_k : int, default 3
        How many causes to report per case.
    next_step, next_steps : bool, default False
        Also report the recommended next step, triage and the stop rule (batched over all cases).
        ``next_steps`` is the name :func:`rank_causes` uses; ``next_step`` the earlier one, still accepted.
    alpha : float, optional
        Entropy-to-cost ratio for the next step (see :func:`rank_causes`).
    ranking : {"expected_disablement", "disablement", "posterior"}, optional
        What the causes are ranked by (see :func:`rank_causes`).
    id_column : str, optional
        A DataFrame in the vignette layout (``pd.read_csv("evaluation/vignettes/dev.csv")``): the column of case
        ids, which becomes the result's index. Default ``case_id`` when the frame has one.
    ignore_columns : sequence of str, default ()
        DataFrame columns to leave out. Columns named in ``KNOWN_ANNOTATIONS`` (``true_cause``, ``rationale``,
        ...) that are not model variables pass through to the result, after the scores.

    Returns
    -------
    pandas.DataFrame
        One row per case in input order (a DataFrame's index is kept), with columns ``cause_1``,
        ``probability_1``, ..., ``cause_k``, ``probability_k`` (the posterior of each listed cause) and, under a
        counterfactual ranking, ``score_1``, ..., ``score_k`` (the ranking's score); values are exact and
        unrounded. With
        ``next_step=True`` also ``next_step``, ``next_step_kind``, ``next_step_value`` (None/NaN when the
        stop rule holds), ``triage``, ``referral`` and ``should_stop``.

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
    ['cause_1', 'probability_1', 'score_1', 'cause_2', 'probability_2', 'score_2']
    """
    check_positive_int("score", "top_k", top_k)
    if next_steps is not None:
        next_step = next_steps
    if type(cases).__module__.startswith("dask.") and hasattr(cases, "map_partitions"):
        from .dask import score_dask  # partition by partition; returns a dask DataFrame

        return score_dask(cases, model=model, priors=priors, top_k=top_k, next_step=next_step, alpha=alpha, ranking=ranking)
    return score_frame(
        cases,
        model=model,
        priors=priors,
        top_k=top_k,
        next_step=next_step,
        alpha=alpha,
        ranking=ranking,
        id_column=id_column,
        ignore_columns=ignore_columns,
    )
