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

This module never prints; progress is reported through the ``on_progress`` callback.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import itertools
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from ._validation import check_option, check_positive_int
from .evidence import KNOWN_ANNOTATIONS, to_state
from .exceptions import ImpossibleEvidenceError, InputFileError, InvalidStateError
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

ERROR_COLUMN = "error"
LONG_COLUMNS = ("rank", "cause", "probability")


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


# ---------------------------------------------------------------------- reading records
@dataclass
class _Chunk:
    rows: list[list[str] | None]  # the fields of each record (None: not valid CSV)
    reasons: list[str]            # why a record is not valid CSV ("" when it is)
    lines: list[int]              # 1-based line where each record starts
    first_row: int                # 1-based data row of the first record
    chars: int                    # characters consumed from the input, blank lines included


class _CountingLines:
    """The stream's lines, counting the characters handed to the CSV reader (for progress)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.chars = 0
        self.raw: list[str] = []  # the lines of the record being read

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self.stream)
        self.chars += len(line)
        self.raw.append(line)
        return line


def _records(stream: IO[str], source: str, sep: str = ",") -> Iterator[tuple[int, list[str] | None, str, int]]:
    """``(start line, fields or None, reason, characters consumed)`` of each non-blank CSV record.

    Records are split by the ``csv`` module (RFC 4180: a quote inside an unquoted field is an ordinary
    character; a quoted field may span lines). A record that is not valid CSV yields ``None`` and the reason,
    and reading goes on at the next line. Lines are counted by the reader (``line_num``).
    """
    lines = _CountingLines(stream)
    reader = csv.reader(lines, strict=True, delimiter=sep)
    last = 0
    while True:
        reason = ""
        fields: list[str] | None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = None
            reason = ("a quoted field opened on this line is never closed (unbalanced '\"')."
                      if "unexpected end of data" in str(exc) else f"the line is not valid CSV ({exc}).")
            # what the record holds up to the error, read leniently: enough to name the case
            lenient = next(csv.reader(["".join(lines.raw)], delimiter=sep, strict=False), [])
            reason = "\0".join([reason, *lenient])
        lines.raw = []
        start, last = last + 1, reader.line_num
        if fields is not None and (not fields or (len(fields) == 1 and not fields[0].strip())):
            continue  # a blank line: its characters count towards the next record
        consumed, lines.chars = lines.chars, 0
        yield start, fields, reason, consumed


def _chunks(records: Iterator[tuple[int, list[str] | None, str, int]], chunksize: int) -> Iterator[_Chunk]:
    chunk = _Chunk([], [], [], 1, 0)
    for line, fields, reason, consumed in records:
        chunk.rows.append(fields)
        chunk.reasons.append(reason)
        chunk.lines.append(line)
        chunk.chars += consumed
        if len(chunk.rows) >= chunksize:
            yield chunk
            chunk = _Chunk([], [], [], chunk.first_row + len(chunk.rows), 0)
    if chunk.rows or chunk.chars:
        yield chunk


def _write_rows(frame: pd.DataFrame, out: IO[str]) -> None:
    """Append ``frame``'s rows as CSV. A text cell holding a bare carriage return is quoted (the writer only
    quotes the characters of its line terminator, "\\n"), so no reader splits the row there."""
    quoting: Literal[0, 2] = csv.QUOTE_MINIMAL  # or csv.QUOTE_NONNUMERIC
    texts = frame.select_dtypes(include=["object", "string"])
    if len(texts.columns) and texts.apply(lambda col: col.astype(str).str.contains("\r", regex=False)).to_numpy().any():
        quoting = csv.QUOTE_NONNUMERIC
    frame.to_csv(out, header=False, index=False, lineterminator="\n", quoting=quoting)


#: Delimiters ``score_csv`` recognises in the header line when ``sep`` is not given.
DELIMITERS = (",", ";", "\t", "|")


def _detect_sep(stream: IO[str]) -> tuple[str, Iterator[str]]:
    """The delimiter of the first non-blank line (the one of ``DELIMITERS`` it holds most often outside quotes;
    a comma when it holds none), and the stream's lines with that line put back."""
    head: list[str] = []
    lines = iter(stream)
    for line in lines:
        head.append(line)
        if line.strip():
            break
    text = head[-1] if head else ""
    unquoted = "".join(part for k, part in enumerate(text.split('"')) if k % 2 == 0)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return (best if counts[best] else ","), itertools.chain(head, lines)


