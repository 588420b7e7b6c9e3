"""The own contraction's running rounding bound (bayesdx.engine.rounding, bayesdx.engine.exactness).

A case with its findings inside its own contraction carries each positive finding as a noisy CPD's signed
weights, and the level sums cancel. Fact (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002,
section 3.3): a running error bound, ``|x| e_y + e_x |y| + gamma_m |x| |y|`` contracted step by step, bounds the
rounding error of every table, whatever the cancellation. These tests hold the bound against a 120-digit
Quickscore on a Quickscore-shaped network, and check that a case past the budget is computed again until it is
within it: extended precision, then the network with every noisy CPD as non-negative terms (its positive twin).
The non-negative decomposition itself is checked against tables built from the CDFs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_expansion import EXTENDED
from test_forecast import _quickscore_120_digits, _rare_causes_many_findings

from bayesdx.engine import engine as engine_module
from bayesdx.engine import plan, quickscore
from bayesdx.inference import InferenceEngine

CAUSES = [f"c{i}" for i in range(40)]


def _own(engine: InferenceEngine, n_positive: int) -> Any:
    """The own contraction of one case: the first ``n_positive`` findings present, the other 80 - n absent."""
    lik = {f"f{j}": np.array([[1.0, 0.0] if j < n_positive else [0.0, 1.0]]) for j in range(80)}
    return engine.posterior(lik, CAUSES, 1, expand=False)


def _errors(post: Any, prior: list[float], links: list[dict[int, float]], n_positive: int) -> tuple[float, float]:
    """The relative error of P(e) and the largest absolute error of P(c present | e), against a 120-digit Quickscore."""
    log_z, present = _quickscore_120_digits(prior, links, list(range(n_positive)), list(range(n_positive, 80)))
    z_error = abs(float(np.expm1(post.log_evidence[0] - log_z)))
    marginal_error = max(abs(post.marginals[c][0, 0] - p) for c, p in zip(CAUSES, present, strict=True))
    return z_error, marginal_error


@pytest.fixture(scope="module")
def quickscore_network() -> tuple[Any, list[float], list[dict[int, float]]]:
    return _rare_causes_many_findings()


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every noisy CPD in its signed form (the network's findings have 6 parents, within plan.POSITIVE_PARENTS,
    so by default they enter as non-negative terms and nothing cancels)."""
    monkeypatch.setattr(plan, "POSITIVE_PARENTS", -1)


@pytest.mark.parametrize("n_positive", range(1, 9))
def test_the_running_bound_covers_the_own_contractions_error(monkeypatch, signed, quickscore_network, n_positive):
    """With nothing computed again (an infinite budget), the double-precision own contraction's error in P(e)
    and in every marginal stays within the bound its passes carried; with 8 positive findings that error is
    2.3e-5, so the network does exercise the cancellation."""
    net, prior, links = quickscore_network
    monkeypatch.setattr(quickscore, "ERROR_BUDGET", np.inf)
    bounds: list[np.ndarray] = []
    rounding_error = engine_module.rounding_error

    def recorded(*args: Any) -> np.ndarray:
        bounds.append(rounding_error(*args))
        return bounds[-1]

    monkeypatch.setattr(engine_module, "rounding_error", recorded)
    post = _own(InferenceEngine(net), n_positive)
    z_error, marginal_error = _errors(post, prior, links, n_positive)
    assert len(bounds) == 1  # one signed contraction, nothing computed again
    assert z_error <= bounds[0][0]
    assert marginal_error <= bounds[0][0]
    if n_positive == 8:
        assert marginal_error > 1e-6


@pytest.mark.parametrize(("n_positive", "route"), [(1, ["float64"]), (3, ["float64", "longdouble"]), (8, ["float64", "longdouble"])])
def test_a_case_past_its_bound_is_computed_again_until_within_it(monkeypatch, signed, quickscore_network, n_positive, route):
    """Past the budget in double precision a case is computed again in extended precision; past it there too,
    by the positive twin (no signed operand). Every answer matches the 120-digit Quickscore to 1e-9."""
    if not EXTENDED:
        pytest.skip("numpy.longdouble is float64 on this platform")
    net, prior, links = quickscore_network
    seen: list[str] = []
    compute_again = engine_module.compute_again

    def recorded(engine: Any, lam: Any, targets: Any, tables: Any, cases: Any, *rest: Any) -> None:
        seen.append(np.dtype(rest[-1]).name)  # the precision that fell short
        compute_again(engine, lam, targets, tables, cases, *rest)

    monkeypatch.setattr(engine_module, "compute_again", recorded)
    post = _own(InferenceEngine(net), n_positive)
    assert seen == [np.dtype(getattr(np, r)).name for r in route]
    z_error, marginal_error = _errors(post, prior, links, n_positive)
    assert z_error <= 1e-9
    assert marginal_error <= 1e-9


