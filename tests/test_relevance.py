"""Targets independent of the evidence keep their prior (src/bayesdx/engine/universal.py, issue 16).

The fact encoded: when no ancestor of a target (itself included) is an ancestor of an observed variable (itself
included), the target is independent of the evidence, so its posterior is its prior (the ancestral criterion,
Lauritzen et al. 1990; Koller & Friedman 2009, section 3.3). The universal runner then runs no backward step
for that target. The independent sets are checked against networkx's ancestors and d-separation; the
posteriors against pgmpy's VariableElimination.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork
from references import example_network, normalized

import bayesdx


def _roots(network):
    return [n for n in network.nodes() if not network.get_parents(n)]


def _graph(network) -> nx.DiGraph:
    graph = nx.DiGraph(network.edges())
    graph.add_nodes_from(network.nodes())
    return graph


@pytest.mark.parametrize("name", ["alarm", "hailfinder", "win95pts"])
def test_independent_targets_are_the_ancestrally_separated_ones_and_d_separated(name):
    network = example_network(name)
    model = bayesdx.load_model(network, causes=_roots(network))
    runner = model.engine._universal()
    assert runner is not None
    graph = _graph(network)
    variables = list(model.compiled.variables)
    ancestry = {v: nx.ancestors(graph, v) | {v} for v in variables}
    rng = np.random.default_rng(11)
    seen = 0
    for k in range(40):
        observed = [str(v) for v in rng.choice(variables, size=int(rng.integers(1, 6)), replace=False)]
        targets = [str(v) for v in rng.choice(variables, size=int(rng.integers(1, 8)), replace=False)]
        index = {v: i for i, v in enumerate(variables)}
        tape = runner._tape(frozenset(index[v] for v in observed), tuple(index[t] for t in targets))
        evidence_ancestry = set().union(*(ancestry[v] for v in observed))
        expected = {t for t in targets if not ancestry[t] & evidence_ancestry}
        assert {variables[t] for t in tape.independent} == expected, (name, k)
        for t in expected:
            assert nx.is_d_separator(graph, {t}, set(observed), set()), (name, k, t)
        seen += len(expected)
    assert seen > 0  # the check saw independent targets


def test_hailfinder_posteriors_exact_with_independent_roots():
    network = normalized(example_network("hailfinder"))
    roots = _roots(network)
    model = bayesdx.load_model(network, causes=roots)
    graph = _graph(network)
    leaves = sorted(n for n in network.nodes() if not network.get_children(n))
    ve = VariableElimination(network)
    rng = np.random.default_rng(3)
    independent_seen = 0
    for _ in range(12):
        chosen = [str(v) for v in rng.choice(leaves, size=3, replace=False)]
        evidence = {v: str(rng.choice(network.get_cpds(v).state_names[v])) for v in chosen}
        try:
            ve.query([roots[0]], evidence=evidence, show_progress=False)
        except Exception:  # pgmpy cannot normalize impossible evidence: draw again
            continue
        post = model.engine.posterior(bayesdx.evidence.likelihoods_from_evidence(model, [evidence]), roots, 1)
        assert post.route == "universal"
        for r in roots:
            expected = ve.query([r], evidence=evidence, show_progress=False).values
            np.testing.assert_allclose(post.marginals[r][0], expected, atol=1e-9, rtol=0)
        independent_seen += sum(1 for r in roots if not any(nx.has_path(graph, r, v) for v in chosen))
    assert independent_seen > 0


def _small_network() -> DiscreteBayesianNetwork:
    """A -> B (B is 'no' whatever A), C -> D, E root alone: observing B = yes is impossible."""
    network = DiscreteBayesianNetwork([("A", "B"), ("C", "D")])
    network.add_node("E")
    yn = ["no", "yes"]
    network.add_cpds(
        TabularCPD("A", 2, [[0.7], [0.3]], state_names={"A": yn}),
        TabularCPD("B", 2, [[1.0, 1.0], [0.0, 0.0]], evidence=["A"], evidence_card=[2], state_names={"B": yn, "A": yn}),
        TabularCPD("C", 2, [[0.4], [0.6]], state_names={"C": yn}),
        TabularCPD("D", 2, [[0.9, 0.2], [0.1, 0.8]], evidence=["C"], evidence_card=[2], state_names={"D": yn, "C": yn}),
        TabularCPD("E", 3, [[0.5], [0.3], [0.2]], state_names={"E": ["x", "y", "z"]}),
    )
    return network


def test_soft_evidence_makes_a_target_dependent_and_stays_exact():
    network = _small_network()
    model = bayesdx.load_model(network, causes=["A", "C", "E"])
    lam = {"D": np.array([[0.25, 1.0]])}  # soft evidence on D: C depends on it, A and E do not
    post = model.engine.posterior(lam, ["A", "C", "E"], 1)
    assert post.route == "universal"
    # C's posterior by hand: P(C) * P(lam | C), P(lam | C=no) = 0.9*0.25 + 0.1, P(lam | C=yes) = 0.2*0.25 + 0.8
    joint = np.array([0.4 * (0.9 * 0.25 + 0.1), 0.6 * (0.2 * 0.25 + 0.8)])
    np.testing.assert_allclose(post.marginals["C"][0], joint / joint.sum(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(post.marginals["A"][0], [0.7, 0.3], atol=1e-12, rtol=0)
    np.testing.assert_allclose(post.marginals["E"][0], [0.5, 0.3, 0.2], atol=1e-12, rtol=0)
    assert np.isclose(post.log_evidence[0], np.log(joint.sum()), atol=1e-12)


def test_impossible_evidence_leaves_independent_targets_undefined_too():
    network = _small_network()
    model = bayesdx.load_model(network, causes=["A", "C", "E"])
    lam = {"B": np.array([[0.0, 1.0], [1.0, 0.0]]), "D": np.array([[0.0, 1.0], [0.0, 1.0]])}  # case 0: B = yes
    post = model.engine.posterior(lam, ["A", "C", "E"], 2)
    assert post.impossible.tolist() == [True, False]
    for t in ("A", "C", "E"):
        assert np.isnan(post.marginals[t][0]).all()
    # case 1: B = no (certain), D = yes: P(C = yes | D = yes) = 0.6*0.8 / (0.4*0.1 + 0.6*0.8); A and E keep their priors
    np.testing.assert_allclose(post.marginals["C"][1], [0.04 / 0.52, 0.48 / 0.52], atol=1e-12, rtol=0)
    np.testing.assert_allclose(post.marginals["A"][1], [0.7, 0.3], atol=1e-12, rtol=0)
    np.testing.assert_allclose(post.marginals["E"][1], [0.5, 0.3, 0.2], atol=1e-12, rtol=0)
    post.marginals["E"][1, 0] = 9.0  # the prior is the result's own copy: the next call is not affected
    again = model.engine.posterior({"D": np.array([[0.0, 1.0]])}, ["E"], 1)
    np.testing.assert_allclose(again.marginals["E"][0], [0.5, 0.3, 0.2], atol=1e-12, rtol=0)
