"""How many recommended steps a vignette takes until the stop rule holds.

The protocol replays a consultation in which the vignette answers the questions and tests the engine asks
for, one at a time:

1. Start from the case's first two observed findings in the model's finding order (for the bundled model
   these are ``age_group`` and ``sex`` whenever the vignette records them), plus the model's presenting
   complaint, which every case carries. The presenting complaint is never counted as a step.
2. Rank the causes with next steps (:func:`bayesdx.rank_causes`, batched over all open cases).
3. If the stop rule holds (``Diagnosis.should_stop``), stop.
4. Otherwise take the best step in ``Diagnosis.next_steps`` that the vignette records and that has positive
   value (``EIG - alpha * cost > 0``). A recommended step the vignette does not record cannot be
   answered: it is passed over in favour of the next best recorded one (it stays unobserved). Reveal the
   vignette's answer, count one step, and go back to 2.
5. Stop as well when no recorded step with positive value remains.

The result is the number of steps taken (0 when the case stops at once). Each round costs one batched
``rank_causes`` analysis of the open cases, so a case takes at most as many rounds as it has recorded
answers beyond the starting two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..evidence import likelihoods_from_evidence
from ..model import Model
from ..ranking import analyse_cases
from .scoring import with_presenting

__all__ = ["N_START_FINDINGS", "starting_evidence", "steps_until_stop"]

#: How many of a case's observed findings the protocol starts from.
N_START_FINDINGS = 2


def starting_evidence(model: Model, evidence: Mapping[str, str]) -> dict[str, str]:
    """The first two observed findings of a case in the model's finding order (presenting complaint excluded)."""
    presenting = dict(getattr(model, "presenting", None) or {})
    first = [f for f in model.findings if f in evidence and f not in presenting][:N_START_FINDINGS]
    return {f: evidence[f] for f in first}


def steps_until_stop(
    model: Model,
    evidence: Sequence[Mapping[str, str]],
    labels: Sequence[str],
    *,
    alpha: float | None = None,
) -> np.ndarray:
    """Number of steps until the stop rule for each case (see the module docstring for the protocol).

    Parameters
    ----------
    model : Model
    evidence : sequence of mapping
        Each case's full recorded evidence.
    labels : sequence of str
        Case ids (named in errors).
    alpha : float, optional
        The entropy-to-cost ratio (the engine's default when None).

    Returns
    -------
    numpy.ndarray of float
        Steps per case.
    """
    n = len(evidence)
    current = [starting_evidence(model, ev) for ev in evidence]
    presenting = dict(getattr(model, "presenting", None) or {})
    remaining = [{v: s for v, s in ev.items() if v not in current[k] and v not in presenting}
                 for k, ev in enumerate(evidence)]
    steps = np.zeros(n)
    open_cases = list(range(n))
    while open_cases:
        observed = [with_presenting(model, current[k]) for k in open_cases]
        results = analyse_cases(model, observed, likelihoods_from_evidence(model, observed),
                                [labels[k] for k in open_cases], alpha=alpha, next_steps=True)
        still_open = []
        for k, dx in zip(open_cases, results, strict=True):
            if dx.should_stop:
                continue
            step = next((s for s in dx.next_steps if s.value > 0 and s.id in remaining[k]), None)
            if step is None:
                continue
            current[k][step.id] = remaining[k].pop(step.id)
            steps[k] += 1
            still_open.append(k)
        open_cases = still_open
    return steps
