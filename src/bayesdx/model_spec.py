"""The parsed form of model and prior files, and the checks of single values their readers share.

:class:`ModelSpec` (with its :class:`NodeSpec` nodes) is a model file as read by
:func:`bayesdx.model_file.read_model_file`, and :class:`PriorSetting` a prior file; the CPD tables are
computed from a spec by :mod:`bayesdx.cpd_tables` and the pgmpy network built by
:mod:`bayesdx.network_build`. Every error is a :class:`~bayesdx.exceptions.ModelFileError` naming the file,
the key and the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ModelFileError

__all__ = [
    "CPD_KINDS",
    "NORMAL_NAMES",
    "ROLES",
    "TOLERANCE",
    "Hypothesis",
    "ModelSpec",
    "NodeSpec",
    "PriorSetting",
    "default_normal",
    "hypotheses_of",
]

ROLES = ("cause", "finding", "test", "hidden")
CPD_KINDS = ("table", "noisy_or", "noisy_max", "cause_prior")
NORMAL_NAMES = ("absent", "normal", "no", "false")
TOLERANCE = 1e-9


@dataclass(frozen=True)
class NodeSpec:
    """One node of a model file."""

    id: str
    role: str
    states: tuple[str, ...]
    label: str
    description: str
    normal: str | None
    cost: float | None
    basis: str
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    examination: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A parsed and validated model file, before priors are applied.

    Attributes
    ----------
    path : pathlib.Path
    id, version, title, description, default_priors, cost_scale : str
    question_cost : float
    nodes : dict of str to NodeSpec
        In file order.
    cpds : dict of str to dict
        The raw CPD tables of the file, keyed by node id.
    """

    path: Path
    id: str
    version: str
    title: str
    description: str
    default_priors: str
    question_cost: float
    cost_scale: str
    nodes: dict[str, NodeSpec]
    cpds: dict[str, dict[str, Any]] = field(repr=False)
    triage: dict[str, Any] | None = field(default=None, repr=False)
    referral: dict[str, Any] | None = field(default=None, repr=False)
    harm: dict[str, Any] | None = field(default=None, repr=False)
    studies: list[Any] | None = field(default=None, repr=False)
    presenting: dict[str, str] = field(default_factory=dict)
    prior_reference: dict[str, str] | None = None

    def parents(self, node: str) -> tuple[str, ...]:
        """Parents of ``node`` as declared by its CPD."""
        cpd = self.cpds[node]
        kind = cpd["kind"]
        if kind == "table":
            return tuple(cpd.get("parents", ()))
        if kind == "cause_prior":
            return tuple(cpd.get("odds_ratios", {}))
        return tuple(cpd.get("links", {}))


@dataclass(frozen=True)
class PriorSetting:
    """A parsed prior file.

    Attributes
    ----------
    path : pathlib.Path
    id, title, description, scale : str
    probabilities : dict of str to float
        Prior probability of each cause.
    provenance : dict of str to dict
        Per cause: the ``quote``, ``qualifier``, ``assumption`` or ``source`` it carries.
    """

    path: Path
    id: str
    title: str
    description: str
    scale: str
    probabilities: dict[str, float]
    provenance: dict[str, dict[str, str]]


# ---------------------------------------------------------------------- values
def _probability(path: Path, key: str, value: Any, *, open_interval: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ModelFileError(path, key, f"must be a number, got {value!r}", value)
    low_ok = value > 0 if open_interval else value >= 0
    high_ok = value < 1 if open_interval else value <= 1
    if not (low_ok and high_ok):
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ModelFileError(path, key, f"must be a probability in {interval}, got {value!r}", value)
    return float(value)


def _distribution(path: Path, key: str, value: Any, n_states: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n_states:
        raise ModelFileError(path, key, f"must be a list of {n_states} probabilities, got {value!r}", value)
    probs = np.array([_probability(path, f"{key}[{k}]", v) for k, v in enumerate(value)])
    if abs(probs.sum() - 1.0) > TOLERANCE:
        raise ModelFileError(path, key, f"must sum to 1 within {TOLERANCE:g}, sums to {float(probs.sum())!r}", value)
    return probs


def default_normal(states: Sequence[str]) -> str | None:
    """The state named absent/normal/no/false (case-insensitive), if exactly one state is."""
    found = [s for s in states if s.lower() in NORMAL_NAMES]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Hypothesis:
    """One ranked hypothesis: a state of a cause node.

    Attributes
    ----------
    id : str
        ``node`` for a binary cause, ``"node=state"`` otherwise (``"Cirrhosis=decompensate"``).
    node : str
    state : str
    """

    id: str
    node: str
    state: str


def hypotheses_of(causes: Sequence[str], states: Mapping[str, Sequence[str]], normals: Mapping[str, str | None]) -> tuple[Hypothesis, ...]:
    """The ranked hypotheses of cause nodes: the abnormal state of a binary cause, else every non-normal state."""
    result = []
    for c in causes:
        normal = normals[c]
        if normal is not None and len(states[c]) == 2:
            result.append(Hypothesis(c, c, next(s for s in states[c] if s != normal)))
        else:
            result.extend(Hypothesis(f"{c}={s}", c, s) for s in states[c] if s != normal)
    return tuple(result)
