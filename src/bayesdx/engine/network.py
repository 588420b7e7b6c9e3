"""A Bayesian network as arrays (:class:`CompiledNetwork`), the decomposition of noisy CPDs and the result
of a batch (:class:`BatchPosterior`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["BatchPosterior", "CompiledNetwork", "Decomposition", "Lowered"]


@dataclass(frozen=True)
class CompiledNetwork:
    """A discrete Bayesian network as plain arrays.

    Attributes
    ----------
    variables : tuple of str
        Variable names in a fixed order.
    states : tuple of tuple of str
        State names of each variable.
    parents : tuple of tuple of int
        Parent positions of each variable.
    tables : tuple of numpy.ndarray
        ``tables[i]`` has axes ``(variable i, *parents[i])`` and holds ``P(variable | parents)``.
    decompositions : tuple of Decomposition or None, optional
        For noisy-OR / noisy-MAX variables, the same CPD as a sum of products over a hidden level index
        (see :class:`Decomposition`); the engine contracts these small factors instead of the table.
    """

    variables: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    parents: tuple[tuple[int, ...], ...]
    tables: tuple[np.ndarray, ...]
    decompositions: tuple[Decomposition | None, ...] | None = None

    @cached_property
    def cards(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.states)

    def index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.variables)}

    def ancestors(self, seeds: Sequence[int]) -> set[int]:
        """Positions of ``seeds`` and all their ancestors."""
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            v = stack.pop()
            if v not in seen:
                seen.add(v)
                stack.extend(self.parents[v])
        return seen

    @classmethod
    def from_pgmpy(cls, network: object) -> CompiledNetwork:
        """Build from a pgmpy ``DiscreteBayesianNetwork`` whose CPDs are ``TabularCPD`` objects.

        pgmpy accepts CPD columns that sum to 1 only within its own tolerance (hepar2's ``ggtp`` is off by
        1e-7). Each column is renormalised to sum to 1 exactly, so that an unobserved variable drops out
        of every computation whatever else is in the batch; a column off by more than 1e-6 is an error.
        """
        import networkx as nx

        order = list(nx.topological_sort(network))  # type: ignore[call-overload]
        cpds = {cpd.variable: cpd for cpd in network.get_cpds()}  # type: ignore[attr-defined]
        states = {v: tuple(str(s) for s in cpds[v].state_names[v]) for v in order}
        position = {v: i for i, v in enumerate(order)}
        parents, tables = [], []
        for v in order:
            cpd = cpds[v]
            axes = list(cpd.variables)
            values = np.asarray(cpd.values, dtype=float).reshape([len(cpd.state_names[a]) for a in axes])
            for k, a in enumerate(axes):  # align each axis with the variable's canonical state order
                given = tuple(str(s) for s in cpd.state_names[a])
                if given != states[a]:
                    values = np.take(values, [given.index(s) for s in states[a]], axis=k)
            sums = values.sum(axis=0, keepdims=True)
            if np.abs(sums - 1.0).max() > 1e-6:
                raise ValueError(
                    f"The CPD of {v!r} has a column that sums to {float(sums.flat[np.abs(sums - 1).argmax()])!r}, not 1; fix the network."
                )
            parents.append(tuple(position[a] for a in axes[1:]))
            tables.append(np.ascontiguousarray(values / sums))
        return cls(tuple(order), tuple(states[v] for v in order), tuple(parents), tuple(tables))


@dataclass(frozen=True)
class Decomposition:
    """A noisy-OR / noisy-MAX CPD as a sum over a hidden level index ``t`` (Diez and Galan 2003).

    With levels ordered from least to most, ``F(t) = L(t) * prod_i C_i(t, pa_i)`` is the probability
    that the child is at most at level ``t``, and ``P(child = level y | pa) = F(y) - F(y - 1)``. So

        P(child | pa) = sum_t W[t, child] * prod_i G_i[t, pa_i],
        W[t, state(t)] = L(t),  W[t, state(t + 1)] = -L(t),  G_i[t, s] = C_i(t, s).

    Each factor involves one parent, so the contraction stays small however many parents the child has,
    and it is exact (some entries of ``W`` are negative; the sum is the probability).

    Attributes
    ----------
    weights : numpy.ndarray
        ``W``, shape ``(levels, child states)``.
    factors : tuple of numpy.ndarray
        ``G_i``, shape ``(levels, parent i states)``, in the order of the variable's parents.
    """

    weights: np.ndarray
    factors: tuple[np.ndarray, ...]
    order: tuple[int, ...] = ()
    leak_cdf: np.ndarray | None = None

    @cached_property
    def trivial(self) -> np.ndarray:
        """Per level ``t``, whether every factor ``G_i[t]`` is all ones (the top level of a CDF): no likelihood."""
        out = np.ones(self.weights.shape[0], dtype=bool)
        for g in self.factors:
            out &= (g == 1.0).all(axis=1)
        return out

    @cached_property
    def positive(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The same CPD as a sum over a hidden index of non-negative terms only: ``(W+, (G+_i, ...))`` with
        ``P(child | pa) = sum_t W+[t, child] prod_i G+_i[t, pa_i]`` and every entry at least zero.

        The lowest level's probability ``F(0)`` is one product. Above it, ``F(y) - F(y - 1)`` with ``A_i =
        C_i(y) >= B_i = C_i(y - 1)`` (and the leak as a parent ``0`` with ``A_0 = L(y)``, ``B_0 = L(y - 1)``)
        telescopes into ``sum_m (A_m - B_m) prod_{i<m} B_i prod_{i>m} A_i``: one term per parent plus one for
        the leak (Heckerman and Breese 1996's sequential decomposition), so the sum never cancels. Every term is
        kept, also one that is zero, so that the number of terms (``1 + (levels - 1) (parents + 1)``) depends on
        the structure only, as a compiled program must; the first term is the lowest level's (as in
        ``weights``). Without the CDFs (``leak_cdf``), the signed decomposition itself.
        """
        if self.leak_cdf is None or not self.order:
            return self.weights, self.factors
        n_states = self.weights.shape[1]
        leak = self.leak_cdf
        weights: list[np.ndarray] = []
        factors: list[list[np.ndarray]] = [[] for _ in self.factors]

        def term(state: int, coefficient: float, rows: Sequence[np.ndarray]) -> None:
            w = np.zeros(n_states)
            w[state] = coefficient  # negative where a CDF falls: not nonnegative then
            weights.append(w)
            for i, r in enumerate(rows):
                factors[i].append(r)

        term(self.order[0], float(leak[0]), [g[0] for g in self.factors])  # first: the lowest level's
        for y in range(1, len(self.order)):
            above = [g[y] for g in self.factors]
            below = [g[y - 1] for g in self.factors]
            term(self.order[y], float(leak[y] - leak[y - 1]), above)
            for m in range(len(self.factors)):
                rows = [*below[:m], above[m] - below[m], *above[m + 1 :]]
                term(self.order[y], float(leak[y - 1]), rows)
        return np.array(weights), tuple(np.ascontiguousarray(np.array(f)) for f in factors)

    @cached_property
    def nonnegative(self) -> bool:
        """Whether :attr:`positive` has no negative entry (not so without CDFs, or with CDFs that fall)."""
        weights, factors = self.positive
        return bool((weights >= 0).all() and all((g >= 0).all() for g in factors))

    @classmethod
    def from_cdfs(cls, order: Sequence[int], leak_cdf: np.ndarray, parent_cdfs: Sequence[np.ndarray]) -> Decomposition:
        levels = len(order)
        weights = np.zeros((levels, levels))
        for t in range(levels):
            weights[t, order[t]] += leak_cdf[t]
            if t + 1 < levels:
                weights[t, order[t + 1]] -= leak_cdf[t]
        factors = tuple(np.ascontiguousarray(np.asarray(c, dtype=float).T) for c in parent_cdfs)
        return cls(weights, factors, tuple(order), np.asarray(leak_cdf, dtype=float))


