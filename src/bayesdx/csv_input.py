"""Reading a CSV file of cases for :func:`bayesdx.batch.score_csv`: records, the header's layout, checked cells.

The file is split into records by the ``csv`` module (a record that is not valid CSV is kept, with the
reason, so that it can be reported or skipped), grouped into chunks of rows, and each chunk is parsed
against the layout read from the header: the case id column, the model variables given as evidence and
the annotation columns passed through. Every problem is an :class:`~bayesdx.exceptions.InputFileError`
naming the file, the line, the row, the case, the column and the value; with ``strict=False`` it is
recorded for its row instead of raised.
"""

from __future__ import annotations

import collections
import csv
import difflib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from .evidence import KNOWN_ANNOTATIONS, to_state
from .exceptions import InputFileError, InvalidStateError
from .model import Model

__all__ = ["DELIMITERS"]

#: Delimiters ``score_csv`` recognises in the header line when ``sep`` is not given.
DELIMITERS = (",", ";", "\t", "|")


# ---------------------------------------------------------------------- reading records
@dataclass
class _Chunk:
    rows: list[list[str] | None]  # the fields of each record (None: not valid CSV)
    reasons: list[str]  # why a record is not valid CSV ("" when it is)
    lines: list[int]  # 1-based line where each record starts
    first_row: int  # 1-based data row of the first record
    chars: int  # characters consumed from the input, blank lines included


