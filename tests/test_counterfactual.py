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


def _link(value: object, state: str, positive_state: str) -> float:
    if isinstance(value, dict):
        return float(value.get(state, 0.0))
    return float(value) if state == positive_state else 0.0


def twin_disablement(model: bayesdx.Model, evidence: dict[str, str], finding: str, cure: str) -> float:
    """P(finding' = off | do(cure = normal), evidence) from an explicit twin network, by VariableElimination."""
    raw = _model_file()["cpds"][finding]
    node_states = model.states[finding]
    positive = raw.get("positive", "yes")
    negative = next(s for s in node_states if s != positive)
    net = model.network.copy()
    for node in [n for n in net.nodes() if n == finding or n.startswith(f"{finding}__")]:
        net.remove_node(node)
    parents = list(raw["links"])
    net.add_node("L")
    net.add_cpds(TabularCPD("L", 2, [[1 - raw["leak"]], [raw["leak"]]], state_names={"L": ["off", "on"]}))
    for k, parent in enumerate(parents):
        states = list(model.states[parent])
        normal = model.normal_states.get(parent) or ("absent" if "absent" in states else None)
        value = raw["links"][parent]["probability"]
        on = [(_link(value, s, s) if isinstance(value, dict) else (0.0 if s == normal else float(value))) for s in states]
        name = f"A{k}"
        net.add_edge(parent, name)
        net.add_cpds(TabularCPD(name, 2, [[1 - p for p in on], on], evidence=[parent], evidence_card=[len(states)],
                               state_names={name: ["off", "on"], parent: states}))
    for world, skip in (("T", None), ("U", parents.index(cure))):
        prev = "L"
        for k in range(len(parents)):
            name = f"{world}{k}"
            net.add_edge(prev, name)
            if k == skip:  # the cured cause's activation does not reach the counterfactual world
                table = [[1, 0], [0, 1]]
                net.add_cpds(TabularCPD(name, 2, table, evidence=[prev], evidence_card=[2],
                                       state_names={name: ["off", "on"], prev: ["off", "on"]}))
            else:
                net.add_edge(f"A{k}", name)
                cols = [[1 - (a or b), (a or b)] for a, b in itertools.product([0, 1], [0, 1])]
                net.add_cpds(TabularCPD(name, 2, np.array(cols).T.tolist(), evidence=[prev, f"A{k}"], evidence_card=[2, 2],
                                       state_names={name: ["off", "on"], prev: ["off", "on"], f"A{k}": ["off", "on"]}))
            prev = name
    assert net.check_model()
    factual, counterfactual = f"T{len(parents) - 1}", f"U{len(parents) - 1}"
    ev = {v: s for v, s in evidence.items() if v != finding}
    ev[factual] = "on" if evidence[finding] == positive else "off"
    assert evidence[finding] == positive and negative != positive
    result = VariableElimination(net).query([counterfactual], evidence=ev, show_progress=False)
    return float(result.get_value(**{counterfactual: "off"}))


CASES = [
    {"age_group": "adult", "sex": "male", "thirst_frequent_urination": "yes", "numbness_tingling": "yes",
     "both_legs": "yes", "frequency": "daily", "duration": "over_3_months"},
    {"age_group": "older_adult", "muscle_weakness": "yes", "muscle_wasting": "yes", "painful_cramps": "yes",
     "emotional_stress": "yes", "electromyography": "abnormal"},
    {"age_group": "child", "fever": "yes", "twitch_appearance": "visible_jerk", "loss_of_consciousness": "yes"},
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_disablement_of_the_complaint_matches_an_explicit_twin_network(bundled_model, case):
    evidence = {**bundled_model.presenting, **CASES[case]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    for cause in ("stress_anxiety", "polyneuropathy", "diabetes_mellitus", "als", "febrile_infection", "epilepsy"):
        assert_allclose(by_id[cause].disablement, twin_disablement(bundled_model, evidence, "leg_twitching", cause),
                        atol=ATOL, rtol=0)


def test_expected_disablement_is_the_sum_over_positive_findings_of_twin_network_probabilities(bundled_model):
    evidence = {**bundled_model.presenting, **CASES[1]}
    dx = bayesdx.rank_causes(evidence, model=bundled_model, ranking="expected_disablement", next_steps=False)
    by_id = {c.id: c for c in dx.causes}
    kinds = _model_file()["cpds"]
    positives = [v for v, s in evidence.items() if kinds.get(v, {}).get("kind") == "noisy_or"
                 and s == kinds[v].get("positive", "yes")]
    assert {"leg_twitching", "muscle_weakness", "electromyography"} <= set(positives)
    for cause in ("als", "myopathy", "stress_anxiety"):
        expected = sum(twin_disablement(bundled_model, evidence, f, cause) for f in positives
                       if cause in kinds[f]["links"])
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
        assert_allclose([frame.loc[k, f"score_{j}"] for j in (1, 2, 3)],
                        [c.expected_disablement for c in dx.causes[:3]], atol=1e-12, rtol=0)
        assert_allclose([frame.loc[k, f"probability_{j}"] for j in (1, 2, 3)],
                        [c.probability for c in dx.causes[:3]], atol=1e-12, rtol=0)


def test_an_unknown_ranking_is_refused_with_the_valid_names(bundled_model):
    with pytest.raises(ValueError, match="'ranking' parameter of rank_causes must be one of"):
        bayesdx.rank_causes({}, model=bundled_model, ranking="popularity")


def test_networks_of_full_tables_rank_by_posterior_and_refuse_counterfactual_ranking():
    from pgmpy.utils import get_example_model

    model = bayesdx.load_model(get_example_model("asia"), causes=["tub", "lung"])
    assert bayesdx.rank_causes({"xray": "yes"}, model=model, next_steps=False).ranking == "posterior"
    with pytest.raises(ValueError, match="needs noisy-OR links declared in a model file"):
        bayesdx.rank_causes({"xray": "yes"}, model=model, ranking="disablement", next_steps=False)
