"""Self-consistency: cases sampled from the network itself must come out calibrated.

Cases are drawn from the model's own joint distribution by ancestral sampling of its tables
(:func:`forward_sample`, seeded; the tables are the ones the engine contracts, checked against pgmpy's
network in the tests). The causes and hidden nodes are hidden. Which findings and tests a case observes is drawn independently
of its values (so it carries no information): ``n_patterns`` random subsets are drawn once, each variable in
each with probability ``observe``, and every case gets one of them at random (a few patterns keep the
batched engine to a few contraction orders). The presenting complaint is always observed with its
sampled value. Every (case, hypothesis) posterior is then compared with whether
the hypothesis held in the sample: binned as in :func:`~bayesdx.evaluation.metrics.reliability_table`, and
summarised by the expected calibration error. Exact inference must give a reliability curve on the diagonal
up to sampling noise, whatever the priors: this checks the engine and the evidence handling, not medicine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import Model
from ..ranking import score
from .metrics import expected_calibration_error, reliability_table
from .scoring import posterior_frame_to_matrix

__all__ = ["SelfConsistency", "forward_sample", "self_consistency"]


def forward_sample(model: Model, n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n_samples`` independent draws of every variable from the model's joint distribution.

    Ancestral sampling on the compiled network (its variables are in topological order): each variable is
    drawn from its CPD column at its parents' sampled states, by inverting the cumulative distribution.

    Returns
    -------
    pandas.DataFrame
        One column per variable, state names as strings.
    """
    net = model.compiled
    codes = np.empty((len(net.variables), n_samples), dtype=np.intp)
    for v, table in enumerate(net.tables):
        columns = table[(slice(None), *(codes[p] for p in net.parents[v]))]  # (states, samples)
        if columns.ndim == 1:
            columns = np.broadcast_to(columns[:, None], (len(columns), n_samples))
        cdf = np.cumsum(columns, axis=0)
        u = rng.random(n_samples) * cdf[-1]
        codes[v] = np.minimum((u[None, :] >= cdf).sum(axis=0), len(columns) - 1)
    return pd.DataFrame(
        {name: np.asarray(states, dtype=object)[codes[v]] for v, (name, states) in enumerate(zip(net.variables, net.states, strict=True))}
    )


@dataclass(frozen=True, eq=False)
class SelfConsistency:
    """Calibration of the model on its own samples.

    Attributes
    ----------
    n_samples : int
    ece : float
        Expected calibration error over all (sample, hypothesis) pairs, 10 bins.
    reliability : pandas.DataFrame
        :func:`~bayesdx.evaluation.metrics.reliability_table` of the pairs.
    probabilities, outcomes : numpy.ndarray
        ``(n_samples, H)`` posteriors and 0/1 outcomes.
    """

    n_samples: int
    ece: float
    reliability: pd.DataFrame
    probabilities: np.ndarray
    outcomes: np.ndarray


#: How many random subsets of observed findings and tests the sampled cases share.
N_PATTERNS = 16


def sample_cases(
    model: Model, n_samples: int, rng: np.random.Generator, observe: float = 0.5, n_patterns: int = N_PATTERNS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n_samples`` forward samples of the network and the evidence frame built from them."""
    samples = forward_sample(model, n_samples, rng)
    presenting = dict(getattr(model, "presenting", None) or {})
    observable = [v for v in model.findings + model.tests if v not in presenting]
    patterns = rng.random((n_patterns, len(observable))) < observe
    mask = patterns[rng.integers(n_patterns, size=n_samples)]
    frame = samples[observable].where(mask)
    for var in presenting:
        frame[var] = samples[var]
    return samples, frame


def self_consistency(model: Model, *, n_samples: int, rng: np.random.Generator, observe: float = 0.5, n_bins: int = 10) -> SelfConsistency:
    """Reliability of the model's posteriors on cases sampled from the model (see the module docstring).

    Parameters
    ----------
    model : Model
    n_samples : int
        How many cases to sample.
    rng : numpy.random.Generator
        Seeds the sampler and the choice of observed variables.
    observe : float, default 0.5
        Probability that each finding and test is observed.
    n_bins : int, default 10

    Returns
    -------
    SelfConsistency
    """
    samples, frame = sample_cases(model, n_samples, rng, observe)
    matrix = posterior_frame_to_matrix(model, score(frame, model=model, top_k=len(model.hypotheses), ranking="posterior"), n_samples)
    outcomes = np.column_stack([(samples[h.node] == h.state).to_numpy() for h in model.hypotheses]).astype(float)
    return SelfConsistency(
        n_samples, expected_calibration_error(matrix, outcomes, n_bins), reliability_table(matrix, outcomes, n_bins), matrix, outcomes
    )