@dataclass(frozen=True)
class Lowered:
    """Each case with one of its noisy findings observed at its lowest level instead, the rest unchanged.

    Computed with the case, at no contraction of its own. In Quickscore (see
    :func:`~bayesdx.engine.quickscore.expand`) a finding observed above its lowest level as two terms, one of
    which is its lowest level, splits each case's sum in two, and the part of that term is the case with the
    finding observed at the lowest level. In a sweep (see :mod:`~bayesdx.engine.sweep`) the finding's slot,
    held in state 0 to the end, is that case.

    Attributes
    ----------
    log_evidence : numpy.ndarray
        ``log P(v at its lowest level, e without v)`` per case; ``-inf`` where not ``available``.
    marginals : dict of str to numpy.ndarray
        The targets' posterior marginals given that evidence, ``(n_cases, n_states)``; NaN where not ``available``.
    available : numpy.ndarray of bool
        Where it was computed: the case entered the finding as signed terms, one of them its lowest level,
        and the partial sum met the error budget; or the case was swept, the finding's range starting just
        above its lowest level, and the lowered case is possible and clear of underflow. Elsewhere, ask the
        engine for the case with the finding's likelihood replaced.
    """

    log_evidence: np.ndarray
    marginals: dict[str, np.ndarray]
    available: np.ndarray

    @classmethod
    def unknown(cls, n_cases: int, targets: Mapping[str, int]) -> Lowered:
        """Nothing computed yet for ``n_cases`` cases: ``-inf``, NaN marginals (``targets``: name to states),
        none available; the engine's routes fill the arrays in place."""
        block = np.full((n_cases, sum(targets.values())), np.nan)  # one allocation: each target's columns a view
        ends = np.cumsum([0, *targets.values()]).tolist()
        return cls(
            np.full(n_cases, -np.inf),
            {name: block[:, ends[k] : ends[k + 1]] for k, name in enumerate(targets)},
            np.zeros(n_cases, dtype=bool),
        )


