"""Reference helpers shared by the tests and the benchmarks, in one place.

The tests import this module directly (``pythonpath = ["tests"]`` in pyproject.toml); ``benchmarks/run.py`` and
``benchmarks/sweep.py`` load it from here too. Nothing in it uses bayesdx's own inference: it reads pgmpy's
example networks, renormalizes their CPDs, builds the same network in pyAgrum and enters alias answers as
pgmpy virtual evidence.
"""

from __future__ import annotations

import itertools
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALIASES", "example_network", "normalized", "pgmpy_evidence", "pyagrum_from_pgmpy"]


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


def example_network(name: str) -> Any:
    """One of pgmpy's example networks (``pgmpy.utils.get_example_model``), read quietly."""
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_example_model(name)


def normalized(network: Any) -> Any:
    """A copy of ``network`` whose every CPD column sums to 1 (to rounding).

    With columns that sum to 1 + 1e-7 (hepar2's ``ggtp``), P(e) and the posteriors depend, at the 1e-8 level,
    on whether a reference sums an unobserved descendant out or drops it; a 1e-9 comparison needs proper CPDs.
    """
    copy = network.copy()
    cpds = []
    for cpd in network.get_cpds():
        cpd = cpd.copy()
        cpd.normalize(inplace=True)
        cpds.append(cpd)
    copy.remove_cpds(*copy.get_cpds())
    copy.add_cpds(*cpds)
    copy.check_model()
    return copy


def pyagrum_from_pgmpy(network: Any) -> Any:
    """The same network as a pyAgrum BayesNet, built CPD by CPD from the pgmpy tables."""
    import pyagrum as gum

    bn = gum.BayesNet()
    cpds = {cpd.variable: cpd for cpd in network.get_cpds()}
    for name, cpd in cpds.items():
        bn.add(gum.LabelizedVariable(name, name, [str(s) for s in cpd.state_names[name]]))
    for name, cpd in cpds.items():
        for parent in cpd.variables[1:]:
            bn.addArc(parent, name)
    for name, cpd in cpds.items():
        parents = list(cpd.variables[1:])
        values = np.asarray(cpd.get_values(), dtype=float)  # (child states, parent configurations), first parent slowest
        if not parents:
            bn.cpt(name).fillWith(values[:, 0].tolist())
            continue
        configurations = itertools.product(*[[str(s) for s in cpd.state_names[p]] for p in parents])
        for column, configuration in enumerate(configurations):
            bn.cpt(name)[dict(zip(parents, configuration, strict=True))] = values[:, column].tolist()
    return bn
