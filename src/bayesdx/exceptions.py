"""Exceptions raised by bayesdx.

Every exception carries structured attributes as well as its message, so that callers can react to the
offending item without parsing text::

    BayesdxError
    ├── ModelFileError        a model or prior file is malformed (.path, .key, .value)
    ├── UnknownVariableError  evidence names a variable the model does not have (.variable, .suggestions)
    ├── InvalidStateError     evidence gives a state the variable does not have (.variable, .state, .valid_states)
    ├── ImpossibleEvidenceError  the evidence has probability zero under the model (.cases)
    ├── ModelTooLargeError    exact inference would need more memory than allowed (.largest_intermediate)
    ├── OutputPathError       an output cannot be written where asked (.path)
    ├── InputFileError        a cases file cannot be scored (.source, .line, .row, .case_id, .column, .value)
    └── VignetteError         a vignette file or frame cannot be evaluated (.source, .case, .column, .value)

``UnknownVariableError``, ``InvalidStateError``, ``ModelFileError``, ``ImpossibleEvidenceError``,
``InputFileError`` and ``VignetteError`` are also ``ValueError`` subclasses, so generic handlers keep working.
``InputFileError`` is raised by :func:`bayesdx.batch.score_csv` (and re-exported there), ``VignetteError``
by :mod:`bayesdx.evaluation` (and re-exported there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BayesdxError",
    "ImpossibleEvidenceError",
    "InputFileError",
    "InvalidStateError",
    "ModelFileError",
    "ModelTooLargeError",
    "OutputPathError",
    "UnknownVariableError",
    "VignetteError",
]


class BayesdxError(Exception):
    """Base class of every error bayesdx raises on purpose."""


class ModelFileError(BayesdxError, ValueError):
    """A model or prior file is malformed.

    Attributes
    ----------
    path : str
        The file.
    key : str
        The dotted key inside the file (``cpds.muscle_wasting.leak``), or ``""`` for the whole file.
    value : object
        The offending value, or ``None``.
    """

    def __init__(self, path: object, key: str, message: str, value: Any = None) -> None:
        self.path = str(path)
        self.key = key
        self.value = value
        where = f"{self.path}, key {key!r}" if key else self.path
        self._message = message
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple:  # survive pickling (Dask workers, multiprocessing)
        return (type(self), (self.path, self.key, self._message, self.value))


class UnknownVariableError(BayesdxError, KeyError, ValueError):
    """Evidence or an argument names a variable the model does not have.

    Attributes
    ----------
    variable : str
        The unknown name.
    suggestions : tuple of str
        Close matches among the model's variables, best first (may be empty).
    """

    def __init__(self, variable: str, suggestions: Sequence[str] = (), *, where: str = "") -> None:
        self.variable = variable
        self.suggestions = tuple(suggestions)
        self._where = where
        message = f"Unknown variable {variable!r}{where}."
        if self.suggestions:
            message += " Did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        else:
            message += " See model.variables for the valid names."
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.variable, self.suggestions), {"where": self._where}))


class InvalidStateError(BayesdxError, ValueError):
    """Evidence gives a state that the variable does not have.

    Attributes
    ----------
    variable : str
    state : object
        The state as given.
    valid_states : tuple of str
    """

    def __init__(self, variable: str, state: object, valid_states: Sequence[str], *, where: str = "") -> None:
        self.variable = variable
        self.state = state
        self.valid_states = tuple(valid_states)
        self._where = where
        valid = ", ".join(repr(s) for s in self.valid_states)
        super().__init__(f"Invalid state {state!r} for variable {variable!r}{where}. Valid states are {valid}.")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.variable, self.state, self.valid_states), {"where": self._where}))


class ImpossibleEvidenceError(BayesdxError, ValueError):
    """The evidence of one or more cases has probability zero under the model.

    Attributes
    ----------
    cases : tuple
        The labels (or positions) of the impossible cases.
    conflict : dict of str to str or None
        For one case (:func:`bayesdx.rank_causes`): observations that cannot hold together, none of which can be
        left out (every smaller set is possible); None when not worked out.
    """

    def __init__(self, cases: Sequence[Any], conflict: Mapping[str, str] | None = None) -> None:
        self.cases = tuple(cases)
        self.conflict = None if conflict is None else dict(conflict)
        if self.conflict is not None:
            items = ", ".join(f"{k}={v!r}" for k, v in self.conflict.items())
            super().__init__(
                f"The evidence has probability zero under the model: these observations cannot all hold: {items} "
                "(without any one of them the rest is possible). Check them for a contradiction."
            )
            return
        shown = ", ".join(repr(c) for c in self.cases[:10])
        more = f" and {len(self.cases) - 10} more" if len(self.cases) > 10 else ""
        super().__init__(
            f"The evidence of case {shown}{more} has probability zero under the model: "
            "no setting of the unobserved variables is compatible with it. "
            "Check the observed values for a contradiction."
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.cases, self.conflict))


class ModelTooLargeError(BayesdxError, MemoryError):
    """Exact inference would need a table larger than allowed.

    Attributes
    ----------
    largest_intermediate : int
        Number of entries of the largest table the contraction would build, per case.
    limit : int
        The allowed number of entries.
    """

    def __init__(self, largest_intermediate: int, limit: int, detail: str = "") -> None:
        self.largest_intermediate = int(largest_intermediate)
        self.limit = int(limit)
        self._detail = detail
        gib = self.largest_intermediate * 8 / 2**30
        super().__init__(
            "Exact inference on this network is too large: its largest intermediate table would hold "
            f"{self.largest_intermediate:.3g} entries ({gib:.3g} GiB per case), above the limit of "
            f"{self.limit:.3g} entries. {detail}"
            "Observe fewer variables at once, rank fewer causes, or use an approximate method."
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.largest_intermediate, self.limit, self._detail))


class OutputPathError(BayesdxError, OSError):
    """An output (a report folder, a scored file) cannot be written where asked.

    Attributes
    ----------
    path : str
        The path as given.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot write to {self.path!r}: {reason}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.reason))


