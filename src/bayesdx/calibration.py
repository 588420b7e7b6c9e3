"""Calibrating the causes' base rates so that the priors mean what the prior file says.

A prior file gives, for each cause, the probability that it is present in a person at the model's
reference evidence (for the leg-twitch model: an adult who presents with twitching in the leg). When the
model has a presenting-complaint node that every cause can produce, conditioning on that complaint changes
the causes' probabilities, so the base rates in the network are not the priors themselves. They are found
here by a fixed-point iteration on the log-odds scale,

    logit b_c <- logit b_c + logit pi_c - logit P(c | reference evidence; b),

each step one exact batched inference, until every marginal matches its prior to ``tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .cpd_tables import noisy_parameters, table_for
from .engine import CompiledNetwork, Decomposition, InferenceEngine
from .exceptions import ModelFileError
from .model_spec import ModelSpec

__all__ = ["calibrate_base_rates", "compile_spec"]


def _topological(spec: ModelSpec) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(n: str) -> None:
        if n in done:
            return
        for p in spec.parents(n):
            visit(p)
        done.add(n)
        order.append(n)

    for n in spec.nodes:
        visit(n)
    return order


def compile_spec(spec: ModelSpec, base_rates: Mapping[str, float]) -> CompiledNetwork:
    """The network of a model file as arrays, with ``base_rates`` for its ``cause_prior`` causes.

    Noisy-OR and noisy-MAX CPDs also carry their decomposition (see
    :class:`bayesdx.inference.Decomposition`), which the engine contracts instead of the full table.
    """
    order, decompositions, fixed = _structure(spec, base_rates)
    position = {v: i for i, v in enumerate(order)}
    return CompiledNetwork(
        variables=order,
        states=tuple(spec.nodes[v].states for v in order),
        parents=tuple(tuple(position[p] for p in spec.parents(v)) for v in order),
        tables=tuple(fixed[v] if v in fixed else np.ascontiguousarray(table_for(spec, v, prior=base_rates[v])) for v in order),
        decompositions=decompositions,
    )


def _structure(
    spec: ModelSpec, base_rates: Mapping[str, float]
) -> tuple[tuple[str, ...], tuple[Decomposition | None, ...], dict[str, np.ndarray]]:
    """The node order, the decompositions and the tables that do not depend on the priors, worked out once
    per model file (a spec is immutable; every prior setting and the calibration share them, read-only)."""
    cached = spec.__dict__.get("_compiled_structure")
    if cached is None or not set(cached[2]).isdisjoint(base_rates):
        order = tuple(_topological(spec))
        decompositions: list[Decomposition | None] = []
        for v in order:
            if spec.cpds[v]["kind"] in ("noisy_or", "noisy_max"):
                noisy = noisy_parameters(spec, v)
                decompositions.append(Decomposition.from_cdfs(noisy.order, noisy.leak_cdf, noisy.parent_cdfs))
            else:
                decompositions.append(None)
        fixed = {}
        for v in order:
            if v not in base_rates:
                table = np.ascontiguousarray(table_for(spec, v, prior=None))
                table.flags.writeable = False
                fixed[v] = table
        cached = (order, tuple(decompositions), fixed)
        spec.__dict__["_compiled_structure"] = cached
    return cached


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def calibrate_base_rates(
    spec: ModelSpec,
    priors: Mapping[str, float],
    reference: Mapping[str, str],
    *,
    tolerance: float = 1e-12,
    max_iterations: int = 500,
) -> dict[str, float]:
    """Base rates ``b`` such that ``P(cause | reference; b) = priors[cause]`` for every cause.

    Raises
    ------
    ModelFileError
        If the iteration does not converge (the priors cannot be reached at the reference evidence).
    """
    causes = list(priors)
    rates = dict(priors)
    net = compile_spec(spec, rates)
    engine = InferenceEngine(net)
    index = net.index()
    lik = {}
    for var, state in reference.items():
        arr = np.zeros((1, len(net.states[index[var]])))
        arr[0, net.states[index[var]].index(state)] = 1.0
        lik[var] = arr
    present = {c: net.states[index[c]].index(next(s for s in spec.nodes[c].states if s != spec.nodes[c].normal)) for c in causes}
    tables = list(net.tables)
    slots = {c: index[c] for c in causes}  # only the causes' tables change between iterations
    worst = math.inf
    for _ in range(max_iterations):
        for c, slot in slots.items():
            tables[slot] = table_for(spec, c, prior=rates[c])
        post = engine.posterior(lik, causes, 1, tables=tables)
        if post.impossible[0]:
            raise ModelFileError(spec.path, "model.prior_reference", "has probability zero under the model", dict(reference))
        marginal = {c: float(post.marginals[c][0, present[c]]) for c in causes}
        worst = max(abs(marginal[c] - priors[c]) for c in causes)
        if worst <= tolerance:
            return rates
        for c in causes:
            step = _logit(priors[c]) - _logit(min(max(marginal[c], 1e-300), 1 - 1e-16))
            rates[c] = 1.0 / (1.0 + math.exp(-(_logit(rates[c]) + step)))
    raise ModelFileError(
        spec.path,
        "model.prior_reference",
        f"the base rates did not converge to the priors at this reference evidence (largest gap {worst:.3g} "
        f"after {max_iterations} iterations); a prior may be unreachable",
        dict(reference),
    )