def test_with_a_zero_budget_every_cancelling_case_ends_in_the_positive_twin(monkeypatch, signed, quickscore_network):
    """No signed contraction passes a zero budget: every case with a positive finding is answered by the
    positive twin, whose contraction has no signed operand, and a batch of cases with 0 to 8 positive findings
    still matches the 120-digit Quickscore."""
    net, prior, links = quickscore_network
    monkeypatch.setattr(quickscore, "ERROR_BUDGET", 0.0)
    engine = InferenceEngine(net)
    twin = engine.positive_twin()
    answered: list[int] = []
    posterior = twin.posterior

    def recorded(likelihoods: Any, targets: Any, n_cases: int, **kwargs: Any) -> Any:
        answered.append(n_cases)
        return posterior(likelihoods, targets, n_cases, **kwargs)

    monkeypatch.setattr(twin, "posterior", recorded)
    counts = list(range(9))
    lik = {f"f{j}": np.array([[1.0, 0.0] if j < k else [0.0, 1.0] for k in counts]) for j in range(80)}
    post = engine.posterior(lik, CAUSES, len(counts), expand=False)
    assert sum(answered) == 8  # the eight cases with a positive finding (one pattern of findings each)
    assert all(not program.weighted for program in twin._programs.values())  # nothing signed
    for case, k in enumerate(counts):
        log_z, present = _quickscore_120_digits(prior, links, list(range(k)), list(range(k, 80)))
        assert_allclose(post.log_evidence[case], log_z, atol=1e-9, rtol=0)
        assert_allclose([post.marginals[c][case, 0] for c in CAUSES], present, atol=1e-9, rtol=0)


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_the_positive_decomposition_is_the_cpd_with_no_negative_entry(rng, levels):
    """Fact (telescoping, Heckerman and Breese 1996): ``prod A_i - prod B_i = sum_m (A_m - B_m) prod_{i<m} B_i
    prod_{i>m} A_i``, so a noisy-MAX CPD is a sum of non-negative products. Checked entry by entry against the
    table ``P(y | pa) = F(y) - F(y - 1)``, ``F(t) = L(t) prod_i C_i(t, pa_i)``, for random CDFs over a
    shuffled level order, with 4 parents of 2 or 3 states."""
    from bayesdx.inference import Decomposition

    order = tuple(int(s) for s in rng.permutation(levels))
    cards = [2, 3, 2, 3]

    def cdf(width: int) -> np.ndarray:  # (states, levels), growing to 1 over the levels
        steps = rng.dirichlet(np.ones(levels), size=width)
        return np.cumsum(steps, axis=1).clip(0.0, 1.0)

    leak = cdf(1)[0]
    leak[-1] = 1.0
    parent_cdfs = [cdf(c) for c in cards]
    for c in parent_cdfs:
        c[:, -1] = 1.0
    dec = Decomposition.from_cdfs(order, leak, parent_cdfs)
    weights, factors = dec.positive
    assert (weights >= 0).all()
    assert all((g >= 0).all() for g in factors)
    for pa in np.ndindex(*cards):
        big_f = [leak[t] * np.prod([c[s, t] for c, s in zip(parent_cdfs, pa, strict=True)]) for t in range(levels)]
        expected = np.zeros(levels)
        for t in range(levels):
            expected[order[t]] = big_f[t] - (big_f[t - 1] if t else 0.0)
        got = sum(weights[k] * np.prod([g[k, s] for g, s in zip(factors, pa, strict=True)]) for k in range(weights.shape[0]))
        assert_allclose(got, expected, atol=1e-15, rtol=0)
    assert_allclose(weights[0][order[0]], leak[0])  # the first term is the lowest level's, as in the signed form


def test_small_noisy_cpds_enter_as_non_negative_terms_and_need_no_second_attempt(monkeypatch, quickscore_network):
    """With its defaults a finding of at most plan.POSITIVE_PARENTS parents carried above its lowest level enters
    as the non-negative decomposition (parents + 2 terms for noisy-OR), so 8 positive findings, which cancel
    past extended precision in the signed form, are answered in double precision at the first attempt and
    match the 120-digit Quickscore."""
    net, prior, links = quickscore_network
    attempts: list[Any] = []
    compute_again = engine_module.compute_again
    monkeypatch.setattr(engine_module, "compute_again", lambda *args: attempts.append(args) or compute_again(*args))
    engine = InferenceEngine(net)
    post = _own(engine, 8)
    assert attempts == []
    kinds = {src.kind for program in engine._programs.values() for src in program.sources}
    assert plan.OperandKind.POSITIVE_WEIGHTS in kinds
    assert plan.OperandKind.WEIGHTS not in kinds
    program = next(p for p in engine._programs.values() if any(s.kind is plan.OperandKind.POSITIVE_WEIGHTS for s in p.sources))
    source = next(s for s in program.sources if s.kind is plan.OperandKind.POSITIVE_WEIGHTS)
    assert net.decompositions[source.variable].positive[0].shape[0] == len(net.parents[source.variable]) + 2
    z_error, marginal_error = _errors(post, prior, links, 8)
    assert z_error <= 1e-12
    assert marginal_error <= 1e-12


def test_a_case_whose_positive_twin_is_too_large_raises_instead_of_answering_past_the_budget(monkeypatch, signed, quickscore_network):
    """From the session-7 review: the twin enters every noisy CPD as one term per parent, so its contraction can
    be far larger than the signed one (on this network the largest table grows from 64 to 8,192 entries per
    case). Where it exceeds the engine's limit, the case is not answered past its rounding budget: the call
    raises ModelTooLargeError and says why."""
    from bayesdx.exceptions import ModelTooLargeError

    net, _, _ = quickscore_network
    monkeypatch.setattr(quickscore, "ERROR_BUDGET", 0.0)  # nothing passes: every case reaches the twin
    engine = InferenceEngine(net, max_entries=1024)
    with pytest.raises(ModelTooLargeError, match=r"cancel past extended precision .* non-negative noisy CPDs"):
        _own(engine, 8)


def test_a_falling_cdf_has_no_positive_decomposition():
    """A leak CDF that falls from one level to the next (invalid, but loadable from a hand-written file) gives a
    negative term: the decomposition is not non-negative (the twin then takes that CPD's full table) rather than
    drop the term."""
    from bayesdx.inference import Decomposition

    dec = Decomposition.from_cdfs((0, 1, 2, 3), np.array([0.5, 0.9, 0.8, 1.0]), [np.array([[0.5, 0.9, 0.95, 1.0], [1.0, 1.0, 1.0, 1.0]])])
    assert not dec.nonnegative
    weights, _factors = dec.positive
    assert (weights < 0).any()
