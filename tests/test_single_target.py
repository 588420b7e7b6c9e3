"""One case, one target, a pattern with no program yet (``engine/single_target.py``): the target kept to the end of
the elimination, no program compiled. Checked against pgmpy's VariableElimination and pyAgrum's LazyPropagation to
1e-9 (marginals and the probability of the evidence), and, where ``P(e)`` is far below double precision's range,
against the same sums written out in logs; impossible evidence and too large a table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pgmpy.factors.discrete import TabularCPD
from pgmpy.models import DiscreteBayesianNetwork
from references import example_network, normalized, pyagrum_from_pgmpy
from test_small_routes import _likelihoods, _reference

import bayesdx
from bayesdx.engine.hard import one_hot_variables
from bayesdx.engine.single_target import posterior_of_one

ATOL = 1e-9


def _run(engine, likelihoods, target, max_entries=10**9, orders=None):
    """posterior_of_one on named likelihoods of one case (hard variables at their one nonzero state)."""
    net = engine.network
    index = net.index()
    lam = {index[v]: np.asarray(a, dtype=float) for v, a in likelihoods.items()}
    hard = one_hot_variables(lam)
    states = {v: int(np.flatnonzero(lam[v][0])[0]) for v in hard}
    return posterior_of_one(net, lam, index[target], states, net.tables, max_entries, orders)


@pytest.mark.parametrize("name", ["asia", "sachs", "child", "alarm", "insurance"])
def test_any_single_target_matches_variable_elimination(name, evidence_sampler, rng):
    """A root, an inner variable or a leaf as the one target, under hard evidence, soft evidence (on the target
    too) or none; the probability of the evidence with it."""
    network = normalized(example_network(name))
    model = bayesdx.load_model(network, causes=sorted(str(n) for n in network.nodes() if not list(network.predecessors(n))))
    engine = model.engine
    net = engine.network
    for case in [*evidence_sampler(network, 8, rng, observe=0.3), {}]:
        free = [v for v in net.variables if v not in case]
        target = free[int(rng.integers(len(free)))]
        soft_var = [target, free[int(rng.integers(len(free)))]][int(rng.integers(2))]
        for soft in ({}, {soft_var: rng.uniform(0.05, 1.0, len(net.states[net.index()[soft_var]]))}):
            marginal, log_z = _run(engine, _likelihoods(engine, [case], [soft]), target)
            expected, p_e = _reference(network, engine, case, soft, target)
            assert_allclose(marginal, expected, atol=ATOL, rtol=0, err_msg=f"{name}: {target} | {case} {soft}")
            assert_allclose(math.exp(log_z), p_e, rtol=ATOL, atol=0, err_msg=f"{name}: P(e) of {case} {soft}")


def test_the_engine_takes_the_route_for_one_case_on_pathfinder_and_matches_pyagrum(pathfinder_normalized, evidence_sampler, rng):
    """pathfinder (one cause, too large for the universal program): a single call with a new pattern takes the route
    and agrees with pyAgrum's LazyPropagation on the posterior of Fault and on P(e), and with the program route."""
    import pyagrum as gum

    model = bayesdx.load_model(pathfinder_normalized, causes=["Fault"])
    engine = model.engine
    bn = pyagrum_from_pgmpy(pathfinder_normalized)
    ie = gum.LazyPropagation(bn)
    states = list(pathfinder_normalized.get_cpds("Fault").state_names["Fault"])
    cases = evidence_sampler(pathfinder_normalized, 6, rng, observe=0.3, exclude=("Fault",))
    for case in cases:
        post = engine.posterior(_likelihoods(engine, [case], [{}]), ["Fault"], 1)
        assert post.route == "single target"
        ie.eraseAllEvidence()
        ie.setEvidence(dict(case))
        ie.makeInference()
        posterior = ie.posterior("Fault")
        expected = [posterior[{"Fault": s}] for s in states]
        got = post.marginals["Fault"][0][[engine.network.states[engine.network.index()["Fault"]].index(s) for s in states]]
        assert_allclose(got, expected, atol=ATOL, rtol=0)
        assert_allclose(post.log_evidence[0], math.log(ie.evidenceProbability()), atol=ATOL, rtol=0)
    from bayesdx.engine import engine as engine_module

    alone = [engine.posterior(_likelihoods(engine, [case], [{}]), ["Fault"], 1) for case in cases[:2]]
    with pytest.MonkeyPatch.context() as patch:  # the program route on the same cases
        patch.setattr(engine_module, "posterior_of_one", lambda *args: None)
        compiled = [engine.posterior(_likelihoods(engine, [case], [{}]), ["Fault"], 1) for case in cases[:2]]
    for one, program in zip(alone, compiled, strict=True):
        assert (one.route, program.route) == ("single target", "contraction")
        assert_allclose(one.marginals["Fault"], program.marginals["Fault"], atol=ATOL, rtol=0)
        assert_allclose(one.log_evidence, program.log_evidence, atol=ATOL, rtol=0)


