"""Frozen result objects returned by :func:`bayesdx.rank_causes`."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .explain import Explanation
    from .model import Model
    from .model_spec import Hypothesis
    from .next_steps import NextStep

__all__ = ["CAVEAT", "Diagnosis", "RankedCause", "ReadOnlyDict"]

#: Printed with every result: bayesdx supports decisions; it does not diagnose.
CAVEAT = (
    "Decision support only, not a diagnosis: these probabilities come from a model whose priors were "
    "hand-set from one article and partly guessed; a clinician must judge the case."
)


class ReadOnlyDict(dict[str, Any]):
    """The mappings of a frozen result: a dict that refuses changes (a plain one could be changed in place, and the
    result would then show evidence it never used). It compares, pickles and copies as a dict, and hashes by its
    items."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("A result's mappings are read-only: they record what was computed. Copy one with dict(...) to change it.")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


#: Column order of :meth:`Diagnosis.to_frame`.
FRAME_COLUMNS = ("rank", "id", "node", "state", "label", "probability", "disablement", "expected_disablement", "prior_probability")


@dataclass(frozen=True)
class RankedCause:
    """One cause hypothesis with its posterior probability.

    Attributes
    ----------
    id : str
        The hypothesis id (the node id for a binary cause, ``"node=state"`` otherwise).
    node : str
        The cause node.
    state : str
        The node's state this hypothesis stands for.
    probability : float
        ``P(node = state | evidence)``, exact and unrounded.
    disablement : float or None
        Probability that curing this cause alone would stop the presenting complaint (twin network, exact;
        see :mod:`bayesdx.counterfactual`). None under ``ranking="posterior"``.
    expected_disablement : float or None
        Expected number of the case's positive findings that curing this cause alone would switch off.
        None under ``ranking="posterior"``.
    """

    id: str
    node: str
    state: str
    probability: float
    disablement: float | None = None
    expected_disablement: float | None = None

    @classmethod
    def _many(
        cls,
        hypotheses: Sequence[Hypothesis],
        order: Sequence[int],
        probability: Sequence[float],
        disablement: Sequence[float | None],
        expected: Sequence[float | None],
    ) -> tuple[RankedCause, ...]:
        """``RankedCause(h.id, h.node, h.state, probability[k], disablement[k], expected[k])`` with
        ``h = hypotheses[k]``, for each ``k`` of ``order``.

        The same objects as the constructor's, made without its per-field ``object.__setattr__`` (a frozen
        dataclass's ``__init__``): half the cost, which is a tenth of a single call on hailfinder's 65
        hypotheses.
        """
        new = object.__new__
        made = []
        for k in order:
            cause = new(cls)
            h = hypotheses[k]
            cause.__dict__.update(
                id=h.id,
                node=h.node,
                state=h.state,
                probability=probability[k],
                disablement=disablement[k],
                expected_disablement=expected[k],
            )
            made.append(cause)
        return tuple(made)

    def score(self, ranking: str) -> float:
        """The value this cause is ranked by under ``ranking``."""
        value = {"posterior": self.probability, "disablement": self.disablement, "expected_disablement": self.expected_disablement}.get(
            ranking
        )
        if value is None:
            raise ValueError(f"This result holds no {ranking!r} score; rank with ranking={ranking!r}.")
        return value


