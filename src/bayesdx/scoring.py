"""Scoring many cases held in pandas: :func:`score_frame`, the work of :func:`bayesdx.score` (which also
takes a Dask DataFrame and hands it to :mod:`bayesdx.dask`, partition by partition, through this function)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .counterfactual import counterfactual_findings, counterfactual_scores
from .evidence import KNOWN_ANNOTATIONS, likelihoods_from_evidence, likelihoods_from_frame, normalize_evidence
from .model import Model, _model_or_default
from .options import resolve
from .pipeline import iter_cases, rank_order, ranking_scores, resolve_ranking
from .posteriors import add_presenting, observed_from_likelihoods, posteriors_and_lowered, with_presenting

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STEP_COLUMNS", "score_frame"]

#: Cases that ``score(next_step=True)`` analyses in one call (their result objects are then read one at a time).
SCORE_BLOCK = 2_000
#: Columns that ``score(..., next_step=True)`` adds after the causes.
STEP_COLUMNS = ("next_step", "next_step_kind", "next_step_value", "triage", "referral", "should_stop")


def score_frame(
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
) -> pd.DataFrame:
    """:func:`bayesdx.score` on a pandas DataFrame or a list of mappings (see there for the parameters)."""
    if not isinstance(next_step, bool):
        raise TypeError(f"The 'next_step' parameter of score must be a bool. Got {next_step!r} instead.")
    resolve("score", "alpha", alpha)  # checked whether or not next steps use it, as rank_causes does
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
            f"The 'cases' parameter of score must be a pandas DataFrame or a list of mappings. Got {type(cases).__name__} instead."
        )
    k = min(top_k, len(model.hypotheses))
    per_cause = ("cause", "probability") if ranking == "posterior" else ("cause", "probability", "score")
    columns = [f"{name}_{j}" for j in range(1, k + 1) for name in per_cause]
    if next_step:
        columns += list(STEP_COLUMNS)
    if n == 0:
        empty = pd.DataFrame(
            {c: pd.Series(dtype=float if c.startswith(("probability", "score", "next_step_value")) else object) for c in columns},
            index=index,
        )
        return _with_annotations(empty, passed)
    data: dict[str, Any] = {}
    if not next_step:
        lower = counterfactual_findings(model) if ranking != "posterior" else []
        matrix, log_z, lowered, marginals = posteriors_and_lowered(model, likelihoods, n, list(index), lower)
        cf = counterfactual_scores(model, likelihoods, log_z, n, lowered, marginals) if ranking != "posterior" else None
        scores = ranking_scores(ranking, matrix, None if cf is None else cf.disablement, None if cf is None else cf.expected_disablement)
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
    # the per-case result objects one at a time, each dropped once its columns are read (see iter_cases)
    ranked = [(f"cause_{j + 1}", f"probability_{j + 1}", f"score_{j + 1}" if ranking != "posterior" else None) for j in range(k)]
    for start in range(0, n, SCORE_BLOCK):
        stop = min(n, start + SCORE_BLOCK)
        block = {v: a[start:stop] for v, a in likelihoods.items()}
        for r in iter_cases(model, observed[start:stop], block, labels[start:stop], alpha=alpha, function="score", ranking=ranking):
            for cause, (id_column, probability_column, score_column) in zip(r.causes[:k], ranked, strict=True):
                data[id_column].append(cause.id)
                data[probability_column].append(cause.probability)
                if score_column is not None:
                    data[score_column].append(cause.score(ranking))
            best = r.next_step
            data["next_step"].append(best.id if best else None)
            data["next_step_kind"].append(best.kind if best else None)
            data["next_step_value"].append(best.value if best else float("nan"))
            data["triage"].append(r.triage)
            data["referral"].append(r.referral)
            data["should_stop"].append(bool(r.should_stop))
    return _with_annotations(_frame(data, index, columns), passed)


def _vignette_layout(
    model: Model, frame: pd.DataFrame, id_column: str | None, ignore_columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The evidence columns of a frame in the vignette layout (ids as index), and the annotations to pass on."""
    if isinstance(ignore_columns, str) or not all(isinstance(c, str) for c in ignore_columns):
        raise TypeError(f"The 'ignore_columns' parameter of score must be a list of column names. Got {ignore_columns!r} instead.")
    for name in (*ignore_columns, *([id_column] if id_column else [])):
        if name not in frame.columns:
            raise ValueError(f"The cases have no column {name!r}. Their columns are {', '.join(map(repr, frame.columns))}.")
    if ignore_columns:  # (dropping nothing still costs pandas a copy of the frame)
        frame = frame.drop(columns=list(ignore_columns))
    if id_column is None and "case_id" in frame.columns and "case_id" not in model.states:
        id_column = "case_id"
    if id_column is not None:
        frame = frame.set_index(id_column)
    notes = [c for c in frame.columns if c in KNOWN_ANNOTATIONS and c not in model.states]
    if not notes:
        return frame, None
    return frame.drop(columns=notes), frame[notes]


#: Above this many columns the result frame is built from two blocks (below, a Series per column is faster).
WIDE_FRAME = 30


def _frame(data: Mapping[str, Any], index: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The result frame, text columns as object dtype whatever their content (pandas would infer a string
    dtype for some batches and object for others, so results would depend on how cases are split)."""
    import pandas as pd

    numeric = ("probability", "score", "next_step_value", "should_stop")
    ranked = [c for c in columns if c.startswith(("cause_", "probability_", "score_"))]
    if len(ranked) > WIDE_FRAME:  # one block of text, one of numbers: a Series per column cost 5 ms at 228 columns
        text = [c for c in ranked if c.startswith("cause_")]
        numbers = [c for c in ranked if not c.startswith("cause_")]
        ranked_set = set(ranked)
        rest = [c for c in columns if c not in ranked_set]
        plain = pd.RangeIndex(len(index))  # joined on positions (case ids may repeat), then labelled
        blocks: list[pd.DataFrame | pd.Series] = [
            pd.DataFrame(np.column_stack([np.asarray(data[c], dtype=object) for c in text]), index=plain, columns=text, dtype=object),
            pd.DataFrame(np.column_stack([np.asarray(data[c], dtype=float) for c in numbers]), index=plain, columns=numbers),
        ]
        if rest:
            blocks.append(_frame({c: data[c] for c in rest}, plain, rest))
        return blocks[0].join(blocks[1:]).reindex(columns=list(columns)).set_axis(index)
    return pd.DataFrame(
        {
            c: pd.Series(
                np.asarray(data[c], dtype=object) if not c.startswith(numeric) else data[c],
                index=index,
                dtype=object if not c.startswith(numeric) else None,
            )
            for c in columns
        },
        index=index,
        columns=list(columns),
    )


def _with_annotations(result: pd.DataFrame, passed: pd.DataFrame | None) -> pd.DataFrame:
    """The scores, the annotation columns passed on after them, and the caveat in ``attrs["caveat"]``."""
    import pandas as pd

    from .results import CAVEAT

    if passed is not None:
        result = pd.concat([result, passed.set_axis(result.index)], axis=1)
    result.attrs["caveat"] = CAVEAT
    return result
