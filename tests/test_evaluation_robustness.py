"""Prior robustness: rank-flip factors and perturbed priors, against direct recomputation with scaled priors.

The references never reuse the closed form under test: they rebuild the model from a prior file whose
probability has its odds multiplied by the factor (public API), or replace a cause's table in a copy of the
compiled network and run a fresh InferenceEngine on it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.evaluation.robustness import flip_analysis, leader, perturbed_posteriors, prior_monte_carlo
from bayesdx.evaluation.scoring import with_presenting
from bayesdx.evidence import likelihoods_from_evidence
from bayesdx.inference import InferenceEngine
from bayesdx.ranking import posterior_matrix

STEP = 1e-6  # relative distance from the threshold at which the top-1 is checked


def scaled(p: float, factor: float) -> float:
    """The probability whose odds are ``factor`` times those of ``p``."""
    odds = factor * p / (1 - p)
    return odds / (1 + odds)


def prior_file(folder: Path, probabilities: dict[str, float], name: str = "scaled") -> Path:
    path = folder / f"{name}.toml"
    body = "format_version = 1\n[setting]\nid = 'scaled'\n" + "".join(
        f"[causes.{c}]\nprobability = {float(p)!r}\nassumption = 'test'\n" for c, p in probabilities.items()
    )
    path.write_text(body, encoding="utf-8")
    return path


def top_with_prior_file(tmp_path: Path, model_path: Path, probabilities: dict[str, float], evidence: dict[str, str]) -> str:
    model = bayesdx.load_model(model_path, priors=prior_file(tmp_path, probabilities))
    # flip factors are defined on the posterior (the leading cause by probability)
    return bayesdx.rank_causes(evidence, model=model, next_steps=False, ranking="posterior").causes[0].id


def matrix_of(model: bayesdx.Model, cases: list[dict[str, str]]) -> np.ndarray:
    likelihoods = likelihoods_from_evidence(model, [with_presenting(model, c) for c in cases])
    return posterior_matrix(model, likelihoods, len(cases))[0]


@pytest.mark.parametrize("cause", ["flu", "cold"])
def test_flip_factor_against_a_prior_file_with_the_scaled_prior(tmp_path, tiny_model, tiny_model_path, cause):
    """With fever=yes, cold leads (0.594) and flu follows (0.286): flu must go up, cold down."""
    evidence = {"fever": "yes"}
    flips = flip_analysis(tiny_model, [evidence], matrix_of(tiny_model, [evidence]), ["case"])
    j = [h.id for h in tiny_model.hypotheses].index(cause)
    factor = flips.factors[0, j]
    assert (factor > 1) == (cause == "flu")
    assert (factor < 1) == (cause == "cold")
    base = {"flu": 0.1, "cold": 0.3}
    before = factor * (1 - STEP) if cause == "flu" else factor * (1 + STEP)
    after = factor * (1 + STEP) if cause == "flu" else factor * (1 - STEP)
    path = tiny_model_path
    assert top_with_prior_file(tmp_path, path, {**base, cause: scaled(base[cause], before)}, evidence) == "cold"
    assert top_with_prior_file(tmp_path, path, {**base, cause: scaled(base[cause], after)}, evidence) == "flu"
    assert flips.flips_to[0, j] == [h.id for h in tiny_model.hypotheses].index("flu")


def test_flip_factor_against_a_replaced_cause_table(graded_model, rng):
    """graded: infection depends on age; with age observed, scaling the odds of its table is the tilt."""
    model = graded_model
    compiled = model.compiled
    ids = [h.id for h in model.hypotheses]
    j = ids.index("infection")
    node = compiled.index()["infection"]
    present = compiled.states[node].index(model.hypotheses[j].state)
    cases = [
        {"age": a, "rash": r, "severity": s} for a in model.states["age"] for r in model.states["rash"] for s in model.states["severity"]
    ]
    cases = [cases[k] for k in rng.permutation(len(cases))[:6]]
    probabilities = matrix_of(model, cases)
    flips = flip_analysis(model, cases, probabilities, [str(k) for k in range(len(cases))])

    def top_with_table(case: dict[str, str], factor: float) -> int:
        table = compiled.tables[node].copy()
        odds = factor * table[present] / table[1 - present]
        table[present] = odds / (1 + odds)
        table[1 - present] = 1 / (1 + odds)
        tables = list(compiled.tables)
        tables[node] = table
        engine = InferenceEngine(dataclasses.replace(compiled, tables=tuple(tables)))
        post = engine.posterior(likelihoods_from_evidence(model, [case]), model.causes, 1)
        row = np.array([post.marginals[h.node][0, model.states[h.node].index(h.state)] for h in model.hypotheses])
        return int(leader(row[None, :])[0])

    checked = 0
    for k, case in enumerate(cases):
        factor = flips.factors[k, j]
        if not 0 < factor < math.inf:
            continue
        top = leader(probabilities[k : k + 1])[0]
        direction = 1 if factor > 1 else -1
        assert top_with_table(case, factor * (1 - direction * STEP)) == top
        assert top_with_table(case, factor * (1 + direction * STEP)) == flips.flips_to[k, j] != top
        checked += 1
    assert checked >= 3


def test_tilted_posteriors_match_the_engine_with_a_scaled_prior(tmp_path, tiny_model, tiny_model_path):
    cases = [{"fever": "yes"}, {"fever": "no"}, {"thermometer": "abnormal"}, {}]
    flips = flip_analysis(tiny_model, cases, matrix_of(tiny_model, cases), list("abcd"))
    model = bayesdx.load_model(tiny_model_path, priors=prior_file(tmp_path, {"flu": scaled(0.1, 7.0), "cold": 0.3}))
    assert_allclose(flips.tilted(0, 7.0), matrix_of(model, cases), rtol=1e-10)


def test_perturbed_posteriors_match_prior_files(tmp_path, tiny_model, tiny_model_path, rng):
    cases = [{"fever": "yes"}, {"fever": "no", "thermometer": "normal"}, {}]
    log_factors = rng.normal(0.0, 1.0, size=(3, 2))
    got = perturbed_posteriors(tiny_model, cases, log_factors)
    for d, (zf, zc) in enumerate(log_factors):
        model = bayesdx.load_model(
            tiny_model_path,
            priors=prior_file(tmp_path, {"flu": scaled(0.1, math.exp(zf)), "cold": scaled(0.3, math.exp(zc))}, name=f"draw{d}"),
        )
        assert_allclose(got[d], matrix_of(model, cases), rtol=1e-10)


def test_monte_carlo_stability_against_recomputed_leaders(tiny_model, rng):
    cases = [{"fever": "yes"}, {"fever": "no"}, {"thermometer": "abnormal"}]
    truth = np.array([0, 1, 0])
    base = matrix_of(tiny_model, cases)
    log_factors = rng.normal(0.0, 1.5, size=(40, 2))
    stability, true_top, accuracy = prior_monte_carlo(tiny_model, cases, log_factors, truth, leader(base))
    leaders = np.array([leader(m) for m in perturbed_posteriors(tiny_model, cases, log_factors)])
    assert_allclose(stability, (leaders == leader(base)).mean(axis=0))
    assert_allclose(true_top, (leaders == truth).mean(axis=0))
    assert_allclose(accuracy, (leaders == truth).mean(axis=1))
    assert 0 < stability.min() < 1  # a spread of 1.5 moves some but not all rankings
    unmoved, _, _ = prior_monte_carlo(tiny_model, cases, np.zeros((5, 2)), truth, leader(base))
    assert unmoved.tolist() == [1.0, 1.0, 1.0]


def test_observed_cause_is_not_varied(tiny_model):
    cases = [{"fever": "yes", "flu": "present"}]
    flips = flip_analysis(tiny_model, cases, matrix_of(tiny_model, cases), ["a"])
    assert np.isnan(flips.factors[0, 0])
    assert not np.isnan(flips.factors[0, 1])
