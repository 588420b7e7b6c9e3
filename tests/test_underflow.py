"""Probabilities of evidence far below the smallest double are still exact (log scale, rescaled passes).

The engine contracts without per-step rescaling when every operand is non-negative, and reruns a case with
rescaling when its probability of evidence comes out below ``UNSCALED_FLOOR``. These cases have
``P(e) = 1e-3 ** 120 = 1e-360``, which underflows to zero in plain double precision.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bayesdx.engine import execute, plan
from bayesdx.inference import CompiledNetwork, InferenceEngine

N_ROOTS = 120
RARE = 1e-3


def _network() -> CompiledNetwork:
    """``N_ROOTS`` independent rare roots and one child of the first root."""
    variables = (*tuple(f"r{i}" for i in range(N_ROOTS)), "child")
    states = (("present", "absent"),) * N_ROOTS + (("yes", "no"),)
    parents = ((),) * N_ROOTS + ((0,),)
    tables = (np.array([RARE, 1 - RARE]),) * N_ROOTS + (np.array([[0.7, 0.2], [0.3, 0.8]]),)
    return CompiledNetwork(variables, states, parents, tables)


def test_evidence_of_probability_1e_minus_360_keeps_its_exact_log_and_marginals(monkeypatch):
    engine = InferenceEngine(_network())
    n = 3
    lik = {f"r{i}": np.tile([1.0, 0.0], (n, 1)) for i in range(N_ROOTS)}  # every rare root present
    lik["r0"] = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the third case: r0 absent
    calls = []
    passes = execute.passes
    monkeypatch.setattr(execute, "passes", lambda *a, **k: calls.append(k["scaled"]) or passes(*a, **k))
    post = engine.posterior(lik, ["child", "r1"], n)
    assert calls[0] is False  # the unscaled pass ran first ...
    assert True in calls  # ... underflowed, and was redone with rescaling (however the cases were chunked)
    expected = [N_ROOTS * math.log(RARE)] * 2 + [(N_ROOTS - 1) * math.log(RARE) + math.log(1 - RARE)]
    assert_allclose(post.log_evidence, expected, rtol=1e-12)
    assert not post.impossible.any()
    # P(child = yes | r0) is the CPD column of r0's state: 0.7 when present, 0.2 when absent
    assert_allclose(post.marginals["child"][:, 0], [0.7, 0.7, 0.2], atol=1e-12)
    assert_allclose(post.marginals["r1"], np.tile([1.0, 0.0], (n, 1)), atol=0)


def test_ordinary_cases_are_not_rescaled(monkeypatch):
    engine = InferenceEngine(_network())
    calls = []
    passes = execute.passes
    monkeypatch.setattr(execute, "passes", lambda *a, **k: calls.append(k["scaled"]) or passes(*a, **k))
    post = engine.posterior({"r0": np.array([[1.0, 0.0]])}, ["child"], 1)
    assert True not in calls  # no rescaled pass (the universal route, taken here, runs its own unscaled steps)
    assert post.route == "universal"
    assert_allclose(post.log_evidence, [math.log(RARE)], rtol=1e-12)
    assert_allclose(post.marginals["child"][0], [0.7, 0.3], atol=1e-12)


def _rare_findings_with_children(noisy: bool) -> tuple[CompiledNetwork, np.ndarray]:
    """Root ``t`` (0.3, 0.7); four findings ``f0..f3`` present with probability 1e-200 or 3e-200 given ``t``, each
    with a child ``c_i`` (0.6 / 0.1 yes given the finding); with ``noisy``, also a root ``u`` (0.2 present) and a
    noisy-OR ``d`` on ``t`` and ``u`` (leak 0.01, links 0.9 and 0.5). Returns the network and, per state of ``t``,
    ``log P(t, f0..f3 present, c0 soft (0.5, 0.25)[, d present])`` written out by hand."""
    from bayesdx.inference import Decomposition

    prior, rare, leak, q = np.array([0.3, 0.7]), np.array([1e-200, 3e-200]), 0.01, {"t": 0.1, "u": 0.5}
    variables: list[str] = ["t"]
    states: list[tuple[str, ...]] = [("present", "absent")]
    parents: list[tuple[int, ...]] = [()]
    tables: list[np.ndarray] = [prior]
    for i in range(4):
        variables += [f"f{i}", f"c{i}"]
        states += [("yes", "no"), ("yes", "no")]
        parents += [(0,), (len(variables) - 2,)]
        tables += [np.array([rare, 1 - rare]), np.array([[0.6, 0.1], [0.4, 0.9]])]
    logs = np.log(prior) + 4 * np.log(rare) + math.log(0.6 * 0.5 + 0.4 * 0.25)
    decs: list[object] = [None] * len(variables)
    if noisy:
        variables += ["u", "d"]
        states += [("present", "absent"), ("yes", "no")]
        parents += [(), (0, len(variables) - 2)]
        absent = np.array([[(1 - leak) * (q["t"] if a == 0 else 1.0) * (q["u"] if b == 0 else 1.0) for b in range(2)] for a in range(2)])
        tables += [np.array([0.2, 0.8]), np.stack([1 - absent, absent])]
        cdf = {v: np.array([[q[v], 1.0], [1.0, 1.0]]) for v in q}
        decs += [None, Decomposition.from_cdfs((1, 0), np.array([1 - leak, 1.0]), [cdf["t"], cdf["u"]])]
        logs += np.log((1 - absent) @ np.array([0.2, 0.8]))
    network = CompiledNetwork(tuple(variables), tuple(states), tuple(parents), tuple(tables), tuple(decs) if noisy else None)  # type: ignore[arg-type]
    return network, logs


@pytest.mark.parametrize("noisy", [False, True], ids=["non-negative program", "signed program"])
def test_rare_findings_with_children_in_a_compiled_program_keep_possible_evidence_possible(monkeypatch, noisy):
    """Found in review (session 14), fixed in session 15: CPD rows of 1e-200 taken at each case's observed states
    (findings with a child, so neither folded nor expanded) multiplied to 1e-400, zero in double precision, before
    the rescaled pass's first rescale, and a batch of possible cases came out impossible. Each such operand is now
    scaled per case by a power of two first. Through the program route (100 cases, past the universal route), in
    its non-negative form and its signed one (a noisy-OR kept in the contraction), against the sums in logs."""
    if noisy:
        monkeypatch.setattr(plan, "POSITIVE_PARENTS", -1)  # the noisy-OR as signed weights: a weighted program
    network, logs = _rare_findings_with_children(noisy)
    engine = InferenceEngine(network)
    n = 100
    lik = {f"f{i}": np.tile([1.0, 0.0], (n, 1)) for i in range(4)}
    lik["c0"] = np.tile([0.5, 0.25], (n, 1))
    if noisy:
        lik["d"] = np.tile([1.0, 0.0], (n, 1))
    post = engine.posterior(lik, ["t"], n, expand=False)
    assert post.route == "contraction"
    if noisy:
        assert any(program.weighted for program in engine._programs.values())
    total = float(np.logaddexp(logs[0], logs[1]))
    assert total < math.log(1e-300)
    assert not post.impossible.any()
    assert_allclose(post.log_evidence, total, rtol=1e-12, atol=0)
    assert_allclose(post.marginals["t"], np.tile(np.exp(logs - total), (n, 1)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [1, 2, 20, 70, 200])
def test_a_case_whose_rare_observations_meet_in_a_shared_program_is_computed_again_alone(n):
    """Found in review (session 15): a case observing a = x = y = s1 with P(x | a) = P(y | a, x) = 1e-200 there
    (P(e) = 0.3e-400, possible). Alone on a small network (the universal program carries every variable as a
    likelihood) or in a batch whose other cases leave a, x and y free (carried as likelihoods too), a step
    multiplied the two entries to zero before a's likelihood removed the larger ones that set the scale, and the
    case came out impossible. A case found impossible is now computed again with its own program (each observed
    variable taken at its state, its operands scaled). Against the sum in logs; the other cases are untouched."""
    t_x = np.array([[0.5, 1.0 - 1e-200], [0.5, 1e-200]])
    t_y = np.zeros((2, 2, 2))
    t_y[1] = [[0.5, 0.5], [0.5, 1e-200]]
    t_y[0] = 1 - t_y[1]
    t_z = np.array([[0.9, 0.2], [0.1, 0.8]])
    net = CompiledNetwork(
        ("a", "x", "y", "z", "w"), (("s0", "s1"),) * 5, ((), (0,), (0, 1), (2,), (0,)), (np.array([0.7, 0.3]), t_x, t_y, t_z, t_z)
    )
    lik = {v: np.ones((n, 2)) for v in ("a", "x", "y")}
    for v in lik:
        lik[v][0] = [0.0, 1.0]
    post = InferenceEngine(net).posterior(lik, ["z"], n)
    assert not post.impossible.any()
    assert_allclose(post.log_evidence[0], math.log(0.3) + 2 * math.log(1e-200), rtol=1e-12, atol=0)
    assert_allclose(post.marginals["z"][0], [0.2, 0.8], atol=1e-12, rtol=0)
    if n > 1:  # the others observe nothing: P(e) = 1 and z's prior marginal
        assert_allclose(post.log_evidence[1:], 0.0, atol=1e-12)
        p_y1 = 0.7 * 0.5 + 0.3 * ((1 - 1e-200) * 0.5 + 1e-200 * 1e-200)  # P(y = s1) = sum over a and x
        assert_allclose(post.marginals["z"][1:, 0], 0.9 * (1 - p_y1) + 0.2 * p_y1, atol=1e-12)
    # many such cases among others (the second review: 100 of them, and a cap of 64 left 36 impossible)
    for v in lik:
        lik[v][::2] = [0.0, 1.0]
    post = InferenceEngine(net).posterior(lik, ["z"], n)
    assert not post.impossible.any()
    assert_allclose(post.log_evidence[::2], math.log(0.3) + 2 * math.log(1e-200), rtol=1e-12, atol=0)


def test_truly_impossible_cases_stay_impossible_and_the_second_look_costs_a_call_per_pattern(monkeypatch):
    """The second look costs an engine call per pattern of one-hot observations among the impossible cases:
    evidence that is impossible stays so, whatever the number of such cases (the second review found that a cap
    of 64 cases left the 65th of 100 identical possible ones impossible)."""
    net = CompiledNetwork(("a", "b"), (("s0", "s1"),) * 2, ((), (0,)), (np.array([0.5, 0.5]), np.array([[1.0, 0.0], [0.0, 1.0]])))
    engine = InferenceEngine(net)
    looked: list[int] = []
    route = engine._route
    monkeypatch.setattr(engine, "_route", lambda *a, **k: looked.append(a[3]) or route(*a, **k))
    n = 100
    lik = {"a": np.tile([1.0, 0.0], (n, 1)), "b": np.tile([0.0, 1.0], (n, 1))}  # b copies a: impossible
    lik["b"][::2] = [1.0, 0.0]  # every other case possible
    lik["b"][1:20:2] = [0.0, 0.0]  # ten impossible cases rule every state of b out: a second pattern
    post = engine.posterior(lik, ["a"], n)
    assert post.impossible.tolist() == [k % 2 == 1 for k in range(n)]
    assert sorted(looked[-2:]) == [10, 40]  # the two patterns of the 50 impossible cases, one call each
    assert_allclose(post.log_evidence[::2], math.log(0.5), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 70])
def test_a_likelihood_whose_largest_entry_is_subnormal_gives_finite_exact_marginals(n):
    """Found in review (session 15): a likelihood of (1e-310, 1.3e-310) on a root ``c`` (legal: likelihoods count up
    to a factor). P(e) fell below the floor, the case was computed again with the likelihood scaled to one, and its
    gradient was then divided by the subnormal scale (about 1e310: inf), so P(c | e) came out [inf, inf]. The
    gradients now stay with respect to the scaled likelihood. Against the posterior by hand: 0.3 * 1 : 0.7 * 1.3."""
    net = CompiledNetwork(("c", "d"), (("s0", "s1"),) * 2, ((), (0,)), (np.array([0.3, 0.7]), np.array([[0.9, 0.2], [0.1, 0.8]])))
    post = InferenceEngine(net).posterior({"c": np.tile([1e-310, 1.3e-310], (n, 1))}, ["c", "d"], n)
    expected = np.array([0.3, 0.7 * 1.3]) / (0.3 + 0.7 * 1.3)
    assert_allclose(post.marginals["c"], np.tile(expected, (n, 1)), rtol=1e-12, atol=0)
    assert_allclose(post.marginals["d"][:, 0], 0.9 * expected[0] + 0.2 * expected[1], rtol=1e-12, atol=0)
    assert_allclose(post.log_evidence, math.log(0.3 * 1e-310 + 0.7 * 1.3e-310), rtol=1e-12, atol=0)
    # found in the review of the fix: with a likelihood above one in the batch (another case's (2, 1)) the pass scales
    # every likelihood down first, and the same division overflowed there
    lik = np.tile([1e-310, 1.3e-310], (n + 1, 1))
    lik[-1] = [2.0, 1.0]
    post = InferenceEngine(net).posterior({"c": lik}, ["c", "d"], n + 1)
    assert_allclose(post.marginals["c"][:-1], np.tile(expected, (n, 1)), rtol=1e-12, atol=0)
    assert_allclose(post.marginals["c"][-1], np.array([0.6, 0.7]) / 1.3, rtol=1e-12, atol=0)


def test_a_signed_program_with_a_subnormal_likelihood_answers_without_a_warning(monkeypatch, recwarn):
    """Found in the second review (session 15): in a signed program (a noisy-OR kept in the contraction) a cause's
    soft likelihood of (1e-310, 1.3e-310) overflowed one backward division and numpy's RuntimeWarning reached the
    user, though the case is computed again and comes out right. Against the same likelihood at scale one."""
    monkeypatch.setattr(plan, "POSITIVE_PARENTS", -1)
    network, _ = _rare_findings_with_children(noisy=True)
    engine = InferenceEngine(network)
    n = 100
    tiny = {"t": np.tile([1e-310, 1.3e-310], (n, 1)), "d": np.tile([1.0, 0.0], (n, 1))}
    plain = {"t": np.tile([1.0, 1.3], (n, 1)), "d": np.tile([1.0, 0.0], (n, 1))}
    got = engine.posterior(tiny, ["t", "u"], n, expand=False)
    want = engine.posterior(plain, ["t", "u"], n, expand=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    for target in ("t", "u"):
        assert_allclose(got.marginals[target], want.marginals[target], rtol=1e-9, atol=0)
