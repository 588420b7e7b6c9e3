"""The pipeline's fast paths build the same results as the straightforward code (issue 16): the ranked causes
made without the frozen dataclass's ``__init__`` equal the constructor's, and the hypothesis matrix gathered
per run of one node's states equals a gather per hypothesis."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest
from references import example_network

import bayesdx
from bayesdx.model_spec import Hypothesis
from bayesdx.posteriors import hypothesis_matrix
from bayesdx.results import RankedCause


def test_ranked_causes_equal_the_constructors():
    fixed = [Hypothesis("a", "A", "yes"), Hypothesis("B=x", "B", "x"), Hypothesis("B=y", "B", "y")]
    probability, disablement, expected = [0.5, 0.3, 0.2], [0.4, None, 0.1], [1.5, 0.0, None]
    order = [2, 0, 1]
    made = RankedCause._many(fixed, order, probability, disablement, expected)
    plain = tuple(RankedCause(fixed[k].id, fixed[k].node, fixed[k].state, probability[k], disablement[k], expected[k]) for k in order)
    assert made == plain
    assert [hash(c) for c in made] == [hash(c) for c in plain]
    assert [repr(c) for c in made] == [repr(c) for c in plain]
    assert [dataclasses.asdict(c) for c in made] == [dataclasses.asdict(c) for c in plain]
    assert pickle.loads(pickle.dumps(made)) == plain
    assert copy.deepcopy(made) == plain
    assert dataclasses.replace(made[0], probability=0.9) == dataclasses.replace(plain[0], probability=0.9)
    try:
        made[0].probability = 1.0  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("a ranked cause must stay frozen")


def _per_hypothesis(model: bayesdx.Model, marginals, n: int) -> np.ndarray:
    out = np.empty((n, len(model.hypotheses)))
    for j, h in enumerate(model.hypotheses):
        out[:, j] = marginals[h.node][:, model.states[h.node].index(h.state)]
    return out


def test_hypothesis_matrix_equals_a_gather_per_hypothesis(bundled_model, rng):
    network = example_network("hailfinder")
    roots = [n for n in network.nodes() if not network.get_parents(n)]
    for model in (bundled_model, bayesdx.load_model(network, causes=roots)):
        marginals = {c: rng.random((4, len(model.states[c]))) for c in model.causes}
        expected = _per_hypothesis(model, marginals, 4)
        np.testing.assert_array_equal(hypothesis_matrix(model, marginals, 4), expected)
    # the bundled model ranks one state of a binary cause: a run that is not every state
    assert any(idx is not None for _, idx in bundled_model._hypothesis_columns)


def test_a_diagnosis_cannot_be_changed_through_its_mappings_and_still_pickles_copies_and_hashes(bundled_model):
    """Found in a user review (session 15): ``Diagnosis`` is frozen, but ``dx.evidence`` was a plain dict. After
    ``dx.evidence["fever"] = "yes"`` the result said 3 items were observed and ``explain`` cited a fever the ranking
    never used; ``hash(dx)`` raised. Every mapping of a result now refuses changes, whoever built it."""
    dx = bayesdx.rank_causes({"painful_cramps": "yes", "age_group": "adult"}, model=bundled_model)
    before = dx.explain("overexertion")
    for mapping in (dx.evidence, dx.prior_probabilities, dx.labels):
        key = next(iter(mapping))
        for change in (
            lambda m: m.__setitem__("fever", "yes"),
            lambda m: m.update(fever="yes"),
            lambda m, key=key: m.pop(key),
            lambda m, key=key: m.__delitem__(key),
            lambda m: m.setdefault("fever", "yes"),
            lambda m: m.clear(),
            lambda m: m.popitem(),
        ):
            with pytest.raises(TypeError, match="read-only"):
                change(mapping)
    assert "fever" not in dx.evidence
    assert dx.explain("overexertion") == before
    again = pickle.loads(pickle.dumps(dx))
    assert again == dx
    assert copy.deepcopy(dx) == dx
    assert hash(again) == hash(dx)
    assert dataclasses.asdict(dx)["evidence"] == dict(dx.evidence)
    rebuilt = bayesdx.Diagnosis(**{f.name: getattr(dx, f.name) for f in dataclasses.fields(dx)} | {"evidence": dict(dx.evidence)})
    with pytest.raises(TypeError, match="read-only"):
        rebuilt.evidence["fever"] = "yes"  # type: ignore[index]