@dataclass(frozen=True)
class Diagnosis:
    """Ranked causes for one case, with what produced them.

    Attributes
    ----------
    causes : tuple of RankedCause
        Every cause hypothesis, best first by ``ranking`` (ties by posterior, then the model's order).
    evidence : mapping of str to str
        The evidence as used: validated state names, unobserved entries removed. Like every mapping of a
        result, read-only (:class:`ReadOnlyDict`).
    model_id, model_version, priors : str
        The model and prior setting that produced the result.
    log_evidence : float
        Natural log of the probability of the evidence under the model.
    ranking : str
        What ``causes`` are sorted by: ``"posterior"``, ``"disablement"`` or ``"expected_disablement"``
        (see :mod:`bayesdx.counterfactual`).
    prior_probabilities : mapping of str to float
        Each hypothesis's probability before any evidence.
    labels : mapping of str to str
        Human-readable labels of the cause nodes.
    next_steps : tuple of NextStep
        Every candidate question and test, best value first (empty when not computed).
    should_stop : bool or None
        The stop rule (see :mod:`bayesdx.next_steps`): no candidate has positive value, or no single step
        could change the leading cause or the set of the three leading causes. None when not computed.
    pursued : tuple of str
        The hypotheses whose uncertainty the next steps reduce.
    alpha : float or None
        The entropy-to-cost ratio used.
    triage : str or None
        The triage level from the model's rules (None when the model declares none).
    triage_reasons : tuple of str
        The sources of the rules that set the level (empty when the model's default applied).
    referral : str or None
        The medical contact advised: from the triage level, the rule that set it, or the leading causes
        (see :mod:`bayesdx.triage`).
    referral_reason : str or None
        Why that contact: the level, the rule's source, or the causes.
    caveat : str
        Decision support, not a diagnosis.
    """

    causes: tuple[RankedCause, ...]
    evidence: Mapping[str, str]
    model_id: str
    model_version: str
    priors: str
    log_evidence: float
    prior_probabilities: Mapping[str, float] = field(repr=False)
    labels: Mapping[str, str] = field(repr=False)
    ranking: str = "posterior"
    next_steps: tuple[NextStep, ...] = field(default=(), repr=False)
    should_stop: bool | None = None
    pursued: tuple[str, ...] = field(default=(), repr=False)
    alpha: float | None = field(default=None, repr=False)
    triage: str | None = None
    triage_reasons: tuple[str, ...] = field(default=(), repr=False)
    referral: str | None = None
    referral_reason: str | None = field(default=None, repr=False)
    model: InitVar[Model | None] = None
    caveat: str = field(default=CAVEAT, repr=False)

    def __post_init__(self, model: Model | None) -> None:
        for name in ("evidence", "prior_probabilities", "labels"):  # read-only, as the rest of a frozen result
            value = getattr(self, name)
            if type(value) is not ReadOnlyDict:
                object.__setattr__(self, name, ReadOnlyDict(value))
        # kept beside the fields, not as one, so that dataclasses.asdict and == see results only
        object.__setattr__(self, "_model", model)

    def source_model(self) -> Model | None:
        """The model that produced this result (None for results rebuilt without it)."""
        return self.__dict__.get("_model")

    @property
    def next_step(self) -> NextStep | None:
        """The best next step, or None when the stop rule holds (or next steps were not computed)."""
        if self.should_stop or not self.next_steps:
            return None
        return self.next_steps[0]

    def explain(self, cause: str) -> Explanation:
        """Supporting and conflicting evidence for the hypothesis ``cause``.

        Each observed item's contribution is the log-likelihood ratio (natural log) it adds given the items
        before it; the contributions sum exactly to the change from prior to posterior log odds. See
        :mod:`bayesdx.explain`.

        Raises
        ------
        KeyError
            If ``cause`` is not a hypothesis id.
        """
        from .explain import explain_cause

        model = self.source_model()
        if model is None:
            raise ValueError("This Diagnosis does not carry its model, so it cannot be explained.")
        return explain_cause(model, self.evidence, cause)

    def probability(self, cause: str) -> float:
        """Posterior probability of the hypothesis ``cause``.

        Raises
        ------
        KeyError
            If ``cause`` is not a hypothesis id of the model.
        """
        for c in self.causes:
            if c.id == cause:
                return c.probability
        valid = ", ".join(repr(c.id) for c in self.causes)
        raise KeyError(f"{cause!r} is not a cause hypothesis of this result. Valid ids are {valid}.")

    def rank(self, cause: str) -> int:
        """1-based rank of the hypothesis ``cause``."""
        for k, c in enumerate(self.causes, start=1):
            if c.id == cause:
                return k
        self.probability(cause)  # raises the KeyError with the valid ids
        raise AssertionError  # pragma: no cover

    def to_frame(self) -> pd.DataFrame:
        """One row per cause hypothesis, most probable first.

        Columns, in this order: ``rank``, ``id``, ``node``, ``state``, ``label``, ``probability``
        (posterior, unrounded), ``disablement`` and ``expected_disablement`` (counterfactual scores, NaN under
        the posterior ranking), ``prior_probability`` (before any evidence).
        """
        import pandas as pd

        rows = [
            (
                k,
                c.id,
                c.node,
                c.state,
                self.labels.get(c.node, c.node),
                c.probability,
                float("nan") if c.disablement is None else c.disablement,
                float("nan") if c.expected_disablement is None else c.expected_disablement,
                self.prior_probabilities.get(c.id, float("nan")),
            )
            for k, c in enumerate(self.causes, start=1)
        ]
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        frame.attrs["caveat"] = self.caveat
        return frame

    def __repr__(self) -> str:
        top = ", ".join(f"{c.id}={c.score(self.ranking):.3f}" for c in self.causes[:3])
        ev = len(self.evidence)
        step = f" | next: {self.next_step.id}" if self.next_step else (" | stop" if self.should_stop else "")
        triage = f" | triage: {self.triage}" if self.triage else ""
        return (
            f"<Diagnosis {top}{', ...' if len(self.causes) > 3 else ''} | {ev} observed{step}{triage} | "
            f"ranking={self.ranking} model={self.model_id} {self.model_version} priors={self.priors}>"
        )

    def _repr_html_(self) -> str:
        """A notebook view: the leading causes with labels, probability bars and the ranking's score, the
        triage with its reasons, the referral and why, and the next steps."""

        def bar(p: float) -> str:
            width = max(0.0, min(1.0, p)) * 100
            return f'<div style="background:#4a7ab7;height:0.8em;width:{width:.1f}%" title="{p:.4f}"></div>'

        score_head = "" if self.ranking == "posterior" else f"<th>{html.escape(self.ranking.replace('_', ' '))}</th>"
        rows = "".join(
            f"<tr><td>{k}</td><td>{html.escape(self.labels.get(c.node, c.node))} <small>({html.escape(c.id)})</small>"
            f"</td><td style='width:10em'>{bar(c.probability)}</td><td>{c.probability:.4f}</td>"
            + ("" if self.ranking == "posterior" else f"<td>{c.score(self.ranking):.4f}</td>")
            + "</tr>"
            for k, c in enumerate(self.causes[:10], start=1)
        )
        steps = "".join(
            f"<li>{html.escape(s.id)} ({html.escape(s.kind)}): value {s.value:.3f} = EIG {s.expected_information_gain:.3f}"
            f" - alpha x cost {s.cost:g}</li>"
            for s in self.next_steps[:5]
        )
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in self.triage_reasons)
        return (
            "<div><table><thead><tr><th>rank</th><th>cause</th><th></th><th>probability</th>"
            f"{score_head}</tr></thead><tbody>{rows}</tbody></table>"
            + (f"<p><b>Triage:</b> {html.escape(self.triage)}</p><ul>{reasons}</ul>" if self.triage else "")
            + (
                f"<p><b>Referral:</b> {html.escape(self.referral)} <small>({html.escape(self.referral_reason or '')})</small></p>"
                if self.referral
                else ""
            )
            + (f"<p><b>Next steps</b>{' (stop rule holds)' if self.should_stop else ''}:</p><ol>{steps}</ol>" if self.next_steps else "")
            + f"<p><small>{html.escape(self.caveat)} Model "
            f"{html.escape(self.model_id)} {html.escape(self.model_version)}, priors "
            f"{html.escape(self.priors)}.</small></p></div>"
        )

    def to_json(self, top_k: int | None = None, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON (strict: a non-finite number is written as null), with the ``top_k`` best
        causes only when given. ``kwargs`` go to :func:`json.dumps` (``indent=2``, say)."""
        import json

        def finite(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: finite(v) for k, v in value.items()}
            if isinstance(value, list):
                return [finite(v) for v in value]
            return value

        data = self.to_dict()
        if top_k is not None:
            from ._validation import check_positive_int

            check_positive_int("Diagnosis.to_json", "top_k", top_k)
            data["causes"] = data["causes"][:top_k]
        return json.dumps(finite(data), allow_nan=False, **kwargs)

    def _summary(self) -> dict[str, Any]:  # kept for callers of the earlier private name
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Everything the result holds, as plain Python values (the model is named, not included).

        Keys: ``ranking``, ``causes`` (id, node, state, label, probability, disablement,
        expected_disablement, prior_probability, best first), ``evidence``, ``model``, ``model_version``,
        ``priors``, ``log_evidence``, ``next_steps``, ``next_step``, ``should_stop``, ``pursued``, ``alpha``,
        ``triage``, ``triage_reasons``, ``referral``, ``referral_reason``, ``caveat``.
        """
        return {
            "ranking": self.ranking,
            "causes": [
                {
                    "id": c.id,
                    "node": c.node,
                    "state": c.state,
                    "label": self.labels.get(c.node, c.node),
                    "probability": c.probability,
                    "disablement": c.disablement,
                    "expected_disablement": c.expected_disablement,
                    "prior_probability": self.prior_probabilities.get(c.id),
                }
                for c in self.causes
            ],
            "evidence": dict(self.evidence),
            "model": self.model_id,
            "model_version": self.model_version,
            "priors": self.priors,
            "log_evidence": self.log_evidence,
            "next_steps": [
                {"id": s.id, "kind": s.kind, "expected_information_gain": s.expected_information_gain, "cost": s.cost, "value": s.value}
                for s in self.next_steps
            ],
            "next_step": self.next_step.id if self.next_step else None,
            "should_stop": self.should_stop,
            "pursued": list(self.pursued),
            "alpha": self.alpha,
            "triage": self.triage,
            "triage_reasons": list(self.triage_reasons),
            "referral": self.referral,
            "referral_reason": self.referral_reason,
            "caveat": self.caveat,
        }


# ``model`` is an init-only argument of Diagnosis (so that asdict and == see results only); read it back here.
Diagnosis.model = property(Diagnosis.source_model, doc="The model that produced this result (None if absent).")  # type: ignore[attr-defined]
