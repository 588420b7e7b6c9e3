"""Posteriors checked against independent exact-inference references, to 1e-9.

References: pgmpy's ``VariableElimination`` and pyAgrum's ``LazyPropagation`` on a pyAgrum network built
CPD by CPD from the same tables. Evidence sets are forward samples with a random subset observed, so they
are possible; all randomness comes from the seeded ``rng`` fixture.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

import bayesdx

ATOL = 1e-9


def _assert_matches(model, network, cases, ve_reference, probabilities_by_id):
    for case in cases:
        got = probabilities_by_id(bayesdx.rank_causes(case, model=model))
        expected = ve_reference(network, model, case)
        ids = [h.id for h in model.hypotheses]
        assert_allclose([got[i] for i in ids], [expected[i] for i in ids], atol=ATOL, rtol=0, err_msg=f"evidence {case!r}")


def _assert_score_matches(model, network, cases, ve_reference):
    n_hyp = len(model.hypotheses)
    frame = bayesdx.score(cases, model=model, top_k=n_hyp)
    assert len(frame) == len(cases)
    for k, case in enumerate(cases):
        expected = ve_reference(network, model, case)
        row = frame.iloc[k]
        got = {row[f"cause_{j}"]: row[f"probability_{j}"] for j in range(1, n_hyp + 1)}
        assert set(got) == set(expected)
        assert_allclose([got[i] for i in expected], list(expected.values()), atol=ATOL, rtol=0, err_msg=f"case {k}: {case!r}")


# ---------------------------------------------------------------------- small files, every evidence set
def _every_evidence_set(model):
    choices = [[None, *model.states[v]] for v in model.variables]
    for combo in itertools.product(*choices):
        yield {v: s for v, s in zip(model.variables, combo, strict=True) if s is not None}


def test_tiny_posterior_matches_pgmpy_variable_elimination_for_every_evidence_set(tiny_model, ve_reference, probabilities_by_id):
    cases = list(_every_evidence_set(tiny_model))  # 3**4 = 81 sets, none impossible (no zero in any table)
    assert len(cases) == 81
    _assert_matches(tiny_model, tiny_model.network, cases, ve_reference, probabilities_by_id)
    _assert_score_matches(tiny_model, tiny_model.network, cases, ve_reference)


def test_graded_posterior_matches_pgmpy_variable_elimination_for_possible_evidence_sets(
    graded_model, ve_reference, probabilities_by_id, rng
):
    cases = list(_every_evidence_set(graded_model))
    # some sets are impossible here (severity=none needs infection absent): keep those of probability > 0
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(graded_model.network)
    possible = []
    for case in rng.permutation(np.array(cases, dtype=object))[:150]:
        if not case:
            possible.append(case)
            continue
        joint = ve.query(variables=list(case), joint=True, show_progress=False)
        if joint.get_value(**case) > 0:
            possible.append(case)
    assert len(possible) > 100
    _assert_matches(graded_model, graded_model.network, possible, ve_reference, probabilities_by_id)
    _assert_score_matches(graded_model, graded_model.network, possible, ve_reference)


# ---------------------------------------------------------------------- the bundled network
def test_bundled_posterior_matches_pgmpy_variable_elimination_on_200_random_evidence_sets(
    bundled_model, ve_reference, probabilities_by_id, evidence_sampler, rng
):
    network = bundled_model.network
    hidden = [str(n) for n in network.nodes() if str(n) not in bundled_model.states]  # not observable
    cases = evidence_sampler(network, 200, rng, observe=0.35, exclude=hidden)
    assert len({frozenset(c) for c in cases}) > 150  # many different sets of observed variables
    # all 200 through score (one batched pass), every hypothesis compared
    _assert_score_matches(bundled_model, network, cases, ve_reference)
    # and a sample of them one by one through rank_causes (slower: it also plans the next steps)
    _assert_matches(bundled_model, network, cases[:6], ve_reference, probabilities_by_id)


def test_bundled_log_evidence_matches_pyagrum_lazy_propagation(bundled_model, to_pyagrum, evidence_sampler, rng):
    import pyagrum as gum

    bn = to_pyagrum(bundled_model.network)
    hidden = [str(n) for n in bundled_model.network.nodes() if str(n) not in bundled_model.states]
    for case in evidence_sampler(bundled_model.network, 8, rng, observe=0.35, exclude=hidden):
        ie = gum.LazyPropagation(bn)
        ie.setEvidence({**bundled_model.presenting, **case})  # every case carries the presenting complaint
        ie.makeInference()
        dx = bayesdx.rank_causes(case, model=bundled_model)
        assert_allclose(dx.log_evidence, math.log(ie.evidenceProbability()), atol=ATOL, rtol=0)
        for h in bundled_model.hypotheses:
            if h.node not in case and h.node not in bundled_model.presenting:
                posterior = ie.posterior(h.node).toarray()
                assert_allclose(dx.probability(h.id), posterior[bundled_model.states[h.node].index(h.state)], atol=ATOL, rtol=0)


# ---------------------------------------------------------------------- pgmpy's medical networks
def test_child_posterior_matches_pgmpy_variable_elimination(
    child_model, child_network, ve_reference, probabilities_by_id, evidence_sampler, rng
):
    cases = evidence_sampler(child_network, 50, rng, observe=0.3)
    assert [h.id for h in child_model.hypotheses] == [f"Disease={s}" for s in child_model.states["Disease"]]
    _assert_score_matches(child_model, child_network, cases, ve_reference)
    _assert_matches(child_model, child_network, cases[:15], ve_reference, probabilities_by_id)


def test_hepar2_posterior_matches_pgmpy_variable_elimination(
    hepar2_model, hepar2_network, ve_reference, probabilities_by_id, evidence_sampler, rng
):
    cases = evidence_sampler(hepar2_network, 50, rng, observe=0.25)
    assert any(set(c) & set(hepar2_model.causes) for c in cases)  # some cases observe a cause itself
    _assert_score_matches(hepar2_model, hepar2_network, cases, ve_reference)
    _assert_matches(hepar2_model, hepar2_network, cases[:10], ve_reference, probabilities_by_id)


def test_hepar2_as_shipped_is_renormalised_and_matches_the_renormalised_network(hepar2_raw_network, hepar2_network, evidence_sampler, rng):
    # pgmpy ships hepar2 with CPD columns that sum to 1 only within 1e-7 (ggtp). bayesdx renormalises
    # every column on load (documented in CompiledNetwork.from_pgmpy), so the shipped network gives the
    # answers of the renormalised copy, which the tests above check against VariableElimination.
    causes = ["Cirrhosis", "PBC", "Steatosis"]
    raw = bayesdx.load_model(hepar2_raw_network, causes=causes)
    clean = bayesdx.load_model(hepar2_network, causes=causes)
    for table in raw.compiled.tables:
        assert_allclose(table.sum(axis=0), 1.0, atol=1e-15, rtol=0)
    cases = evidence_sampler(hepar2_raw_network, 8, rng, observe=0.25)
    assert_allclose(
        bayesdx.score(cases, model=raw, top_k=len(raw.hypotheses)).filter(like="probability").to_numpy(),
        bayesdx.score(cases, model=clean, top_k=len(clean.hypotheses)).filter(like="probability").to_numpy(),
        atol=1e-12,
        rtol=0,
    )


def test_hepar2_posterior_and_evidence_probability_match_pyagrum_lazy_propagation(
    hepar2_model, hepar2_network, to_pyagrum, evidence_sampler, rng
):
    import pyagrum as gum

    bn = to_pyagrum(hepar2_network)
    cases = evidence_sampler(hepar2_network, 6, rng, observe=0.3, exclude=hepar2_model.causes)
    for case in cases:
        ie = gum.LazyPropagation(bn)
        ie.setEvidence(case)
        ie.makeInference()
        dx = bayesdx.rank_causes(case, model=hepar2_model)
        for h in hepar2_model.hypotheses:
            posterior = ie.posterior(h.node).toarray()
            assert_allclose(
                dx.probability(h.id),
                posterior[hepar2_model.states[h.node].index(h.state)],
                atol=ATOL,
                rtol=0,
                err_msg=f"{h.id} given {case!r}",
            )
        assert_allclose(dx.log_evidence, math.log(ie.evidenceProbability()), atol=ATOL, rtol=0)


def test_hepar2_no_evidence_priors_match_pgmpy_variable_elimination(hepar2_model, hepar2_network, ve_reference):
    expected = ve_reference(hepar2_network, hepar2_model, {})
    dx = bayesdx.rank_causes({}, model=hepar2_model)
    for h in hepar2_model.hypotheses:
        assert_allclose(dx.probability(h.id), expected[h.id], atol=ATOL, rtol=0)
        assert_allclose(hepar2_model.prior_probabilities[h.id], expected[h.id], atol=ATOL, rtol=0)
    assert_allclose(dx.log_evidence, 0.0, atol=ATOL, rtol=0)  # log P(no evidence) = log 1


# ---------------------------------------------------------------------- the engine itself
def _one_hot_likelihoods(model, cases):
    n = len(cases)
    arrays = {}
    for k, case in enumerate(cases):
        for variable, state in case.items():
            arr = arrays.setdefault(variable, np.ones((n, len(model.states[variable]))))
            arr[k] = 0.0
            arr[k, model.states[variable].index(state)] = 1.0
    return arrays


def test_engine_batch_with_mixed_observed_sets_matches_pgmpy_variable_elimination_on_hepar2(
    hepar2_model, hepar2_network, ve_marginal_reference, evidence_sampler, rng
):
    cases = evidence_sampler(hepar2_network, 25, rng, observe=0.2)
    cases.append({})  # a case with nothing observed in the same batch
    targets = [*hepar2_model.causes, "fatigue", "bilirubin", "alt", "carcinoma"]
    post = hepar2_model.engine.posterior(_one_hot_likelihoods(hepar2_model, cases), targets, len(cases))
    assert not post.impossible.any()
    for k, case in enumerate(cases):
        for t in targets:
            expected = ve_marginal_reference(hepar2_network, t, case, hepar2_model.states[t])
            assert_allclose(post.marginals[t][k], expected, atol=ATOL, rtol=0, err_msg=f"{t} given {case!r}")


def test_engine_batch_log_evidence_matches_pyagrum_on_child(child_model, child_network, to_pyagrum, evidence_sampler, rng):
    import pyagrum as gum

    bn = to_pyagrum(child_network)
    cases = evidence_sampler(child_network, 12, rng, observe=0.3)
    post = child_model.engine.posterior(_one_hot_likelihoods(child_model, cases), ["Disease"], len(cases))
    for k, case in enumerate(cases):
        ie = gum.LazyPropagation(bn)
        ie.setEvidence(case)
        ie.makeInference()
        assert_allclose(post.log_evidence[k], math.log(ie.evidenceProbability()), atol=ATOL, rtol=0)


def test_engine_soft_evidence_matches_pyagrum_lazy_propagation_on_child(child_model, child_network, to_pyagrum, rng):
    import pyagrum as gum

    bn = to_pyagrum(child_network)
    observed = ["LowerBodyO2", "CO2Report", "XrayReport", "GruntingReport", "Age"]
    n = 5
    likelihoods = {v: rng.uniform(0.05, 1.0, size=(n, len(child_model.states[v]))) for v in observed}
    post = child_model.engine.posterior(likelihoods, ["Disease", "LungParench"], n)
    for k in range(n):
        ie = gum.LazyPropagation(bn)
        ie.setEvidence({v: likelihoods[v][k].tolist() for v in observed})
        ie.makeInference()
        for t in ("Disease", "LungParench"):
            assert_allclose(post.marginals[t][k], ie.posterior(t).toarray(), atol=ATOL, rtol=0)


def test_score_on_a_dataframe_with_missing_cells_matches_pgmpy_variable_elimination_on_child(
    child_model, child_network, ve_reference, evidence_sampler, rng
):
    cases = evidence_sampler(child_network, 20, rng, observe=0.3, exclude=["Disease"])
    frame = pd.DataFrame(cases, index=[f"patient-{k}" for k in range(len(cases))])  # NaN where not observed
    scored = bayesdx.score(frame, model=child_model, top_k=6)
    assert list(scored.index) == list(frame.index)
    for k, case in enumerate(cases):
        expected = ve_reference(child_network, child_model, case)
        row = scored.iloc[k]
        got = {row[f"cause_{j}"]: row[f"probability_{j}"] for j in range(1, 7)}
        assert_allclose([got[i] for i in expected], list(expected.values()), atol=ATOL, rtol=0)
