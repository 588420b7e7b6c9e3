"""The cancellation forecast: cases whose signed terms will cancel past a precision's budget skip it (issue 16).

``bayesdx.engine.cancellation.cancellation`` forecasts ``sum_r |term_r| / sum_r term_r`` of each case with the
case's posterior marginals standing for the contraction of each term. With independent variables that is
exact, which the brute force below checks; on the bundled model it routes the vignettes whose terms cancel
straight to extended precision (or to a contraction of their own) without the double-precision attempt that
the rounding bound would reject. The forecast only routes: every result still matches VariableElimination.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_expansion import EXTENDED, _evidence_sets, _posteriors, _present, _rare_causes_network, _reference

import bayesdx
from bayesdx.engine import quickscore
from bayesdx.engine.cancellation import cancellation
from bayesdx.inference import InferenceEngine

DEV = Path(__file__).resolve().parents[1] / "evaluation" / "vignettes" / "dev.csv"


def test_the_forecast_is_exact_for_independent_variables(rng):
    """Fact: with independent variables, ``E[prod_v F_r(v, x_v)] = prod_v E[F_r(v, x_v)]``, so the forecast of a
    case's terms equals their sums over every joint state, enumerated here."""
    states = [2, 3, 2]
    count = np.array([4, 2, 8])  # terms of three cases
    coef = rng.normal(size=count.sum())
    factors = {v: rng.uniform(0.0, 1.0, size=(s, count.sum())) for v, s in enumerate(states)}
    marginals = {v: rng.dirichlet(np.ones(s), size=count.size) for v, s in enumerate(states)}
    expected = []
    start = 0
    for case, c in enumerate(count):
        terms = np.zeros(c)
        for joint in itertools.product(*(range(s) for s in states)):
            p = np.prod([marginals[v][case, x] for v, x in enumerate(joint)])
            terms += p * np.prod([factors[v][x, start : start + c] for v, x in enumerate(joint)], axis=0)
        terms *= coef[start : start + c]
        expected.append(np.abs(terms).sum() / terms.sum() if terms.sum() > 0 else np.inf)
        start += c
    assert_allclose(cancellation(coef, factors, marginals, count), expected, rtol=1e-12)


def test_a_forecast_sum_at_or_below_zero_is_infinite_and_impossible_evidence_is_nan():
    factors = {0: np.array([[1.0, 1.0], [1.0, 1.0]])}
    ratio = cancellation(
        np.array([1.0, -1.0, 1.0, 1.0]), factors | {0: np.ones((2, 4))}, {0: np.array([[0.5, 0.5], [np.nan, np.nan]])}, np.array([2, 2])
    )
    assert ratio[0] == np.inf
    assert np.isnan(ratio[1])