def _chain_of_rare_findings(n_findings: int, p: tuple[float, float], prior: tuple[float, float]):
    """A cause ``t`` (states a, b) with ``n_findings`` children each present with probability ``p[t]``."""
    network = DiscreteBayesianNetwork()
    names = [f"f{k}" for k in range(n_findings)]
    network.add_nodes_from(["t", *names])
    network.add_edges_from(("t", f) for f in names)
    cpds = [TabularCPD("t", 2, [[prior[0]], [prior[1]]], state_names={"t": ["a", "b"]})]
    for f in names:
        cpds.append(
            TabularCPD(
                f,
                2,
                [[p[0], p[1]], [1 - p[0], 1 - p[1]]],
                evidence=["t"],
                evidence_card=[2],
                state_names={f: ["yes", "no"], "t": ["a", "b"]},
            )
        )
    network.add_cpds(*cpds)
    return network, names


def test_evidence_below_double_precision_is_rescaled_and_matches_the_sums_in_logs():
    """Forty findings each present with probability 1e-9 or 3e-9: P(e) about 1e-355, zero in double precision
    unless the tables are rescaled. The marginal and log P(e) against the two terms of the sum written in logs."""
    prior, p = (0.3, 0.7), (1e-9, 3e-9)
    network, names = _chain_of_rare_findings(40, p, prior)
    model = bayesdx.load_model(network, causes=["t"])
    logs = np.array([math.log(prior[k]) + 40 * math.log(p[k]) for k in range(2)])
    log_z = float(np.logaddexp(logs[0], logs[1]))
    marginal, got_log_z = _run(model.engine, _likelihoods(model.engine, [dict.fromkeys(names, "yes")], [{}]), "t")
    assert log_z < math.log(1e-300)
    assert_allclose(got_log_z, log_z, rtol=1e-12, atol=0)
    assert_allclose(marginal, np.exp(logs - log_z), rtol=1e-12, atol=0)


def test_impossible_evidence_gives_nan_and_minus_infinity_and_too_large_gives_none():
    network, names = _chain_of_rare_findings(3, (0.0, 0.0), (0.5, 0.5))  # the findings are never present
    model = bayesdx.load_model(network, causes=["t"])
    engine = model.engine
    marginal, log_z = _run(engine, _likelihoods(engine, [{names[0]: "yes"}], [{}]), "t")
    assert np.isnan(marginal).all()
    assert log_z == -math.inf
    marginal, log_z = _run(engine, {names[1]: np.zeros((1, 2))}, "t")  # a likelihood of zeros
    assert np.isnan(marginal).all()
    assert log_z == -math.inf
    # the elimination's one table is over the target (2 entries): over a limit of 1, None before anything runs
    assert _run(engine, {names[0]: np.array([[0.5, 1.0]])}, "t", max_entries=1) is None
    assert _run(engine, {names[0]: np.array([[0.5, 1.0]])}, "t", max_entries=2) is not None


def test_a_pattern_seen_before_reuses_its_elimination_order(evidence_sampler, rng, monkeypatch):
    """Cases with the same variables observed (other states) and the same target reuse the order worked out for the
    first: no elimination is planned again, and the answers still match VariableElimination. The store of orders
    is emptied when full."""
    from bayesdx.engine import single_target

    network = normalized(example_network("alarm"))
    model = bayesdx.load_model(network, causes=["HYPOVOLEMIA"])
    engine = model.engine
    first = evidence_sampler(network, 1, rng, observe=0.3, exclude=("HYPOVOLEMIA",))[0]
    others = evidence_sampler(network, 400, rng, observe=1.0, exclude=("HYPOVOLEMIA",))
    same_pattern = [{v: c[v] for v in first} for c in others if any(c[v] != first[v] for v in first)][:3]
    assert same_pattern
    orders: dict = {}
    _run(engine, _likelihoods(engine, [first], [{}]), "HYPOVOLEMIA", orders=orders)
    assert len(orders) == 1
    planned = []
    original = single_target._elimination_steps
    monkeypatch.setattr(single_target, "_elimination_steps", lambda *args: planned.append(1) or original(*args))
    for case in same_pattern:
        marginal, log_z = _run(engine, _likelihoods(engine, [case], [{}]), "HYPOVOLEMIA", orders=orders)
        expected, p_e = _reference(network, engine, case, {}, "HYPOVOLEMIA")
        assert_allclose(marginal, expected, atol=ATOL, rtol=0)
        assert_allclose(math.exp(log_z), p_e, rtol=ATOL, atol=0)
    assert planned == []
    assert len(orders) == 1
    monkeypatch.setattr(single_target, "MAX_ORDERS", 1)
    _run(engine, _likelihoods(engine, [{}], [{}]), "HYPOVOLEMIA", orders=orders)  # another pattern: the store is full
    assert planned == [1]
    assert len(orders) == 1


