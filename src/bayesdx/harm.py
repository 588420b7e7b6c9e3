"""Harm weights: what missing each cause costs, so that next steps pursue what is at stake.

A model file may declare::

    [harm]
    default = 1.0                 # weight of a cause not listed in a group
    basis = "..."
    [[harm.groups]]
    weight = 3.0
    causes = ["als", "multiple_sclerosis", "epilepsy"]
    basis = "clinical: ..."

With harm weights the next-step value of a candidate ``X`` is its *harm-weighted* expected information gain
over every cause hypothesis::

    EIG_w(X) = S_w(e) - sum_x P(X = x | e) S_w(e, X = x),     S_w(e) = sum_h w_h h2(P(h | e)),

minus ``alpha`` times its cost: uncertainty about a serious cause is worth more bits than the same uncertainty
about a benign trigger (GeNIe's diagnosis mode pursues the faults in focus; Pathfinder weighs tests by the
utility of the diagnoses they separate). A hypothesis that is nearly ruled in or out contributes little
whatever its weight, so every cause can be pursued at once. ``pursue=[...]`` restores an unweighted
pursued set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ModelFileError

__all__ = ["HarmWeights"]


@dataclass(frozen=True)
class HarmWeights:
    """The harm weight of every cause hypothesis, and where each came from."""

    weights: Mapping[str, float]
    bases: Mapping[str, str]

    def vector(self, hypotheses: Sequence[str]) -> np.ndarray:
        """The weights in ``hypotheses`` order."""
        return np.array([self.weights[h] for h in hypotheses], dtype=float)

    @classmethod
    def parse(cls, path: Path, raw: Any, hypotheses: Sequence[str]) -> HarmWeights:
        if not isinstance(raw, dict):
            raise ModelFileError(path, "harm", f"must be a table, got {raw!r}", raw)
        default = raw.get("default", 1.0)
        if isinstance(default, bool) or not isinstance(default, (int, float)) or not 0 <= default < float("inf"):
            raise ModelFileError(path, "harm.default", f"must be a finite number >= 0, got {default!r}", default)
        if not raw.get("basis"):
            raise ModelFileError(path, "harm.basis", "is missing: say where the default weight comes from")
        weights = dict.fromkeys(hypotheses, float(default))
        bases = dict.fromkeys(hypotheses, str(raw["basis"]))
        seen: set[str] = set()
        for k, group in enumerate(raw.get("groups", [])):
            key = f"harm.groups[{k}]"
            if not isinstance(group, dict):
                raise ModelFileError(path, key, f"must be a table, got {group!r}", group)
            weight = group.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                raise ModelFileError(path, f"{key}.weight", f"must be a finite number >= 0, got {weight!r}", weight)
            if not group.get("basis"):
                raise ModelFileError(path, f"{key}.basis", "is missing: every harm weight cites its reason")
            causes = group.get("causes")
            if not isinstance(causes, list) or not causes:
                raise ModelFileError(path, f"{key}.causes", f"must list cause hypotheses, got {causes!r}", causes)
            for c in causes:
                if c not in weights:
                    raise ModelFileError(path, f"{key}.causes", f"{c!r} is not a cause hypothesis of the model", c)
                if c in seen:
                    raise ModelFileError(path, f"{key}.causes", f"{c!r} is already in an earlier group", c)
                seen.add(c)
                weights[c] = float(weight)
                bases[c] = str(group["basis"])
        return cls(weights, bases)
