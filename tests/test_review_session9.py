"""Defects a review of session 9's engine found (issue 16), each against an independent computation.

- A target independent of the evidence that is a root keeps exactly its own table, so that tied causes rank
  in model order (the prior from a contraction differed in its last bit between tied states).
- Its prior is the caller's copy also for a single case.
- Evidence on one variable whose probability is below the underflow floor is not answered from the joint.
- The rescaled passes scale every likelihood to a largest entry of one: a likelihood of 1e-300 made a
  gradient overflow and the marginals of a possible case NaN (pre-existing).
- A target named twice is one target (its marginal came out as zeros; pre-existing).
- No evidence and no targets for more than 64 cases gives P(e) = 1 (it raised IndexError; pre-existing).
- Folding a leaf's evidence into its parent brings each factor into range first: two likelihoods of 1e-300
  multiplied to zero, an impossible case (session 8's folding).
"""

from __future__ import annotations

import itertools

import numpy as np
from pgmpy.factors.discrete import TabularCPD
from pgmpy.models import DiscreteBayesianNetwork
from references import example_network

import bayesdx


def _hailfinder():
    network = example_network("hailfinder")
    return network, bayesdx.load_model(network, causes=[n for n in network.nodes() if not network.get_parents(n)])


def test_an_independent_root_keeps_its_table_exactly_and_ties_rank_in_model_order():
    network, model = _hailfinder()
    table = network.get_cpds("LatestCIN").values  # [0.4, 0.4, 0.15, 0.05]: two equal states
    dx = bayesdx.rank_causes({"Date": model.states["Date"][0]}, model=model, next_steps=False)
    ranked = [c for c in dx.causes if c.node == "LatestCIN"]
    assert [c.probability for c in ranked] == (table / table.sum()).tolist()
    assert [c.state for c in ranked] == list(model.states["LatestCIN"])  # the tie (0.4, 0.4) in model order


def test_the_prior_of_one_case_is_the_callers_copy():
    _, model = _hailfinder()
    evidence = bayesdx.evidence.likelihoods_from_evidence(model, [{"Date": model.states["Date"][0]}])
    first = model.engine.posterior(evidence, ["LatestCIN"], 1)
    kept = first.marginals["LatestCIN"].copy()
    first.marginals["LatestCIN"][:] = 9.0
    again = model.engine.posterior(evidence, ["LatestCIN"], 1)
    np.testing.assert_array_equal(again.marginals["LatestCIN"], kept)


def _chain(p_yes: float) -> bayesdx.Model:
    yn = ["no", "yes"]
    network = DiscreteBayesianNetwork([("A", "B")])
    network.add_cpds(
        TabularCPD("A", 2, [[1 - p_yes], [p_yes]], state_names={"A": yn}),
        TabularCPD("B", 2, [[0.9, 0.3], [0.1, 0.7]], evidence=["A"], evidence_card=[2], state_names={"B": yn, "A": yn}),
    )
    return bayesdx.load_model(network, causes=["A"])


def test_one_observed_variable_below_the_floor_is_not_answered_from_its_joint():
    # P(e) = 1e-15 * 1e-305: a subnormal product from the joint; the rescaled passes give it exactly
    post = _chain(1e-15).engine.posterior({"A": np.array([[0.0, 1e-305]])}, ["B"], 1)
    np.testing.assert_allclose(post.marginals["B"][0], [0.3, 0.7], atol=1e-15, rtol=0)
    assert np.isclose(post.log_evidence[0], np.log(1e-15) + np.log(1e-305), rtol=1e-14)


# a network a review drew at random (five variables, CPD columns with zeros), with evidence whose P(e) is
# about 1e-599: the likelihood 1e-300 on V2 made the gradients overflow in the rescaled passes
CARDS = [3, 3, 4, 3, 2]
PARENTS = [[], [0], [0], [2], [3, 2]]
TABLES = [
    [[0.0], [0.0], [1.0]],
    [[1.0, 0.4725766810909485, 1.0], [0.0, 0.08703634563320013, 0.0], [0.0, 0.4403869732758513, 0.0]],
    [
        [0.8511838361731222, 0.8436674460050015, 0.3434851138459635],
        [0.05287765364497967, 0.00157624673316828, 0.3953553131481462],
        [0.09593851018189817, 0.13471301224745164, 0.21789777393339024],
        [0.0, 0.02004329501437861, 0.04326179907250012],
    ],
    [
        [0.06055360392215888, 0.36338282532410887, 0.3484298890959936, 0.903124675384735],
        [0.9394463960778412, 0.01625373338675298, 0.342493456269396, 0.0],
        [0.0, 0.6203634412891382, 0.30907665463461037, 0.09687532461526507],
    ],
    [
        [
            0.12026670487118107,
            0.8971199468058835,
            0.7045703876188258,
            0.792345270187507,
            0.3488732414227902,
            1.0,
            0.0,
            0.0,
            0.6395416468923752,
            0.9060410661231287,
            0.10171807234189928,
            1.0,
        ],
        [
            0.8797332951288189,
            0.10288005319411657,
            0.2954296123811742,
            0.2076547298124931,
            0.6511267585772098,
            0.0,
            1.0,
            1.0,
            0.36045835310762475,
            0.09395893387687122,
            0.8982819276581008,
            0.0,
        ],
    ],
]
EVIDENCE = {
    "V2": [1e-300, 0.0, 0.0, 0.0],
    "V3": [8.858819212613173e-301, 9.546416364324487e-301, 1.0],
    "V4": [37.46956220151438, 36.73827543890708],
}


