"""Counterfactual ranking: what would stop if a cause were cured (Richens, Lee and Johri 2020).

The posterior answers "which conditions are present?". A person who presents with twitching asks "what is
causing it?". Richens, Lee and Johri (Improving the accuracy of medical diagnosis with causal machine
learning, Nature Communications 2020;11:3923) rank a cause by its *expected disablement*: the expected number
of the patient's positive findings that would switch off if the cause alone were cured, computed on the twin
network (the factual world and the world where the cause is set to its normal state, sharing every noise
term). On noisy-OR networks this has a closed form.

Closed form
-----------
Write a noisy-OR finding ``S`` with leak ``l`` and links ``p_i`` as ``S = L or OR_i (X_i and A_i)`` with
independent activations ``L ~ Bern(l)``, ``A_i ~ Bern(p_i)``. Curing cause ``D`` (setting it to its normal
state) leaves every other cause and every activation as it was. ``S`` was on and would be off exactly when
``D`` was in the hypothesised state, its own activation fired, and nothing else did::

    P(S' = off, S = on, e) = sum_x P(x, e \\ S) [x_D = d] p_D (1 - l) prod_{i != D active in x} (1 - p_i)
                           = p_D / (1 - p_D) * P(S = off, D = d, e \\ S)

because ``P(S = off | x) = (1 - l) prod_{i active} (1 - p_i)`` holds the factor ``(1 - p_D)`` whenever
``x_D = d``. So each term is one exact evidence probability of the engine (the case's evidence with ``S``
observed off and ``D`` clamped to ``d``), divided by ``P(e)``. No sampling, no enumeration of configurations.

Scores
------
``disablement``
    For the presenting complaint alone (``[model.presenting]``): the probability that curing the cause would
    stop the twitching, ``P(complaint' = off | do(D = normal), e)``. For one cause these events are disjoint
    across causes (each says "this cause alone produced the complaint"), so the scores of all causes sum to
    at most one: the rest is the chance that several causes, or the leak, produce it.
``expected_disablement``
    The sum of that probability over every positive noisy-OR finding and test of the case (the complaint
    included): Richens' expected disablement.

Scope
-----
Curing ``D`` acts on ``D`` only: other causes keep their factual states even where ``D`` is their parent in
the network (curing diabetes does not undo an existing neuropathy), so the score is the cause's direct
effect on the findings. Findings counted are noisy-OR nodes observed in their positive state (hard
evidence); time-course (noisy-MAX) and table nodes count nothing. A link of probability exactly 1 leaves the
ratio undefined and raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .model import Model
from .model_file import noisy_parameters

__all__ = ["CounterfactualScores", "counterfactual_scores", "RANKINGS"]

#: The ranking scores :func:`bayesdx.rank_causes` accepts, and what each ranks by.
RANKINGS = {
    "posterior": "the posterior probability that the cause is present",
    "disablement": "the probability that curing the cause alone would stop the presenting complaint",
    "expected_disablement": "the expected number of positive findings that curing the cause alone would switch off",
}

#: Rows (case x finding x cause) sent to the engine at once.
ROW_BLOCK = 20_000


@dataclass(frozen=True)
class _Link:
    finding: str
    negative: int  # state index of the finding's negative state
    positive: int
    hypothesis: int  # index into model.hypotheses
    cause: str
    state: int  # the cause's state index for this hypothesis
    odds: float  # p / (1 - p)


@dataclass(frozen=True)
class CounterfactualScores:
    """Counterfactual scores of every hypothesis for a batch of cases.

    Attributes
    ----------
    disablement : numpy.ndarray
        ``(n_cases, n_hypotheses)``: probability that curing the cause would stop the presenting complaint.
    expected_disablement : numpy.ndarray
        ``(n_cases, n_hypotheses)``: expected number of positive findings curing the cause would switch off.
    """

    disablement: np.ndarray
    expected_disablement: np.ndarray


def _links(model: Model) -> list[_Link]:
    """Every (noisy-OR finding or test, cause hypothesis) link of a model file, with its odds."""
    spec = model.spec
    if spec is None:
        raise ValueError(
            f"Counterfactual ranking needs noisy-OR links declared in a model file; model {model.id!r} is a "
            "network of full tables. Use ranking='posterior'."
        )
    by_node: dict[str, list[int]] = {}
    for k, h in enumerate(model.hypotheses):
        by_node.setdefault(h.node, []).append(k)
    links = []
    for node, cpd in spec.cpds.items():
        if cpd.get("kind") != "noisy_or" or model.role(node) not in ("finding", "test"):
            continue
        params = noisy_parameters(spec, node)
        negative, positive = params.order
        for parent, cdf in zip(spec.parents(node), params.parent_cdfs, strict=True):
            for k in by_node.get(parent, ()):
                state = model.states[parent].index(model.hypotheses[k].state)
                p = 1.0 - float(cdf[state, 0])
                if p <= 0.0:
                    continue
                if p >= 1.0:
                    raise ValueError(
                        f"The link {parent}={model.hypotheses[k].state} -> {node} has probability 1, so the "
                        "counterfactual score is undefined for it; give the link a probability below 1."
                    )
                links.append(_Link(node, negative, positive, k, parent, state, p / (1.0 - p)))
    return links


def counterfactual_scores(model: Model, likelihoods: Mapping[str, np.ndarray], log_evidence: np.ndarray,
                          n_cases: int) -> CounterfactualScores:
    """Exact counterfactual scores for a batch of cases.

    Parameters
    ----------
    model : Model
        A model read from a model file (its noisy-OR links define the twin network).
    likelihoods : mapping of str to numpy.ndarray
        The cases' evidence as per-variable likelihood arrays of shape ``(n_cases, n_states)``, the
        presenting complaint included.
    log_evidence : numpy.ndarray
        ``log P(e)`` of each case (from the same engine).
    n_cases : int

    Returns
    -------
    CounterfactualScores
    """
    links = _links(model)
    n_hyp = len(model.hypotheses)
    disable = np.zeros((n_cases, n_hyp))
    expected = np.zeros((n_cases, n_hyp))
    complaint = set(model.presenting)
    # every (case, link) whose finding the case observed positive (hard evidence)
    row_case: list[np.ndarray] = []
    row_link: list[np.ndarray] = []
    for j, link in enumerate(links):
        lam = likelihoods.get(link.finding)
        if lam is None:
            continue
        hit = np.flatnonzero((lam[:, link.positive] > 0) & (lam[:, link.negative] == 0))
        if hit.size:
            row_case.append(hit)
            row_link.append(np.full(hit.size, j))
    if not row_case:
        return CounterfactualScores(disable, expected)
    cases = np.concatenate(row_case)
    link_ids = np.concatenate(row_link)
    for start in range(0, cases.size, ROW_BLOCK):
        rc = cases[start:start + ROW_BLOCK]
        rl = link_ids[start:start + ROW_BLOCK]
        rows = {v: a[rc].copy() for v, a in likelihoods.items()}
        for j in np.unique(rl):
            link = links[j]
            at = np.flatnonzero(rl == j)
            off = np.zeros(len(model.states[link.finding]))
            off[link.negative] = 1.0
            rows[link.finding][at] = off
            clamp = np.zeros(len(model.states[link.cause]))
            clamp[link.state] = 1.0
            if link.cause in rows:
                rows[link.cause][at] = rows[link.cause][at] * clamp
            else:
                rows[link.cause] = np.ones((rc.size, len(clamp)))
                rows[link.cause][at] = clamp
        post = model.engine.posterior(rows, model.causes[:1], rc.size)
        odds = np.array([links[j].odds for j in rl])
        value = np.where(post.impossible, 0.0, odds * np.exp(post.log_evidence - log_evidence[rc]))
        hyp = np.array([links[j].hypothesis for j in rl])
        np.add.at(expected, (rc, hyp), value)
        in_complaint = np.array([links[j].finding in complaint for j in rl], dtype=bool)
        np.add.at(disable, (rc[in_complaint], hyp[in_complaint]), value[in_complaint])
    return CounterfactualScores(disable, expected)