class _CountingLines:
    """The stream's lines, counting the characters handed to the CSV reader (for progress)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.chars = 0
        self.raw: list[str] = []  # the lines of the record being read
        self.again: collections.deque[str] = collections.deque()  # lines to hand out again before the stream's

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = self.again.popleft() if self.again else next(self.stream)
        self.chars += len(line)
        self.raw.append(line)
        return line

    def read_again(self, lines: Sequence[str]) -> None:
        """Hand ``lines`` out again (their characters are counted again when they are)."""
        self.again.extendleft(reversed(lines))
        self.chars -= sum(map(len, lines))


def _records(stream: IO[str], source: str, sep: str = ",") -> Iterator[tuple[int, list[str] | None, str, int]]:
    """``(start line, fields or None, reason, characters consumed)`` of each non-blank CSV record.

    Records are split by the ``csv`` module (RFC 4180: a quote inside an unquoted field is an ordinary
    character; a quoted field may span lines). A record that is not valid CSV yields ``None`` and the reason,
    and reading goes on at the next line. A quote never closed swallows every line after it (the ``csv``
    module reads to the end of the file looking for its close): the record is then its first line alone, and
    the lines after it are read again as records of their own. Lines are counted by the reader (``line_num``,
    less the lines it was handed twice).
    """
    lines = _CountingLines(stream)
    reader = csv.reader(lines, strict=True, delimiter=sep)
    last = 0
    twice = 0  # lines the reader was handed again
    while True:
        reason = ""
        fields: list[str] | None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = None
            # a quote opened on the record's first line and never closed (the csv module read on to the end of the
            # file), or closed by a quote that opens a field of a later line (another unclosed quote), swallowed the
            # lines after the first: they are read again as records of their own. A quoted field that ran over lines
            # and closed, with text after its closing quote, stays one record.
            end_of_data = "unexpected end of data" in str(exc)
            swallowed = len(lines.raw) > 1 and (end_of_data or _opens_a_field(lines.raw[-1], sep))
            reason = (
                "a quoted field opened on this line is never closed (unbalanced '\"')."
                if end_of_data or swallowed
                else f"the line is not valid CSV ({exc})."
            )
            if swallowed:
                lines.read_again(lines.raw[1:])
                twice += len(lines.raw) - 1
                lines.raw = lines.raw[:1]
            # what the record holds up to the error, read leniently: enough to name the case
            reason = "\0".join([reason, *_lenient("".join(lines.raw).rstrip("\r\n"), sep)])
        lines.raw = []
        start, last = last + 1, reader.line_num - twice
        if fields is not None and (not fields or (len(fields) == 1 and not fields[0].strip())):
            continue  # a blank line: its characters count towards the next record
        consumed, lines.chars = lines.chars, 0
        yield start, fields, reason, consumed


def _opens_a_field(line: str, sep: str) -> bool:
    """Whether the quote that closed a quoted field running over from the lines before (the first quote of ``line``
    not doubled) stands where a field starts when ``line`` is read alone: then it opens a field of its own."""
    k = line.find('"')
    while k >= 0 and line.startswith('""', k):
        k = line.find('"', k + 2)
    return k == 0 or (k > 0 and line[k - 1] == sep)


def _lenient(text: str, sep: str) -> list[str]:
    """The fields of a record that is not valid CSV, read leniently: enough to name its case (split at ``sep``
    where even that fails, as for a field over the ``csv`` module's size limit)."""
    try:
        return next(csv.reader([text], delimiter=sep, strict=False), [])
    except csv.Error:
        return text.rstrip("\r\n").split(sep)


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


def _without_bom(stream: Iterable[str]) -> Iterator[str]:
    """The stream's lines, a byte-order mark at the start of the first removed, whatever opened the stream: the one
    place a BOM is dropped (a file opened as plain UTF-8 keeps it, and the first column's name would then match
    nothing)."""
    lines = iter(stream)
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from lines


def _detect_sep(stream: Iterable[str]) -> tuple[str, Iterator[str]]:
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


def _printable(text: str) -> str:
    """``text`` with each byte that was not valid UTF-8 written as ``\\x..`` (so that its row can be found)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if _undecodable(text) else text


# ---------------------------------------------------------------------- the input's layout
@dataclass(frozen=True)
class _Layout:
    columns: tuple[str, ...]  # as in the header
    id_column: str
    variables: tuple[str, ...]  # model variables used as evidence
    annotations: tuple[str, ...]  # passed through


def _layout(
    header: list[str],
    line: int,
    model: Model,
    source: str,
    *,
    ignore_columns: Sequence[str],
    annotation_columns: Sequence[str],
    id_column: str | None,
) -> _Layout:
    if not header or header == [""]:
        raise InputFileError(source, "the header line is empty.", line=line)
    seen: set[str] = set()
    for name in header:
        if name == "":
            place = header.index(name) + 1
            hint = " (a spreadsheet may have saved empty columns after the last one: delete them)" if not any(header[place:]) else ""
            raise InputFileError(source, f"column {place} of the header has no name. Name it, or remove the column{hint}.", line=line)
        if name in seen:
            raise InputFileError(source, f"column {name!r} appears twice in the header.", line=line, column=name)
        seen.add(name)
    # named as both the Python parameter and the command line's option: the same message serves both
    for option, names in (("ignore_columns (--ignore-column)", ignore_columns), ("annotation_columns (--keep-column)", annotation_columns)):
        for name in names:
            if name not in seen:
                raise InputFileError(
                    source,
                    f"{option} names {name!r}, which is not a column of the input. Its columns are {', '.join(map(repr, header))}.",
                    line=line,
                    column=name,
                )
    if id_column is None:
        id_column = "case_id" if "case_id" in seen else header[0]
        if id_column in model.states and id_column not in ignore_columns:
            raise InputFileError(
                source,
                f"the input has no 'case_id' column and its first column {id_column!r} is a variable of "
                f"model {model.id!r}, not a case id. Add a case_id column first (or name the id column).",
                line=line,
                column=id_column,
            )
    elif id_column not in seen:
        raise InputFileError(
            source,
            f"the id column {id_column!r} is not a column of the input. Its columns are {', '.join(map(repr, header))}.",
            line=line,
            column=id_column,
        )
    for name in annotation_columns:
        if name in model.states and name not in ignore_columns:
            raise InputFileError(
                source,
                f"annotation_columns (--keep-column) names {name!r}, a variable of model {model.id!r}: passing it through "
                "would drop its evidence. Rename the column to keep it as an annotation.",
                line=line,
                column=name,
            )
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
                source,
                f"column {name!r} is neither a variable of model {model.id!r} nor a known annotation "
                f"({', '.join(KNOWN_ANNOTATIONS)}).{hint} To drop it, name it in ignore_columns "
                f"(bayesdx score --ignore-column {name}); to pass it through, in annotation_columns "
                f"(--keep-column {name}).",
                line=line,
                column=name,
            )
    if not any(name in model.states for name in header):  # (ignoring every variable on purpose is allowed)
        raise InputFileError(
            source,
            f"no column is a variable of model {model.id!r} (columns: {', '.join(map(repr, header))}), so "
            "every case would be scored with nothing observed. Is the file separated by something other than "
            "the delimiter used (bayesdx score --sep)?",
            line=line,
        )
    return _Layout(tuple(header), id_column, tuple(variables), tuple(annotations))


# ---------------------------------------------------------------------- parsing and checking a chunk
@dataclass
class _Parsed:
    frame: pd.DataFrame  # every well-formed row, all layout columns, str cells
    errors: dict[int, InputFileError]  # position in the chunk -> why the row is invalid
    ids: list[str]  # case id of every row of the chunk (may be "" for malformed rows)


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
            shown = None if case_id is None else _printable(case_id)  # an id not valid UTF-8: its bytes as \xe9
            err = InputFileError(source, reason, line=chunk.lines[k], row=chunk.first_row + k, case_id=shown, column=column)
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


def _check_states(
    parsed: _Parsed, chunk: _Chunk, layout: _Layout, checker: _StateChecker, model: Model, source: str, *, strict: bool
) -> None:
    for variable in layout.variables:
        values = parsed.frame[variable].to_numpy(dtype=object)
        bad = checker.bad_values(variable, values)
        if not bad:
            continue
        for k in np.flatnonzero(pd.Series(values).isin(list(bad)).to_numpy()).tolist():
            if k in parsed.errors:
                continue
            value = values[k]
            states = model.answers(variable)  # the states and the coarser answers the model takes (abnormal, ...)
            err = InputFileError(
                source,
                f"invalid state {value!r} for column {variable!r}. Valid states are "
                f"{', '.join(map(repr, states))} (or an empty cell for not observed).",
                line=chunk.lines[k],
                row=chunk.first_row + k,
                case_id=parsed.ids[k],
                column=variable,
                value=value,
                valid_states=states,
            )
            if strict:
                raise err
            parsed.errors[k] = err
