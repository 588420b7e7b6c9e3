"""Exceptions raised by bayesdx.

Every exception carries structured attributes as well as its message, so that callers can react to the
offending item without parsing text::

    BayesdxError
    ├── ModelFileError        a model or prior file is malformed (.path, .key, .value)
    ├── UnknownVariableError  evidence names a variable the model does not have (.variable, .suggestions)
    ├── InvalidStateError     evidence gives a state the variable does not have (.variable, .state, .valid_states)
    ├── ImpossibleEvidenceError  the evidence has probability zero under the model (.cases)
    ├── ModelTooLargeError    exact inference would need more memory than allowed (.largest_intermediate)
    └── OutputPathError       an output cannot be written where asked (.path)

``UnknownVariableError``, ``InvalidStateError``, ``ModelFileError`` and ``ImpossibleEvidenceError`` are
also ``ValueError`` subclasses, so generic handlers keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BayesdxError",
    "ImpossibleEvidenceError",
    "InvalidStateError",
    "ModelFileError",
    "ModelTooLargeError",
    "OutputPathError",
    "UnknownVariableError",
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
        super().__init__(
            f"Invalid state {state!r} for variable {variable!r}{where}. Valid states are {valid}."
        )

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.variable, self.state, self.valid_states), {"where": self._where}))


class ImpossibleEvidenceError(BayesdxError, ValueError):
    """The evidence of one or more cases has probability zero under the model.

    Attributes
    ----------
    cases : tuple
        The labels (or positions) of the impossible cases.
    """

    def __init__(self, cases: Sequence[Any]) -> None:
        self.cases = tuple(cases)
        shown = ", ".join(repr(c) for c in self.cases[:10])
        more = f" and {len(self.cases) - 10} more" if len(self.cases) > 10 else ""
        super().__init__(
            f"The evidence of case {shown}{more} has probability zero under the model: "
            "no setting of the unobserved variables is compatible with it. "
            "Check the observed values for a contradiction."
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.cases,))


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


def _rebuild(cls: type, args: tuple, kwargs: dict) -> BayesdxError:
    """Unpickle an exception whose constructor takes keyword arguments."""
    return cls(*args, **kwargs)
