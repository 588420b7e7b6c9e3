"""The pipeline of one batch of cases, in one place: evidence -> likelihoods -> posteriors -> ranking scores
-> next steps -> triage and referral -> result objects. :func:`bayesdx.rank_causes` and
:func:`bayesdx.score` are thin layers on top (:mod:`bayesdx.ranking`, :mod:`bayesdx.scoring`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .counterfactual import counterfactual_findings, counterfactual_scores
from .model import Model
from .next_steps import StepAnalysis, analyse_steps, default_pursued, outcome_rows_per_case
from .options import resolve
from .posteriors import posteriors_and_lowered
from .results import Diagnosis, RankedCause, ReadOnlyDict

__all__ = ["analyse_cases", "iter_cases", "rank_order", "ranking_scores", "resolve_ranking", "triage_and_referral"]

#: Cases whose next steps are analysed together (bounds the memory of the outcome rows) ...
STEP_BLOCK = 500
#: ... and fewer when a case needs many outcome rows: at most this many entries of outcome rows per block.
STEP_BLOCK_ENTRIES = 2**22


def _pursued_indices(
    model: Model, matrix: np.ndarray, pursue: Sequence[str] | None, n_pursued: int, min_probability: float
) -> list[np.ndarray]:
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
    model: Model, observed: Sequence[Mapping[str, str]], likelihoods: Mapping[str, np.ndarray], labels: Sequence[Any], **options: Any
) -> list[Diagnosis]:
    """Full analysis (ranking, next steps, triage, referral) of many cases in batched engine calls: every result of
    :func:`iter_cases` (same arguments, ``options`` its keywords), in a list."""
    return list(iter_cases(model, observed, likelihoods, labels, **options))


def iter_cases(
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
) -> Iterator[Diagnosis]:
    """:func:`analyse_cases` one result at a time: the engine's work for all cases first (at the first result),
    then each case's result objects as they are read. A reader that drops them as it goes (``score``) never holds
    a batch's objects at once (see :class:`~bayesdx.next_steps.StepAnalyses`).

    Parameters
    ----------
    model : Model
    observed : sequence of mapping of str to str
        Each case's normalized evidence, the presenting complaint included.
    likelihoods : mapping of str to numpy.ndarray
        The same evidence as ``(n_cases, n_states)`` likelihood arrays.
    labels : sequence
        Each case's label (named in errors).
    pursue, alpha, next_steps, ranking
        As for :func:`bayesdx.rank_causes`.
    function : str, default "rank_causes"
        The public function called, for defaults and error messages.

    Yields
    ------
    Diagnosis
        One per case, in order.

    Raises
    ------
    ValueError, ImpossibleEvidenceError
        As :func:`bayesdx.rank_causes`; a generator raises them when its first result is asked for, not when it
        is called (:func:`analyse_cases` asks at once).
    """
    alpha = resolve(function, "alpha", alpha)
    ranking = resolve_ranking(model, function, ranking)
    n_pursued = resolve(function, "n_pursued", None)
    min_prob = resolve(function, "min_pursued_probability", None)
    n = len(observed)
    lower = counterfactual_findings(model) if ranking != "posterior" else []
    matrix, log_z, lowered, marginals = posteriors_and_lowered(model, likelihoods, n, labels, lower)
    cf = counterfactual_scores(model, likelihoods, log_z, n, lowered, marginals) if ranking != "posterior" else None
    if pursue is None and model.harm is not None:  # every cause, weighted by what missing it costs
        weights = model.harm.vector([h.id for h in model.hypotheses])
        everything = np.flatnonzero(weights > 0)
        pursued = [everything[np.argsort(-row[everything], kind="stable")] for row in matrix]
    else:
        weights = None
        pursued = _pursued_indices(model, matrix, pursue, n_pursued, min_prob)
    steps: list[Sequence[StepAnalysis]] = []  # per block of cases
    size = max(1, min(STEP_BLOCK, STEP_BLOCK_ENTRIES // outcome_rows_per_case(model))) if next_steps else 1
    if next_steps:  # in blocks of cases, so that memory does not grow with the batch (outcome rows per case)
        for start in range(0, n, size):
            stop = min(n, start + size)
            block = {v: a[start:stop] for v, a in likelihoods.items()}
            steps.append(
                analyse_steps(
                    model, observed[start:stop], block, matrix[start:stop], log_z[start:stop], pursued[start:stop], alpha, weights
                )
            )
    ids = [h.id for h in model.hypotheses]
    # every case's order at once (rank_order's fixed cost, some 30 us, once for the call, not once a case)
    orders = rank_order(
        ranking_scores(ranking, matrix, None if cf is None else cf.disablement, None if cf is None else cf.expected_disablement), matrix
    )
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
        analysis = steps[k // size][k % size] if steps else None
        yield _diagnosis(
            model,
            observed[k],
            row,
            float(log_z[k]),
            ranking,
            None if cf is None else cf.disablement[k],
            None if cf is None else cf.expected_disablement[k],
            orders[k].tolist(),
            pursued=pursued_ids,
            alpha=alpha,
            next_steps=analysis.steps if analysis else (),
            should_stop=analysis.should_stop if analysis else None,
            triage=triage,
            triage_reasons=reasons,
            referral=referral,
            referral_reason=referral_reason,
        )


def resolve_ranking(model: Model, function: str, ranking: str | None) -> str:
    """The validated ranking; the default is counterfactual only for models with noisy-OR links (model files)."""
    if ranking is None and model.spec is None:
        return "posterior"
    return str(resolve(function, "ranking", ranking))


def triage_and_referral(
    model: Model,
    observed: Mapping[str, str],
    posterior: Mapping[str, float],
    weights: Mapping[str, float],
    pursued: Sequence[str],
) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """Triage level, the bases of the rules that set it, the referral and its reason, for one case.

    Posterior-based triage rules weigh ``posterior``; the referral weighs ``weights`` (see iter_cases).
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


