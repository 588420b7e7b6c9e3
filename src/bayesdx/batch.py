"""Scoring CSV files of cases in chunks: streaming, validation with row and line numbers, atomic output.

The input is the vignette layout: a case id column (``case_id``, or the first column), one column per
variable of the model (an empty cell means not observed) and annotation columns (``true_cause``,
``true_triage``, ``rationale``, ...) that pass through to the output unchanged. The file is read and
scored a chunk of rows at a time, so memory stays flat however long the file is; each chunk is scored
with :func:`bayesdx.score`, exactly and in one batched call.

Output columns (``format="wide"``), in this order: the case id column (named as in the input),
``cause_1``, ``probability_1``, ..., ``cause_k``, ``probability_k``, then with ``next_step=True``
``next_step``, ``next_step_kind``, ``next_step_value``, ``triage``, ``referral``, ``should_stop``, then the
annotation columns in input order, then with ``skip_invalid=True`` an ``error`` column. ``format="long"``
writes one row per case and cause: the case id, ``rank``, ``cause``, ``probability``, the annotations
(and ``error``). Probabilities are written unrounded (shortest repr that reads back to the same float).

Nothing is lost: by default the first bad row (a malformed line, an unknown state, evidence of
probability zero) raises :class:`InputFileError` naming the row, the line, the case, the column, the
value and the valid states, and an output *file* is only created (or replaced) when the whole input was
scored: it is written to a temporary file next to it and renamed at the end. With ``skip_invalid=True``
every input row is still written, invalid ones with empty results and the reason in ``error``.

This module never prints; progress is reported through the ``on_progress`` callback. It scores; reading
and checking the input (records, the header's layout, cells) lives in :mod:`bayesdx.csv_input`, and
writing the output (the two layouts, atomic files) in :mod:`bayesdx.csv_output`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from ._validation import check_option, check_positive_int
from .csv_input import DELIMITERS as DELIMITERS  # (score_csv's sep= detection; named here before)
from .csv_input import (
    _check_states,
    _Chunk,
    _chunks,
    _detect_sep,
    _Layout,
    _layout,
    _parse_chunk,
    _Parsed,
    _records,
    _StateChecker,
    _undecodable,
    _without_bom,
)
from .csv_output import ERROR_COLUMN, LONG_COLUMNS, _long, _wide, _write_rows, atomic_output
from .evidence import KNOWN_ANNOTATIONS
from .exceptions import ImpossibleEvidenceError, InputFileError
from .exceptions import _rebuild_input_file_error as _rebuild_input_file_error  # (pickles naming its old home)
from .model import Model, _model_or_default
from .ranking import STEP_COLUMNS, resolve_ranking, score

__all__ = [
    "DEFAULT_CHUNKSIZE",
    "DEFAULT_CHUNKSIZE_NEXT_STEP",
    "FORMATS",
    "KNOWN_ANNOTATIONS",
    "BatchSummary",
    "InputFileError",
    "atomic_output",
    "score_csv",
]

logger = logging.getLogger(__name__)

#: Columns that pass through to the output without being named (besides ``annotation_columns``).
#: Output layouts of :func:`score_csv`.
FORMATS = ("wide", "long")
#: Rows per chunk without next steps (about 10 MB of working memory with the bundled model).
DEFAULT_CHUNKSIZE = 10_000
#: Rows per chunk with next steps: each case is re-scored once per outcome of every candidate step.
DEFAULT_CHUNKSIZE_NEXT_STEP = 200


@dataclass(frozen=True)
class BatchSummary:
    """What :func:`score_csv` did.

    Attributes
    ----------
    rows : int
        Data rows read (every one was written).
    scored : int
        Rows scored.
    invalid : int
        Rows written with an ``error`` instead of results (only with ``skip_invalid=True``).
    columns : tuple of str
        The output columns, in order.
    """

    rows: int
    scored: int
    invalid: int
    columns: tuple[str, ...]


# ---------------------------------------------------------------------- scoring a chunk
Scorer = Callable[[pd.DataFrame], pd.DataFrame]


def _score_valid(parsed: _Parsed, chunk: _Chunk, layout: _Layout, scorer: Scorer, source: str, *, strict: bool) -> pd.DataFrame:
    """Scores of the chunk's valid rows, indexed by position in the chunk."""
    while True:
        keep = [k for k in range(len(chunk.rows)) if k not in parsed.errors]
        evidence = parsed.frame.iloc[keep][list(layout.variables)]
        evidence.index = pd.Index(keep)
        try:
            return scorer(evidence)
        except ImpossibleEvidenceError as exc:
            positions = [int(c) for c in exc.cases if isinstance(c, (int, np.integer)) and c in set(keep)]
            if not positions:
                raise
            for k in positions:
                err = InputFileError(
                    source,
                    "the evidence of this case has probability zero under the model: no setting of the "
                    "unobserved variables is compatible with it. Check the observed values for a contradiction.",
                    line=chunk.lines[k],
                    row=chunk.first_row + k,
                    case_id=parsed.ids[k],
                )
                if strict:
                    raise err from None
                parsed.errors[k] = err


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "<input>"


