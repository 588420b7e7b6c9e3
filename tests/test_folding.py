"""Evidence on a leaf with one parent is folded into a likelihood on the parent (src/bayesdx/engine/folding.py,
issue 16). The fact encoded: a childless variable ``v`` with one parent ``p`` enters the joint only through
``P(v | p)``, so its evidence is the likelihood ``sum_s lambda_v(s) P(v = s | p)`` on ``p`` (Pearl 1988, 4.2.2).
Every result is checked against brute-force enumeration of the joint, never against the engine."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.engine import engine as engine_module

ATOL = 1e-12


def _network(structure: dict[str, list[str]], cards: dict[str, int], seed: int):
    """A pgmpy network of the given parents and cardinalities, random CPDs with every entry positive."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    gen = np.random.default_rng(seed)
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(structure)
    network.add_edges_from((p, v) for v, ps in structure.items() for p in ps)
    cpds = []
    for v, ps in structure.items():
        columns = math.prod(cards[p] for p in ps)
        values = 0.01 + 0.99 * gen.dirichlet(np.ones(cards[v]), size=columns).T
        values /= values.sum(axis=0)
        cpds.append(
            TabularCPD(
                v,
                cards[v],
                values,
                evidence=ps or None,
                evidence_card=[cards[p] for p in ps] or None,
                state_names={u: [f"s{k}" for k in range(cards[u])] for u in [v, *ps]},
            )
        )
    network.add_cpds(*cpds)
    network.check_model()
    return network


# X is the root (4 states); Y a child of X; leaves: A, B, C of X alone, D of Y alone, E of X and Y (not foldable)
STRUCTURE = {"X": [], "Y": ["X"], "A": ["X"], "B": ["X"], "C": ["X"], "D": ["Y"], "E": ["X", "Y"]}
CARDS = {"X": 4, "Y": 3, "A": 2, "B": 3, "C": 2, "D": 3, "E": 2}


def _brute_force(network, likelihoods: dict[str, np.ndarray], targets: list[str]):
    """log P(e) and each target's posterior, summing the joint over every assignment."""
    names = list(STRUCTURE)
    cpds = {v: network.get_cpds(v) for v in names}
    z = 0.0
    marg = {t: np.zeros(CARDS[t]) for t in targets}
    for values in itertools.product(*(range(CARDS[v]) for v in names)):
        x = dict(zip(names, values, strict=True))
        p = 1.0
        for v in names:
            cpd = cpds[v]
            index = tuple(x[u] for u in cpd.variables)
            p *= float(cpd.values[index])
            if v in likelihoods:
                p *= float(likelihoods[v][x[v]])
        z += p
        for t in targets:
            marg[t][x[t]] += p
    return math.log(z), {t: m / z for t, m in marg.items()}


@pytest.fixture(scope="module")
def network():
    return _network(STRUCTURE, CARDS, seed=11)


def _likelihood(gen: np.random.Generator, card: int, kind: str) -> np.ndarray:
    if kind == "hard":
        out = np.zeros(card)
        out[gen.integers(card)] = 1.0
        return out
    return gen.uniform(0.0, 3.0, size=card)  # soft evidence, some entries above one


@pytest.mark.parametrize("universal", [True, False], ids=["universal route, nothing folded", "own program, leaves folded"])
def test_folded_leaves_agree_with_brute_force(network, monkeypatch, universal):
    """Hard and soft evidence on every leaf, the parent itself observed or not, the parent a target or not:
    the marginals and log P(e) equal enumeration of the joint."""
    if not universal:
        monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)
    model = bayesdx.load_model(network, causes=["X"])
    gen = np.random.default_rng(5)
    for trial in range(12):
        observed = [v for v in ["A", "B", "C", "D", "E", "Y"] if gen.random() < 0.7] or ["A"]
        if trial % 3 == 0:
            observed.append("X")  # the parent observed too: its likelihood times the folded ones
        cases = [{v: _likelihood(gen, CARDS[v], "hard" if gen.random() < 0.5 else "soft") for v in observed} for _ in range(3)]
        lik = {v: np.array([case[v] for case in cases]) for v in observed}
        targets = ["X", "Y"] if trial % 2 else ["X"]
        post = model.engine.posterior(lik, targets, len(cases))
        for k, case in enumerate(cases):
            log_z, marg = _brute_force(network, case, targets)
            assert post.log_evidence[k] == pytest.approx(log_z, abs=ATOL), (trial, k)
            for t in targets:
                assert_allclose(post.marginals[t][k], marg[t], atol=ATOL, rtol=0, err_msg=f"{trial} {k} {t}")


