"""Read and validate model files and prior files (TOML).

The format is documented in ``docs/model-format.md``; every error names the file, the key and the bad
value. The parsed forms (:class:`ModelSpec`, :class:`PriorSetting`) live in :mod:`bayesdx.model_spec`, the
CPD tables in :mod:`bayesdx.cpd_tables` and the building of the pgmpy network in
:mod:`bayesdx.network_build`; their names are re-exported here.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _resources
from .cpd_tables import (
    DIVORCE_SIZE,
    NoisyParameters,
    _noisy_or_positive,
    _odds_ratios,
    divorced_tables,
    noisy_parameters,
    table_for,
)
from .exceptions import ModelFileError
from .model_spec import (
    CPD_KINDS,
    NORMAL_NAMES,
    ROLES,
    TOLERANCE,
    ModelSpec,
    NodeSpec,
    PriorSetting,
    _probability,
    default_normal,
)
from .network_build import MAX_TABLE_PARENTS, build_network

__all__ = [
    "CPD_KINDS",
    "DIVORCE_SIZE",
    "MAX_TABLE_PARENTS",
    "NORMAL_NAMES",
    "PRIOR_RANGE",
    "ROLES",
    "TOLERANCE",
    "ModelSpec",
    "NodeSpec",
    "NoisyParameters",
    "PriorSetting",
    "build_network",
    "default_normal",
    "divorced_tables",
    "noisy_parameters",
    "read_model_file",
    "read_prior_file",
    "table_for",
]


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
        raise ModelFileError(path, "format_version", f"must be 1, got {data.get('format_version')!r}", data.get("format_version"))
    meta = _require(path, data, "model", "", dict)
    nodes_raw = _require(path, data, "nodes", "", dict)
    cpds_raw = _require(path, data, "cpds", "", dict)
    question_cost = meta.get("question_cost", 1.0)
    if (
        isinstance(question_cost, bool)
        or not isinstance(question_cost, (int, float))
        or not math.isfinite(question_cost)
        or question_cost < 0
    ):
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
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0):
            raise ModelFileError(path, f"{where}.cost", f"must be a finite number >= 0, got {cost!r}", cost)
        nodes[node_id] = NodeSpec(
            id=node_id,
            role=role,
            states=tuple(states),
            label=str(raw.get("label", node_id)),
            description=str(raw.get("description", "")),
            normal=normal,
            cost=None if cost is None else float(cost),
            basis=str(raw.get("basis", "")),
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
        path=path,
        id=str(meta.get("id", path.stem)),
        version=str(meta.get("version", "0")),
        title=str(meta.get("title", "")),
        description=str(meta.get("description", "")),
        default_priors=str(meta.get("default_priors", "")),
        question_cost=float(question_cost),
        cost_scale=str(meta.get("cost_scale", "")),
        nodes=nodes,
        cpds=dict(cpds_raw),
        triage=data.get("triage"),
        referral=data.get("referral"),
        harm=data.get("harm"),
        studies=data.get("studies"),
        presenting=_evidence_table(path, "model.presenting", meta.get("presenting", {}), nodes),
        prior_reference=(
            None if "prior_reference" not in meta else _evidence_table(path, "model.prior_reference", meta["prior_reference"], nodes)
        ),
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
        if not isinstance(members, list) or len(members) < 2 or len(set(members)) != len(members) or not all(m in states for m in members):
            raise ModelFileError(
                path, key, f"must list at least two distinct states of the node {list(states)!r}, got {members!r}", members
            )
        result[str(name)] = tuple(members)
    return result


def _evidence_table(path: Path, key: str, raw: Any, nodes: Mapping[str, NodeSpec]) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ModelFileError(path, key, f"must be a table of node = state, got {raw!r}", raw)
    for node, state in raw.items():
        if node not in nodes:
            raise ModelFileError(path, f"{key}.{node}", _unknown(node, nodes), node)
        if state not in nodes[node].states:
            raise ModelFileError(
                path, f"{key}.{node}", f"{state!r} is not a state of {node!r}; valid states are {list(nodes[node].states)!r}", state
            )
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
            cycle = [*trail[trail.index(n) :], n]
            raise ModelFileError(spec.path, f"cpds.{n}", f"the network has a cycle: {' -> '.join(cycle)}", cycle)
        state[n] = 1
        for p in spec.parents(n):
            visit(p, [*trail, n])
        state[n] = 2

    for n in spec.nodes:
        visit(n, [])


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
                raise ModelFileError(
                    path, f"{key}.qualifier", f"{qualifier!r} is not a term of [scale.terms]; terms are {sorted(scale)!r}", qualifier
                )
            if prob is not None and "share" not in entry and abs(prob - scale[qualifier]) > 1e-12:
                raise ModelFileError(
                    path, f"{key}.probability", f"{prob!r} disagrees with the scale's {scale[qualifier]!r} for {qualifier!r}", prob
                )
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
            raise ModelFileError(
                path,
                f"{key}.probability",
                f"must lie between {PRIOR_RANGE[0]:g} and 1 - "
                f"{1 - PRIOR_RANGE[1]:g} (the calibration works on the log-odds scale), got {prob!r}",
                prob,
            )
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
                raise ModelFileError(
                    path, f"causes.{cause}", f"scaled to expected_causes = {expected} it becomes {p * factor!r}, outside (0, 1)", p
                )
            provenance[cause]["scaled"] = f"{p!r} x {factor:.6g} (expected_causes = {expected})"
            probabilities[cause] = p * factor
    return PriorSetting(
        path=path,
        id=str(setting.get("id", path.stem)),
        title=str(setting.get("title", "")),
        description=str(setting.get("description", "")),
        scale=str(setting.get("scale", "")),
        probabilities=probabilities,
        provenance=provenance,
    )


def files_mtime(path: Path) -> float:
    """The latest modification time of a file or of a folder's ``*.toml`` files (0 when missing)."""
    return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.glob("*.toml")]) if path.exists() else 0.0


def resolve_priors(spec: ModelSpec, priors: str | os.PathLike[str] | None) -> Path:
    """The prior file a model file's ``priors`` names (a setting beside the model, a bundled one, or a path)."""
    name = spec.default_priors if priors is None else priors
    if isinstance(name, str) and not name.lower().endswith(".toml"):
        for folder in (spec.path.parent.parent / "priors", _resources.data_dir("priors")):
            candidate = folder / f"{name}.toml"
            if candidate.is_file():
                return candidate
        choices = ", ".join(repr(n) for n in _resources.available("priors"))
        raise ValueError(
            f"The 'priors' parameter of load_model must be one of {choices} or a path to a prior file (.toml). Got {name!r} instead."
        )
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"No such prior file: {str(path)!r}")
    return path
