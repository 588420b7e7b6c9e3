"""Studies: tests that clinicians order and do together, valued as one next step.

A model file may declare::

    [[studies]]
    id = "emg_ncs"
    label = "EMG and nerve conduction study"
    tests = ["electromyography", "electroneurography"]
    cost = 40.0
    basis = "clinical: ..."

Next steps then offer the study beside its tests: one candidate whose outcomes are every combination of
its tests' results, at the study's cost (see :mod:`bayesdx.next_steps`). A study is offered only while none
of its tests is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ModelFileError

__all__ = ["Study", "parse_studies"]


@dataclass(frozen=True)
class Study:
    """Tests done together as one step."""

    id: str
    label: str
    tests: tuple[str, ...]
    cost: float
    basis: str


def parse_studies(path: Path, raw: Any, roles: Mapping[str, str], taken: Sequence[str]) -> dict[str, Study]:
    """The ``[[studies]]`` of a model file, validated against its nodes (``roles``: node id -> role)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ModelFileError(path, "studies", f"must be an array of tables ([[studies]]), got {raw!r}", raw)
    studies: dict[str, Study] = {}
    for k, entry in enumerate(raw):
        key = f"studies[{k}]"
        if not isinstance(entry, dict):
            raise ModelFileError(path, key, f"must be a table, got {entry!r}", entry)
        sid = entry.get("id")
        if not isinstance(sid, str) or not sid or sid in taken or sid in studies:
            raise ModelFileError(path, f"{key}.id", f"must be a new name (not a node or another study), got {sid!r}", sid)
        tests = entry.get("tests")
        if not isinstance(tests, list) or len(tests) < 2 or len(set(tests)) != len(tests):
            raise ModelFileError(path, f"{key}.tests", f"must list at least two distinct tests, got {tests!r}", tests)
        for t in tests:
            if roles.get(t) != "test":
                raise ModelFileError(path, f"{key}.tests", f"{t!r} is not a test of the model", t)
        cost = entry.get("cost")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
            raise ModelFileError(path, f"{key}.cost", f"must be a finite number >= 0, got {cost!r}", cost)
        if not entry.get("basis"):
            raise ModelFileError(path, f"{key}.basis", "is missing: say why these tests are done together")
        studies[sid] = Study(sid, str(entry.get("label", sid)), tuple(tests), float(cost), str(entry["basis"]))
    return studies