# ---------------------------------------------------------------------- the public entry point
def score_csv(
    source: str | os.PathLike[str] | IO[str],
    destination: str | os.PathLike[str] | IO[str],
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
    top_k: int | None = None,
    next_step: bool = False,
    format: str = "wide",
    ignore_columns: Sequence[str] = (),
    annotation_columns: Sequence[str] = (),
    id_column: str | None = None,
    skip_invalid: bool = False,
    chunksize: int | None = None,
    scorer: Scorer | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    ranking: str | None = None,
    sep: str | None = None,
    next_steps: bool | None = None,
    chunk_size: int | None = None,
) -> BatchSummary:
    """Score a CSV file of cases chunk by chunk and write one output row per input row, in input order.

    Parameters
    ----------
    source : str, path-like or text handle
        The cases, in the vignette layout (see the module docstring). Read as UTF-8 (a BOM is allowed).
    destination : str, path-like or text handle
        Where to write. A path is written atomically: to a temporary file in the same folder, renamed over
        ``destination`` only when every row was scored (missing folders are created). A handle is written
        as rows are scored.
    model : Model, optional
        Defaults to the bundled leg-twitch model.
    priors : str or path-like, optional
        A prior setting to use instead of the model's.
    top_k : int, optional
        Causes per case: default 3 in the wide format, every cause in the long format.
    next_step : bool, default False
        Also write the next step, its kind and value, triage, referral and the stop rule (wide format only).
    format : {"wide", "long"}, default "wide"
        One row per case, or one row per case and cause.
    ignore_columns : sequence of str, default ()
        Input columns to drop (any column; also variables whose evidence should not be used).
    annotation_columns : sequence of str, default ()
        Extra columns to pass through unchanged, besides ``KNOWN_ANNOTATIONS``.
    id_column : str, optional
        The case id column. Default ``case_id`` if present, else the first column.
    skip_invalid : bool, default False
        Write invalid rows with empty results and the reason in an ``error`` column instead of stopping.
    chunksize : int, optional
        Rows scored per batch (default ``DEFAULT_CHUNKSIZE``, or ``DEFAULT_CHUNKSIZE_NEXT_STEP`` with next
        steps).
    scorer : callable, optional
        ``scorer(evidence_frame) -> frame`` replacing the in-process ``bayesdx.score`` call (the Dask
        engine uses this); it must return ``bayesdx.score``'s columns with the evidence frame's index.
    on_progress : callable, optional
        Called after every chunk as ``on_progress(rows, characters)`` with the rows written and the input
        characters consumed by that chunk.
    ranking : {"expected_disablement", "disablement", "posterior"}, optional
        What the causes are ranked by (see :func:`bayesdx.rank_causes`). Under a counterfactual ranking the
        wide format adds ``score_j`` after each ``probability_j`` and the long format a ``score`` column.
    next_steps, chunk_size
        The names :func:`bayesdx.rank_causes` and the command line use for ``next_step`` and ``chunksize``
        (the earlier names, still accepted).
    sep : str, optional
        The input's delimiter (one character). Default: detected from the header line among ``DELIMITERS``.
        The output is always comma-separated.

    Returns
    -------
    BatchSummary

    Raises
    ------
    InputFileError
        For a bad header, and without ``skip_invalid`` for the first malformed line, bad state or
        impossible case, naming the file, line, row, case id, column, value and valid states.
    FileNotFoundError
        If ``source`` does not exist.
    """
    if next_steps is not None:
        next_step = next_steps
    if chunk_size is not None:
        chunksize = chunk_size
    check_option("score_csv", "format", format, FORMATS)
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n'):
        raise ValueError(f"The 'sep' parameter (--sep) of score_csv must be one character (not a quote or newline). Got {sep!r} instead.")
    if top_k is not None:
        check_positive_int("score_csv", "top_k", top_k)
    if chunksize is not None:
        check_positive_int("score_csv", "chunksize", chunksize)
    for name, value in (("next_step", next_step), ("skip_invalid", skip_invalid)):
        if not isinstance(value, bool):
            raise TypeError(f"The {name!r} parameter of score_csv must be a bool. Got {value!r} instead.")
    for name, names in (("ignore_columns", ignore_columns), ("annotation_columns", annotation_columns)):
        if isinstance(names, str) or not all(isinstance(v, str) for v in names):
            raise TypeError(f"The {name!r} parameter of score_csv must be a list of column names. Got {names!r} instead.")
    model = _model_or_default(model, priors, "score_csv")
    ranking = resolve_ranking(model, "score_csv", ranking)
    per_cause = ("cause", "probability") if ranking == "posterior" else ("cause", "probability", "score")
    n_hyp = len(model.hypotheses)
    k = min(top_k if top_k is not None else (3 if format == "wide" else n_hyp), n_hyp)
    with_steps = next_step and format == "wide"
    if scorer is None:

        def scorer(evidence: pd.DataFrame) -> pd.DataFrame:
            return score(evidence, model=model, top_k=k, next_step=with_steps, ranking=ranking)

    chunksize = chunksize or (DEFAULT_CHUNKSIZE_NEXT_STEP if with_steps else DEFAULT_CHUNKSIZE)
    name = _source_name(source)

    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, os.PathLike)):
            if not Path(source).is_file():
                raise FileNotFoundError(f"No such cases file: {os.fspath(source)!r}")
            # undecodable bytes are kept as surrogates and reported per row, with their line and column
            stream: IO[str] = stack.enter_context(open(source, encoding="utf-8", newline="", errors="surrogateescape"))
        else:
            stream = source
        lines = _without_bom(stream)
        if sep is None:
            sep, lines = _detect_sep(lines)
        records = _records(lines, name, sep)  # type: ignore[arg-type]
        first = next(records, None)
        if first is None:
            raise InputFileError(name, "the file is empty; it needs a header line naming its columns.")
        header_line, header_fields, header_reason, header_chars = first
        if header_fields is None:
            raise InputFileError(name, f"the header is not valid CSV: {header_reason}", line=header_line)
        header = [h.strip() for h in header_fields]
        if any(_undecodable(h) for h in header):
            raise InputFileError(name, "the header is not valid UTF-8.", line=header_line)
        layout = _layout(
            header, header_line, model, name, ignore_columns=ignore_columns, annotation_columns=annotation_columns, id_column=id_column
        )
        columns = [layout.id_column]
        if format == "wide":
            columns += [f"{c}_{j}" for j in range(1, k + 1) for c in per_cause]
            columns += list(STEP_COLUMNS) if with_steps else []
        else:
            columns += list(LONG_COLUMNS) + (["score"] if ranking != "posterior" else [])
        columns += list(layout.annotations) + ([ERROR_COLUMN] if skip_invalid else [])
        clash = sorted({c for c in columns if columns.count(c) > 1})
        if clash:  # two output columns of one name: a reader would take the wrong one
            raise InputFileError(
                name,
                f"column {clash[0]!r} of the input has the name of an output column "
                f"({', '.join(dict.fromkeys(columns))}); rename it, or drop it with "
                f"--ignore-column {clash[0]}.",
                line=header_line,
                column=clash[0],
            )

        if isinstance(destination, (str, os.PathLike)):
            out: IO[str] = stack.enter_context(atomic_output(destination))
        else:
            out = destination
        pd.DataFrame(columns=columns).to_csv(out, index=False, lineterminator="\n")
        if on_progress is not None:
            on_progress(0, header_chars)

        checker = _StateChecker(model)
        rows = invalid = 0
        strict = not skip_invalid
        for chunk in _chunks(records, chunksize):
            n = len(chunk.rows)
            if n:
                parsed = _parse_chunk(chunk, layout, name, strict=strict)
                _check_states(parsed, chunk, layout, checker, model, name, strict=strict)
                results = _score_valid(parsed, chunk, layout, scorer, name, strict=strict)
                frame = (
                    _wide(parsed, results, layout, n, skip_invalid)
                    if format == "wide"
                    else _long(parsed, results, layout, n, k, skip_invalid)
                )
                if list(frame.columns) != columns:  # never write a row that does not match the header
                    raise RuntimeError(
                        f"internal error: scored columns {list(frame.columns)} differ from the header {columns}; nothing more is written"
                    )
                _write_rows(frame, out)
                rows += n
                invalid += len(parsed.errors)
            if on_progress is not None:
                on_progress(n, chunk.chars)
        out.flush()
    logger.debug("scored %d rows of %s (%d invalid)", rows, name, invalid)
    return BatchSummary(rows=rows, scored=rows - invalid, invalid=invalid, columns=tuple(columns))
