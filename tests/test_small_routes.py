"""The routes for a few cases on a small network, checked against pgmpy's VariableElimination to 1e-9.

The universal route runs only the forward steps with an observed likelihood below them (the others are
computed once, every likelihood one) and only the backward steps towards the targets. Each test asks for
marginals of unobserved variables, observed ones and roots, single cases and mixed batches, hard and soft
evidence, and checks the probability of the evidence too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination
from references import example_network, normalized

import bayesdx

ATOL = 1e-9
NETWORKS = ("asia", "sachs", "child", "alarm")


@pytest.fixture(scope="module", params=NETWORKS)
def network_and_model(request):
    network = normalized(example_network(request.param))
    roots = sorted(str(n) for n in network.nodes() if not list(network.predecessors(n)))
    return network, bayesdx.load_model(network, causes=roots)


def _likelihoods(engine, cases, soft):
    """Per variable, ``(n, states)`` likelihoods: one-hot for observed, ``soft`` vectors where given."""
    net = engine.network
    index = net.index()
    arrays = {}
    for k, case in enumerate(cases):
        for v, state in case.items():
            arr = arrays.setdefault(v, np.ones((len(cases), len(net.states[index[v]]))))
            arr[k] = 0.0
            arr[k, net.states[index[v]].index(state)] = 1.0
        for v, vector in soft[k].items():
            arrays.setdefault(v, np.ones((len(cases), len(net.states[index[v]]))))[k] = vector
    return arrays


def _reference(network, engine, case, soft, variable):
    """P(variable | case, soft) and P(case, soft) by VariableElimination (soft evidence as virtual evidence)."""
    net = engine.network
    states = net.states[net.index()[variable]]
    virtual = [
        TabularCPD(v, len(vec), [[x] for x in vec], state_names={v: list(network.get_cpds(v).state_names[v])}) for v, vec in soft.items()
    ]
    ve = VariableElimination(network)
    names = list(network.get_cpds(variable).state_names[variable])
    if variable in case:
        marginal = np.array([1.0 if s == case[variable] else 0.0 for s in states])
    else:
        factor = ve.query([variable], evidence=case, virtual_evidence=virtual or None, joint=False, show_progress=False)[variable]
        marginal = np.array([factor.values[names.index(s)] for s in states])
    # P(e): the joint of the evidence variables at the case's states, times the soft likelihoods
    if not case and not soft:
        return marginal, 1.0
    joint = ve.query(list(case) + list(soft), joint=True, show_progress=False)
    total = 0.0
    soft_names = list(soft)
    for combo in np.ndindex(*[len(soft[v]) for v in soft_names]):
        assignment = dict(case)
        weight = 1.0
        for v, k in zip(soft_names, combo, strict=True):
            assignment[v] = network.get_cpds(v).state_names[v][k]
            weight *= soft[v][k]
        total += weight * joint.get_value(**assignment)
    return marginal, total


def test_universal_route_matches_pgmpy_variable_elimination(network_and_model, evidence_sampler, rng):
    network, model = network_and_model
    engine = model.engine
    net = engine.network
    cases = evidence_sampler(network, 6, rng, observe=0.25)
    cases.append({})  # nothing observed: every forward step is a constant table
    # soft evidence on one unobserved variable of the second case
    free = [v for v in net.variables if v not in cases[1]]
    soft_var = free[int(rng.integers(len(free)))]
    soft = [{} for _ in cases]
    soft[1] = {soft_var: rng.uniform(0.1, 1.0, len(net.states[net.index()[soft_var]]))}
    roots = list(model.causes)
    unobserved = [v for v in net.variables if v not in cases[0] and v not in roots][:2]
    observed = sorted(cases[0])[:1]
    targets = list(dict.fromkeys(roots + unobserved + observed + [soft_var]))
    for batch in ([k] for k in range(len(cases))), [list(range(len(cases)))]:
        for rows in batch:
            chosen = [cases[k] for k in rows]
            post = engine.posterior(_likelihoods(engine, chosen, [soft[k] for k in rows]), targets, len(rows))
            assert post.route == "universal"
            for r, k in enumerate(rows):
                for t in targets:
                    expected, p_e = _reference(network, engine, cases[k], soft[k], t)
                    assert_allclose(post.marginals[t][r], expected, atol=ATOL, rtol=0, err_msg=f"{t} given {cases[k]!r}, {soft[k]!r}")
                assert_allclose(post.log_evidence[r], math.log(p_e), atol=ATOL, rtol=0)