def test_rare_findings_observed_with_children_are_rescaled_before_they_multiply():
    """Found in review: CPD rows of 1e-200 taken at observed states (findings with a child, so not folded) multiplied
    to zero before any table was rescaled, and possible evidence came out impossible. Against the sums in logs."""
    prior, p = (0.3, 0.7), (1e-200, 3e-200)
    network, names = _chain_of_rare_findings(4, p, prior)
    for f in names:  # a child of each finding, unobserved but for its likelihood
        network.add_edge(f, f"{f}_c")
        network.add_cpds(
            TabularCPD(
                f"{f}_c",
                2,
                [[0.6, 0.1], [0.4, 0.9]],
                evidence=[f],
                evidence_card=[2],
                state_names={f"{f}_c": ["yes", "no"], f: ["yes", "no"]},
            )
        )
    model = bayesdx.load_model(network, causes=["t"])
    lik = _likelihoods(model.engine, [dict.fromkeys(names, "yes")], [{f"{names[0]}_c": np.array([0.5, 0.25])}])
    marginal, log_z = _run(model.engine, lik, "t")
    logs = np.array([math.log(prior[k]) + 4 * math.log(p[k]) + math.log(0.6 * 0.5 + 0.4 * 0.25) for k in range(2)])
    total = float(np.logaddexp(logs[0], logs[1]))
    assert_allclose(log_z, total, rtol=1e-12, atol=0)
    assert_allclose(marginal, np.exp(logs - total), rtol=1e-12, atol=0)


def test_the_same_variables_hard_or_soft_get_their_own_orders_and_hard_values_enter_p_e(evidence_sampler, rng):
    """An order is kept per pattern: the same variables observed hard in one case and soft in the next, or with another
    target, plan their own (a shared order would be wrong: found by cutting the key in review). Through the engine
    (the route forced on a small network), a hard answer of likelihood 0.3 multiplies P(e) by 0.3."""
    network = normalized(example_network("alarm"))
    model = bayesdx.load_model(network, causes=["HYPOVOLEMIA"])
    engine = model.engine
    engine._small_network = False  # no universal program: the single-target route
    net = engine.network
    case = evidence_sampler(network, 1, rng, observe=0.3, exclude=("HYPOVOLEMIA", "LVFAILURE"))[0]
    soft = {v: rng.uniform(0.1, 1.0, len(net.states[net.index()[v]])) for v in case}
    for target in ("HYPOVOLEMIA", "LVFAILURE"):
        for evidence, virtual in ((case, {}), ({}, soft)):
            lik = _likelihoods(engine, [evidence], [virtual])
            post = engine.posterior(lik, [target], 1)
            assert post.route == "single target"
            expected, p_e = _reference(network, engine, evidence, virtual, target)
            names = net.states[net.index()[target]]
            assert_allclose(post.marginals[target][0], expected, atol=ATOL, rtol=0, err_msg=f"{target} {names}")
            assert_allclose(math.exp(post.log_evidence[0]), p_e, rtol=ATOL, atol=0)
    variable = next(iter(case))
    lik = _likelihoods(engine, [case], [{}])
    lik[variable] = lik[variable] * 0.3
    scaled = engine.posterior(lik, ["HYPOVOLEMIA"], 1)
    plain = engine.posterior(_likelihoods(engine, [case], [{}]), ["HYPOVOLEMIA"], 1)
    assert scaled.route == "single target"
    assert_allclose(scaled.log_evidence[0], plain.log_evidence[0] + math.log(0.3), atol=ATOL, rtol=0)
    _, p_e = _reference(network, engine, case, {}, "HYPOVOLEMIA")
    assert_allclose(math.exp(scaled.log_evidence[0]), 0.3 * p_e, rtol=ATOL, atol=0)
