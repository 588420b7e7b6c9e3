"""The next-step policy measured as a simulated consultation: accuracy against cumulative cost.

For each vignette the engine holds the consultation a user would hold with ``bayesdx interview``:

1. Start from the vignette's age group and sex (when it records them) and the model's presenting complaint.
2. Rank the causes with next steps (batched over all open cases, :func:`bayesdx.pipeline.iter_cases`: each result read and dropped).
   Record whether the vignette's cause is ranked first at the cost spent so far.
3. Stop at the stop rule (``Diagnosis.should_stop``), when no step not yet asked has positive value, or
   after ``max_steps``.
4. Otherwise take the best step not yet asked and pay its cost. The vignette answers it when it records
   it (a study, such as EMG with nerve conduction, reveals whichever of its tests the vignette records);
   otherwise the answer is "unknown" (as ``skip`` in an interview): the item stays unobserved and is not
   asked again. Go back to 2.

Per case this gives a step function: ranked first or not, as a function of the cost spent. The measures:

``policy_auc``
    The area under that function from 0 to ``BUDGET`` (a muscle biopsy's cost on the bundled model's scale),
    divided by ``BUDGET``: 1 for a case whose cause leads from the start, 0 for one whose cause never leads
    within the budget. Its mean over cases is the area under the accuracy-cost curve.
``cost_to_top1``
    The cost spent when the vignette's cause first leads (0 when it leads from the start); undefined for a
    case whose cause never leads (the share that does is ``policy_top1``).
``policy_top1``
    Whether the cause leads when the consultation ends.

The accuracy-cost curve itself (``accuracy_at(budgets)``) is the share of cases whose cause leads at each
budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evidence import likelihoods_from_evidence
from ..model import Model
from ..pipeline import iter_cases
from ..posteriors import with_presenting

__all__ = ["BUDGET", "CURVE_BUDGETS", "Consultations", "simulate_consultations"]

#: The cost up to which the area is taken: a muscle biopsy on the bundled model's scale.
BUDGET = 100.0
#: Budgets at which the accuracy-cost curve is tabulated.
CURVE_BUDGETS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0)
#: Demographics a consultation starts from (with the presenting complaint).
START = ("age_group", "sex")


@dataclass(frozen=True)
class Consultations:
    """Simulated consultations of many vignettes.

    Attributes
    ----------
    history : tuple of tuple of (float, bool)
        Per case, (cost spent, cause ranked first) after each round, starting at cost 0.
    asked : tuple of tuple of str
        Per case, the steps taken in order.
    """

    history: tuple[tuple[tuple[float, bool], ...], ...]
    asked: tuple[tuple[str, ...], ...]

    def accuracy_at(self, budgets: Sequence[float]) -> np.ndarray:
        """Share of cases whose cause leads after spending at most each budget."""
        out = np.zeros(len(budgets))
        for hist in self.history:
            for j, b in enumerate(budgets):
                out[j] += [ok for cost, ok in hist if cost <= b][-1]
        return out / max(1, len(self.history))

    def auc(self, budget: float = BUDGET) -> np.ndarray:
        """Per case, the share of ``[0, budget]`` during which the cause leads."""
        values = np.zeros(len(self.history))
        for k, hist in enumerate(self.history):
            area = 0.0
            for (cost, ok), nxt in zip(hist, [*hist[1:], (float("inf"), False)], strict=True):
                lo, hi = min(cost, budget), min(nxt[0], budget)
                area += ok * (hi - lo)
            values[k] = area / budget
        return values

    def cost_to_top1(self) -> np.ndarray:
        """Per case, the cost spent when the cause first leads (NaN if it never does)."""
        return np.array([next((cost for cost, ok in hist if ok), np.nan) for hist in self.history])

    def top1_final(self) -> np.ndarray:
        """Per case, whether the cause leads when the consultation ends."""
        return np.array([float(hist[-1][1]) for hist in self.history])

    def total_cost(self) -> np.ndarray:
        return np.array([hist[-1][0] for hist in self.history])

    def curve(self, budgets: Sequence[float] = CURVE_BUDGETS) -> pd.DataFrame:
        """The accuracy-cost curve as a table (``budget``, ``accuracy``)."""
        return pd.DataFrame({"budget": list(budgets), "accuracy": self.accuracy_at(budgets)})


def simulate_consultations(
    model: Model,
    evidence: Sequence[Mapping[str, str]],
    true_causes: Sequence[str],
    labels: Sequence[str],
    *,
    ranking: str | None = None,
    alpha: float | None = None,
    max_steps: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> Consultations:
    """Hold a simulated consultation on every vignette (see the module docstring).

    Parameters
    ----------
    model : Model
    evidence : sequence of mapping
        Each vignette's recorded evidence (its answers).
    true_causes : sequence of str
        Each vignette's cause (a hypothesis id).
    labels : sequence of str
        Case ids (named in errors).
    ranking, alpha
        As for :func:`bayesdx.rank_causes`.
    max_steps : int, default 30
        Steps at most per case.
    progress : callable, optional
        Called with ``(round, cases still open)`` as each round starts.
    """
    n = len(evidence)
    current = [{v: ev[v] for v in START if v in ev} for ev in evidence]
    asked: list[list[str]] = [[] for _ in range(n)]
    done: list[set[str]] = [set() for _ in range(n)]  # steps not to take again (asked, or done within a study)
    spent = np.zeros(n)
    history: list[list[tuple[float, bool]]] = [[] for _ in range(n)]
    open_cases = list(range(n))
    rounds = 0
    while open_cases:
        rounds += 1
        if progress is not None:
            progress(rounds, len(open_cases))
        observed = [with_presenting(model, current[k]) for k in open_cases]
        results = iter_cases(
            model,
            observed,
            likelihoods_from_evidence(model, observed),
            [labels[k] for k in open_cases],
            alpha=alpha,
            next_steps=True,
            ranking=ranking,
        )
        still_open = []
        for k, dx in zip(open_cases, results, strict=True):
            ok = dx.causes[0].id == true_causes[k]
            history[k].append((float(spent[k]), ok))
            if dx.should_stop:
                continue
            # an unknown answer changes nothing: the same analysis gives the next best step, at a cost
            for step in dx.next_steps:
                if len(asked[k]) >= max_steps or step.value <= 0:
                    break
                if step.id in asked[k] or step.id in done[k]:
                    continue
                asked[k].append(step.id)
                spent[k] += step.cost
                items = model.studies[step.id].tests if step.id in model.studies else (step.id,)
                # a study's tests are done with it, and a test done is not repeated inside a study
                done[k].update(items)
                done[k].update(sid for sid, st in model.studies.items() if step.id in st.tests)
                known = {v: evidence[k][v] for v in items if v in evidence[k]}
                if known:  # a study reveals whichever of its tests the vignette records
                    current[k].update(known)
                    still_open.append(k)
                    break
                history[k].append((float(spent[k]), ok))
        open_cases = still_open
    return Consultations(tuple(tuple(h) for h in history), tuple(tuple(a) for a in asked))
