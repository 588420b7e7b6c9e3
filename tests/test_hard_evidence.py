"""Hard evidence found for all variables at once (src/bayesdx/engine/hard.py, issue 16): the same variables,
states and log-likelihoods as asking each variable on its own (count its nonzero entries per case, take the
position of the nonzero one, the log of the likelihood there)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from bayesdx.engine.hard import one_hot_variables, states_and_log_likelihood


def _likelihoods(rng: np.random.Generator, n: int, dtype: type = np.float64) -> dict[int, np.ndarray]:
    """Per variable, a kind of evidence: one-hot (plain), scaled one-hot, soft, all ones, one-hot but one case
    soft, one case impossible (all zeros)."""
    lam = {}
    for v in range(12):
        card = int(rng.integers(2, 7))
        kind = v % 6
        if kind in (0, 1):
            a = np.zeros((n, card))
            a[np.arange(n), rng.integers(0, card, size=n)] = 1.0 if kind == 0 else rng.uniform(0.1, 3.0, size=n)
        elif kind == 2:
            a = rng.uniform(0.0, 2.0, size=(n, card))
        elif kind == 3:
            a = np.ones((n, card))
        else:
            a = np.zeros((n, card))
            a[np.arange(n), rng.integers(0, card, size=n)] = 1.0
            if n:
                a[n // 2] = 0.5 if kind == 4 else 0.0
        lam[3 * v + 1] = a.astype(dtype)
    return lam


@pytest.mark.parametrize("n", [1, 7, 0])
@pytest.mark.parametrize("dtype", [np.float64, np.longdouble])
def test_hard_variables_states_and_log_likelihoods_match_one_variable_at_a_time(n, dtype):
    rng = np.random.default_rng(n + 11)
    lam = _likelihoods(rng, n, dtype)
    expected = frozenset(v for v, a in lam.items() if a.shape[0] and (np.count_nonzero(a, axis=1) == 1).all())
    hard = one_hot_variables(lam)
    assert hard == expected
    if n:
        assert len(hard) == 4  # the plain and scaled one-hot variables (2 of each kind), nothing else
    states, log_likelihood = states_and_log_likelihood(lam, hard)
    if not hard:
        assert states == {}
        assert log_likelihood is None
        return
    total = np.zeros(n, dtype=dtype)
    for v in sorted(hard):
        state = np.argmax(lam[v] != 0, axis=1)
        assert_array_equal(states[v], state)
        total += np.log(lam[v][np.arange(n), state])
    assert log_likelihood is not None
    assert log_likelihood.dtype == dtype
    np.testing.assert_allclose(log_likelihood, total, rtol=1e-15, atol=1e-15)


def test_no_variables_and_no_cases():
    assert one_hot_variables({}) == frozenset()
    assert one_hot_variables({0: np.ones((0, 3))}) == frozenset()
    assert states_and_log_likelihood({}, ()) == ({}, None)


def test_one_case_and_many_agree_on_an_invalid_negative_likelihood():
    """A negative likelihood is invalid input; the one-case path (Python floats) gives NaN as np.log does."""
    lam = {1: np.array([[0.0, -2.0]]), 2: np.array([[0.5, 0.0]])}
    with np.errstate(invalid="ignore"):
        one = states_and_log_likelihood(lam, {1, 2})
        many = states_and_log_likelihood({v: np.repeat(a, 2, axis=0) for v, a in lam.items()}, {1, 2})
    assert {v: s.tolist() for v, s in one[0].items()} == {1: [1], 2: [0]}
    assert {v: s.tolist() for v, s in many[0].items()} == {1: [1, 1], 2: [0, 0]}
    assert one[1] is not None
    assert many[1] is not None
    assert np.isnan(one[1]).all()
    assert np.isnan(many[1]).all()
