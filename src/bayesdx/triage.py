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

A ``[referral]`` section maps causes to contacts::

    [referral]
    default = "family doctor"
    contacts = { als = "neurologist", stress_anxiety = "psychiatrist" }

The referral is the contact with the largest summed posterior over the pursued hypotheses (the default
contact for hypotheses without one); ties go to the contact listed first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

    def fires(self, evidence: Mapping[str, str], posterior: Mapping[str, float]) -> bool:
        if any(evidence.get(var) not in states for var, states in self.when.items()):
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

    def assess(self, evidence: Mapping[str, str], posterior: Mapping[str, float]) -> tuple[str, tuple[TriageRule, ...]]:
        """The triage level of a case and the rules that decided it (those of that level that fired)."""
        fired = [r for r in self.rules if r.fires(evidence, posterior)]
        if not fired:
            return self.default, ()
        level = max((r.level for r in fired), key=self.levels.index)
        return level, tuple(r for r in fired if r.level == level)

    @classmethod
    def parse(cls, path: Path, raw: Any, states: Mapping[str, Sequence[str]], hypotheses: Sequence[str]) -> TriagePolicy:
        if not isinstance(raw, dict):
            raise ModelFileError(path, "triage", f"must be a table, got {raw!r}", raw)
        levels = raw.get("levels")
        if not isinstance(levels, list) or len(levels) < 2 or not all(isinstance(x, str) for x in levels):
            raise ModelFileError(path, "triage.levels", f"must list at least two level names, lowest first; got {levels!r}", levels)
        default = raw.get("default")
        if default not in levels:
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
                        raise ModelFileError(path, f"{key}.when.{var}", f"{v!r} is not a state of {var!r}; valid states are {list(states[var])!r}", v)
                when[var] = vals
            causes = tuple(r.get("causes", ()))
            for c in causes:
                if c not in hypotheses:
                    raise ModelFileError(path, f"{key}.causes", f"{c!r} is not a cause hypothesis of the model", c)
            threshold = r.get("posterior_at_least")
            if (threshold is None) != (not causes):
                raise ModelFileError(path, key, "'causes' and 'posterior_at_least' go together", r)
            if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1):
                raise ModelFileError(path, f"{key}.posterior_at_least", f"must be a probability, got {threshold!r}", threshold)
            if not when and threshold is None:
                raise ModelFileError(path, key, "needs a 'when' condition or 'causes' with 'posterior_at_least'", r)
            rules.append(TriageRule(r["level"], when, causes, None if threshold is None else float(threshold), str(r["basis"])))
        return cls(tuple(levels), default, tuple(rules))


@dataclass(frozen=True)
class ReferralPolicy:
    """Which contact (family doctor, neurologist, ...) each cause hypothesis points to."""

    default: str
    contacts: Mapping[str, str]

    def refer(self, posterior: Mapping[str, float], pursued: Sequence[str]) -> str:
        mass: dict[str, float] = {}
        for h in pursued:
            contact = self.contacts.get(h, self.default)
            mass[contact] = mass.get(contact, 0.0) + posterior.get(h, 0.0)
        if not mass:
            return self.default
        listed = list(dict.fromkeys([*self.contacts.values(), self.default]))
        return max(mass, key=lambda c: (mass[c], -listed.index(c)))  # ties: the contact listed first wins

    @classmethod
    def parse(cls, path: Path, raw: Any, hypotheses: Sequence[str]) -> ReferralPolicy:
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
        return cls(raw["default"], dict(contacts))
