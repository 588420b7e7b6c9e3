"""How much a ranking depends on the priors: rank-flip factors and a Monte Carlo over prior uncertainty.

What "multiplying a cause's prior odds by f" means
--------------------------------------------------
The prior joint distribution of the network is multiplied by ``f`` wherever the hypothesis holds and
renormalised (an exponential tilt). Then the odds of the hypothesis given *any* other information are
multiplied by exactly ``f``: its prior odds given the presenting complaint, age and sex (what a prior file
states), and its posterior odds given the evidence. When the cause node's parents are observed in the case
(the bundled model's causes depend on age group and sex, a few also on another cause) or it has none, this
is the same as multiplying the odds of its CPD by ``f`` in every parent configuration, i.e. the same as
editing the prior file's probability for that cause (tests check both). The tilt is a likelihood
``f`` on the hypothesis's state, so it runs on the batched engine as soft evidence.

Rank-flip factor (exact)
------------------------
For a case with evidence ``e``, a hypothesis ``c`` with posterior ``q = P(c | e)``, and any hypothesis
``h``, the tilted posterior is

    P_f(h | e) = (P(h | e) + (f - 1) q P(h | c, e)) / (1 + (f - 1) q),

so one extra engine row per case and hypothesis (``c`` clamped present) gives every ``P_f`` in closed
form. Each hypothesis's numerator is linear in ``f`` and the denominator is shared, so the factor at which
another hypothesis overtakes the leading one is found exactly, not by bisection: for the case's leading
hypothesis the largest ``f < 1`` at which the top-1 changes (0 when no factor does), for every other
hypothesis the smallest ``f > 1`` (infinity when none does). The factor is the threshold itself: just
beyond it the top-1 is another hypothesis (``flips_to``). Hypotheses whose node the case observes are not
varied (their factor is NaN).

Summaries per cause: the median factor over the cases it leads (``median_factor_down``) and over the
others (``median_factor_up``), the share of cases in which a factor within ``[1/10, 10]`` flips the
top-1, and the top-1 accuracy when the cause's prior odds are divided or multiplied by 10 (the tornado
chart).

Monte Carlo over prior uncertainty
----------------------------------
Each hypothesis's prior log-odds is perturbed by an independent ``N(0, spread**2)`` draw (the same draws
for every prior setting, so settings are compared on common random numbers); each draw is applied to every
case as the tilt above, all cases and a block of draws in one engine call. Per case the stability is the
share of draws in which its unperturbed top-1 stays first; per setting the top-1 accuracy over draws is
summarised by its mean and 2.5% and 97.5% quantiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evidence import likelihoods_from_evidence
from ..exceptions import ImpossibleEvidenceError
from ..model import Model
from ..posteriors import hypothesis_matrix, with_presenting

__all__ = [
    "ROWS_PER_CALL",
    "FlipAnalysis",
    "flip_analysis",
    "leader",
    "perturbed_posteriors",
    "prior_monte_carlo",
    "tilted_posteriors",
]

#: Engine rows per call in the Monte Carlo (cases times draws); bounds the memory of one call.
ROWS_PER_CALL = 20_000
#: Relative step beyond a rank-flip threshold at which the new leading hypothesis is read.
_BEYOND = 1e-9


@dataclass(frozen=True)
class FlipAnalysis:
    """Closed-form prior sensitivity of every case to every hypothesis's prior odds.

    Attributes
    ----------
    probabilities : numpy.ndarray
        ``(n, H)`` posteriors ``P(h | e)``.
    clamped : numpy.ndarray
        ``(n, H, H)``: ``clamped[k, c, h] = P(h | c, e_k)``; NaN where ``c`` is not varied (its node is
        observed, or ``P(c | e_k)`` is 0 or 1).
    factors : numpy.ndarray
        ``(n, H)`` rank-flip factor of each case and hypothesis (see the module docstring).
    flips_to : numpy.ndarray
        ``(n, H)`` index of the hypothesis that leads just beyond the factor (-1 when none).
    """

    probabilities: np.ndarray
    clamped: np.ndarray
    factors: np.ndarray
    flips_to: np.ndarray

    def tilted(self, cause: int, factor: float) -> np.ndarray:
        """``(n, H)`` posteriors with hypothesis ``cause``'s prior odds multiplied by ``factor``."""
        return tilted_posteriors(self.probabilities, self.clamped[:, cause, :], cause, factor)


