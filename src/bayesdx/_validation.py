"""Validation of public parameters, with one message shape (after scikit-learn's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_option(function: str, name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"The {name!r} parameter of {function} must be one of {choices}. Got {value!r} instead.")


def check_type(function: str, name: str, value: Any, expected: type | tuple[type, ...], what: str) -> None:
    """Raise TypeError unless ``value`` is an instance of ``expected`` (described as ``what``)."""
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in _as_tuple(expected)):
        raise TypeError(f"The {name!r} parameter of {function} must be {what}. Got {type(value).__name__} {value!r} instead.")


def check_int(function: str, name: str, value: Any, low: int) -> int:
    """``value`` as an int; TypeError unless it is an integer (not a bool), ValueError if it is below ``low``."""
    import numpy as np

    check_type(function, name, value, (int, np.integer), f"an int >= {low}")
    if value < low:
        raise ValueError(f"The {name!r} parameter of {function} must be an int >= {low}. Got {value!r} instead.")
    return int(value)


def check_positive_int(function: str, name: str, value: Any) -> None:
    """Raise TypeError/ValueError unless ``value`` is an int >= 1."""
    check_int(function, name, value, 1)


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)
