"""Reference helpers shared by the tests (importable: ``pythonpath = ["tests"]`` in pyproject.toml)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ALIASES", "pgmpy_evidence"]


def _bundled_aliases() -> dict[str, dict[str, list[str]]]:
    """The bundled model file's answer aliases (``electromyography = "abnormal"``), read with tomllib."""
    with (Path(__file__).resolve().parents[1] / "models" / "leg_twitch.toml").open("rb") as handle:
        nodes = tomllib.load(handle)["nodes"]
    return {n: dict(v["aliases"]) for n, v in nodes.items() if "aliases" in v}


ALIASES = _bundled_aliases()


def pgmpy_evidence(network: Any, evidence: Mapping[str, str]) -> tuple[dict[str, str], list[Any] | None]:
    """Hard evidence, and virtual evidence (a likelihood of one on each listed state) for an alias answer."""
    from pgmpy.factors.discrete import TabularCPD

    hard: dict[str, str] = {}
    virtual = []
    for var, state in evidence.items():
        names = list(network.get_cpds(var).state_names[var]) if var in network.nodes() else []
        members = ALIASES.get(var, {}).get(state)
        if members is None or state in names:
            hard[var] = state
        else:
            virtual.append(TabularCPD(var, len(names), [[1.0 if n in members else 0.0] for n in names], state_names={var: names}))
    return hard, virtual or None
