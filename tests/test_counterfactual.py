"""Counterfactual ranking (src/bayesdx/counterfactual.py) against independent computations.

* By hand on the tiny model (tests/data/models/tiny.toml): flu 0.1, cold 0.3, fever = noisy-OR(flu 0.8,
  cold 0.5, leak 0.1). Given fever = yes, curing flu switches the fever off exactly when flu was present,
  its activation fired, and neither the leak nor an active cold did:
  P = 0.1 * 0.8 * 0.9 * (1 - 0.3 * 0.5) / 0.2962 = 0.0612 / 0.2962.
* On the bundled model, against an explicit twin network built in pgmpy: every noisy-OR finding becomes an
  OR of a leak node and one activation node per parent (P(A_i = 1 | X_i = s) = the link read straight from
  the model file with tomllib), and its counterfactual twin is the OR of the same nodes without the cured
  cause's activation. pgmpy VariableElimination then gives P(S' = off | e) with no use of bayesdx's
  closed form.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination

import bayesdx

REPO = Path(__file__).resolve().parents[1]
MODEL_FILE = REPO / "models" / "leg_twitch.toml"
ATOL = 1e-9


def test_tiny_expected_disablement_matches_the_hand_calculation(tiny_model):
    dx = bayesdx.rank_causes({"fever": "yes"}, model=tiny_model, ranking="expected_disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    assert_allclose(by_id["flu"].expected_disablement, 0.1 * 0.8 * 0.9 * (1 - 0.3 * 0.5) / 0.2962, atol=ATOL, rtol=0)
    assert_allclose(by_id["cold"].expected_disablement, 0.3 * 0.5 * 0.9 * (1 - 0.1 * 0.8) / 0.2962, atol=ATOL, rtol=0)
    # the tiny model has no presenting complaint, so nothing is disabled there
    assert by_id["flu"].disablement == 0.0
    # a negative finding has nothing to switch off
    dx = bayesdx.rank_causes({"fever": "no"}, model=tiny_model, ranking="expected_disablement", next_steps=False)
    assert all(c.expected_disablement == 0.0 for c in dx.causes)


# ---------------------------------------------------------------------- explicit twin network (pgmpy)
def _model_file() -> dict:
    with MODEL_FILE.open("rb") as handle:
        return tomllib.load(handle)


def _levels(raw: dict, parent: str, state: str, normal: str | None) -> list[float]:
    """The level distribution parent=state alone produces (all on the lowest level when inactive)."""
    link = raw["links"][parent]
    if raw["kind"] == "noisy_or":
        value = link["probability"]
        p = float(value.get(state, 0.0)) if isinstance(value, dict) else (0.0 if state == normal else float(value))
        return [1 - p, p]
    value = link["probabilities"]
    if isinstance(value, dict):
        return list(value[state]) if state in value else [1.0] + [0.0] * (len(raw["leak"]) - 1)
    return [1.0] + [0.0] * (len(value) - 1) if state == normal else list(value)


def twin_disablement(model: bayesdx.Model, evidence: dict[str, str], finding: str, cure: str) -> float:
    """P(finding' = normal | do(cure = normal), evidence) from an explicit twin network, by VariableElimination.

    The finding becomes MAX(L, Z_1, ..., Z_n) of a leak level L and one latent level Z_i per parent
    (P(Z_i | X_i) read from the model file); its twin is the MAX without the cured cause's Z. A noisy-OR is the
    two-level case. An answer that stands for several states (``abnormal``) enters as virtual evidence.
    """
    raw = _model_file()["cpds"][finding]
    states = list(model.states[finding])  # lowest level first for the bundled model's noisy nodes
    if raw["kind"] == "noisy_or":
        positive = raw.get("positive", "yes")
        states = [next(s for s in states if s != positive), positive]
    leak = [1 - raw["leak"], raw["leak"]] if raw["kind"] == "noisy_or" else list(raw["leak"])
    n = len(leak)
    levels = [str(k) for k in range(n)]
    net = model.network.copy()
    for node in [v for v in net.nodes() if v == finding or v.startswith(f"{finding}__")]:
        net.remove_node(node)
    parents = list(raw["links"])
    net.add_node("L")
    net.add_cpds(TabularCPD("L", n, [[p] for p in leak], state_names={"L": levels}))
    for k, parent in enumerate(parents):
        pstates = list(model.states[parent])
        normal = model.normal_states.get(parent)
        columns = [_levels(raw, parent, s, normal) for s in pstates]
        name = f"Z{k}"
        net.add_edge(parent, name)
        net.add_cpds(
            TabularCPD(
                name,
                n,
                np.array(columns).T.tolist(),
                evidence=[parent],
                evidence_card=[len(pstates)],
                state_names={name: levels, parent: pstates},
            )
        )
    for world, skip in (("T", None), ("U", parents.index(cure))):
        prev = "L"
        for k in range(len(parents)):
            name = f"{world}{k}"
            net.add_edge(prev, name)
            if k == skip:  # the cured cause's level does not reach the counterfactual world
                net.add_cpds(
                    TabularCPD(name, n, np.eye(n).tolist(), evidence=[prev], evidence_card=[n], state_names={name: levels, prev: levels})
                )
            else:
                net.add_edge(f"Z{k}", name)
                cols = [[1.0 if y == max(a, b) else 0.0 for y in range(n)] for a, b in itertools.product(range(n), range(n))]
                net.add_cpds(
                    TabularCPD(
                        name,
                        n,
                        np.array(cols).T.tolist(),
                        evidence=[prev, f"Z{k}"],
                        evidence_card=[n, n],
                        state_names={name: levels, prev: levels, f"Z{k}": levels},
                    )
                )
            prev = name
    assert net.check_model()
    factual, counterfactual = f"T{len(parents) - 1}", f"U{len(parents) - 1}"
    hard, virtual = {}, []
    for v, s in evidence.items():
        target = factual if v == finding else v
        names = levels if v == finding else list(model.states[v])
        members = model.aliases.get(v, {}).get(s, (s,))
        code = [states.index(m) for m in members] if v == finding else [names.index(m) for m in members]
        if len(code) == 1:
            hard[target] = names[code[0]]
        else:
            weights = [[1.0 if j in code else 0.0] for j in range(len(names))]
            virtual.append(TabularCPD(target, len(names), weights, state_names={target: names}))
    assert states.index(evidence[finding]) != 0 if evidence[finding] in states else True
    result = VariableElimination(net).query([counterfactual], evidence=hard, virtual_evidence=virtual or None, show_progress=False)
    return float(result.get_value(**{counterfactual: "0"}))


CASES = [
    {
        "age_group": "adult",
        "sex": "male",
        "thirst_frequent_urination": "yes",
        "numbness_tingling": "yes",
        "both_legs": "yes",
        "frequency": "daily",
        "duration": "over_3_months",
    },
    {
        "age_group": "older_adult",
        "muscle_weakness": "yes",
        "muscle_wasting": "yes",
        "painful_cramps": "yes",
        "emotional_stress": "yes",
        "electromyography": "abnormal",
    },
    {"age_group": "child", "fever": "yes", "twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes"},
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_disablement_of_the_complaint_matches_an_explicit_twin_network(bundled_model, case):
    evidence = {**bundled_model.presenting, **CASES[case]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    for cause in ("stress_anxiety", "polyneuropathy", "diabetes_mellitus", "als", "febrile_infection", "epilepsy"):
        assert_allclose(by_id[cause].disablement, twin_disablement(bundled_model, evidence, "leg_twitching", cause), atol=ATOL, rtol=0)


def test_expected_disablement_is_the_sum_over_positive_findings_of_twin_network_probabilities(bundled_model):
    evidence = {**bundled_model.presenting, **CASES[1]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    kinds = _model_file()["cpds"]
    positives = [
        v
        for v, s in evidence.items()
        if kinds.get(v, {}).get("kind") in ("noisy_or", "noisy_max") and s != bundled_model.normal_states.get(v)
    ]
    assert {"leg_twitching", "muscle_weakness", "electromyography"} <= set(positives)
    for cause in ("als", "myopathy", "polyneuropathy", "stress_anxiety"):
        expected = sum(twin_disablement(bundled_model, evidence, f, cause) for f in positives if cause in kinds[f]["links"])
        assert_allclose(by_id[cause].expected_disablement, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("emg", ["neurogenic", "myopathic", "abnormal"])
def test_graded_and_soft_test_results_match_the_twin_network(bundled_model, emg):
    """A graded test (noisy-MAX, normal < myopathic < neurogenic) and the coarse answer 'abnormal' (soft
    evidence on both raised levels), with a graded creatine kinase beside it."""
    evidence = {
        **bundled_model.presenting,
        "age_group": "adult",
        "muscle_weakness": "yes",
        "electromyography": emg,
        "creatine_kinase": "markedly_raised",
    }
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    kinds = _model_file()["cpds"]
    for cause in ("als", "myopathy", "nerve_root_irritation"):
        expected = sum(
            twin_disablement(bundled_model, evidence, f, cause)
            for f in ("leg_twitching", "muscle_weakness", "electromyography", "creatine_kinase")
            if cause in kinds[f]["links"]
        )
        assert_allclose(by_id[cause].expected_disablement, expected, atol=ATOL, rtol=0)


def _count_rows_asked(monkeypatch, where: str) -> list[int]:
    """Wrap the counterfactual scores at ``where`` (the name a caller imported) so that every engine call they
    make appends its number of rows to the returned list."""
    from bayesdx import counterfactual

    asked: list[int] = []
    original = counterfactual.counterfactual_scores

    def spy(model, likelihoods, log_evidence, n_cases, lowered=None, marginals=None):
        posterior = type(model.engine).posterior

        def counting(self, likelihoods, targets, n, **kwargs):
            asked.append(n)
            return posterior(self, likelihoods, targets, n, **kwargs)

        monkeypatch.setattr(type(model.engine), "posterior", counting)
        try:
            return original(model, likelihoods, log_evidence, n_cases, lowered, marginals)
        finally:
            monkeypatch.setattr(type(model.engine), "posterior", posterior)

    monkeypatch.setattr(where, spy)
    return asked


@pytest.mark.parametrize("sweep", [False, True])
def test_counterfactual_rows_come_from_the_ranking_call_and_still_match_the_twin_network(bundled_model, monkeypatch, sweep):
    """Quickscore: the rows "finding S observed normal" are read off the ranking's own engine call (``lower``)
    wherever the case's signed terms give them; only the others are asked of the engine. A swept case
    (:mod:`bayesdx.engine.sweep`) gives every row itself: a finding observed above its lowest level is a slot,
    and the slot held in state 0 to the end is the case with the finding at its lowest level (one backward
    sweep each). Either way the scores match the twin network, finding by finding."""
    from bayesdx.engine import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "SWEEP", sweep)
    monkeypatch.setattr(sweep_module, "SWEEP_UNITS", 1)  # a single case swept (by default only groups of 16)
    monkeypatch.setattr(sweep_module, "HELD_UNITS", 1)  # and its lowered cases from held slots (likewise)

    asked = _count_rows_asked(monkeypatch, "bayesdx.pipeline.counterfactual_scores")
    evidence = {**bundled_model.presenting, **CASES[1]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    kinds = _model_file()["cpds"]
    positives = ("leg_twitching", "muscle_weakness", "muscle_wasting", "painful_cramps", "electromyography")
    # five positive findings with more than two free parents; emotional_stress (one parent) is telescoped
    if sweep:
        assert sum(asked) == 0  # before the held slots: one row per positive finding, six
    else:
        assert sum(asked) < len(positives) + 1  # without the lowered rows: one row per positive finding, six
    by_id = {c.id: c for c in dx.causes}
    for cause in ("als", "myopathy", "polyneuropathy", "nerve_root_irritation"):
        expected = sum(
            twin_disablement(bundled_model, evidence, f, cause) for f in (*positives, "emotional_stress") if cause in kinds[f]["links"]
        )
        assert_allclose(by_id[cause].expected_disablement, expected, atol=ATOL, rtol=0)


def test_disablement_scores_are_disjoint_events_and_sum_to_at_most_one(bundled_model):
    for case in CASES:
        dx = bayesdx.rank_causes(case, model=bundled_model, ranking="disablement", next_steps=False)
        total = sum(c.disablement for c in dx.causes)
        assert 0.0 < total <= 1.0


def test_score_and_rank_causes_agree_on_the_counterfactual_ranking(bundled_model):
    frame = bayesdx.score(CASES, model=bundled_model, ranking="expected_disablement", top_k=3)
    for k, case in enumerate(CASES):
        dx = bayesdx.rank_causes(case, model=bundled_model, ranking="expected_disablement", next_steps=False)
        assert [frame.loc[k, f"cause_{j}"] for j in (1, 2, 3)] == [c.id for c in dx.causes[:3]]
        assert_allclose(
            [frame.loc[k, f"score_{j}"] for j in (1, 2, 3)], [c.expected_disablement for c in dx.causes[:3]], atol=1e-12, rtol=0
        )
        assert_allclose([frame.loc[k, f"probability_{j}"] for j in (1, 2, 3)], [c.probability for c in dx.causes[:3]], atol=1e-12, rtol=0)


def test_an_unknown_ranking_is_refused_with_the_valid_names(bundled_model):
    with pytest.raises(ValueError, match="'ranking' parameter of rank_causes must be one of"):
        bayesdx.rank_causes({}, model=bundled_model, ranking="popularity")


def test_networks_of_full_tables_rank_by_posterior_and_refuse_counterfactual_ranking():
    from pgmpy.utils import get_example_model

    model = bayesdx.load_model(get_example_model("asia"), causes=["tub", "lung"])
    assert bayesdx.rank_causes({"xray": "yes"}, model=model, next_steps=False).ranking == "posterior"
    with pytest.raises(ValueError, match="needs noisy-OR links declared in a model file"):
        bayesdx.rank_causes({"xray": "yes"}, model=model, ranking="disablement", next_steps=False)


def test_a_finding_with_observed_descendants_is_not_counted(tiny_model):
    """tiny.toml: thermometer is a child of fever. With the thermometer observed the closed form does not hold
    (review finding: it gave 1.96), so fever is not counted; with the thermometer unobserved it is."""
    plain = bayesdx.rank_causes({"fever": "yes"}, model=tiny_model, next_steps=False)
    assert plain.causes[0].expected_disablement > 0
    for reading in ("normal", "abnormal"):
        dx = bayesdx.rank_causes({"fever": "yes", "thermometer": reading}, model=tiny_model, next_steps=False)
        assert all(c.expected_disablement == 0.0 for c in dx.causes)
        assert [c.id for c in dx.causes] == [c.id for c in sorted(dx.causes, key=lambda c: -c.probability)]


def test_a_link_of_probability_one_fails_only_where_it_would_be_scored(tmp_path, tiny_model_path, tiny_priors_path):
    text = tiny_model_path.read_text().replace("probability = 0.8", "probability = 1.0")
    assert text != tiny_model_path.read_text()
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    model = bayesdx.load_model(path, priors=tiny_priors_path)
    bayesdx.rank_causes({}, model=model, next_steps=False)  # fever unobserved: nothing to score
    with pytest.raises(ValueError, match="always leaves the normal level"):
        bayesdx.rank_causes({"fever": "yes"}, model=model, next_steps=False)
    assert bayesdx.rank_causes({"fever": "yes"}, model=model, ranking="posterior", next_steps=False).causes


def test_a_batch_of_swept_cases_gives_its_counterfactual_rows_itself_at_the_default_settings(bundled_model, monkeypatch):
    """Twenty copies of a case with six findings above their lowest level: at the default routing they are
    swept as one group, which holds each slot in state 0 for the rows "finding S observed normal", so the
    counterfactual asks the engine for none; the scores still match the explicit twin network."""
    from bayesdx.engine import sweep as sweep_module

    assert sweep_module.SWEEP_SLOTS <= 6
    assert sweep_module.HELD_UNITS <= 20
    asked = _count_rows_asked(monkeypatch, "bayesdx.scoring.counterfactual_scores")
    evidence = {**bundled_model.presenting, **CASES[1]}
    frame = bayesdx.score([evidence] * 20, model=bundled_model, ranking="expected_disablement", top_k=len(bundled_model.hypotheses))
    assert sum(asked) == 0
    kinds = _model_file()["cpds"]
    positives = ("leg_twitching", "muscle_weakness", "muscle_wasting", "painful_cramps", "electromyography", "emotional_stress")
    for j in (1, 2, 3):
        cause = frame.loc[0, f"cause_{j}"]
        expected = sum(twin_disablement(bundled_model, evidence, f, cause) for f in positives if cause in kinds[f]["links"])
        assert_allclose(frame[f"score_{j}"].to_numpy(), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(("age", "from_marginals"), [("older_adult", 4), (None, 2)])
def test_findings_with_one_free_parent_take_their_rows_from_the_ranking_marginals(bundled_model, monkeypatch, age, from_marginals):
    """A positive finding whose parents the case observes in one state, all but one cause ``D``, scales the
    joint by ``P(e_S | d, h)``; so ``P(D = d, e \\ S, S = off) = P(D = d, e) P(S = off | d, h) / P(e_S | d, h)``,
    read off the ranking's own marginals. Given the age group, thirst (diabetes, age group), new medication
    (medication side effect, age group), emotional stress and HbA1c (one cause each) need no engine row; without
    it, the first two have two free parents and still do. The scores match the explicit twin network."""
    from bayesdx import counterfactual

    evidence = {
        **bundled_model.presenting,
        "thirst_frequent_urination": "yes",
        "emotional_stress": "yes",
        "blood_glucose_hba1c": "abnormal",
        "new_medication": "yes",
        "muscle_weakness": "yes",
    }
    if age:
        evidence["age_group"] = age
    asked = _count_rows_asked(monkeypatch, "bayesdx.pipeline.counterfactual_scores")
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    with_marginals = sum(asked)
    asked.clear()
    monkeypatch.setattr(counterfactual, "_from_the_marginals", lambda *args: None)
    without = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    assert sum(asked) - with_marginals == from_marginals
    kinds = _model_file()["cpds"]
    positives = [f for f in evidence if f != "age_group"]
    by_id = {c.id: c for c in dx.causes}
    for cause in ("diabetes_mellitus", "stress_anxiety", "medication_side_effect", "myopathy"):
        expected = sum(twin_disablement(bundled_model, evidence, f, cause) for f in positives if cause in kinds[f]["links"])
        assert_allclose(by_id[cause].expected_disablement, expected, atol=ATOL, rtol=0)
    for before, after in zip(without.causes, dx.causes, strict=True):
        assert before.id == after.id
        assert_allclose(after.expected_disablement, before.expected_disablement, atol=1e-12, rtol=0)


def test_a_free_parent_the_evidence_rules_out_leaves_the_row_to_the_engine(tmp_path, tiny_model_path, tiny_priors_path):
    """With fever's leak at zero and cold observed absent, fever = yes rules flu's absence out: P(e, flu absent)
    is zero and says nothing of P(e \\ fever, flu absent), so that row goes to the engine. Given fever and no
    cold, flu was present and its activation fired: curing it switches the fever off, a disablement of one."""
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_model_path.read_text().replace("leak = 0.1", "leak = 0.0"))
    model = bayesdx.load_model(path, priors=tiny_priors_path)
    dx = bayesdx.rank_causes({"fever": "yes", "cold": "absent"}, model=model, ranking="expected_disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    assert_allclose(by_id["flu"].expected_disablement, 1.0, atol=1e-12, rtol=0)
    assert by_id["cold"].expected_disablement == 0.0


def test_findings_with_two_free_parents_give_their_rows_in_the_ranking_call(bundled_model, monkeypatch):
    """A positive finding with two free parents enters as two signed terms (telescoping is for one free
    parent: ``TELESCOPE_PARENTS``), one of them its lowest level, so the ranking call gives its counterfactual
    row (``lower``): recent overexertion (overexertion, injury) and fever (febrile infection, arthritis) ask
    the engine for nothing more, and the scores match the explicit twin network."""
    asked = _count_rows_asked(monkeypatch, "bayesdx.pipeline.counterfactual_scores")
    evidence = {**bundled_model.presenting, "age_group": "adult", "recent_overexertion": "yes", "fever": "yes"}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    assert sum(asked) == 0
    kinds = _model_file()["cpds"]
    by_id = {c.id: c for c in dx.causes}
    for cause in ("overexertion", "injury", "febrile_infection", "arthritis", "stress_anxiety"):
        expected = sum(
            twin_disablement(bundled_model, evidence, f, cause)
            for f in ("leg_twitching", "recent_overexertion", "fever")
            if cause in kinds[f]["links"]
        )
        assert_allclose(by_id[cause].expected_disablement, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("ck", ["mildly_raised", "markedly_raised", "abnormal"])
def test_graded_and_soft_answers_take_the_marginal_rows_too(bundled_model, monkeypatch, ck):
    """Creatine kinase (noisy-MAX: normal < mildly < markedly raised) with three of its four causes observed
    absent leaves injury its one free parent: a graded level, or the answer 'abnormal' (soft evidence on both
    raised levels, ``P(e_S | d) = P(mild | d) + P(marked | d)``), takes its row from the ranking's marginals,
    with no engine call (the lowered rows of the ranking call withheld), and matches the explicit twin network."""
    from bayesdx.counterfactual import counterfactual_scores
    from bayesdx.evidence import likelihoods_from_evidence
    from bayesdx.posteriors import posteriors_and_lowered

    evidence = {
        **bundled_model.presenting,
        "age_group": "adult",
        "creatine_kinase": ck,
        "myopathy": "absent",
        "als": "absent",
        "overexertion": "absent",
    }
    likelihoods = likelihoods_from_evidence(bundled_model, [evidence])
    _, log_z, _, marginals = posteriors_and_lowered(bundled_model, likelihoods, 1)
    asked: list[int] = []
    posterior = type(bundled_model.engine).posterior

    def counting(self, likelihoods, targets, n, **kwargs):
        asked.append(n)
        return posterior(self, likelihoods, targets, n, **kwargs)

    monkeypatch.setattr(type(bundled_model.engine), "posterior", counting)
    scores = counterfactual_scores(bundled_model, likelihoods, log_z, 1, None, marginals)
    assert asked == [1]  # the presenting complaint's row (its 20 parents are free); none for creatine kinase
    kinds = _model_file()["cpds"]
    expected = sum(
        twin_disablement(bundled_model, evidence, f, "injury")
        for f in ("leg_twitching", "creatine_kinase")
        if "injury" in kinds[f]["links"]
    )
    injury = [h.id for h in bundled_model.hypotheses].index("injury")
    assert expected > 0
    assert_allclose(scores.expected_disablement[0, injury], expected, atol=ATOL, rtol=0)