def tilted_posteriors(probabilities: np.ndarray, clamped: np.ndarray, cause: int, factor: float | np.ndarray) -> np.ndarray:
    """Posteriors after multiplying the prior odds of hypothesis ``cause`` by ``factor`` (closed form).

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``(n, H)`` posteriors.
    clamped : numpy.ndarray
        ``(n, H)``: ``P(h | cause, e)`` per case (NaN rows are returned unchanged).
    cause : int
    factor : float or numpy.ndarray
        One factor, or one per case.
    """
    q = probabilities[:, cause][:, None]
    f = np.broadcast_to(np.asarray(factor, dtype=float), (len(probabilities),))[:, None]
    out = (probabilities + (f - 1.0) * q * clamped) / (1.0 + (f - 1.0) * q)
    keep = np.isnan(clamped).any(axis=1)
    out[keep] = probabilities[keep]
    return out


def leader(matrix: np.ndarray) -> np.ndarray:
    """Index of the first maximum of each row: the top-1 as the engine orders ties."""
    return np.argmax(matrix == matrix.max(axis=1, keepdims=True), axis=1)  # first maximum: stable order


def flip_analysis(model: Model, evidence: Sequence[Mapping[str, str]], probabilities: np.ndarray, labels: Sequence[str]) -> FlipAnalysis:
    """Rank-flip factors of every case and hypothesis (one batched engine call).

    Parameters
    ----------
    model : Model
    evidence : sequence of mapping
        Each case's evidence (the presenting complaint is added).
    probabilities : numpy.ndarray
        ``(n, H)`` posteriors of the cases under ``model`` (from :func:`bayesdx.score`).
    labels : sequence of str
        Case ids.
    """
    n, n_h = probabilities.shape
    hyps = model.hypotheses
    observed = [with_presenting(model, ev) for ev in evidence]
    rows = [(k, j) for k, base in enumerate(observed) for j, h in enumerate(hyps) if h.node not in base and 0.0 < probabilities[k, j] < 1.0]
    clamped = np.full((n, n_h, n_h), np.nan)
    if rows:
        ks, js = np.array(rows).T
        # one engine row per (case, hypothesis), the hypothesis clamped by a row likelihood: the case's own
        # evidence (and its Quickscore terms) is entered once per case and shared by its rows
        clamps: dict[str, np.ndarray] = {}
        for j, h in enumerate(hyps):
            at = js == j
            if not at.any():
                continue
            states = model.states[h.node]
            arr = clamps.setdefault(h.node, np.ones((len(rows), len(states))))
            onehot = np.zeros(len(states))
            onehot[states.index(h.state)] = 1.0
            arr[at] = onehot
        post = model.engine.posterior(likelihoods_from_evidence(model, observed), model.causes, n, row_case=ks, row_likelihoods=clamps)
        if post.impossible.any():
            raise ImpossibleEvidenceError([f"{labels[ks[r]]} with {hyps[js[r]].id} present" for r in np.flatnonzero(post.impossible)])
        clamped[ks, js] = hypothesis_matrix(model, post.marginals, len(rows))
    factors = np.full((n, n_h), np.nan)
    flips_to = np.full((n, n_h), -1, dtype=int)
    top = leader(probabilities)
    for k in range(n):
        t = top[k]
        p = probabilities[k]
        for j in range(n_h):
            a = clamped[k, j]
            if np.isnan(a).any():
                continue
            q = p[j]
            slope = q * (a - a[t])  # d(g_h - g_t)/df with g_h(f) = p_h + (f - 1) q a_h
            gap = p[t] - p  # >= 0: t leads at f = 1
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = 1.0 - gap / -slope  # where g_h = g_t
            others = np.arange(n_h) != t
            if j != t:
                ok = others & (slope > 0)
                f = float(np.min(cross[ok])) if ok.any() else np.inf
            else:
                ok = others & (slope < 0) & (cross > 0)
                f = float(np.max(cross[ok])) if ok.any() else 0.0
            factors[k, j] = f
            if 0.0 < f < np.inf:
                beyond = f * (1 + _BEYOND) if j != t else f * (1 - _BEYOND)
                g = p + (beyond - 1.0) * q * a
                flips_to[k, j] = int(leader(g[None, :])[0])
    return FlipAnalysis(probabilities, clamped, factors, flips_to)


