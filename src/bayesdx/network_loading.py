"""Models from pgmpy networks and BIF/XMLBIF files: reading the files and checking the roles given for a network.

A model file declares the role, normal state and cost of every node itself; a network (a pgmpy
``DiscreteBayesianNetwork``, or one read from a ``.bif`` or ``.xml``/``.xmlbif`` file by
:func:`read_network_file`) is given them by the caller of :func:`bayesdx.load_model`, and
:func:`network_roles` checks them against the network. :func:`bayesdx.model.from_network` wraps the
result in a :class:`~bayesdx.model.Model`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine import CompiledNetwork
from .exceptions import ModelFileError
from .model_spec import default_normal

__all__ = ["NETWORK_SUFFIXES", "NetworkRoles", "network_roles", "read_network_file"]

#: File suffixes of the network files :func:`read_network_file` reads (``.bif`` is BIF, the rest XMLBIF).
NETWORK_SUFFIXES = (".bif", ".xml", ".xmlbif", ".bifxml")


def read_network_file(path: Path) -> Any:
    """The pgmpy ``DiscreteBayesianNetwork`` of a BIF (``.bif``) or XMLBIF (``.xml``, ``.xmlbif``,
    ``.bifxml``) file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        If pgmpy cannot read it, naming the file and pgmpy's error.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"No such network file: {str(path)!r}")
    from pgmpy.readwrite import BIFReader, XMLBIFReader

    try:
        reader = BIFReader(str(path)) if suffix == ".bif" else XMLBIFReader(str(path))
        network = reader.get_model()
    except Exception as exc:  # the readers raise ParseError, ValueError, KeyError, ...: name the file
        kind = "BIF" if suffix == ".bif" else "XMLBIF"
        raise ModelFileError(path, "", f"is not a valid {kind} network ({type(exc).__name__}: {exc})") from exc
    return network


@dataclass(frozen=True)
class NetworkRoles:
    """A network's nodes with the roles, normal states, costs and presenting evidence given for them, checked.

    Attributes
    ----------
    compiled : CompiledNetwork
        The network as arrays, for the inference engine.
    nodes : tuple of str
        Every node, in the network's order.
    states : dict of str to tuple of str
    normals : dict of str to str or None
        The normal state of every node (named absent/normal/no/false, or as given for a cause).
    causes, findings, tests, hidden : tuple of str
    costs : dict of str to float
        The cost of every finding and test.
    presenting : dict of str to str
    """

    compiled: CompiledNetwork
    nodes: tuple[str, ...]
    states: dict[str, tuple[str, ...]]
    normals: dict[str, str | None]
    causes: tuple[str, ...]
    findings: tuple[str, ...]
    tests: tuple[str, ...]
    hidden: tuple[str, ...]
    costs: dict[str, float]
    presenting: dict[str, str]


def network_roles(
    network: Any,
    *,
    causes: Sequence[str] | None,
    tests: Sequence[str] = (),
    normal_states: Mapping[str, str | None] | None = None,
    priors: Any = None,
    source: str = "<pgmpy model>",
    presenting: Mapping[str, str] | None = None,
    hidden: Sequence[str] | None = None,
    costs: Mapping[str, float] | None = None,
) -> NetworkRoles:
    """Check the roles given for a pgmpy network's nodes (the arguments of :func:`bayesdx.load_model`).

    Raises
    ------
    ValueError
        For priors (a network carries its own), missing causes, a name that is not a node, a node in two
        roles, a node without a CPD, a bad normal state, hidden node, presenting evidence or cost.
    """
    if priors is not None:
        raise ValueError(f"The network {source!r} carries its own prior tables; priors= is only for model files.")
    if causes is None or isinstance(causes, str) or not len(causes):
        raise ValueError(
            f"Loading {source!r} needs causes=[...] (on the command line --causes NODES): the nodes to rank "
            "(for example causes=['Cirrhosis']). "
            "Tests go in tests=[...]; every other node is a finding."
        )
    nodes = [str(n) for n in network.nodes()]
    for role, names in (("causes", causes), ("tests", tests)):
        for name in names:
            if name not in nodes:
                import difflib

                close = difflib.get_close_matches(str(name), nodes, n=3)
                hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"The {role} of load_model name {name!r}, which is not a node of {source!r}.{hint}")
        twice = sorted({str(n) for n in names if list(names).count(n) > 1})
        if twice:  # each would be ranked (or offered) once per mention, taking the places of others
            raise ValueError(f"The {role} of load_model name {', '.join(map(repr, twice))} more than once; name each node once.")
    overlap = set(causes) & set(tests)
    if overlap:
        raise ValueError(f"{sorted(overlap)!r} cannot be both a cause and a test.")
    if len(network.get_cpds()) != len(nodes):
        missing = sorted(set(nodes) - {c.variable for c in network.get_cpds()})
        raise ValueError(f"The network {source!r} has nodes without a CPD: {missing!r}.")
    compiled = CompiledNetwork.from_pgmpy(network)
    states = dict(zip(compiled.variables, compiled.states, strict=True))
    normals: dict[str, str | None] = {v: default_normal(states[v]) for v in nodes}
    for node, normal in (normal_states or {}).items():
        if node not in causes:
            raise ValueError(f"normal_states names {node!r}, which is not among the causes {list(causes)!r}.")
        if normal is not None and normal not in states[node]:
            raise ValueError(f"normal_states gives {normal!r} for {node!r}; its states are {list(states[node])!r}.")
        normals[node] = normal
    hidden_nodes = tuple(n for n in nodes if "__part" in n) if hidden is None else tuple(hidden)
    for name in hidden_nodes:
        if name not in nodes or name in causes or name in tests:
            raise ValueError(f"hidden= names {name!r}, which is not a node of {source!r} outside the causes and tests.")
    for var, state in (presenting or {}).items():
        if var not in nodes or state not in states[var]:
            raise ValueError(f"presenting= gives {var}={state!r}, which is not a node and state of {source!r}.")
    findings = tuple(n for n in nodes if n not in causes and n not in tests and n not in hidden_nodes)
    cost_of = dict.fromkeys(findings + tuple(tests), 1.0)
    for var, value in (costs or {}).items():
        if var not in cost_of:
            raise ValueError(f"costs= names {var!r}, which is not a finding or test of {source!r}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"costs= gives {var!r} the cost {value!r}; a cost is a finite number >= 0.")
        cost_of[var] = float(value)
    return NetworkRoles(
        compiled=compiled,
        nodes=tuple(nodes),
        states=states,
        normals=normals,
        causes=tuple(causes),
        findings=findings,
        tests=tuple(tests),
        hidden=hidden_nodes,
        costs=cost_of,
        presenting=dict(presenting or {}),
    )


def roles_must_be_absent(causes: Any, tests: Any, normal_states: Any, what: str, extra: Mapping[str, Any] | None = None) -> None:
    if causes is not None or tuple(tests) or normal_states is not None or any(v is not None for v in (extra or {}).values()):
        raise ValueError(
            f"causes=, tests=, normal_states=, presenting=, hidden= and costs= are for BIF, XMLBIF and pgmpy "
            f"networks; {what} declares the role, normal state and cost of every node itself."
        )