def test_an_observed_leaf_asked_as_a_target_is_not_folded(network):
    """Soft evidence on A and A asked for: its posterior is P(A | e), which folding would lose."""
    model = bayesdx.load_model(network, causes=["X"])
    case = {"A": np.array([0.3, 1.7]), "B": np.array([1.0, 0.0, 0.0])}
    post = model.engine.posterior({v: a[None, :] for v, a in case.items()}, ["A", "X"], 1)
    log_z, marg = _brute_force(network, case, ["A", "X"])
    assert post.log_evidence[0] == pytest.approx(log_z, abs=ATOL)
    assert_allclose(post.marginals["A"][0], marg["A"], atol=ATOL, rtol=0)
    assert_allclose(post.marginals["X"][0], marg["X"], atol=ATOL, rtol=0)


def test_folded_leaves_leave_the_program_key(network, monkeypatch):
    """Cases that observe different leaves of X share one compiled program: the folded leaves are not in it. (Two
    cases a call: one alone takes the single-target route, which compiles no program.)"""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # compile each pattern's own program
    model = bayesdx.load_model(network, causes=["X"])
    engine = model.engine
    index = engine.network.index()
    for leaf in ["A", "B", "C"]:
        post = engine.posterior({leaf: np.repeat(np.eye(CARDS[leaf])[:1], 2, axis=0)}, ["X"], 2)
        _, marg = _brute_force(network, {leaf: np.eye(CARDS[leaf])[0]}, ["X"])
        assert_allclose(post.marginals["X"], [marg["X"]] * 2, atol=ATOL, rtol=0)
    keys = list(engine._programs)
    assert len(keys) == 1, keys
    assert not {index["A"], index["B"], index["C"]} & keys[0][0]


def test_many_folded_leaves_do_not_underflow():
    """1,500 observed leaves of one binary root: P(e) is about 1e-500, below the smallest double. Every fold keeps
    its largest entry within [1e-100, 1e100] (folding.RANGE), so log P(e) and the posterior stay exact (checked against the
    closed form log P(e) = logsumexp_x [log P(x) + sum_i log P(s_i | x)])."""
    n_leaves = 1500
    structure = {"R": [], **{f"L{i}": ["R"] for i in range(n_leaves)}}
    cards = {"R": 2, **{f"L{i}": 2 for i in range(n_leaves)}}
    network = _network(structure, cards, seed=3)
    model = bayesdx.load_model(network, causes=["R"])
    gen = np.random.default_rng(8)
    states = gen.integers(0, 2, size=n_leaves)
    lik = {f"L{i}": np.eye(2)[states[i]][None, :] for i in range(n_leaves)}
    post = model.engine.posterior(lik, ["R"], 1)
    prior = network.get_cpds("R").values
    terms = [
        math.log(prior[x]) + math.fsum(math.log(network.get_cpds(f"L{i}").values[states[i], x]) for i in range(n_leaves)) for x in range(2)
    ]
    top = max(terms)
    log_z = top + math.log(math.fsum(math.exp(t - top) for t in terms))
    assert log_z < math.log(1e-300)  # the point of the test: P(e) itself is not a double
    assert not post.impossible[0]
    assert post.log_evidence[0] == pytest.approx(log_z, rel=1e-12)
    assert_allclose(post.marginals["R"][0], [math.exp(t - log_z) for t in terms], atol=ATOL, rtol=0)


def test_an_impossible_folded_leaf_makes_the_case_impossible(monkeypatch):
    """A leaf state of probability zero under every parent state: the case is impossible, not rescaled away."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # not the universal route, which folds nothing
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    network = DiscreteBayesianNetwork([("R", "L"), ("R", "M")])
    names = {"R": ["r0", "r1"], "L": ["l0", "l1"], "M": ["m0", "m1"]}
    network.add_cpds(
        TabularCPD("R", 2, [[0.3], [0.7]], state_names={"R": names["R"]}),
        TabularCPD("L", 2, [[1.0, 1.0], [0.0, 0.0]], evidence=["R"], evidence_card=[2], state_names={"L": names["L"], "R": names["R"]}),
        TabularCPD("M", 2, [[0.2, 0.9], [0.8, 0.1]], evidence=["R"], evidence_card=[2], state_names={"M": names["M"], "R": names["R"]}),
    )
    model = bayesdx.load_model(network, causes=["R"])
    lik = {"L": np.array([[0.0, 1.0], [1.0, 0.0]]), "M": np.array([[1.0, 0.0], [1.0, 0.0]])}
    post = model.engine.posterior(lik, ["R"], 2)
    assert post.impossible.tolist() == [True, False]
    p = np.array([0.3 * 0.2, 0.7 * 0.9])
    assert post.log_evidence[1] == pytest.approx(math.log(p.sum()), abs=ATOL)
    assert_allclose(post.marginals["R"][1], p / p.sum(), atol=ATOL, rtol=0)


def test_no_cases_fold_to_an_empty_result(network, monkeypatch):
    """Zero cases (a case with no next step to ask has zero outcome rows): an empty result, not an error."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)
    model = bayesdx.load_model(network, causes=["X"])
    post = model.engine.posterior({"A": np.ones((0, 2))}, ["X"], 0)
    assert post.marginals["X"].shape == (0, 4)
    assert post.log_evidence.shape == (0,)


