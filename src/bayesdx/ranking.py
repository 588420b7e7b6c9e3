"""The public ranking API: :func:`rank_causes` for one case, :func:`score` for many."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_positive_int
from .counterfactual import counterfactual_scores
from .evidence import KNOWN_ANNOTATIONS, likelihoods_from_evidence, likelihoods_from_frame, normalize_evidence
from .exceptions import ImpossibleEvidenceError
from .model import Model, _model_or_default
from .next_steps import analyse_steps, default_pursued, outcome_rows_per_case
from .options import resolve
from .results import Diagnosis, RankedCause

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["analyse_cases", "hypothesis_matrix", "posterior_matrix", "rank_causes", "score"]


#: Cases whose next steps are analysed together (bounds the memory of the outcome rows) ...
STEP_BLOCK = 500
#: ... and fewer when a case needs many outcome rows: at most this many entries of outcome rows per block.
STEP_BLOCK_ENTRIES = 2**22
#: Cases whose result objects ``score(next_step=True)`` holds at once before turning them into columns.
SCORE_BLOCK = 2_000


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
    columns = [marginals[h.node][:, model.states[h.node].index(h.state)] for h in model.hypotheses]
    return np.column_stack(columns) if columns else np.empty((n_cases, 0))


def posterior_matrix(model: Model, likelihoods: Mapping[str, np.ndarray], n_cases: int,
                     labels: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of every hypothesis for ``n_cases`` cases, as an ``(n_cases, n_hypotheses)`` array.

    Returns the matrix and ``log P(e)`` per case. Raises :class:`ImpossibleEvidenceError` naming the cases
    (by ``labels`` where given, else by position) whose evidence has probability zero.
    """
    post = model.engine.posterior(likelihoods, model.causes, n_cases)
    if post.impossible.any():
        where = np.flatnonzero(post.impossible)
        raise ImpossibleEvidenceError([labels[int(k)] if labels is not None else int(k) for k in where])
    return hypothesis_matrix(model, post.marginals, n_cases), post.log_evidence