class InputFileError(BayesdxError, ValueError):
    """A cases file cannot be scored: a bad header, a malformed line or a bad cell.

    Attributes
    ----------
    source : str
        The file (``"<stdin>"`` for standard input).
    line : int or None
        1-based line of the file where the offending record starts.
    row : int or None
        1-based data row (the header is not a row; blank lines are not counted).
    case_id : str or None
        The case id of the row, where it could be read.
    column : str or None
        The offending column.
    value : object
        The offending value (or ``None``).
    valid_states : tuple of str
        For a bad state: the states of the column's variable.
    reason : str
        The message without its location, as written to the ``error`` column with ``skip_invalid=True``.
    """

    def __init__(
        self,
        source: str,
        reason: str,
        *,
        line: int | None = None,
        row: int | None = None,
        case_id: str | None = None,
        column: str | None = None,
        value: Any = None,
        valid_states: Sequence[str] = (),
    ) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        self.row = row
        self.case_id = case_id
        self.column = column
        self.value = value
        self.valid_states = tuple(valid_states)
        where = source
        if line is not None:
            where += f", line {line}"
            details = [f"row {row}"] if row is not None else []
            if case_id is not None:
                details.append(f"case {case_id!r}")
            if details:
                where += f" ({', '.join(details)})"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep the attributes across processes
        return (_rebuild_input_file_error, (self.source, self.reason, self.__dict__.copy()))


def _rebuild_input_file_error(source: str, reason: str, attrs: dict[str, Any]) -> InputFileError:
    return InputFileError(
        source,
        reason,
        line=attrs.get("line"),
        row=attrs.get("row"),
        case_id=attrs.get("case_id"),
        column=attrs.get("column"),
        value=attrs.get("value"),
        valid_states=attrs.get("valid_states", ()),
    )


class VignetteError(BayesdxError, ValueError):
    """A vignette file or frame that cannot be evaluated.

    Attributes
    ----------
    source : str
        The file (or ``"<DataFrame>"``).
    case : str or None
        The case id of the offending row, where there is one.
    column : str or None
        The offending column.
    value : object
        The bad value.
    """

    def __init__(self, source: str, message: str, *, case: str | None = None, column: str | None = None, value: Any = None) -> None:
        self.source = source
        self.case = case
        self.column = column
        self.value = value
        where = f"case {case!r} of " if case is not None else ""
        super().__init__(f"In {where}{source}: {message}")


def _rebuild(cls: type, args: tuple, kwargs: dict) -> BayesdxError:
    """Unpickle an exception whose constructor takes keyword arguments."""
    return cls(*args, **kwargs)