class RowCounter:
    """Counts the rows contracted at each precision, and the cases given a contraction of their own."""

    def __init__(self, engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: dict[str, int] = {}
        self.own = 0
        term_rows, posterior = engine.term_rows, engine.posterior

        def counted_rows(columns: Any, target_ids: Any, n_rows: int, tables: Any, dtype: Any = np.float64) -> Any:
            name = np.dtype(dtype).name
            self.rows[name] = self.rows.get(name, 0) + n_rows
            return term_rows(columns, target_ids, n_rows, tables, dtype)

        def counted_posterior(likelihoods: Any, targets: Any, n_cases: int, **kwargs: Any) -> Any:
            if not kwargs.get("expand", True):
                self.own += n_cases
            return posterior(likelihoods, targets, n_cases, **kwargs)

        monkeypatch.setattr(engine, "term_rows", counted_rows)
        monkeypatch.setattr(engine, "posterior", counted_posterior)


def test_cases_forecast_to_cancel_skip_double_precision(monkeypatch):
    """On the rare-causes network (independent causes, one finding each) the forecast is exact: the cases it
    sends to extended precision, or to a contraction of their own, are exactly those that double precision (or
    extended precision) would have failed, and no other row is contracted in double precision than the
    forecast's one row per case and the terms of the cases that pass there."""
    if not EXTENDED:
        pytest.skip("numpy.longdouble is float64 on this platform")
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)  # signed terms for every finding
    monkeypatch.setattr(quickscore, "FORECAST_ROWS", 0)  # forecast however few the rows
    net, pg = _rare_causes_network()
    sets = _evidence_sets()
    terms = np.array([2 ** sum(s == "yes" for s in e.values()) for e in sets])

    with monkeypatch.context() as patch:
        patch.setattr(quickscore, "FORECAST", False)
        tried = _posteriors(InferenceEngine(net), sets)  # every case tried in double precision first
    engine = InferenceEngine(net)
    counter = RowCounter(engine, monkeypatch)
    post = _posteriors(engine, sets)

    assert_allclose(_present(post), _reference(pg, sets), atol=1e-9, rtol=0)
    assert post.extended.any()  # both forecasts occur
    assert post.own_contraction.any()
    np.testing.assert_array_equal(post.extended, tried.extended)
    np.testing.assert_array_equal(post.own_contraction, tried.own_contraction)
    double_only = ~post.extended & ~post.own_contraction
    assert counter.rows["float64"] == (terms > 1).sum() + terms[double_only].sum()
    assert counter.rows[np.dtype(np.longdouble).name] == terms[post.extended].sum()
    assert counter.own == post.own_contraction.sum()


def test_the_forecast_removes_most_double_precision_work_on_cancelling_vignettes(monkeypatch):
    """The development vignettes, ranked with and without the forecast: the same posteriors (both exact), and
    with it less than half of the double-precision rows (61% of them belonged to cases redone in extended
    precision at the time of writing)."""
    from bayesdx.evaluation.vignettes import read_vignettes
    from bayesdx.evidence import likelihoods_from_evidence
    from bayesdx.posteriors import add_presenting

    monkeypatch.setattr(quickscore, "FORECAST_ROWS", 0)
    results, rows = {}, {}
    for forecast in (False, True):
        monkeypatch.setattr(quickscore, "FORECAST", forecast)
        model = bayesdx.load_model()  # the shared model: rows are counted per call, cached programs or not
        cases = [dict(e) for e in read_vignettes(DEV, model).evidence]
        lik = add_presenting(model, likelihoods_from_evidence(model, cases), len(cases))
        with monkeypatch.context() as patch:
            counter = RowCounter(model.engine, patch)
            results[forecast] = model.engine.posterior(lik, model.causes, len(cases))
        forecast_rows = len(cases) if forecast else 0  # at most one row per case for the forecast itself
        rows[forecast] = counter.rows["float64"] - forecast_rows
    for cause in results[True].marginals:
        assert_allclose(results[True].marginals[cause], results[False].marginals[cause], atol=1e-12, rtol=0)
    assert results[False].extended.sum() >= 5
    assert rows[True] < 0.5 * rows[False]


def test_a_call_with_few_rows_of_terms_is_not_forecast(monkeypatch):
    """Below FORECAST_ROWS rows of terms (one interactive ranking: about 85), the forecast's own contraction and
    terms cost more than the double-precision attempt it would save; a batch above it is forecast."""
    from bayesdx.engine import cancellation as module

    calls: list[int] = []
    original = quickscore.cancellation

    def counted(coef: Any, factors: Any, marginals: Any, count: np.ndarray) -> np.ndarray:
        calls.append(int(count.sum()))
        return original(coef, factors, marginals, count)

    monkeypatch.setattr(quickscore, "cancellation", counted)
    assert module.cancellation is original
    from bayesdx.evaluation.vignettes import read_vignettes

    model = bayesdx.load_model()
    cases = [dict(e) for e in read_vignettes(DEV, model).evidence]
    bayesdx.rank_causes(cases[0], model=model, next_steps=False)
    assert calls == []
    bayesdx.score(cases, model=model, top_k=3)
    assert sum(calls) >= quickscore.FORECAST_ROWS
