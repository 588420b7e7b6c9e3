"""Probabilities of evidence far below the smallest double are still exact (log scale, rescaled passes).

The engine contracts without per-step rescaling when every operand is non-negative, and reruns a case with
rescaling when its probability of evidence comes out below ``UNSCALED_FLOOR``. These cases have
``P(e) = 1e-3 ** 120 = 1e-360``, which underflows to zero in plain double precision.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose

from bayesdx.engine import execute
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
