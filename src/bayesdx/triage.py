"""Triage and referral from rules declared in the model file.

A model file may carry a ``[triage]`` section::

    [triage]
    levels = ["self_care", "routine_appointment", "prompt_specialist", "emergency"]   # lowest first
    default = "routine_appointment"          # when no rule fires
    [[triage.rules]]
    level = "emergency"
    when = { loss_of_consciousness = "yes" }   # every listed variable observed in (one of) the state(s)
    basis = "article: ..."
    [[triage.rules]]
    level = "prompt_specialist"
    causes = ["als", "multiple_sclerosis"]   # and/or: the summed posterior of these hypotheses ...
    posterior_at_least = 0.3                 # ... reaches this
    basis = "..."

The triage level is the highest level of the rules that fire, or ``default`` when none fires. Because the
highest level wins, a red-flag rule can never be overruled by a lower one.

A rule may be guarded (typically a self-care rule)::

    [[triage.rules]]
    level = "self_care"
    when = { frequency = "once" }
    explains = ["recent_overexertion", "emotional_stress"]   # the positive findings it accounts for
    basis = "..."

A guarded rule fires only when every *positive* observation of the case (a finding or test away from its
normal state, a cause known to be present; the presenting complaint aside) is one of its ``when`` variables
or listed in ``explains``: self care never wins against a finding it does not explain. A rule may also name
``refer = "neurologist"``: the contact advised when it decides the level.

A ``[referral]`` section maps causes to contacts::

    [referral]
    default = "family doctor"
    contacts = { als = "neurologist", stress_anxiety = "psychiatrist" }

The referral follows the triage first, then the causes (the first step that applies decides):

1. ``by_level``: a contact for a triage level (``emergency = "emergency department"``);
2. the ``refer`` of a rule that decided the level (the first listed);
3. ``[referral.serious]``: ``causes``, ``score_at_least`` and ``contact``: when the summed ranking score of
   these causes reaches the threshold (serious neurological disease -> neurologist);
4. the contact with the largest summed ranking score over the pursued hypotheses (the default contact for
   hypotheses without one; ties go to the contact listed first), leaving out the contacts listed in
   ``not_after_red_flag`` when a rule at or above ``red_flag_level`` fired (psychosomatic referral only when
   no red flag fired).

:meth:`ReferralPolicy.decide` returns the contact and the reason, which results carry as ``referral_reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ModelFileError

__all__ = ["ReferralPolicy", "TriagePolicy", "TriageRule"]


@dataclass(frozen=True)
class TriageRule:
    """One triage rule: a level and the conditions that raise a case to it."""

    level: str
    when: Mapping[str, tuple[str, ...]]
    causes: tuple[str, ...]
    posterior_at_least: float | None
    basis: str
    explains: tuple[str, ...] | None = None
    refer: str | None = None

    def fires(self, evidence: Mapping[str, str], posterior: Mapping[str, float], positive: frozenset[str] = frozenset()) -> bool:
        """Whether the rule fires; ``positive`` holds the case's positive observations (for the guard)."""
        if any(evidence.get(var) not in states for var, states in self.when.items()):
            return False
        if self.explains is not None and not positive <= set(self.when) | set(self.explains):
            return False
        if self.posterior_at_least is not None:
            return sum(posterior.get(c, 0.0) for c in self.causes) >= self.posterior_at_least
        return True


