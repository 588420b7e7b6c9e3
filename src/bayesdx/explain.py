"""Why a cause ranks where it does: the evidence for and against it.

The contribution of each observed item is its weight of evidence (Good 1950), the log-likelihood ratio it
adds given the items before it::

    w_k = ln P(e_k | h, e_1..e_{k-1}) / P(e_k | not h, e_1..e_{k-1})
        = logit P(h | e_1..e_k) - logit P(h | e_1..e_{k-1})

By the chain rule the contributions sum exactly to ``logit P(h | e) - logit P(h)``, the change from prior
to posterior log odds. Where items are conditionally independent given ``h`` the order does not matter;
otherwise it does, and the items are taken in the model's variable order (causes, then findings, then
tests, each in file order): what a clinician learns first. All prefixes are exact posteriors from one
batched engine call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .model import Model

__all__ = ["Contribution", "Explanation", "explain_cause"]


@dataclass(frozen=True)
class Contribution:
    """One observed item and the log-likelihood ratio (natural log) it adds for the cause."""

    variable: str
    state: str
    log_likelihood_ratio: float
    probability_before: float
    probability_after: float


@dataclass(frozen=True)
class Explanation:
    """Supporting and conflicting evidence for one cause hypothesis.

    Attributes
    ----------
    cause : str
    prior_probability, posterior_probability : float
    supporting, conflicting : tuple of Contribution
        Items with a positive (negative) log-likelihood ratio, strongest first. Items with ratio exactly 0
        are in neither.
    contributions : tuple of Contribution
        Every item in the order they were applied; their ratios sum to ``log_odds_change``.
    log_odds_change : float
        ``logit(posterior) - logit(prior)``, natural log (``inf``/``-inf`` when a probability is 0 or 1).
    """

    cause: str
    prior_probability: float
    posterior_probability: float
    contributions: tuple[Contribution, ...]
    log_odds_change: float

    @property
    def supporting(self) -> tuple[Contribution, ...]:
        return tuple(sorted((c for c in self.contributions if c.log_likelihood_ratio > 0), key=lambda c: -c.log_likelihood_ratio))

    @property
    def conflicting(self) -> tuple[Contribution, ...]:
        return tuple(sorted((c for c in self.contributions if c.log_likelihood_ratio < 0), key=lambda c: c.log_likelihood_ratio))

    def to_frame(self) -> pd.DataFrame:
        """Columns: ``variable``, ``state``, ``log_likelihood_ratio``, ``probability_before``, ``probability_after``."""
        import pandas as pd

        return pd.DataFrame(
            [(c.variable, c.state, c.log_likelihood_ratio, c.probability_before, c.probability_after) for c in self.contributions],
            columns=["variable", "state", "log_likelihood_ratio", "probability_before", "probability_after"],
        )

    def _repr_html_(self) -> str:
        """A notebook view: each observation's log-likelihood ratio, supporting in green, conflicting in red."""
        import html

        rows = "".join(
            f"<tr><td>{html.escape(c.variable)} = {html.escape(str(c.state))}</td>"
            f"<td style='color:{'#2a7a2a' if c.log_likelihood_ratio > 0 else '#a33'}'>{c.log_likelihood_ratio:+.3f}</td></tr>"
            for c in self.contributions
        )
        return (
            f"<div><p><b>{html.escape(self.cause)}</b>: prior {self.prior_probability:.4f} -> posterior "
            f"{self.posterior_probability:.4f} (log-odds change {self.log_odds_change:+.3f})</p>"
            f"<table><thead><tr><th>observation</th><th>log-likelihood ratio</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )

    def __repr__(self) -> str:
        sup = ", ".join(f"{c.variable}={c.state} ({c.log_likelihood_ratio:+.2f})" for c in self.supporting[:3])
        con = ", ".join(f"{c.variable}={c.state} ({c.log_likelihood_ratio:+.2f})" for c in self.conflicting[:3])
        return (
            f"<Explanation {self.cause}: {self.prior_probability:.3g} -> {self.posterior_probability:.3g}; "
            f"for: {sup or 'none'}; against: {con or 'none'}>"
        )


def _logit(p: float) -> float:
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    return math.log(p) - math.log1p(-p)


def explain_cause(model: Model, evidence: Mapping[str, str], cause: str) -> Explanation:
    """Weight of evidence of each observed item for ``cause`` (see the module docstring)."""
    from .evidence import likelihoods_from_evidence
    from .posteriors import posterior_matrix

    ids = [h.id for h in model.hypotheses]
    if cause not in ids:
        valid = ", ".join(repr(i) for i in ids)
        raise KeyError(f"{cause!r} is not a cause hypothesis of model {model.id!r}. Valid ids are {valid}.")
    col = ids.index(cause)
    order = [v for v in model.variables if v in evidence]
    prefixes = [{v: evidence[v] for v in order[:k]} for k in range(len(order) + 1)]
    matrix, _ = posterior_matrix(
        model, likelihoods_from_evidence(model, prefixes), len(prefixes), [f"evidence prefix {k}" for k in range(len(prefixes))]
    )
    p = np.asarray(matrix[:, col], dtype=float)
    items = []
    for k, v in enumerate(order, start=1):
        before, after = float(p[k - 1]), float(p[k])
        lb, la = _logit(before), _logit(after)
        llr = 0.0 if lb == la else la - lb
        items.append(Contribution(v, evidence[v], llr, before, after))
    return Explanation(
        cause,
        float(p[0]),
        float(p[-1]),
        tuple(items),
        _logit(float(p[-1])) - _logit(float(p[0])) if not (math.isinf(_logit(float(p[-1]))) and math.isinf(_logit(float(p[0])))) else 0.0,
    )
