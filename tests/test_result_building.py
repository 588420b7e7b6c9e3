"""The pipeline's fast paths build the same results as the straightforward code (issue 16): the ranked causes
made without the frozen dataclass's ``__init__`` equal the constructor's, and the hypothesis matrix gathered
per run of one node's states equals a gather per hypothesis."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
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
