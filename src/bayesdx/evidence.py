"""Turning user evidence into validated state names and per-case likelihood vectors."""

from __future__ import annotations

import contextlib
import decimal
import difflib
import math
import sys
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .exceptions import InvalidStateError, UnknownVariableError

if TYPE_CHECKING:
    import pandas as pd

    from .model import Model

__all__ = ["KNOWN_ANNOTATIONS", "normalize_evidence"]

#: Columns of the vignette layout that annotate a case rather than give evidence; they pass through.
KNOWN_ANNOTATIONS = ("true_cause", "true_triage", "true_referral", "rationale", "notes", "source")

_TRUE_NAMES = ("yes", "true", "present")
_FALSE_NAMES = ("no", "false", "absent")


def is_missing(value: Any) -> bool:
    """True for the values that mean "not observed": None, NaN and the empty string."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)) and math.isnan(value):  # float16/32/64, longdouble
        return True
    if isinstance(value, decimal.Decimal) and value.is_nan():
        return True
    if isinstance(value, (np.datetime64, np.timedelta64)) and np.isnat(value):
        return True
    if isinstance(value, str) and value == "":
        return True
    pd = sys.modules.get("pandas")  # pd.NA and pd.NaT exist only once pandas is imported: no need to import it
    return pd is not None and bool(value is pd.NA or value is pd.NaT)


def unknown_variable(model: Model, name: object, where: str = "") -> UnknownVariableError:
    close = difflib.get_close_matches(str(name), model.variables, n=3, cutoff=0.6)
    return UnknownVariableError(str(name), close, where=where)


def to_state(model: Model, variable: str, value: Any, where: str = "") -> str | None:
    """The state name that ``value`` stands for, or None when it means "not observed"."""
    if value.__class__ is str and variable in model.states and value in _answers(model, variable)[1]:
        return value  # the common case, a valid answer: no other check can fail
    if is_missing(value):
        return None
    states = model.answers(variable)
    if isinstance(value, (bool, np.bool_)):
        names = _TRUE_NAMES if value else _FALSE_NAMES
        for s in states:
            if s.lower() in names:
                return s
        raise InvalidStateError(variable, value, states, where=where)
    if isinstance(value, np.str_):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(
            f"Evidence for {variable!r}{where} must be a state name (str), a bool, or None/NaN/'' for "
            f"not observed. Got {type(value).__name__} {value!r}; valid states are " + ", ".join(repr(s) for s in states) + "."
        )
    if value not in states:
        raise InvalidStateError(variable, value, states, where=where)
    return value


def normalize_evidence(evidence: Mapping[str, Any] | None, model: Model, *, where: str = "") -> dict[str, str]:
    """Validate ``evidence`` against ``model`` and return ``{variable: state}`` without unobserved entries.

    Parameters
    ----------
    evidence : mapping of str to str, bool or None
        State names; ``True``/``False`` map to ``yes``/``no``; ``None``, ``NaN`` and ``""`` mean not observed.
    model : Model
    where : str
        Text appended to error messages to locate the case (for example ``" in case 3"``).

    Raises
    ------
    TypeError
        If ``evidence`` is not a mapping, or a value is neither a str, a bool nor missing.
    UnknownVariableError, InvalidStateError
    """
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise TypeError(
            f"Evidence{where} must be a mapping of variable to state, such as "
            f"{{'painful_cramps': 'yes'}}. Got {type(evidence).__name__} instead."
        )
    result: dict[str, str] = {}
    for variable, value in evidence.items():
        if not isinstance(variable, str):
            raise TypeError(f"Evidence{where} must be keyed by variable names (str). Got {type(variable).__name__} {variable!r}.")
        if variable not in model.states:
            raise unknown_variable(model, variable, where)
        state = to_state(model, variable, value, where)
        if state is not None:
            result[variable] = state
    return result


def likelihoods_from_evidence(model: Model, cases: Sequence[Mapping[str, str]]) -> dict[str, np.ndarray]:
    """Per-variable likelihood arrays (one-hot where observed, ones elsewhere) for normalized cases."""
    n = len(cases)
    arrays: dict[str, np.ndarray] = {}
    for k, case in enumerate(cases):
        for variable, state in case.items():
            vectors, code = _answers(model, variable)
            row = code.get(state)
            vector = model.answer_vector(variable, state) if row is None else vectors[row]  # (not an answer: its error)
            arr = arrays.get(variable)
            if arr is None:
                if n == 1:  # a single case: its row, no array of ones to overwrite
                    arrays[variable] = vector[None, :].copy()
                    continue
                arr = arrays[variable] = np.ones((n, len(model.states[variable])))
            arr[k] = vector
    return arrays


#: Per model and variable, the likelihood vector of each accepted answer (one row each) and each answer's row.
_ANSWERS: weakref.WeakKeyDictionary[Model, dict[str, tuple[np.ndarray, dict[str, int]]]] = weakref.WeakKeyDictionary()


def _answers(model: Model, variable: str) -> tuple[np.ndarray, dict[str, int]]:
    """The likelihood vectors of ``variable``'s answers, its states then its aliases, and each answer's row."""
    known = _ANSWERS.get(model)
    if known is None:
        known = _ANSWERS[model] = {}
    got = known.get(variable)
    if got is None:
        answers = model.answers(variable)
        got = known[variable] = (np.array([model.answer_vector(variable, a) for a in answers]), {a: j for j, a in enumerate(answers)})
    return got


#: Per model and variable, the cells of columns of objects already read and valid (a valid cell always reads
#: the same; a bad one raises, a missing one is not kept), so that many small frames (batches of a few cases
#: with many columns) do not check each cell again. Text columns need none: their answers are looked up in
#: :func:`_answers` directly.
_ANSWER_CODES: weakref.WeakKeyDictionary[Model, dict[str, dict[Any, int]]] = weakref.WeakKeyDictionary()


def likelihoods_from_frame(model: Model, frame: pd.DataFrame, *, row_label: str = "row") -> dict[str, np.ndarray]:
    """Per-variable likelihood arrays for a DataFrame (one row a case, one column a variable).

    Raises
    ------
    UnknownVariableError
        For a column that is not a variable of the model.
    InvalidStateError, TypeError
        For a bad cell, naming the row label and the column.
    """
    import pandas as pd  # here: the caller already has it, and rank_causes starts without it

    n = len(frame)
    arrays: dict[str, np.ndarray] = {}
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise ValueError(f"The cases have the column {duplicated[0]!r} more than once; each variable needs one column.")
    known = _ANSWER_CODES.setdefault(model, {})
    for column, series in frame.items():  # items(): indexing the frame by column name costs several times more
        if not isinstance(column, str) or column not in model.states:
            raise unknown_variable(model, column, " (a column of the cases)")
        vectors, rows = _answers(model, column)
        if isinstance(series.dtype, pd.StringDtype):
            # a text column (every cell a str or missing): each distinct text looked up once among the answers; one
            # that is not an answer is missing or an error naming its first row (the texts in the order the rows
            # first give them, so the first bad cell is the one named, as cell by cell); missing cells are -1
            inverse, uniques = pd.factorize(series, use_na_sentinel=True)
            unique_codes = np.array([rows.get(text, -2) for text in uniques], dtype=np.int64)
            for j in np.flatnonzero(unique_codes == -2).tolist():
                label = frame.index[int(np.argmax(inverse == j))]
                state = to_state(model, column, uniques[j], f" in {row_label} {label!r}")
                unique_codes[j] = -1 if state is None else rows[state]
            codes = np.where(inverse >= 0, unique_codes[inverse], -1) if len(uniques) else np.full(n, -1)
        else:
            lookup = known.setdefault(column, {})  # the model's valid cells read so far, by type and value
            codes = _codes(model, column, series.to_numpy(dtype=object), frame.index, row_label, dict(lookup), lookup)
        observed = codes >= 0
        if observed.any():
            arr = np.ones((n, len(model.states[column])))
            arr[observed] = vectors[codes[observed]]
            arrays[column] = arr
    return arrays


def _codes(
    model: Model, column: str, values: np.ndarray, index: Any, row_label: str, seen: dict[Any, int], lookup: dict[Any, int]
) -> np.ndarray:
    """Each cell's answer row (-1: missing), cell by cell, for a column of any dtype (``seen``: this frame's
    cells read so far; ``lookup``: the model's valid answers, both updated)."""
    states = model.answers(column)
    codes = np.full(len(values), -1, dtype=np.int64)
    for k, value in enumerate(values):
        key = (type(value), value)
        try:
            code = seen[key]
        except (KeyError, TypeError):
            label = index[k]
            state = to_state(model, column, value, f" in {row_label} {label!r}")
            code = -1 if state is None else states.index(state)
            with contextlib.suppress(TypeError):  # an unhashable value is not kept
                seen[key] = code
            if state is not None:  # a valid answer is kept for the model (a missing one is not: NaN objects differ)
                lookup[key] = code
        codes[k] = code
    return codes