@dataclass(frozen=True)
class BatchPosterior:
    """Marginals of the requested variables for a batch of cases.

    Attributes
    ----------
    marginals : dict of str to numpy.ndarray
        ``marginals[v][n]`` is ``P(v | e_n)`` over the states of ``v``.
    log_evidence : numpy.ndarray
        ``log P(e_n)`` per case (``-inf`` where the evidence is impossible).
    impossible : numpy.ndarray of bool
        True for cases whose evidence has probability zero; their marginals are NaN.
    route : str
        How the engine computed the batch (:mod:`bayesdx.engine.engine`): ``"quickscore"`` (evidence on
        noisy leaves as terms; some cases may have been swept), ``"sweep"`` (every case swept,
        :mod:`bayesdx.engine.sweep`), ``"contraction"`` (one program), ``"universal"`` (the cached
        all-variable program of a small network), ``"patterns"`` (one program per pattern of observed
        variables) or ``"single target"`` (one case, one target, no program: :mod:`bayesdx.engine.single_target`).
    extended : numpy.ndarray of bool
        Per case (row): recomputed in extended precision because its Quickscore terms cancelled.
    own_contraction : numpy.ndarray of bool
        Per case (row): computed with its findings inside a contraction of its own (too many terms, or
        too much cancellation even in extended precision).
    lowered : dict of str to Lowered
        For the noisy findings asked as ``lower`` (see :meth:`~bayesdx.engine.InferenceEngine.posterior`), the
        cases with that finding observed at its lowest level instead, where the case's terms or its sweep give it.
    """

    marginals: dict[str, np.ndarray]
    log_evidence: np.ndarray
    impossible: np.ndarray
    route: str = "contraction"
    extended: np.ndarray | None = None
    own_contraction: np.ndarray | None = None
    lowered: dict[str, Lowered] = field(default_factory=dict)


def rows_at_lowest(net: CompiledNetwork, v: int, lam: np.ndarray) -> np.ndarray:
    """Rows whose likelihood for noisy variable ``v`` is one-hot at its lowest level."""
    decs = net.decompositions
    dec = decs[v] if decs is not None else None
    assert dec is not None  # only decomposed variables are asked
    lowest = int(np.argmax(dec.weights[0] > 0))  # the state of level 0 carries +L(0)
    onehot = np.zeros(lam.shape[1])
    onehot[lowest] = 1.0
    return (lam == onehot).all(axis=1)