@dataclass(frozen=True)
class TriagePolicy:
    """The triage levels, the default level and the rules of a model."""

    levels: tuple[str, ...]
    default: str
    rules: tuple[TriageRule, ...]
    normals: Mapping[str, str | None] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()

    def positive(self, evidence: Mapping[str, str]) -> frozenset[str]:
        """The case's positive observations: variables observed away from their normal state (``ignored`` aside)."""
        return frozenset(
            v for v, s in evidence.items() if v not in self.ignored and self.normals.get(v) is not None and s != self.normals[v]
        )

    def fired(self, evidence: Mapping[str, str], posterior: Mapping[str, float]) -> tuple[TriageRule, ...]:
        """Every rule that fires for the case, in model order."""
        positive = self.positive(evidence)
        return tuple(r for r in self.rules if r.fires(evidence, posterior, positive))

    def assess(self, evidence: Mapping[str, str], posterior: Mapping[str, float]) -> tuple[str, tuple[TriageRule, ...]]:
        """The triage level of a case and the rules that decided it (those of that level that fired)."""
        return self.decide(self.fired(evidence, posterior))

    def decide(self, fired: Sequence[TriageRule]) -> tuple[str, tuple[TriageRule, ...]]:
        """The level set by rules that fired (the highest; ``default`` when none) and the rules of that level."""
        if not fired:
            return self.default, ()
        level = max((r.level for r in fired), key=self.levels.index)
        return level, tuple(r for r in fired if r.level == level)

    @classmethod
    def parse(
        cls,
        path: Path,
        raw: Any,
        states: Mapping[str, Sequence[str]],
        hypotheses: Sequence[str],
        normals: Mapping[str, str | None] | None = None,
        ignored: Sequence[str] = (),
        aliases: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    ) -> TriagePolicy:
        """Parse ``[triage]``. ``states`` holds every accepted answer (states and aliases) per node; an alias
        in a rule's ``when`` also matches each of its states, and an alias answer matches a rule that lists
        the alias or all of its states."""
        if not isinstance(raw, dict):
            raise ModelFileError(path, "triage", f"must be a table, got {raw!r}", raw)
        levels = raw.get("levels")
        if not isinstance(levels, list) or len(levels) < 2 or not all(isinstance(x, str) for x in levels):
            raise ModelFileError(path, "triage.levels", f"must list at least two level names, lowest first; got {levels!r}", levels)
        default = raw.get("default")
        if not isinstance(default, str) or default not in levels:
            raise ModelFileError(path, "triage.default", f"must be one of {levels!r}, got {default!r}", default)
        rules = []
        for k, r in enumerate(raw.get("rules", [])):
            key = f"triage.rules[{k}]"
            if not isinstance(r, dict):
                raise ModelFileError(path, key, f"must be a table, got {r!r}", r)
            if r.get("level") not in levels:
                raise ModelFileError(path, f"{key}.level", f"must be one of {levels!r}, got {r.get('level')!r}", r.get("level"))
            if not r.get("basis"):
                raise ModelFileError(path, f"{key}.basis", "is missing: every triage rule cites its sentence or clinical source")
            when: dict[str, tuple[str, ...]] = {}
            for var, value in (r.get("when") or {}).items():
                if var not in states:
                    raise ModelFileError(path, f"{key}.when.{var}", f"refers to unknown node {var!r}", var)
                vals = (value,) if isinstance(value, str) else tuple(value)
                for v in vals:
                    if v not in states[var]:
                        raise ModelFileError(
                            path, f"{key}.when.{var}", f"{v!r} is not a state of {var!r}; valid states are {list(states[var])!r}", v
                        )
                node_aliases = (aliases or {}).get(var, {})
                expanded = list(vals)
                for v in vals:  # an alias stands for its states
                    expanded += [x for x in node_aliases.get(v, ()) if x not in expanded]
                for alias, members in node_aliases.items():  # all of an alias's states: the alias answer too
                    if alias not in expanded and all(x in expanded for x in members):
                        expanded.append(alias)
                when[var] = tuple(expanded)
            causes = tuple(r.get("causes", ()))
            for c in causes:
                if c not in hypotheses:
                    raise ModelFileError(path, f"{key}.causes", f"{c!r} is not a cause hypothesis of the model", c)
            threshold = r.get("posterior_at_least")
            if (threshold is None) != (not causes):
                raise ModelFileError(path, key, "'causes' and 'posterior_at_least' go together", r)
            if threshold is not None and (
                isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1
            ):
                raise ModelFileError(path, f"{key}.posterior_at_least", f"must be a probability, got {threshold!r}", threshold)
            if not when and threshold is None:
                raise ModelFileError(path, key, "needs a 'when' condition or 'causes' with 'posterior_at_least'", r)
            explains = r.get("explains")
            if explains is not None:
                if not isinstance(explains, list) or not all(isinstance(x, str) for x in explains):
                    raise ModelFileError(path, f"{key}.explains", f"must list node ids, got {explains!r}", explains)
                for var in explains:
                    if var not in states:
                        raise ModelFileError(path, f"{key}.explains", f"refers to unknown node {var!r}", var)
            refer = r.get("refer")
            if refer is not None and not isinstance(refer, str):
                raise ModelFileError(path, f"{key}.refer", f"must be a contact name, got {refer!r}", refer)
            rules.append(
                TriageRule(
                    r["level"],
                    when,
                    causes,
                    None if threshold is None else float(threshold),
                    str(r["basis"]),
                    None if explains is None else tuple(explains),
                    refer,
                )
            )
        return cls(tuple(levels), default, tuple(rules), dict(normals or {}), frozenset(ignored))


