"""Cases whose signed terms cancel past extended precision get a contraction of their own (issue 16).

Their counterfactual rows (the same case with one positive finding at its normal, lowest level) come in the
next engine call. With ``specialize_lowest=False``, which that route uses, a finding at its lowest level is
taken at its state like any other, so those rows reuse the program compiled for their case instead of
compiling one per finding (at a few hundred vignettes, compiling was about half of that route). Every
posterior still matches VariableElimination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.evaluation.vignettes import read_vignettes
from bayesdx.evidence import likelihoods_from_evidence
from bayesdx.posteriors import add_presenting

DEV = Path(__file__).resolve().parents[1] / "evaluation" / "vignettes" / "dev.csv"


def _case_and_lowered(model: bayesdx.Model) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A development vignette with at least three positive noisy findings (no aliased answer), and the same
    vignette with each of them at its lowest level in turn."""
    net = model.compiled
    decs = net.decompositions
    assert decs is not None
    for case in (dict(e) for e in read_vignettes(DEV, model).evidence):
        if "abnormal" in case.values():
            continue
        lowered = []
        for v, s in case.items():
            dec = decs[net.index()[v]] if v in model.findings else None
            if dec is not None and dec.order and s != model.states[v][dec.order[0]]:
                lowered.append({**case, v: model.states[v][dec.order[0]]})
        if len(lowered) >= 3:
            return case, lowered
    raise AssertionError("no development vignette with three positive findings")


def _posterior(model: bayesdx.Model, case: dict[str, str], specialize: bool) -> Any:
    lik = add_presenting(model, likelihoods_from_evidence(model, [case]), 1)
    return model.engine.posterior(lik, model.causes, 1, expand=False, specialize_lowest=specialize)


@pytest.mark.parametrize("specialize", [False, True])
def test_rows_with_a_finding_at_its_lowest_level_share_their_cases_program(specialize, ve_marginal_reference):
    model = bayesdx.load_model()  # a fresh engine: no program cached
    case, lowered = _case_and_lowered(model)
    compiled: list[Any] = []
    original = model.engine._compile

    def counted(key: Any) -> Any:
        compiled.append(key)
        return original(key)

    model.engine._compile = counted  # type: ignore[method-assign]
    _posterior(model, case, specialize)
    first = len(compiled)
    assert first >= 1
    for other in lowered:
        post = _posterior(model, other, specialize)
        evidence = {**dict(model.presenting), **other}
        for cause in model.causes[:6]:
            expected = ve_marginal_reference(model.network, cause, evidence, model.states[cause])
            assert_allclose(post.marginals[cause][0], expected, atol=1e-9, rtol=0, err_msg=f"{cause} {other}")
    if specialize:  # each finding at its lowest level makes another program
        assert len(compiled) >= first + len(lowered)
    else:
        assert len(compiled) == first
    assert np.isfinite(post.log_evidence).all()


def test_the_own_contraction_route_shares_programs_across_lowest_levels(monkeypatch):
    """quickscore sends cases past extended precision (here: every case with a positive finding, MAX_TERMS = 1)
    to contractions of their own, without lowest-level programs: a ranking of vignettes and the
    counterfactual rows of its expected disablement compile no program per finding at its lowest level."""
    from bayesdx.engine import quickscore

    monkeypatch.setattr(quickscore, "MAX_TERMS", 1)
    model = bayesdx.load_model()
    calls: list[bool] = []
    original = model.engine.posterior

    def spy(likelihoods: Any, targets: Any, n_cases: int, **kwargs: Any) -> Any:
        if not kwargs.get("expand", True):
            calls.append(kwargs.get("specialize_lowest", True))
        return original(likelihoods, targets, n_cases, **kwargs)

    monkeypatch.setattr(model.engine, "posterior", spy)
    cases = [dict(e) for e in read_vignettes(DEV, model).evidence][:4]
    bayesdx.score(cases, model=model, top_k=3)
    assert calls
    assert not any(calls)