def _root_with_leaves(n_leaves: int):
    """R (P = 0.3, 0.7) with ``n_leaves`` leaves L0..., each P(L | R) = [[0.2, 0.6], [0.8, 0.4]]."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    leaves = [f"L{i}" for i in range(n_leaves)]
    network = DiscreteBayesianNetwork([("R", leaf) for leaf in leaves])
    r_states = {"R": ["r0", "r1"]}
    cpds = [TabularCPD("R", 2, [[0.3], [0.7]], state_names=r_states)]
    for leaf in leaves:
        names = {leaf: ["a", "b"], **r_states}
        cpds.append(TabularCPD(leaf, 2, [[0.2, 0.6], [0.8, 0.4]], evidence=["R"], evidence_card=[2], state_names=names))
    network.add_cpds(*cpds)
    return network


def _closed_form(likelihoods: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """log P(e) and P(R | e) for ``_root_with_leaves``, each leaf's message sum_s lambda(s) P(s | r) in logs."""
    table = np.array([[0.2, 0.6], [0.8, 0.4]])
    logs = np.log([0.3, 0.7])
    for lam in likelihoods.values():
        logs = logs + np.log(lam @ table)
    top = logs.max()
    log_z = float(top + np.log(np.exp(logs - top).sum()))
    return log_z, np.exp(logs - log_z)


@pytest.mark.parametrize("cases", [1, 100], ids=["one case", "100 cases"])
def test_folding_neither_underflows_nor_overflows(monkeypatch, cases):
    """Found in review: a product whose peak sat just above the rescaling threshold, times a message of 1e-200,
    fell below the smallest double and the case was called impossible; soft likelihoods of 1e10 on 31 leaves
    overflowed to inf. Every factor and product is now kept within [1e-100, 1e100] (closed form in logs)."""
    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)  # the route that folds
    tiny = {"L0": np.array([1e-149, 1e-149]), "L1": np.array([1e-200, 1e-200]), "L2": np.array([1.0, 0.0])}
    huge = {f"L{i}": np.array([1e10, 1e10]) for i in range(31)}
    for likelihoods in (tiny, huge):
        model = bayesdx.load_model(_root_with_leaves(len(likelihoods)), causes=["R"])
        post = model.engine.posterior({v: np.tile(a, (cases, 1)) for v, a in likelihoods.items()}, ["R"], cases)
        log_z, marginal = _closed_form(likelihoods)
        assert not post.impossible.any()
        assert_allclose(post.log_evidence, log_z, rtol=1e-13)
        assert_allclose(post.marginals["R"], np.tile(marginal, (cases, 1)), atol=ATOL, rtol=0)


def test_many_tiny_messages_fold_without_losing_relative_precision():
    """Forty leaves of one target, each a message of about 1e-300 on its two states: the folded likelihood is
    their product, whose ratio between the two states must be exact to a few machine epsilons. A product
    taken in logs of the messages themselves lost 3e-12 there (eps times the logs' size, 27,600; a review found
    it): each message is scaled to a largest entry of one before its log is taken."""
    from fractions import Fraction

    from bayesdx.engine.folding import fold_leaves

    n_leaves = 40
    parents = [(), *[(0,)] * n_leaves]
    tables = [np.ones(2), *[np.eye(2)] * n_leaves]  # each leaf's message is its own likelihood
    rng = np.random.default_rng(1)
    lik = {0: np.array([[1.0, 1.0]])}
    exact = Fraction(1)
    for v in range(1, n_leaves + 1):
        lik[v] = np.array([[1e-300 * rng.uniform(0.5, 1.0), 1e-300 * rng.uniform(0.5, 1.0)]])
        exact *= Fraction(lik[v][0, 0]) / Fraction(lik[v][0, 1])
    folded = fold_leaves(lik, frozenset(range(1, n_leaves + 1)), parents, tables, {0})
    assert folded is not None
    x = folded.likelihoods[0][0]
    assert abs(float((Fraction(x[0]) / Fraction(x[1]) - exact) / exact)) < 1e-14
    expected_log = sum(math.log(Fraction(lik[v][0, 1])) for v in range(1, n_leaves + 1))  # the second entry's
    assert_allclose(folded.log_scale[0] + math.log(x[1]), expected_log, rtol=1e-14, atol=0)