def ranking_scores(ranking: str, posterior: np.ndarray, disablement: np.ndarray | None, expected: np.ndarray | None) -> np.ndarray:
    """The scores the causes are sorted by (ties broken by the posterior, then model order)."""
    if ranking == "disablement" and disablement is not None:
        return disablement
    if ranking == "expected_disablement" and expected is not None:
        return expected
    return posterior


#: Scores and posteriors within this fraction of their neighbour (the next larger value) are ties. Causes tied
#: exactly (the same prior and the same links to the evidence) come out of different contractions some ulps apart,
#: and were ordered by them, not by the model's order as documented.
TIE = 2.0**-40


def rank_order(scores: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Indices sorting hypotheses by score, then posterior, then model order (works row-wise on 2-D arrays); a value
    within ``TIE`` (relatively) of the next larger one ties with it."""
    by_posterior = _tie_places(posterior)
    return np.lexsort((by_posterior, by_posterior if scores is posterior else _tie_places(scores)), axis=-1)


def _tie_places(values: np.ndarray) -> np.ndarray:
    """Per value, its place among the distinct values, largest first (0), where a value within ``TIE`` (relatively)
    of the next larger one shares its place (NaN last). Neighbours, not fixed steps: two values some ulps apart
    share a place wherever they fall (fixed steps split such a pair once in a few thousand)."""
    order = np.argsort(-values, axis=-1, kind="stable")
    ranked = np.take_along_axis(values, order, axis=-1)
    with np.errstate(invalid="ignore"):
        apart = ~(np.abs(np.diff(ranked, axis=-1)) <= TIE * np.minimum(np.abs(ranked[..., 1:]), np.abs(ranked[..., :-1])))
    places = np.zeros(values.shape, dtype=np.intp)
    np.cumsum(apart, axis=-1, out=places[..., 1:])
    out = np.empty_like(places)
    np.put_along_axis(out, order, places, axis=-1)
    return out


def _diagnosis(
    model: Model,
    observed: Mapping[str, str],
    row: np.ndarray,
    log_z: float,
    ranking: str,
    disablement: np.ndarray | None,
    expected: np.ndarray | None,
    order: list[int],
    **extra: Any,
) -> Diagnosis:
    hyps = model.hypotheses
    probability = row.tolist()  # Python floats, converted once
    dis = [None] * len(hyps) if disablement is None else disablement.tolist()
    exp = [None] * len(hyps) if expected is None else expected.tolist()
    causes = RankedCause._many(hyps, order, probability, dis, exp)
    return Diagnosis(
        ranking=ranking,
        causes=causes,
        evidence=ReadOnlyDict(observed),
        model_id=model.id,
        model_version=model.version,
        priors=model.priors,
        log_evidence=log_z,
        prior_probabilities=ReadOnlyDict(model.prior_probabilities),  # not a proxy of the model's: results pickle
        labels=ReadOnlyDict({c: model.labels.get(c, c) for c in model.causes}),
        model=model,
        **extra,
    )