def _undecodable(text: str) -> str | None:
    """The first byte that was not valid UTF-8 (read with errors="surrogateescape"), as ``0x..``, or None."""
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            return f"0x{ord(ch) - 0xDC00:02x}"
    return None


# ---------------------------------------------------------------------- the input's layout
@dataclass(frozen=True)
class _Layout:
    columns: tuple[str, ...]           # as in the header
    id_column: str
    variables: tuple[str, ...]         # model variables used as evidence
    annotations: tuple[str, ...]       # passed through


def _layout(header: list[str], line: int, model: Model, source: str, *, ignore_columns: Sequence[str],
            annotation_columns: Sequence[str], id_column: str | None) -> _Layout:
    if not header or header == [""]:
        raise InputFileError(source, "the header line is empty.", line=line)
    seen: set[str] = set()
    for name in header:
        if name == "":
            raise InputFileError(source, f"column {header.index(name) + 1} of the header has no name.", line=line)
        if name in seen:
            raise InputFileError(source, f"column {name!r} appears twice in the header.", line=line, column=name)
        seen.add(name)
    for option, names in (("ignore_columns", ignore_columns), ("annotation_columns", annotation_columns)):
        for name in names:
            if name not in seen:
                raise InputFileError(
                    source, f"{option} names {name!r}, which is not a column of the input. "
                    f"Its columns are {', '.join(map(repr, header))}.", line=line, column=name)
    if id_column is None:
        id_column = "case_id" if "case_id" in seen else header[0]
        if id_column in model.states and id_column not in ignore_columns:
            raise InputFileError(
                source, f"the input has no 'case_id' column and its first column {id_column!r} is a variable of "
                f"model {model.id!r}, not a case id. Add a case_id column first (or name the id column).",
                line=line, column=id_column)
    elif id_column not in seen:
        raise InputFileError(source, f"the id column {id_column!r} is not a column of the input. "
                             f"Its columns are {', '.join(map(repr, header))}.", line=line, column=id_column)
    for name in annotation_columns:
        if name in model.states and name not in ignore_columns:
            raise InputFileError(
                source, f"annotation_columns names {name!r}, a variable of model {model.id!r}: passing it through "
                "would drop its evidence. Rename the column to keep it as an annotation.", line=line, column=name)
    variables: list[str] = []
    annotations: list[str] = []
    for name in header:
        if name == id_column or name in ignore_columns:
            continue
        if name in annotation_columns or (name in KNOWN_ANNOTATIONS and name not in model.states):
            annotations.append(name)
        elif name in model.states:
            variables.append(name)
        else:
            close = difflib.get_close_matches(name, list(model.variables) + list(KNOWN_ANNOTATIONS), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise InputFileError(
                source, f"column {name!r} is neither a variable of model {model.id!r} nor a known annotation "
                f"({', '.join(KNOWN_ANNOTATIONS)}).{hint} To drop it, name it in ignore_columns "
                f"(bayesdx score --ignore-column {name}); to pass it through, in annotation_columns "
                f"(--keep-column {name}).", line=line, column=name)
    if not any(name in model.states for name in header):  # (ignoring every variable on purpose is allowed)
        raise InputFileError(
            source, f"no column is a variable of model {model.id!r} (columns: {', '.join(map(repr, header))}), so "
            "every case would be scored with nothing observed. Is the file separated by something other than "
            "the delimiter used (bayesdx score --sep)?", line=line)
    return _Layout(tuple(header), id_column, tuple(variables), tuple(annotations))


# ---------------------------------------------------------------------- parsing and checking a chunk
@dataclass
class _Parsed:
    frame: pd.DataFrame              # every well-formed row, all layout columns, str cells
    errors: dict[int, InputFileError]  # position in the chunk -> why the row is invalid
    ids: list[str]                   # case id of every row of the chunk (may be "" for malformed rows)


def _parse_chunk(chunk: _Chunk, layout: _Layout, source: str, *, strict: bool) -> _Parsed:
    ncols = len(layout.columns)
    id_pos = layout.columns.index(layout.id_column)
    rows: list[list[str]] = []
    errors: dict[int, InputFileError] = {}
    ids = []
    for k, fields in enumerate(chunk.rows):
        reason, *lenient = chunk.reasons[k].split("\0")  # a record that is not valid CSV: the fields read leniently
        source_fields = fields if fields is not None else lenient
        case_id = source_fields[id_pos] if len(source_fields) > id_pos else None
        column = None
        if fields is not None and len(fields) != ncols:
            reason = f"the line has {len(fields)} fields; the header has {ncols}."
        elif fields is not None:
            for name, value in zip(layout.columns, fields, strict=True):
                byte = _undecodable(value)
                if byte is not None:
                    reason, column = f"column {name!r} is not valid UTF-8 (byte {byte}).", name
                    break
        if reason:
            shown = None if case_id is None or _undecodable(case_id) else case_id
            err = InputFileError(source, reason, line=chunk.lines[k], row=chunk.first_row + k, case_id=shown,
                                 column=column)
            if strict:
                raise err
            errors[k] = err
            fields = [""] * ncols
            if shown is not None:
                fields[id_pos] = shown
            case_id = shown
        assert fields is not None
        rows.append(fields)
        ids.append(case_id if case_id is not None else "")
    return _Parsed(pd.DataFrame(rows, columns=list(layout.columns), dtype=object), errors, ids)


class _StateChecker:
    """Which cell values of each variable are valid, remembered across chunks."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.known: dict[str, dict[str, InvalidStateError | TypeError | None]] = {}

    def bad_values(self, variable: str, values: np.ndarray) -> dict[str, InvalidStateError | TypeError]:
        seen = self.known.setdefault(variable, {})
        for value in pd.unique(values):
            if value not in seen:
                try:
                    to_state(self.model, variable, value)
                except (InvalidStateError, TypeError) as exc:
                    seen[value] = exc
                else:
                    seen[value] = None
        return {v: e for v, e in seen.items() if e is not None}


def _check_states(parsed: _Parsed, chunk: _Chunk, layout: _Layout, checker: _StateChecker, model: Model,
                  source: str, *, strict: bool) -> None:
    for variable in layout.variables:
        values = parsed.frame[variable].to_numpy(dtype=object)
        bad = checker.bad_values(variable, values)
        if not bad:
            continue
        for k in np.flatnonzero(pd.Series(values).isin(list(bad)).to_numpy()).tolist():
            if k in parsed.errors:
                continue
            value = values[k]
            states = model.states[variable]
            err = InputFileError(
                source, f"invalid state {value!r} for column {variable!r}. Valid states are "
                f"{', '.join(map(repr, states))} (or an empty cell for not observed).",
                line=chunk.lines[k], row=chunk.first_row + k, case_id=parsed.ids[k], column=variable,
                value=value, valid_states=states)
            if strict:
                raise err
            parsed.errors[k] = err


# ---------------------------------------------------------------------- scoring a chunk
Scorer = Callable[[pd.DataFrame], pd.DataFrame]


def _score_valid(parsed: _Parsed, chunk: _Chunk, layout: _Layout, scorer: Scorer, source: str,
                 *, strict: bool) -> pd.DataFrame:
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
                    source, "the evidence of this case has probability zero under the model: no setting of the "
                    "unobserved variables is compatible with it. Check the observed values for a contradiction.",
                    line=chunk.lines[k], row=chunk.first_row + k, case_id=parsed.ids[k])
                if strict:
                    raise err from None
                parsed.errors[k] = err


def _wide(parsed: _Parsed, results: pd.DataFrame, layout: _Layout, n: int, skip_invalid: bool) -> pd.DataFrame:
    out = results.reindex(pd.RangeIndex(n))
    out.insert(0, layout.id_column, parsed.ids)
    for name in layout.annotations:
        out[name] = parsed.frame[name].to_numpy()
    if skip_invalid:
        out[ERROR_COLUMN] = [parsed.errors[k].reason if k in parsed.errors else "" for k in range(n)]
    return out


def _long(parsed: _Parsed, results: pd.DataFrame, layout: _Layout, n: int, k: int, skip_invalid: bool) -> pd.DataFrame:
    aligned = results.reindex(pd.RangeIndex(n))
    causes = aligned[[f"cause_{j}" for j in range(1, k + 1)]].to_numpy(dtype=object)
    probs = aligned[[f"probability_{j}" for j in range(1, k + 1)]].to_numpy(dtype=float)
    invalid = np.zeros(n, dtype=bool)
    invalid[list(parsed.errors)] = True
    take = np.ones((n, k), dtype=bool)
    take[invalid, 1:] = False
    ranks = np.tile(np.arange(1, k + 1), (n, 1))
    position = np.repeat(np.arange(n), take.sum(axis=1))
    rank = pd.array(ranks[take], dtype="Int64")
    rank[invalid[position]] = pd.NA
    out = pd.DataFrame({
        layout.id_column: np.asarray(parsed.ids, dtype=object)[position],
        "rank": rank,
        "cause": causes[take],
        "probability": probs[take],
    })
    if "score_1" in aligned.columns:
        out["score"] = aligned[[f"score_{j}" for j in range(1, k + 1)]].to_numpy(dtype=float)[take]
    for name in layout.annotations:
        out[name] = parsed.frame[name].to_numpy(dtype=object)[position]
    if skip_invalid:
        reasons = np.array([parsed.errors[j].reason if j in parsed.errors else "" for j in range(n)], dtype=object)
        out[ERROR_COLUMN] = reasons[position]
    return out


# ---------------------------------------------------------------------- output
@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, newline: str = "") -> Iterator[IO[str]]:
    """A text handle on a temporary file next to ``path``, renamed over ``path`` when the block succeeds.

    On any exception the temporary file is removed (and directories created for it, if empty), so no
    partial output is left and an existing file at ``path`` is untouched. A symbolic link is written
    through (its target is replaced, the link kept); an existing file keeps its permissions (patient data
    written 0600 stays 0600); a FIFO or a device (``/dev/null``, ``/dev/stdout``) is written directly, never
    replaced by a regular file.
    """
    text = os.fspath(path)
    if not text:
        raise ValueError("The output path is empty; name a file, or - for standard output.")
    if text.endswith(("/", os.sep)):
        raise IsADirectoryError(f"The output path {text!r} ends with a separator: name a file, not a folder.")
    target = Path(os.path.realpath(text))
    if target.is_dir():
        raise IsADirectoryError(f"The output path {text!r} is a folder: name a file.")
    if target.exists() and not target.is_file():  # a FIFO or a device: no temporary file, no rename
        with open(target, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        return
    created: list[Path] = []
    parent = target.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for folder in reversed(created):
        folder.mkdir()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if target.exists():
            mode = stat.S_IMODE(target.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


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
        raise ValueError(f"The 'sep' parameter of score_csv must be one character (not a quote or newline). Got {sep!r} instead.")
    if top_k is not None:
        check_positive_int("score_csv", "top_k", top_k)
    if chunksize is not None:
        check_positive_int("score_csv", "chunksize", chunksize)
    for name, value in (("next_step", next_step), ("skip_invalid", skip_invalid)):
        if not isinstance(value, bool):
            raise TypeError(f"The {name!r} parameter of score_csv must be a bool. Got {value!r} instead.")
    for name, names in (("ignore_columns", ignore_columns), ("annotation_columns", annotation_columns)):
        if isinstance(names, str) or not all(isinstance(v, str) for v in names):
            raise TypeError(
                f"The {name!r} parameter of score_csv must be a list of column names. Got {names!r} instead.")
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
            stream: IO[str] = stack.enter_context(open(source, encoding="utf-8-sig", newline="",
                                                       errors="surrogateescape"))
        else:
            stream = source
        if sep is None:
            sep, lines = _detect_sep(stream)
        else:
            lines = iter(stream)
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
        layout = _layout(header, header_line, model, name, ignore_columns=ignore_columns,
                         annotation_columns=annotation_columns, id_column=id_column)
        columns = [layout.id_column]
        if format == "wide":
            columns += [f"{c}_{j}" for j in range(1, k + 1) for c in per_cause]
            columns += list(STEP_COLUMNS) if with_steps else []
        else:
            columns += list(LONG_COLUMNS) + (["score"] if ranking != "posterior" else [])
        columns += list(layout.annotations) + ([ERROR_COLUMN] if skip_invalid else [])
        clash = sorted({c for c in columns if columns.count(c) > 1})
        if clash:  # two output columns of one name: a reader would take the wrong one
            raise InputFileError(name, f"column {clash[0]!r} of the input has the name of an output column "
                                 f"({', '.join(dict.fromkeys(columns))}); rename it, or drop it with "
                                 f"--ignore-column {clash[0]}.", line=header_line, column=clash[0])

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
                frame = (_wide(parsed, results, layout, n, skip_invalid) if format == "wide"
                         else _long(parsed, results, layout, n, k, skip_invalid))
                if list(frame.columns) != columns:  # never write a row that does not match the header
                    raise RuntimeError(f"internal error: scored columns {list(frame.columns)} differ from the "
                                       f"header {columns}; nothing more is written")
                _write_rows(frame, out)
                rows += n
                invalid += len(parsed.errors)
            if on_progress is not None:
                on_progress(n, chunk.chars)
        out.flush()
    logger.debug("scored %d rows of %s (%d invalid)", rows, name, invalid)
    return BatchSummary(rows=rows, scored=rows - invalid, invalid=invalid, columns=tuple(columns))
