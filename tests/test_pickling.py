"""Errors and models survive pickling, so they cross process boundaries (Dask workers, multiprocessing)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import bayesdx
from bayesdx.exceptions import (
    ImpossibleEvidenceError,
    InvalidStateError,
    ModelFileError,
    ModelTooLargeError,
    UnknownVariableError,
)

ERRORS = [
    ModelFileError("models/x.toml", "cpds.fever.leak", "must be a probability in [0, 1], got 2", 2),
    UnknownVariableError("fevr", ["fever"], where=" in case 3"),
    InvalidStateError("fever", "maybe", ["yes", "no"], where=" in case 'bob'"),
    ImpossibleEvidenceError(["bob", 3]),
    ModelTooLargeError(2**40, 2**27, "(variables carrying evidence: a, b) "),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_keeps_its_message_and_attributes_through_pickle(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    public = {k: v for k, v in vars(error).items() if not k.startswith("_")}
    assert {k: v for k, v in vars(copy).items() if not k.startswith("_")} == public


def test_a_model_file_model_pickles_to_the_same_answers(tiny_model):
    copy = pickle.loads(pickle.dumps(tiny_model))
    evidence = {"fever": "yes"}
    assert copy.priors == tiny_model.priors
    np.testing.assert_allclose(
        [c.probability for c in bayesdx.rank_causes(evidence, model=copy).causes],
        [c.probability for c in bayesdx.rank_causes(evidence, model=tiny_model).causes],
        rtol=0,
        atol=1e-15,
    )


def test_a_pgmpy_network_model_pickles_with_its_roles(child_model):
    copy = pickle.loads(pickle.dumps(child_model))
    assert (copy.causes, copy.tests, copy.findings) == (child_model.causes, child_model.tests, child_model.findings)
    assert [h.id for h in copy.hypotheses] == [h.id for h in child_model.hypotheses]


def test_score_accepts_a_dask_dataframe_and_matches_in_process_scoring(tiny_model):
    dd = pytest.importorskip("dask.dataframe")  # the dask extra is part of the test install
    frame = pd.DataFrame({"fever": ["yes", "no", None, "yes"], "thermometer": [None, "abnormal", "normal", "normal"]})
    result = bayesdx.score(dd.from_pandas(frame, npartitions=2), model=tiny_model, top_k=2)
    assert hasattr(result, "compute")
    pd.testing.assert_frame_equal(
        result.compute(scheduler="synchronous"), bayesdx.score(frame, model=tiny_model, top_k=2), check_exact=False, rtol=0, atol=1e-12
    )


def test_one_pickling_mechanism_for_models_and_dask_recipes():
    """A Model pickles as the recipe bayesdx.dask.ModelRecipe holds (bundled names, so another process loads its
    own copy), and a model file is read once per process however often it is unpickled."""
    from bayesdx.dask import ModelRecipe

    model = bayesdx.load_model(priors="uniform")
    _, args = model.__reduce__()
    recipe = ModelRecipe.of(model)
    assert args == (recipe.source, recipe.priors) == ("leg_twitch", "uniform")
    first, second = pickle.loads(pickle.dumps(model)), pickle.loads(pickle.dumps(model))
    assert first is second  # read once per process
    assert recipe.load() is first
    assert first.priors == "uniform"
