"""Read and validate model files and prior files (TOML), and build the pgmpy network.

The format is documented in ``docs/model-format.md``. This module is the one place where a
``DiscreteBayesianNetwork`` is built from data; every error names the file, the key and the bad value.
"""

from __future__ import annotations

import itertools
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ModelFileError

__all__ = ["ModelSpec", "NodeSpec", "PriorSetting", "read_model_file", "read_prior_file"]

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


# ---------------------------------------------------------------------- helpers
def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(path, "", f"is not valid TOML: {exc}") from exc
    except RecursionError:
        raise ModelFileError(path, "", "is nested too deeply to read (arrays or tables inside each other)") from None


def _require(path: Path, table: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    dotted = f"{where}.{key}" if where else key
    if key not in table:
        raise ModelFileError(path, dotted, "is missing")
    value = table[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ModelFileError(path, dotted, f"must be a {expected}, got {value!r}", value)
    return value


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


# ---------------------------------------------------------------------- model file
def read_model_file(path: str | os.PathLike[str]) -> ModelSpec:
    """Parse and validate a model file.

    Raises
    ------
    ModelFileError
        For any malformed content, naming the file, the key and the bad value.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    data = _load_toml(path)
    if data.get("format_version") != 1:
        raise ModelFileError(path, "format_version", f"must be 1, got {data.get('format_version')!r}",
                             data.get("format_version"))
    meta = _require(path, data, "model", "", dict)
    nodes_raw = _require(path, data, "nodes", "", dict)
    cpds_raw = _require(path, data, "cpds", "", dict)
    question_cost = meta.get("question_cost", 1.0)
    if (isinstance(question_cost, bool) or not isinstance(question_cost, (int, float)) or not math.isfinite(question_cost)
            or question_cost < 0):
        raise ModelFileError(path, "model.question_cost", f"must be a finite number >= 0, got {question_cost!r}", question_cost)

    nodes: dict[str, NodeSpec] = {}
    for node_id, raw in nodes_raw.items():
        where = f"nodes.{node_id}"
        if not isinstance(raw, dict):
            raise ModelFileError(path, where, f"must be a table, got {raw!r}", raw)
        role = _require(path, raw, "role", where, str)
        if role not in ROLES:
            raise ModelFileError(path, f"{where}.role", f"must be one of {', '.join(map(repr, ROLES))}, got {role!r}", role)
        states = _require(path, raw, "states", where, list)
        if len(states) < 2 or not all(isinstance(s, str) and s for s in states) or len(set(states)) != len(states):
            raise ModelFileError(path, f"{where}.states", f"must list at least two distinct state names, got {states!r}", states)
        normal = raw.get("normal", default_normal(states))
        if normal is not None and normal not in states:
            raise ModelFileError(path, f"{where}.normal", f"must be one of the node's states {states!r}, got {normal!r}", normal)
        cost = raw.get("cost")
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost)
                                 or cost < 0):
            raise ModelFileError(path, f"{where}.cost", f"must be a finite number >= 0, got {cost!r}", cost)
        nodes[node_id] = NodeSpec(
            id=node_id, role=role, states=tuple(states), label=str(raw.get("label", node_id)),
            description=str(raw.get("description", "")), normal=normal,
            cost=None if cost is None else float(cost), basis=str(raw.get("basis", "")),
            aliases=_aliases(path, where, raw.get("aliases", {}), states),
            examination=_examination(path, where, raw.get("examination", False), role),
        )
    for node_id in cpds_raw:
        if node_id not in nodes:
            raise ModelFileError(path, f"cpds.{node_id}", _unknown(node_id, nodes), node_id)
    for node_id in nodes:
        if node_id not in cpds_raw:
            raise ModelFileError(path, f"cpds.{node_id}", f"is missing: node {node_id!r} has no CPD")

    spec = ModelSpec(
        path=path, id=str(meta.get("id", path.stem)), version=str(meta.get("version", "0")),
        title=str(meta.get("title", "")), description=str(meta.get("description", "")),
        default_priors=str(meta.get("default_priors", "")), question_cost=float(question_cost),
        cost_scale=str(meta.get("cost_scale", "")), nodes=nodes, cpds=dict(cpds_raw),
        triage=data.get("triage"), referral=data.get("referral"), harm=data.get("harm"), studies=data.get("studies"),
        presenting=_evidence_table(path, "model.presenting", meta.get("presenting", {}), nodes),
        prior_reference=(None if "prior_reference" not in meta
                         else _evidence_table(path, "model.prior_reference", meta["prior_reference"], nodes)),
    )
    for node_id in nodes:
        _check_cpd(spec, node_id)
    _check_acyclic(spec)
    return spec


def _examination(path: Path, where: str, raw: Any, role: str) -> bool:
    """``examination = true``: a test done at the bedside in the consultation, not ordered (next steps show it
    as an examination)."""
    if not isinstance(raw, bool) or (raw and role != "test"):
        raise ModelFileError(path, f"{where}.examination", f"must be true or false, and true only for a test; got {raw!r}", raw)
    return raw


def _aliases(path: Path, where: str, raw: Any, states: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``aliases = { abnormal = ["neurogenic", "myopathic"] }``: a coarser answer that stands for several states."""
    if not isinstance(raw, dict):
        raise ModelFileError(path, f"{where}.aliases", f"must be a table of name = [states], got {raw!r}", raw)
    result = {}
    for name, members in raw.items():
        key = f"{where}.aliases.{name}"
        if name in states:
            raise ModelFileError(path, key, f"{name!r} is already a state of the node", name)
        if (not isinstance(members, list) or len(members) < 2 or len(set(members)) != len(members)
                or not all(m in states for m in members)):
            raise ModelFileError(path, key, f"must list at least two distinct states of the node {list(states)!r}, "
                                 f"got {members!r}", members)
        result[str(name)] = tuple(members)
    return result


def _evidence_table(path: Path, key: str, raw: Any, nodes: Mapping[str, NodeSpec]) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ModelFileError(path, key, f"must be a table of node = state, got {raw!r}", raw)
    for node, state in raw.items():
        if node not in nodes:
            raise ModelFileError(path, f"{key}.{node}", _unknown(node, nodes), node)
        if state not in nodes[node].states:
            raise ModelFileError(path, f"{key}.{node}",
                                 f"{state!r} is not a state of {node!r}; valid states are {list(nodes[node].states)!r}", state)
    return dict(raw)


def _unknown(name: str, known: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"refers to unknown node {name!r}.{hint}"


def _check_cpd(spec: ModelSpec, node_id: str) -> None:
    path, node, cpd = spec.path, spec.nodes[node_id], spec.cpds[node_id]
    where = f"cpds.{node_id}"
    if not isinstance(cpd, dict):
        raise ModelFileError(path, where, f"must be a table, got {cpd!r}", cpd)
    kind = _require(path, cpd, "kind", where, str)
    if kind not in CPD_KINDS:
        raise ModelFileError(path, f"{where}.kind", f"must be one of {', '.join(map(repr, CPD_KINDS))}, got {kind!r}", kind)
    parents = spec.parents(node_id)
    for p in parents:
        if p not in spec.nodes:
            key = {"table": "parents", "cause_prior": "odds_ratios"}.get(kind, "links")
            raise ModelFileError(path, f"{where}.{key}", _unknown(p, spec.nodes), p)
        if p == node_id:
            raise ModelFileError(path, where, f"node {node_id!r} cannot be its own parent", p)
    if kind == "table" and len(set(parents)) != len(parents):
        raise ModelFileError(path, f"{where}.parents", f"lists a parent twice: {list(parents)!r}", list(parents))
    if kind == "cause_prior":
        if node.role != "cause" or len(node.states) != 2 or node.normal is None:
            raise ModelFileError(path, f"{where}.kind", "'cause_prior' needs a binary cause node with a normal state", kind)
        for p, ratios in cpd.get("odds_ratios", {}).items():
            _odds_ratios(spec, node_id, p, ratios)
    elif kind in ("noisy_or", "noisy_max"):
        if kind == "noisy_or":
            _noisy_or_positive(spec, node_id)
        if not cpd.get("links"):
            raise ModelFileError(path, f"{where}.links", "must link at least one parent")
    if kind in ("noisy_or", "noisy_max"):
        noisy_parameters(spec, node_id)  # every check of the links and leak; the full table follows from them
        return
    # building the table runs every remaining check (shapes, sums, ranges, coverage)
    table_for(spec, node_id, prior=0.5)


def _check_acyclic(spec: ModelSpec) -> None:
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*trail[trail.index(n):], n]
            raise ModelFileError(spec.path, f"cpds.{n}", f"the network has a cycle: {' -> '.join(cycle)}", cycle)
        state[n] = 1
        for p in spec.parents(n):
            visit(p, [*trail, n])
        state[n] = 2

    for n in spec.nodes:
        visit(n, [])


def _noisy_or_positive(spec: ModelSpec, node_id: str) -> str:
    node, cpd = spec.nodes[node_id], spec.cpds[node_id]
    where = f"cpds.{node_id}.positive"
    if len(node.states) != 2:
        raise ModelFileError(spec.path, f"cpds.{node_id}.kind",
                             f"'noisy_or' needs a binary node; {node_id!r} has states {list(node.states)!r}", "noisy_or")
    positive = cpd.get("positive")
    if positive is None:
        if node.normal is None:
            raise ModelFileError(spec.path, where, "is missing and the node has no normal state to infer it from")
        positive = next(s for s in node.states if s != node.normal)
    if positive not in node.states:
        raise ModelFileError(spec.path, where, f"must be one of {list(node.states)!r}, got {positive!r}", positive)
    return positive


def _active_states(spec: ModelSpec, child: str, parent: str, value: Any, key: str) -> dict[str, Any]:
    """Map each active state of ``parent`` to the link parameter ``value`` (scalar or per-state table)."""
    pnode = spec.nodes[parent]
    if isinstance(value, dict):
        for s in value:
            if s not in pnode.states:
                raise ModelFileError(spec.path, f"{key}.{s}",
                                     f"{s!r} is not a state of {parent!r}; valid states are {list(pnode.states)!r}", s)
        return dict(value)
    if pnode.normal is None:
        raise ModelFileError(spec.path, key, f"parent {parent!r} has no normal state, so give the parameter per state as a table", value)
    return {s: value for s in pnode.states if s != pnode.normal}


def _odds_ratios(spec: ModelSpec, child: str, parent: str, ratios: Any) -> dict[str, float]:
    key = f"cpds.{child}.odds_ratios.{parent}"
    if not isinstance(ratios, dict):
        raise ModelFileError(spec.path, key, f"must be a table of state = odds ratio, got {ratios!r}", ratios)
    pnode = spec.nodes[parent]
    out = {}
    for s, r in ratios.items():
        if s in ("basis", "source", "note"):
            continue
        if s not in pnode.states:
            raise ModelFileError(spec.path, f"{key}.{s}", f"{s!r} is not a state of {parent!r}; valid states are {list(pnode.states)!r}", s)
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0 < r < math.inf):
            raise ModelFileError(spec.path, f"{key}.{s}", f"must be a positive finite odds ratio, got {r!r}", r)
        out[s] = float(r)
    return out


# ---------------------------------------------------------------------- CPD tables
def table_for(spec: ModelSpec, node_id: str, *, prior: float | None) -> np.ndarray:
    """The CPD of ``node_id`` as an array with axes ``(node, *parents)`` in state order.

    ``prior`` is the prior probability used for a ``cause_prior`` node.
    """
    cpd = spec.cpds[node_id]
    node = spec.nodes[node_id]
    parents = spec.parents(node_id)
    pstates = [spec.nodes[p].states for p in parents]
    shape = (len(node.states), *[len(s) for s in pstates])
    where = f"cpds.{node_id}"
    kind = cpd["kind"]
    out = np.empty(shape)
    if kind == "table":
        if not parents:
            return _distribution(spec.path, f"{where}.probabilities", cpd.get("probabilities"), len(node.states))
        default = cpd.get("default")
        default_arr = None if default is None else _distribution(spec.path, f"{where}.default", default, len(node.states))
        rows = cpd.get("rows", [])
        if not isinstance(rows, list):
            raise ModelFileError(spec.path, f"{where}.rows", f"must be an array of tables, got {rows!r}", rows)
        filled: dict[tuple[int, ...], int] = {}
        at: tuple[slice | int, ...]  # an index into ``out``: every child state, one state per parent
        for k, row in enumerate(rows):
            rkey = f"{where}.rows[{k}]"
            given = row.get("given") if isinstance(row, dict) else None
            if not isinstance(given, dict) or set(given) != set(parents):
                raise ModelFileError(spec.path, f"{rkey}.given",
                                     f"must give a state for each parent {list(parents)!r}, got {given!r}", given)
            idx = []
            for p, states in zip(parents, pstates, strict=True):
                if given[p] not in states:
                    raise ModelFileError(spec.path, f"{rkey}.given.{p}",
                                         f"{given[p]!r} is not a state of {p!r}; valid states are {list(states)!r}", given[p])
                idx.append(states.index(given[p]))
            if tuple(idx) in filled:
                raise ModelFileError(spec.path, f"{rkey}.given", f"repeats the configuration of rows[{filled[tuple(idx)]}]", given)
            filled[tuple(idx)] = k
            at = (slice(None), *idx)
            out[at] = _distribution(spec.path, f"{rkey}.probabilities", row.get("probabilities"), len(node.states))
        for config in itertools.product(*[range(len(s)) for s in pstates]):
            if config not in filled:
                if default_arr is None:
                    missing = {p: s[i] for p, s, i in zip(parents, pstates, config, strict=True)}
                    raise ModelFileError(spec.path, f"{where}.rows", f"has no row for parent states {missing!r} and no default", missing)
                at = (slice(None), *config)
                out[at] = default_arr
        return out
    if kind == "cause_prior":
        assert prior is not None
        logit = math.log(prior) - math.log1p(-prior)
        present = node.states.index(next(s for s in node.states if s != node.normal))
        logits = np.full(shape[1:], logit)
        for axis, p in enumerate(parents):
            ratios = _odds_ratios(spec, node_id, p, cpd["odds_ratios"][p])
            logs = np.array([math.log(ratios.get(s, 1.0)) for s in spec.nodes[p].states])
            logits = logits + logs.reshape([-1 if a == axis else 1 for a in range(len(parents))])
        p_present = 1.0 / (1.0 + np.exp(-logits))
        out[present] = p_present
        out[1 - present] = 1.0 - p_present
        return out
    # noisy_or / noisy_max: P(child <= y | parents) = L(y) * prod_active C_i(y)
    noisy = noisy_parameters(spec, node_id)
    cdf = np.broadcast_to(noisy.leak_cdf, (*shape[1:], len(noisy.order))).copy()
    for axis, factor in enumerate(noisy.parent_cdfs):
        cdf = cdf * factor.reshape([-1 if a == axis else 1 for a in range(len(parents))] + [len(noisy.order)])
    pmf = np.diff(cdf, axis=-1, prepend=0.0)
    pmf = np.clip(pmf, 0.0, 1.0)
    for level, state_index in enumerate(noisy.order):
        out[state_index] = pmf[..., level]
    return out


@dataclass(frozen=True)
class NoisyParameters:
    """The parameters of a noisy-OR / noisy-MAX CPD.

    Attributes
    ----------
    order : tuple of int
        The child's state index at each level, from least to most.
    leak_cdf : numpy.ndarray
        ``L(level)``, the cumulative leak distribution over levels.
    parent_cdfs : tuple of numpy.ndarray
        Per parent, ``C_i[parent state, level]``: the cumulative distribution of the level the parent
        produces in that state (all ones for an inactive state).
    """

    order: tuple[int, ...]
    leak_cdf: np.ndarray
    parent_cdfs: tuple[np.ndarray, ...]


def noisy_parameters(spec: ModelSpec, node_id: str) -> NoisyParameters:
    """Validated parameters of the ``noisy_or`` or ``noisy_max`` CPD of ``node_id``."""
    cpd = spec.cpds[node_id]
    node = spec.nodes[node_id]
    kind = cpd["kind"]
    where = f"cpds.{node_id}"
    links = cpd["links"]
    if kind == "noisy_or":
        positive = _noisy_or_positive(spec, node_id)
        neg = node.states.index(next(s for s in node.states if s != positive))
        order = [neg, 1 - neg]  # from least to most: negative, positive
        leak = _probability(spec.path, f"{where}.leak", cpd.get("leak"))
        leak_dist = np.array([1 - leak, leak])
    else:
        order = list(range(len(node.states)))
        leak_dist = _distribution(spec.path, f"{where}.leak", cpd.get("leak"), len(node.states))
    factors = []
    for p in spec.parents(node_id):
        link = links[p]
        lkey = f"{where}.links.{p}"
        if not isinstance(link, dict):
            raise ModelFileError(spec.path, lkey, f"must be a table with the link's probability and basis, got {link!r}", link)
        factor = np.ones((len(spec.nodes[p].states), len(order)))
        if kind == "noisy_or":
            value = link.get("probability")
            if value is None:
                raise ModelFileError(spec.path, f"{lkey}.probability", "is missing")
            for s, v in _active_states(spec, node_id, p, value, f"{lkey}.probability").items():
                prob = _probability(spec.path, f"{lkey}.probability" + ("" if not isinstance(value, dict) else f".{s}"), v)
                factor[spec.nodes[p].states.index(s)] = np.cumsum([1 - prob, prob])
        else:
            value = link.get("probabilities")
            if value is None:
                raise ModelFileError(spec.path, f"{lkey}.probabilities", "is missing")
            for s, v in _active_states(spec, node_id, p, value, f"{lkey}.probabilities").items():
                skey = f"{lkey}.probabilities" + ("" if not isinstance(value, dict) else f".{s}")
                factor[spec.nodes[p].states.index(s)] = np.cumsum(_distribution(spec.path, skey, v, len(order)))
        factors.append(factor)
    cdf = np.cumsum(leak_dist)
    cdf[-1] = 1.0
    for f in factors:
        f[:, -1] = 1.0  # exact ones at the top level, whatever the rounding of the cumulative sums
    return NoisyParameters(tuple(order), cdf, tuple(factors))


# ---------------------------------------------------------------------- priors
#: The range a prior may take: log-odds beyond about +-20 overflow the calibration's fixed point.
PRIOR_RANGE = (1e-9, 1 - 1e-9)


def read_prior_file(path: str | Path, spec: ModelSpec, *, article: str | None = None) -> PriorSetting:
    """Parse and validate a prior file against a model.

    Parameters
    ----------
    path : str or pathlib.Path
    spec : ModelSpec
        The model whose ``cause_prior`` causes the file must cover.
    article : str, optional
        The article text; when given, every ``quote`` must appear in it verbatim.
    """
    path = Path(path)
    data = _load_toml(path)
    if data.get("format_version") != 1:
        raise ModelFileError(path, "format_version", f"must be 1, got {data.get('format_version')!r}", data.get("format_version"))
    setting = data.get("setting", {})
    scale = data.get("scale", {}).get("terms", {})
    for term, value in scale.items():
        _probability(path, f"scale.terms.{term}", value, open_interval=True)
    causes = _require(path, data, "causes", "", dict)
    needed = [n for n in spec.nodes if spec.cpds[n]["kind"] == "cause_prior"]
    for cause in causes:
        if cause not in spec.nodes or spec.nodes[cause].role != "cause":
            raise ModelFileError(path, f"causes.{cause}", _unknown(cause, dict.fromkeys(needed, 1)), cause)
    probabilities: dict[str, float] = {}
    provenance: dict[str, dict[str, str]] = {}
    for cause in needed:
        key = f"causes.{cause}"
        if cause not in causes:
            raise ModelFileError(path, key, f"is missing: every cause needs a prior ({len(needed)} causes)")
        entry = causes[cause]
        if not isinstance(entry, dict):
            raise ModelFileError(path, key, f"must be a table, got {entry!r}", entry)
        prob = entry.get("probability")
        qualifier = entry.get("qualifier")
        if qualifier is not None:
            if qualifier not in scale:
                raise ModelFileError(path, f"{key}.qualifier",
                                     f"{qualifier!r} is not a term of [scale.terms]; terms are {sorted(scale)!r}", qualifier)
            if prob is not None and "share" not in entry and abs(prob - scale[qualifier]) > 1e-12:
                raise ModelFileError(path, f"{key}.probability",
                                     f"{prob!r} disagrees with the scale's {scale[qualifier]!r} for {qualifier!r}", prob)
            prob = scale[qualifier]
            share = entry.get("share")
            if share is not None:  # the qualifier speaks of a group; this cause takes a share of it
                if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                    raise ModelFileError(path, f"{key}.share", f"must be a number in (0, 1], got {share!r}", share)
                prob = prob * share
        elif "share" in entry:
            raise ModelFileError(path, f"{key}.share", "needs a 'qualifier': it is a share of the qualifier's probability", entry["share"])
        if prob is None:
            raise ModelFileError(path, key, "needs a 'probability' or a 'qualifier' from [scale.terms]")
        probabilities[cause] = _probability(path, f"{key}.probability", prob, open_interval=True)
        if not PRIOR_RANGE[0] <= probabilities[cause] <= PRIOR_RANGE[1]:
            raise ModelFileError(path, f"{key}.probability", f"must lie between {PRIOR_RANGE[0]:g} and 1 - "
                                 f"{1 - PRIOR_RANGE[1]:g} (the calibration works on the log-odds scale), got {prob!r}", prob)
        kinds = [k for k in ("quote", "assumption", "source") if k in entry]
        if not kinds:
            raise ModelFileError(path, key, "needs its provenance: a 'quote' from the article, an 'assumption' or a 'source'")
        if "quote" in entry and article is not None and entry["quote"] not in article:
            raise ModelFileError(path, f"{key}.quote", "does not appear verbatim in the article", entry["quote"])
        provenance[cause] = {k: str(v) for k, v in entry.items() if k != "probability"}
    expected = setting.get("expected_causes")
    if expected is not None:
        if isinstance(expected, bool) or not isinstance(expected, (int, float)) or expected <= 0:
            raise ModelFileError(path, "setting.expected_causes", f"must be a number > 0, got {expected!r}", expected)
        factor = expected / sum(probabilities.values())
        for cause, p in probabilities.items():
            if not 0 < p * factor < 1:
                raise ModelFileError(path, f"causes.{cause}",
                                     f"scaled to expected_causes = {expected} it becomes {p * factor!r}, outside (0, 1)", p)
            provenance[cause]["scaled"] = f"{p!r} x {factor:.6g} (expected_causes = {expected})"
            probabilities[cause] = p * factor
    return PriorSetting(
        path=path, id=str(setting.get("id", path.stem)), title=str(setting.get("title", "")),
        description=str(setting.get("description", "")), scale=str(setting.get("scale", "")),
        probabilities=probabilities, provenance=provenance,
    )


#: A noisy CPD with more parents than this is divorced into hidden parts for pgmpy.
MAX_TABLE_PARENTS = 6
#: Parents per hidden part when divorcing.
DIVORCE_SIZE = 5


def _noisy_pmf_table(order: Sequence[int], cdf: np.ndarray) -> np.ndarray:
    """A CPD table (child axis first) from cumulative level distributions ``cdf[..., level]``."""
    pmf = np.clip(np.diff(cdf, axis=-1, prepend=0.0), 0.0, 1.0)
    out = np.empty((len(order), *cdf.shape[:-1]))
    for level, state_index in enumerate(order):
        out[state_index] = pmf[..., level]
    return out


def divorced_tables(spec: ModelSpec, node_id: str) -> list[tuple[str, tuple[str, ...], np.ndarray]]:
    """A noisy CPD with many parents as hidden parts of at most ``DIVORCE_SIZE`` parents and a final MAX.

    Returns ``(node, parents, table)`` triples: one per part ``<node>__part<k>`` (the noisy-MAX of its
    parents, no leak) and one for the node itself (the MAX of its parts and its leak). Because
    ``P(child <= y) = L(y) * prod_i C_i(y)`` factorises over the parents, this is the same distribution
    exactly (parent divorcing, Olesen et al. 1989).
    """
    noisy = noisy_parameters(spec, node_id)
    parents = spec.parents(node_id)
    levels = len(noisy.order)
    chunks = [parents[i:i + DIVORCE_SIZE] for i in range(0, len(parents), DIVORCE_SIZE)]
    result = []
    parts = []
    for k, chunk in enumerate(chunks, start=1):
        shape = [len(spec.nodes[p].states) for p in chunk]
        cdf = np.ones((*shape, levels))
        for axis, p in enumerate(chunk):
            factor = noisy.parent_cdfs[parents.index(p)]
            cdf = cdf * factor.reshape([-1 if a == axis else 1 for a in range(len(chunk))] + [levels])
        name = f"{node_id}__part{k}"
        parts.append(name)
        result.append((name, tuple(chunk), _noisy_pmf_table(noisy.order, cdf)))
    # final: the MAX of the parts' levels and the leak
    level_of_state = {state: level for level, state in enumerate(noisy.order)}
    n_states = len(noisy.order)
    cdf = np.empty((n_states,) * len(parts) + (levels,))
    for combo in itertools.product(range(n_states), repeat=len(parts)):
        top = max(level_of_state[s] for s in combo)
        cdf[combo] = [noisy.leak_cdf[y] if y >= top else 0.0 for y in range(levels)]
    result.append((node_id, tuple(parts), _noisy_pmf_table(noisy.order, cdf)))
    return result


def build_network(spec: ModelSpec, base_rates: Mapping[str, float] | None) -> Any:
    """Build the pgmpy ``DiscreteBayesianNetwork`` of a model, with ``base_rates`` for its causes.

    Noisy CPDs with more than ``MAX_TABLE_PARENTS`` parents enter pgmpy divorced into hidden parts
    (:func:`divorced_tables`), so that no pgmpy table is larger than ``3 * 3**6`` entries; the
    distribution of every declared node is unchanged.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    entries: list[tuple[str, tuple[str, ...], np.ndarray]] = []
    states = {n: spec.nodes[n].states for n in spec.nodes}
    for node_id in spec.nodes:
        kind = spec.cpds[node_id]["kind"]
        parents = spec.parents(node_id)
        if kind in ("noisy_or", "noisy_max") and len(parents) > MAX_TABLE_PARENTS:
            for name, pa, table in divorced_tables(spec, node_id):
                states.setdefault(name, spec.nodes[node_id].states)
                entries.append((name, pa, table))
            continue
        prior = None
        if kind == "cause_prior":
            if base_rates is None:
                raise ModelFileError(spec.path, f"cpds.{node_id}", "is a 'cause_prior' but no prior setting was given")
            prior = base_rates[node_id]
        entries.append((node_id, parents, table_for(spec, node_id, prior=prior)))
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(name for name, _, _ in entries)
    network.add_edges_from((p, name) for name, pa, _ in entries for p in pa)
    cpds = []
    for name, parents, table in entries:
        cpds.append(TabularCPD(
            variable=name, variable_card=len(states[name]),
            values=table.reshape(len(states[name]), -1),
            evidence=list(parents) or None,
            evidence_card=[len(states[p]) for p in parents] or None,
            state_names={name: list(states[name]), **{p: list(states[p]) for p in parents}},
        ))
    network.add_cpds(*cpds)
    network.check_model()
    return network