def _drawn_network() -> DiscreteBayesianNetwork:
    names = [f"V{k}" for k in range(5)]
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(names)
    network.add_edges_from((names[p], names[k]) for k, ps in enumerate(PARENTS) for p in ps)
    states = {n: [f"s{i}" for i in range(c)] for n, c in zip(names, CARDS, strict=True)}
    for k, ps in enumerate(PARENTS):
        given = [names[p] for p in ps]
        network.add_cpds(
            TabularCPD(
                names[k],
                CARDS[k],
                np.array(TABLES[k]),
                evidence=given or None,
                evidence_card=[CARDS[p] for p in ps] or None,
                state_names={n: states[n] for n in [names[k], *given]},
            )
        )
    return network


def _brute_force() -> tuple[dict[str, np.ndarray], float]:
    """Every posterior and log P(e) by enumerating the 216 joint states, in log space (P(e) is about 1e-599)."""
    logs, marg = [], {f"V{k}": np.zeros(c) for k, c in enumerate(CARDS)}
    rows = []
    for config in itertools.product(*[range(c) for c in CARDS]):
        log_p = 0.0
        for k, ps in enumerate(PARENTS):
            column = 0
            for p in ps:  # pgmpy's column order: the first parent varies slowest
                column = column * CARDS[p] + config[p]
            value = TABLES[k][config[k]][column]
            log_p += np.log(value) if value > 0 else -np.inf
        for name, lam in EVIDENCE.items():
            value = lam[config[int(name[1:])]]
            log_p += np.log(value) if value > 0 else -np.inf
        rows.append((config, log_p))
    top = max(lp for _, lp in rows)
    total = sum(np.exp(lp - top) for _, lp in rows)
    for config, lp in rows:
        for k in range(5):
            marg[f"V{k}"][config[k]] += np.exp(lp - top) / total
        logs.append(lp)
    return marg, top + np.log(total)


def test_a_likelihood_of_1e_300_leaves_the_rescaled_passes_finite_and_exact():
    model = bayesdx.load_model(_drawn_network(), causes=["V0"])
    expected, log_z = _brute_force()
    targets = ["V2", "V0", "V3", "V4", "V1"]
    for n in (1, 70):  # the universal runner's fallback and the contraction route
        lam = {v: np.repeat([np.array(a)], n, axis=0) for v, a in EVIDENCE.items()}
        post = model.engine.posterior(lam, targets, n)
        assert not post.impossible.any()
        for t in targets:
            np.testing.assert_allclose(post.marginals[t], np.repeat([expected[t]], n, axis=0), atol=1e-12, rtol=0)
        np.testing.assert_allclose(post.log_evidence, log_z, rtol=1e-13)


def test_a_target_named_twice_is_one_target():
    model = _chain(0.3)
    lam = {"B": np.array([[0.0, 1.0]])}
    once = model.engine.posterior(lam, ["A"], 1).marginals["A"]
    twice = model.engine.posterior(lam, ["A", "A"], 1).marginals["A"]
    np.testing.assert_array_equal(twice, once)
    np.testing.assert_allclose(once[0], [0.7 * 0.1, 0.3 * 0.7] / np.float64(0.7 * 0.1 + 0.3 * 0.7), atol=1e-15, rtol=0)


def test_no_evidence_and_no_targets_for_many_cases_is_probability_one():
    post = _chain(0.3).engine.posterior({}, [], 65)
    assert post.marginals == {}
    np.testing.assert_array_equal(post.log_evidence, np.zeros(65))
    assert not post.impossible.any()


def test_folding_two_likelihoods_of_1e_300_is_not_impossible():
    """B, a leaf of one parent A, folds into A's likelihood: 1e-300 times 1e-300 underflowed to an impossible
    case (a review's random network); each factor is now brought into range first."""
    yn = ["no", "yes"]
    network = DiscreteBayesianNetwork([("A", "B")])
    network.add_cpds(
        TabularCPD("A", 2, [[0.27196658], [0.72803342]], state_names={"A": yn}),
        TabularCPD("B", 2, [[0.59414343, 0.0], [0.40585657, 1.0]], evidence=["A"], evidence_card=[2], state_names={"B": yn, "A": yn}),
    )
    model = bayesdx.load_model(network, causes=["A"])
    lam_b = np.array([1e-300, 8.433872855299994e-301])
    for n in (1, 70):
        # A alone is asked: B is then folded (a target is never folded)
        post = model.engine.posterior({"A": np.repeat([[1e-300, 0.0]], n, axis=0), "B": np.repeat([lam_b], n, axis=0)}, ["A"], n)
        assert not post.impossible.any()
        np.testing.assert_array_equal(post.marginals["A"], np.repeat([[1.0, 0.0]], n, axis=0))
        b = np.array([0.59414343, 0.40585657]) * lam_b
        log_z = np.log(0.27196658) + np.log(1e-300) + np.log(b.sum())
        np.testing.assert_allclose(post.log_evidence, log_z, rtol=1e-14)