def sensitivity_frames(
    setting: str, model: Model, case_ids: Sequence[str], truth: np.ndarray, flips: FlipAnalysis
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-case-and-cause table and the per-cause summary of one setting."""
    ids = [h.id for h in model.hypotheses]
    n, n_h = flips.factors.shape
    top = leader(flips.probabilities)
    per_case = pd.DataFrame(
        {
            "priors": setting,
            "case_id": np.repeat(np.asarray(case_ids, dtype=object), n_h),
            "cause": np.tile(np.asarray(ids, dtype=object), n),
            "posterior": flips.probabilities.ravel(),
            "top1": (np.arange(n_h)[None, :] == top[:, None]).ravel(),
            "factor": flips.factors.ravel(),
            "flips_to": [ids[i] if i >= 0 else None for i in flips.flips_to.ravel()],
        }
    )
    base_acc = float(np.mean(top == truth))
    rows = []
    for j, cid in enumerate(ids):
        f = flips.factors[:, j]
        lead = top == j
        varied = ~np.isnan(f)
        down = f[lead & varied]
        up = f[~lead & varied]
        within = varied & (f >= 0.1) & (f <= 10.0)
        acc = {}
        for factor in (0.1, 10.0):
            acc[factor] = float(np.mean(leader(flips.tilted(j, factor)) == truth))
        rows.append(
            {
                "priors": setting,
                "cause": cid,
                "cases_leading": int(lead.sum()),
                "median_factor_down": float(np.median(down)) if down.size else np.nan,
                "median_factor_up": float(np.median(up)) if up.size else np.nan,
                "share_flip_within_10": float(within.sum() / n),
                "top1_at_0.1": acc[0.1],
                "top1": base_acc,
                "top1_at_10": acc[10.0],
            }
        )
    return per_case, pd.DataFrame(rows)


def _perturbed_blocks(model: Model, evidence: Sequence[Mapping[str, str]], log_factors: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(first draw, (d, n, H) posteriors)`` per block of draws; one engine call per block."""
    n = len(evidence)
    observed = [with_presenting(model, ev) for ev in evidence]
    base_lik = likelihoods_from_evidence(model, observed)
    hyps = model.hypotheses
    per_call = max(1, ROWS_PER_CALL // max(n, 1))
    for start in range(0, len(log_factors), per_call):
        block = log_factors[start : start + per_call]
        d = len(block)
        # row = draw * n + case; the tilts are row likelihoods, so each case's evidence is entered once
        tilts: dict[str, np.ndarray] = {}
        for j, h in enumerate(hyps):
            states = model.states[h.node]
            arr = tilts.setdefault(h.node, np.ones((d * n, len(states))))
            arr[:, states.index(h.state)] *= np.repeat(np.exp(block[:, j]), n)
        post = model.engine.posterior(base_lik, model.causes, n, row_case=np.tile(np.arange(n), d), row_likelihoods=tilts)
        if post.impossible.any():
            raise ImpossibleEvidenceError(sorted({int(r % n) for r in np.flatnonzero(post.impossible)}))
        yield start, hypothesis_matrix(model, post.marginals, d * n).reshape(d, n, len(hyps))


def perturbed_posteriors(model: Model, evidence: Sequence[Mapping[str, str]], log_factors: np.ndarray) -> np.ndarray:
    """``(n_draws, n_cases, H)`` posteriors with each hypothesis's prior log-odds shifted by ``log_factors``.

    Parameters
    ----------
    model : Model
    evidence : sequence of mapping
        Each case's evidence (the presenting complaint is added).
    log_factors : numpy.ndarray
        ``(n_draws, H)``: draw ``d`` multiplies the prior odds of hypothesis ``j`` by ``exp(log_factors[d, j])``.
    """
    out = np.empty((len(log_factors), len(evidence), len(model.hypotheses)))
    for start, block in _perturbed_blocks(model, evidence, np.asarray(log_factors, dtype=float)):
        out[start : start + len(block)] = block
    return out


def prior_monte_carlo(
    model: Model,
    evidence: Sequence[Mapping[str, str]],
    log_factors: np.ndarray,
    truth: np.ndarray,
    top1: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-1 of every case under every draw of perturbed priors, on the batched engine.

    Parameters
    ----------
    model : Model
    evidence : sequence of mapping
        Each case's evidence (the presenting complaint is added).
    log_factors : numpy.ndarray
        ``(n_draws, H)`` log-odds perturbation of each hypothesis in each draw.
    truth : numpy.ndarray
        Column index of each case's true cause.
    top1 : numpy.ndarray
        Column index of each case's unperturbed leading hypothesis.
    progress : callable, optional
        Called with ``(draws done, draws)`` after each block of draws.

    Returns
    -------
    stability : numpy.ndarray
        ``(n,)`` share of draws in which each case's unperturbed top-1 stays first.
    true_top1 : numpy.ndarray
        ``(n,)`` share of draws in which the true cause is first.
    accuracy : numpy.ndarray
        ``(n_draws,)`` top-1 accuracy of each draw.
    """
    n = len(evidence)
    n_draws = len(log_factors)
    keep = np.zeros(n)
    true_top = np.zeros(n)
    accuracy = np.zeros(n_draws)
    for start, block in _perturbed_blocks(model, evidence, np.asarray(log_factors, dtype=float)):
        d = len(block)
        leaders = leader(block.reshape(d * n, -1)).reshape(d, n)
        keep += (leaders == top1[None, :]).sum(axis=0)
        true_top += (leaders == truth[None, :]).sum(axis=0)
        accuracy[start : start + d] = (leaders == truth[None, :]).mean(axis=1)
        if progress is not None:
            progress(start + d, n_draws)
    return keep / n_draws, true_top / n_draws, accuracy