def _pursued_indices(model: Model, matrix: np.ndarray, pursue: Sequence[str] | None,
                     n_pursued: int, min_probability: float) -> list[np.ndarray]:
    if pursue is None:
        return [default_pursued(row, n_pursued, min_probability) for row in matrix]
    ids = [h.id for h in model.hypotheses]
    if isinstance(pursue, str) or not isinstance(pursue, Sequence) or not pursue:
        raise TypeError(f"The 'pursue' parameter must be a non-empty list of cause hypothesis ids. Got {pursue!r} instead.")
    for p in pursue:
        if p not in ids:
            close = difflib.get_close_matches(str(p), ids, n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else f" Valid ids are {', '.join(map(repr, ids))}."
            raise ValueError(f"The 'pursue' parameter names {p!r}, which is not a cause hypothesis of model {model.id!r}.{hint}")
    chosen = np.array(sorted({ids.index(p) for p in pursue}), dtype=int)
    return [chosen] * len(matrix)


def analyse_cases(
    model: Model,
    observed: Sequence[Mapping[str, str]],
    likelihoods: Mapping[str, np.ndarray],
    labels: Sequence[Any],
    *,
    pursue: Sequence[str] | None = None,
    alpha: float | None = None,
    next_steps: bool = True,
    function: str = "rank_causes",
    ranking: str | None = None,
) -> list[Diagnosis]:
    """Full analysis (ranking, next steps, triage, referral) of many cases in batched engine calls."""
    alpha = resolve(function, "alpha", alpha)
    ranking = resolve_ranking(model, function, ranking)
    n_pursued = resolve(function, "n_pursued", None)
    min_prob = resolve(function, "min_pursued_probability", None)
    n = len(observed)
    matrix, log_z = posterior_matrix(model, likelihoods, n, labels)
    cf = counterfactual_scores(model, likelihoods, log_z, n) if ranking != "posterior" else None
    if pursue is None and model.harm is not None:  # every cause, weighted by what missing it costs
        weights = model.harm.vector([h.id for h in model.hypotheses])
        everything = np.flatnonzero(weights > 0)
        pursued = [everything[np.argsort(-row[everything], kind="stable")] for row in matrix]
    else:
        weights = None
        pursued = _pursued_indices(model, matrix, pursue, n_pursued, min_prob)
    steps = None
    if next_steps:  # in blocks of cases, so that memory does not grow with the batch (outcome rows per case)
        steps = []
        size = max(1, min(STEP_BLOCK, STEP_BLOCK_ENTRIES // outcome_rows_per_case(model)))
        for start in range(0, n, size):
            stop = min(n, start + size)
            block = {v: a[start:stop] for v, a in likelihoods.items()}
            steps += analyse_steps(model, observed[start:stop], block, matrix[start:stop], log_z[start:stop],
                                   pursued[start:stop], alpha, weights)
    ids = [h.id for h in model.hypotheses]
    results = []
    for k in range(n):
        row = matrix[k]
        by_id = dict(zip(ids, row.tolist(), strict=True))
        pursued_ids = tuple(ids[j] for j in pursued[k])
        # referral weighs what explains the case: the disablement scores (a distribution over "the one cause
        # of the complaint") under a counterfactual ranking, else the posteriors, over the leading causes
        # (a case that states the complaint absent has no disablement: then the posteriors)
        use_cf = cf is not None and cf.disablement[k].sum() > 1e-12
        scores = dict(zip(ids, cf.disablement[k].tolist(), strict=True)) if use_cf else by_id  # type: ignore[union-attr]
        leading = pursued_ids if weights is None else tuple(ids[j] for j in default_pursued(row, n_pursued, min_prob))
        triage, reasons, referral, referral_reason = triage_and_referral(model, observed[k], by_id, scores, leading)
        analysis = steps[k] if steps is not None else None
        results.append(_diagnosis(
            model, observed[k], row, float(log_z[k]), ranking,
            None if cf is None else cf.disablement[k], None if cf is None else cf.expected_disablement[k],
            pursued=pursued_ids, alpha=alpha,
            next_steps=analysis.steps if analysis else (),
            should_stop=analysis.should_stop if analysis else None,
            triage=triage, triage_reasons=reasons, referral=referral, referral_reason=referral_reason,
        ))
    return results


def resolve_ranking(model: Model, function: str, ranking: str | None) -> str:
    """The validated ranking; the default is counterfactual only for models with noisy-OR links (model files)."""
    if ranking is None and model.spec is None:
        return "posterior"
    return str(resolve(function, "ranking", ranking))


def triage_and_referral(model: Model, observed: Mapping[str, str], posterior: Mapping[str, float],
                        weights: Mapping[str, float], pursued: Sequence[str],
                        ) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """Triage level, the bases of the rules that set it, the referral and its reason, for one case.

    Posterior-based triage rules weigh ``posterior``; the referral weighs ``weights`` (see analyse_cases).
    """
    triage: str | None = None
    decided: tuple = ()
    red_flag = False
    policy = model.triage_policy
    if policy is not None:
        fired = policy.fired(observed, posterior)  # once: the level and the red-flag check both use it
        triage, decided = policy.decide(fired)
        referral_policy = model.referral_policy
        if referral_policy is not None and referral_policy.red_flag_level is not None:
            floor = policy.levels.index(referral_policy.red_flag_level)
            red_flag = any(policy.levels.index(r.level) >= floor for r in fired)
    if model.referral_policy is None:
        return triage, tuple(r.basis for r in decided), None, None
    referral, why = model.referral_policy.decide(weights, pursued, level=triage, decided=decided, red_flag=red_flag)
    return triage, tuple(r.basis for r in decided), referral, why


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
    return analyse_cases(model, [observed], likelihoods_from_evidence(model, [observed]), ["evidence"],
                         pursue=pursue, alpha=alpha, next_steps=next_steps, ranking=ranking)[0]


def ranking_scores(ranking: str, posterior: np.ndarray, disablement: np.ndarray | None,
                   expected: np.ndarray | None) -> np.ndarray:
    """The scores the causes are sorted by (ties broken by the posterior, then model order)."""
    if ranking == "disablement" and disablement is not None:
        return disablement
    if ranking == "expected_disablement" and expected is not None:
        return expected
    return posterior


def rank_order(scores: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Indices sorting hypotheses by score, then posterior, then model order (works row-wise on 2-D arrays)."""
    return np.lexsort((-posterior, -scores), axis=-1)


def _diagnosis(model: Model, observed: Mapping[str, str], row: np.ndarray, log_z: float, ranking: str,
               disablement: np.ndarray | None, expected: np.ndarray | None, **extra: Any) -> Diagnosis:
    order = rank_order(ranking_scores(ranking, row, disablement, expected), row)
    hyps = model.hypotheses
    causes = tuple(RankedCause(
        hyps[k].id, hyps[k].node, hyps[k].state, float(row[k]),
        None if disablement is None else float(disablement[k]),
        None if expected is None else float(expected[k]),
    ) for k in order)
    return Diagnosis(
        ranking=ranking,
        causes=causes,
        evidence=dict(observed),
        model_id=model.id,
        model_version=model.version,
        priors=model.priors,
        log_evidence=log_z,
        prior_probabilities=dict(model.prior_probabilities),  # a plain dict: results pickle and deepcopy
        labels={c: model.labels.get(c, c) for c in model.causes},
        model=model,
        **extra,
    )


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

        return score_dask(cases, model=model, priors=priors, top_k=top_k, next_step=next_step, alpha=alpha,
                          ranking=ranking)
    if not isinstance(next_step, bool):
        raise TypeError(f"The 'next_step' parameter of score must be a bool. Got {next_step!r} instead.")
    import pandas as pd  # here, not at module level: rank_causes and the command line start without pandas

    model = _model_or_default(model, priors, "score")
    ranking = resolve_ranking(model, "score", ranking)
    passed = None
    if isinstance(cases, pd.DataFrame):
        cases, passed = _vignette_layout(model, cases, id_column, ignore_columns)
    if isinstance(cases, pd.DataFrame):
        index = cases.index
        n = len(cases)
        likelihoods = add_presenting(model, likelihoods_from_frame(model, cases, row_label="case"), n)
        observed = observed_from_likelihoods(model, likelihoods, n) if next_step else None
    elif isinstance(cases, Sequence) and not isinstance(cases, (str, bytes)):
        observed = [with_presenting(model, normalize_evidence(c, model, where=f" in case {k}")) for k, c in enumerate(cases)]
        index = pd.RangeIndex(len(observed))
        likelihoods = likelihoods_from_evidence(model, observed)
        n = len(observed)
    else:
        raise TypeError(
            "The 'cases' parameter of score must be a pandas DataFrame or a list of mappings. "
            f"Got {type(cases).__name__} instead."
        )
    k = min(top_k, len(model.hypotheses))
    per_cause = ("cause", "probability") if ranking == "posterior" else ("cause", "probability", "score")
    columns = [f"{name}_{j}" for j in range(1, k + 1) for name in per_cause]
    if next_step:
        columns += list(STEP_COLUMNS)
    if n == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=float if c.startswith(("probability", "score", "next_step_value"))
                                           else object) for c in columns}, index=index)
        return _with_annotations(empty, passed)
    data: dict[str, Any] = {}
    if not next_step:
        matrix, log_z = posterior_matrix(model, likelihoods, n, list(index))
        cf = counterfactual_scores(model, likelihoods, log_z, n) if ranking != "posterior" else None
        scores = ranking_scores(ranking, matrix, None if cf is None else cf.disablement,
                                None if cf is None else cf.expected_disablement)
        order = rank_order(scores, matrix)[:, :k]
        ids = np.array([h.id for h in model.hypotheses], dtype=object)
        rows = np.arange(n)
        for j in range(k):
            data[f"cause_{j + 1}"] = ids[order[:, j]]
            data[f"probability_{j + 1}"] = matrix[rows, order[:, j]]
            if cf is not None:
                data[f"score_{j + 1}"] = scores[rows, order[:, j]]
        return _with_annotations(_frame(data, index, columns), passed)
    assert observed is not None
    data = {c: [] for c in columns}
    labels = list(index)
    for start in range(0, n, SCORE_BLOCK):  # the per-case result objects of one block at a time
        stop = min(n, start + SCORE_BLOCK)
        block = {v: a[start:stop] for v, a in likelihoods.items()}
        results = analyse_cases(model, observed[start:stop], block, labels[start:stop], alpha=alpha, function="score",
                                ranking=ranking)
        for j in range(k):
            data[f"cause_{j + 1}"] += [r.causes[j].id for r in results]
            data[f"probability_{j + 1}"] += [r.causes[j].probability for r in results]
            if ranking != "posterior":
                data[f"score_{j + 1}"] += [r.causes[j].score(ranking) for r in results]
        data["next_step"] += [r.next_step.id if r.next_step else None for r in results]
        data["next_step_kind"] += [r.next_step.kind if r.next_step else None for r in results]
        data["next_step_value"] += [r.next_step.value if r.next_step else float("nan") for r in results]
        data["triage"] += [r.triage for r in results]
        data["referral"] += [r.referral for r in results]
        data["should_stop"] += [bool(r.should_stop) for r in results]
    return _with_annotations(_frame(data, index, columns), passed)


def _vignette_layout(model: Model, frame: pd.DataFrame, id_column: str | None,
                     ignore_columns: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The evidence columns of a frame in the vignette layout (ids as index), and the annotations to pass on."""
    if isinstance(ignore_columns, str) or not all(isinstance(c, str) for c in ignore_columns):
        raise TypeError(f"The 'ignore_columns' parameter of score must be a list of column names. Got {ignore_columns!r} instead.")
    for name in (*ignore_columns, *([id_column] if id_column else [])):
        if name not in frame.columns:
            raise ValueError(f"The cases have no column {name!r}. Their columns are {', '.join(map(repr, frame.columns))}.")
    frame = frame.drop(columns=list(ignore_columns))
    if id_column is None and "case_id" in frame.columns and "case_id" not in model.states:
        id_column = "case_id"
    if id_column is not None:
        frame = frame.set_index(id_column)
    notes = [c for c in frame.columns if c in KNOWN_ANNOTATIONS and c not in model.states]
    return frame.drop(columns=notes), (frame[notes] if notes else None)


def _frame(data: Mapping[str, Any], index: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The result frame, text columns as object dtype whatever their content (pandas would infer a string
    dtype for some batches and object for others, so results would depend on how cases are split)."""
    import pandas as pd

    numeric = ("probability", "score", "next_step_value", "should_stop")
    return pd.DataFrame({c: pd.Series(np.asarray(data[c], dtype=object) if not c.startswith(numeric) else data[c],
                                      index=index, dtype=object if not c.startswith(numeric) else None)
                         for c in columns}, index=index, columns=list(columns))


def _with_annotations(result: pd.DataFrame, passed: pd.DataFrame | None) -> pd.DataFrame:
    import pandas as pd

    if passed is None:
        return result
    return pd.concat([result, passed.set_axis(result.index)], axis=1)


#: Columns that ``score(..., next_step=True)`` adds after the causes.
STEP_COLUMNS = ("next_step", "next_step_kind", "next_step_value", "triage", "referral", "should_stop")


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
