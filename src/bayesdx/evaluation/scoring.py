"""Scoring vignettes under one prior setting: the posterior matrix, ranks and triage of every case.

The posteriors come from :func:`bayesdx.score` with ``top_k`` equal to the number of hypotheses, which
orders the causes exactly as :func:`bayesdx.rank_causes` does (stable sort, ties in model order); the
triage level applies the model's triage rules to the same posteriors and evidence, as ``rank_causes`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..model import Model
from ..posteriors import with_presenting  # re-exported: a case's evidence as the engine sees it
from ..ranking import resolve_ranking, score
from .metrics import true_cause_ranks
from .vignettes import Vignettes

__all__ = ["SettingScores", "score_setting", "with_presenting"]


@dataclass(frozen=True)
class SettingScores:
    """The vignettes scored under one prior setting.

    Attributes
    ----------
    setting : str
        The prior setting's id.
    model : Model
    probabilities : numpy.ndarray
        ``(n_cases, n_hypotheses)`` posteriors in the model's hypothesis order.
    truth : numpy.ndarray
        Column index of each case's true cause.
    ranks : numpy.ndarray
        1-based rank of the true cause.
    top1 : tuple of str
        The leading hypothesis of each case (by ``ranking``).
    triage : tuple of str or None
        The advised triage level (None when the model has no triage rules).
    ranking : str
        What the ranks follow (see :func:`bayesdx.rank_causes`).
    order : numpy.ndarray
        ``(n_cases, n_hypotheses)``: each case's hypothesis indices in the ranking's order, best first.
    """

    setting: str
    model: Model
    probabilities: np.ndarray
    truth: np.ndarray
    ranks: np.ndarray
    top1: tuple[str, ...]
    triage: tuple[str | None, ...]
    ranking: str = "posterior"
    order: np.ndarray | None = None

    @property
    def p_true(self) -> np.ndarray:
        """Posterior of each case's true cause."""
        return self.probabilities[np.arange(len(self.truth)), self.truth]


def posterior_frame_to_matrix(model: Model, frame: object, n: int) -> np.ndarray:
    """Rebuild the ``(n, H)`` posterior matrix from the ``cause_j``/``probability_j`` columns of :func:`score`."""
    ids = [h.id for h in model.hypotheses]
    col = {h: j for j, h in enumerate(ids)}
    matrix = np.full((n, len(ids)), np.nan)
    rows = np.arange(n)
    for j in range(1, len(ids) + 1):
        causes = frame[f"cause_{j}"].to_numpy()  # type: ignore[index]
        matrix[rows, [col[c] for c in causes]] = frame[f"probability_{j}"].to_numpy(dtype=float)  # type: ignore[index]
    return matrix


def score_setting(model: Model, vignettes: Vignettes, ranking: str | None = None) -> SettingScores:
    """Score every vignette under ``model`` in one batched call, ranked by ``ranking`` (the default of
    :func:`bayesdx.rank_causes` when None).

    Raises
    ------
    ImpossibleEvidenceError
        Naming the cases whose evidence has probability zero under the model.
    """
    n = len(vignettes)
    ranking = resolve_ranking(model, "evaluate", ranking)
    frame = score(vignettes.frame, model=model, top_k=len(model.hypotheses), ranking=ranking)
    matrix = posterior_frame_to_matrix(model, frame, n)
    ids = [h.id for h in model.hypotheses]
    truth = np.array([ids.index(t) for t in vignettes.true_cause], dtype=int)
    top1 = tuple(str(c) for c in frame["cause_1"].tolist())
    triage = advised_triage(model, vignettes.evidence, matrix)
    order_ids = frame[[f"cause_{j}" for j in range(1, len(ids) + 1)]].to_numpy(dtype=object)
    position = {h: j for j, h in enumerate(ids)}
    order = np.vectorize(position.__getitem__, otypes=[int])(order_ids) if n else np.empty((0, len(ids)), dtype=int)
    # by posterior: with ties in model order; otherwise the true cause's position as rank_causes lists it
    ranks = true_cause_ranks(matrix, truth) if ranking == "posterior" else 1 + np.argmax(order == truth[:, None], axis=1)
    return SettingScores(model.priors, model, matrix, truth, ranks, top1, triage, ranking, order)


def advised_triage(model: Model, evidence: Sequence[Mapping[str, str]], matrix: np.ndarray) -> tuple[str | None, ...]:
    """The triage level of each case from the model's rules (as in ``rank_causes(...).triage``)."""
    if model.triage_policy is None:
        return tuple(None for _ in evidence)
    ids = [h.id for h in model.hypotheses]
    return tuple(
        model.triage_policy.assess(with_presenting(model, ev), dict(zip(ids, row.tolist(), strict=True)))[0]
        for ev, row in zip(evidence, matrix, strict=True)
    )
