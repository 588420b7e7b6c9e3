"""The public API: ``bayesdx.__all__`` lists exactly the public names, sorted; signatures are keyword-only."""

from __future__ import annotations

import inspect
import types

import pytest

import bayesdx


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted():
    assert list(bayesdx.__all__) == sorted(bayesdx.__all__, key=_isort_key)
    assert len(set(bayesdx.__all__)) == len(bayesdx.__all__)


def test_all_equals_the_public_names():
    # httpx tests/test_exported_members.py: every public attribute that is not a submodule is exported
    public = {name for name, value in vars(bayesdx).items() if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(bayesdx.__all__) == public


@pytest.mark.parametrize("name", sorted(bayesdx.__all__))
def test_every_exported_name_resolves(name):
    assert getattr(bayesdx, name) is not None


@pytest.mark.parametrize(
    ("function", "positional"),
    [(bayesdx.rank_causes, ["evidence"]), (bayesdx.score, ["cases"]), (bayesdx.load_model, ["source"])],
)
def test_arguments_after_the_first_are_keyword_only(function, positional):
    params = inspect.signature(function).parameters.values()
    assert [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY] == positional


@pytest.mark.parametrize(
    "name",
    ["BayesdxError", "ImpossibleEvidenceError", "InvalidStateError", "ModelFileError", "ModelTooLargeError", "UnknownVariableError"],
)
def test_exceptions_form_one_hierarchy(name):
    assert issubclass(getattr(bayesdx, name), bayesdx.BayesdxError)


def test_results_are_frozen(tiny_model):
    import dataclasses

    dx = bayesdx.rank_causes({"fever": "yes"}, model=tiny_model)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dx.log_evidence = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dx.causes[0].probability = 1.0  # type: ignore[misc]
    assert dx.model_id == "tiny"
    assert dx.priors == "tiny"
    assert dx.caveat == bayesdx.CAVEAT
