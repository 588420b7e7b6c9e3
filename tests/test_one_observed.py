"""Evidence on one variable from its joint with each target (src/bayesdx/engine/universal.py, issue 16).

The fact encoded: with evidence ``lambda`` on one variable ``v`` only, ``P(t = x, e) = sum_s P(t = x, v = s)
lambda(s)`` and ``P(e) = sum_s P(v = s) lambda(s)``. The universal runner computes each target's joint with
``v`` once and then answers such cases with one matrix product. The reference is pgmpy's
VariableElimination: its posterior under hard evidence, and for soft evidence its joint ``P(t, v)`` weighted
by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork
from references import example_network, normalized
from test_relevance import _small_network

import bayesdx
from bayesdx.engine import universal


def _roots(network):
    return [n for n in network.nodes() if not network.get_parents(n)]


@pytest.fixture(scope="module")
def sachs():
    network = normalized(example_network("sachs"))
    return network, bayesdx.load_model(network, causes=_roots(network))


def test_hard_evidence_on_one_variable_takes_the_joint_and_matches_pgmpy(sachs, monkeypatch):
    network, model = sachs
    roots = _roots(network)
    ve = VariableElimination(network)
    runner = model.engine._universal()
    assert runner is not None
    runs = []
    original = universal.UniversalRunner._run
    monkeypatch.setattr(universal.UniversalRunner, "_run", lambda self, *a: runs.append(a) or original(self, *a))
    for v in [n for n in network.nodes() if n not in roots]:
        for state in network.get_cpds(v).state_names[v]:
            post = model.engine.posterior(bayesdx.evidence.likelihoods_from_evidence(model, [{v: state}]), roots, 1)
            assert post.route == "universal"
            for r in roots:
                expected = ve.query([r], evidence={v: state}, show_progress=False).values
                np.testing.assert_allclose(post.marginals[r][0], expected, atol=1e-12, rtol=0)
            p_e = ve.query([v], show_progress=False).values[list(network.get_cpds(v).state_names[v]).index(state)]
            assert np.isclose(post.log_evidence[0], np.log(p_e), atol=1e-12)
    index = model.engine._index
    observed = {v for v in network.nodes() if v not in roots}
    assert {k[0] for k in runner._joints} == {index[v] for v in observed}
    # one run per observed variable (its joint, every state at once), none per case
    assert len(runs) == len(observed)


def test_soft_evidence_and_cases_without_it_in_one_batch(sachs):
    network, model = sachs
    roots = _roots(network)
    v = "Akt"
    names = list(network.get_cpds(v).state_names[v])
    lam = np.array([[0.2, 1.0, 0.05], [1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])  # soft; unobserved; hard, scaled by 3
    post = model.engine.posterior({v: lam}, [*roots, v], 3)
    ve = VariableElimination(network)
    for t in [*roots, v]:
        if t == v:
            joint = np.diag(ve.query([v], show_progress=False).values)
        else:
            q = ve.query([t, v], joint=True, show_progress=False)
            joint = q.values if q.variables == [t, v] else q.values.T
            assert list(q.state_names[v]) == names
        for case in range(3):
            weighted = joint @ lam[case]
            np.testing.assert_allclose(post.marginals[t][case], weighted / weighted.sum(), atol=1e-12, rtol=0)
    p_v = ve.query([v], show_progress=False).values
    np.testing.assert_allclose(post.log_evidence, np.log(lam @ p_v), atol=1e-12)
    assert post.marginals[v][2].tolist() == [0.0, 0.0, 1.0]  # observed: exactly its state


def test_a_state_of_probability_zero_falls_back_and_stays_exact():
    model = bayesdx.load_model(_small_network(), causes=["A", "C", "E"])
    runner = model.engine._universal()
    assert runner is not None
    post = model.engine.posterior({"B": np.array([[1.0, 0.0], [0.0, 1.0]])}, ["A", "C", "E"], 2)  # B = no; B = yes
    assert post.impossible.tolist() == [False, True]
    np.testing.assert_allclose(post.marginals["A"][0], [0.7, 0.3], atol=1e-12, rtol=0)
    assert np.isnan(post.marginals["A"][1]).all()
    index = model.engine._index
    assert runner._joints[(index["B"], (index["A"], index["C"], index["E"]))] is False  # B = yes is impossible


def test_evidence_below_the_floor_falls_back_to_the_rescaled_passes():
    """P(A = yes) = 1e-250, below UNSCALED_FLOOR: the joint with A is not kept, the rescaled route answers."""
    network = DiscreteBayesianNetwork([("A", "B")])
    yn = ["no", "yes"]
    network.add_cpds(
        TabularCPD("A", 2, [[1.0 - 1e-250], [1e-250]], state_names={"A": yn}),
        TabularCPD("B", 2, [[0.9, 0.25], [0.1, 0.75]], evidence=["A"], evidence_card=[2], state_names={"B": yn, "A": yn}),
    )
    model = bayesdx.load_model(network, causes=["A"])
    post = model.engine.posterior({"A": np.array([[0.0, 1.0]])}, ["A", "B"], 1)
    np.testing.assert_allclose(post.marginals["B"][0], [0.25, 0.75], atol=1e-15, rtol=0)
    assert post.marginals["A"][0].tolist() == [0.0, 1.0]
    assert np.isclose(post.log_evidence[0], np.log(1e-250), rtol=1e-14)
    index = model.engine._index
    assert model.engine._universal()._joints[(index["A"], (index["A"], index["B"]))] is False


def test_no_targets_gives_the_probability_of_the_evidence(sachs):
    network, model = sachs
    post = model.engine.posterior({"Akt": np.array([[0.0, 1.0, 0.0]])}, [], 1)
    p_v = VariableElimination(network).query(["Akt"], show_progress=False).values
    assert post.marginals == {}
    assert np.isclose(post.log_evidence[0], np.log(p_v[1]), atol=1e-12)
