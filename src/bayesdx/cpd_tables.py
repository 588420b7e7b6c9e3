"""The CPD tables of a model file: full tables, noisy-OR / noisy-MAX parameters and divorced parts.

:func:`table_for` computes the table of any node of a :class:`~bayesdx.model_spec.ModelSpec` (checking what
it reads, so that building every table validates the CPDs); :func:`noisy_parameters` gives the factorised
form of a noisy CPD that the inference engine and the counterfactual scores use, and
:func:`divorced_tables` a noisy CPD with many parents as hidden parts (for the pgmpy network).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .exceptions import ModelFileError
from .model_spec import ModelSpec, _distribution, _probability

__all__ = ["DIVORCE_SIZE", "NoisyParameters", "divorced_tables", "noisy_parameters", "table_for"]

#: Parents per hidden part when divorcing.
DIVORCE_SIZE = 5


# ---------------------------------------------------------------------- the parameters of a CPD
def _noisy_or_positive(spec: ModelSpec, node_id: str) -> str:
    node, cpd = spec.nodes[node_id], spec.cpds[node_id]
    where = f"cpds.{node_id}.positive"
    if len(node.states) != 2:
        raise ModelFileError(
            spec.path, f"cpds.{node_id}.kind", f"'noisy_or' needs a binary node; {node_id!r} has states {list(node.states)!r}", "noisy_or"
        )
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
                raise ModelFileError(
                    spec.path, f"{key}.{s}", f"{s!r} is not a state of {parent!r}; valid states are {list(pnode.states)!r}", s
                )
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
                raise ModelFileError(
                    spec.path, f"{rkey}.given", f"must give a state for each parent {list(parents)!r}, got {given!r}", given
                )
            idx = []
            for p, states in zip(parents, pstates, strict=True):
                if given[p] not in states:
                    raise ModelFileError(
                        spec.path, f"{rkey}.given.{p}", f"{given[p]!r} is not a state of {p!r}; valid states are {list(states)!r}", given[p]
                    )
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
    # the CDF as (levels, *parents), an outer product grown one parent at a time (each step costs its own
    # size, and the levels stay contiguous slabs): L(y) * C_1(y) * C_2(y) ..., multiplied in parent order
    cdf = noisy.leak_cdf
    for axis, factor in enumerate(noisy.parent_cdfs):
        cdf = cdf[..., None] * factor.T.reshape((len(noisy.order),) + (1,) * axis + (factor.shape[0],))
    for level, state_index in enumerate(noisy.order):  # the PMF: differences of the CDF between levels
        out[state_index] = np.clip(cdf[level] - cdf[level - 1] if level else cdf[level], 0.0, 1.0)
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


# ---------------------------------------------------------------------- divorcing
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
    chunks = [parents[i : i + DIVORCE_SIZE] for i in range(0, len(parents), DIVORCE_SIZE)]
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