@dataclass(frozen=True)
class ReferralPolicy:
    """Which contact (family doctor, neurologist, ...) each cause hypothesis points to."""

    default: str
    contacts: Mapping[str, str]
    by_level: Mapping[str, str] = field(default_factory=dict)
    serious_causes: tuple[str, ...] = ()
    serious_at_least: float = 1.0
    serious_contact: str | None = None
    red_flag_level: str | None = None
    not_after_red_flag: tuple[str, ...] = ()

    def refer(self, scores: Mapping[str, float], pursued: Sequence[str]) -> str:
        """The contact with the largest summed score over ``pursued`` (step 4 of the module's list alone)."""
        return self.decide(scores, pursued)[0]

    def decide(
        self,
        scores: Mapping[str, float],
        pursued: Sequence[str],
        *,
        level: str | None = None,
        decided: Sequence[TriageRule] = (),
        red_flag: bool = False,
    ) -> tuple[str, str]:
        """The contact for a case and why.

        Parameters
        ----------
        scores : mapping of str to float
            Each hypothesis's ranking score (posterior or counterfactual score).
        pursued : sequence of str
            The hypotheses the referral weighs.
        level : str, optional
            The case's triage level.
        decided : sequence of TriageRule
            The rules that decided the level.
        red_flag : bool, default False
            Whether a rule at or above ``red_flag_level`` fired.
        """
        if level is not None and level in self.by_level:
            return self.by_level[level], f"triage level {level}"
        for rule in decided:
            if rule.refer is not None:
                return rule.refer, f"triage rule: {rule.basis}"
        if self.serious_contact is not None and self.serious_causes:
            total = sum(scores.get(c, 0.0) for c in self.serious_causes)
            if total >= self.serious_at_least:
                return self.serious_contact, f"serious causes reach {total:.2f} (at least {self.serious_at_least:g})"
        excluded = set(self.not_after_red_flag) if red_flag else set()
        mass: dict[str, float] = {}
        for h in pursued:
            contact = self.contacts.get(h, self.default)
            if contact not in excluded:
                mass[contact] = mass.get(contact, 0.0) + scores.get(h, 0.0)
        if not mass:
            return self.default, "default contact"
        listed = list(dict.fromkeys([*self.contacts.values(), self.default]))
        best = max(mass, key=lambda c: (mass[c], -listed.index(c)))  # ties: the contact listed first wins
        return best, f"leading causes point to {best}" + (" (red flag: no psychosomatic referral)" if excluded else "")

    @classmethod
    def parse(cls, path: Path, raw: Any, hypotheses: Sequence[str], levels: Sequence[str] | None = None) -> ReferralPolicy:
        if not isinstance(raw, dict) or not isinstance(raw.get("default"), str):
            raise ModelFileError(path, "referral.default", "must name the default contact", raw)
        contacts = raw.get("contacts", {})
        if not isinstance(contacts, dict):
            raise ModelFileError(path, "referral.contacts", f"must be a table of cause = contact, got {contacts!r}", contacts)
        for c, contact in contacts.items():
            if c not in hypotheses:
                raise ModelFileError(path, f"referral.contacts.{c}", f"{c!r} is not a cause hypothesis of the model", c)
            if not isinstance(contact, str):
                raise ModelFileError(path, f"referral.contacts.{c}", f"must be a contact name, got {contact!r}", contact)
        by_level = raw.get("by_level", {})
        if not isinstance(by_level, dict) or not all(isinstance(v, str) for v in by_level.values()):
            raise ModelFileError(path, "referral.by_level", f"must be a table of level = contact, got {by_level!r}", by_level)
        if levels is not None:
            for lv in by_level:
                if lv not in levels:
                    raise ModelFileError(
                        path, f"referral.by_level.{lv}", f"{lv!r} is not a triage level; valid levels are {list(levels)!r}", lv
                    )
        serious = raw.get("serious", {})
        if not isinstance(serious, dict):
            raise ModelFileError(path, "referral.serious", f"must be a table, got {serious!r}", serious)
        causes = tuple(serious.get("causes", ()))
        for c in causes:
            if c not in hypotheses:
                raise ModelFileError(path, "referral.serious.causes", f"{c!r} is not a cause hypothesis of the model", c)
        at_least = serious.get("score_at_least", 1.0)
        if isinstance(at_least, bool) or not isinstance(at_least, (int, float)) or not 0 <= at_least <= 1:
            raise ModelFileError(path, "referral.serious.score_at_least", f"must be a probability, got {at_least!r}", at_least)
        contact = serious.get("contact")
        if causes and not isinstance(contact, str):
            raise ModelFileError(path, "referral.serious.contact", f"must name a contact, got {contact!r}", contact)
        red = raw.get("red_flag_level")
        if red is not None and (levels is None or red not in levels):
            raise ModelFileError(path, "referral.red_flag_level", f"must be a triage level, got {red!r}", red)
        not_after = raw.get("not_after_red_flag", [])
        if not isinstance(not_after, list) or not all(isinstance(x, str) for x in not_after):
            raise ModelFileError(path, "referral.not_after_red_flag", f"must list contact names, got {not_after!r}", not_after)
        return cls(
            raw["default"], dict(contacts), dict(by_level), causes, float(at_least), contact if causes else None, red, tuple(not_after)
        )
