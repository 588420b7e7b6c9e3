"""Declared defaults of the tunable options, each with its validator (one table, after arviz-base rcparams).

Options are passed as arguments; this table only holds their defaults and checks their values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any


def _non_negative_float(function: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"The {name!r} parameter of {function} must be a finite number >= 0. Got {value!r} instead.")
    return float(value)


def _positive_int(function: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"The {name!r} parameter of {function} must be an int >= 1. Got {value!r} instead.")
    return value


def _probability(function: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"The {name!r} parameter of {function} must be a number in [0, 1]. Got {value!r} instead.")
    return float(value)


def _ranking(function: str, name: str, value: Any) -> str:
    from .counterfactual import RANKINGS

    if value not in RANKINGS:
        raise ValueError(f"The {name!r} parameter of {function} must be one of {sorted(RANKINGS)!r}. Got {value!r} instead.")
    return str(value)


#: option -> (default, validator, meaning)
DEFAULTS: MappingProxyType[str, tuple[Any, Callable[[str, str, Any], Any], str]] = MappingProxyType(
    {
        "alpha": (
            0.01,
            _non_negative_float,
            "Entropy-to-cost ratio: bits of expected information gain that one unit of the model's cost scale is "
            "worth. A step's value is EIG - alpha * cost. Anchored on the scale's most invasive test: a muscle "
            "biopsy (cost 100) is worth doing when it is expected to settle one bit, a coin-flip hypothesis; so "
            "alpha = 1/100. A question (cost 1) must then gain 0.01 bits, a blood test (5) 0.05, an EEG (20) 0.2, "
            "an MRI (50) 0.5.",
        ),
        "n_pursued": (
            5,
            _positive_int,
            "How many leading hypotheses are pursued by default (GeNIe's pursued faults): the top five at the "
            "current evidence, plus any other hypothesis with posterior >= min_pursued_probability.",
        ),
        "ranking": (
            "expected_disablement",
            _ranking,
            "What the causes are ranked by: 'posterior' (is the cause present?), 'disablement' (would curing it "
            "stop the twitching?) or 'expected_disablement' (how many of the positive findings would curing it "
            "switch off; Richens, Lee and Johri 2020). Chosen by the development evaluation: see README.",
        ),
        "min_pursued_probability": (
            0.2,
            _probability,
            "A hypothesis with at least this posterior is pursued even when it is not among the top n_pursued.",
        ),
    }
)


def resolve(function: str, name: str, value: Any) -> Any:
    """The validated value of option ``name`` (its default when ``value`` is None)."""
    default, validator, _ = DEFAULTS[name]
    return validator(function, name, default if value is None else value)
