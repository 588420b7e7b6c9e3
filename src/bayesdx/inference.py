"""Exact batched inference on a discrete Bayesian network.

The engine answers many cases in one call. Evidence enters as per-case likelihood vectors
``lambda_X[n, x]`` (one-hot for an observed state, all ones when ``X`` is unobserved), so cases with any mix
of observed variables share one computation. For a batch of cases the probability of the evidence is the
tensor contraction

    Z[n] = sum over all states  prod_V P(V | pa(V)) * prod_X lambda_X[n, X],

restricted to the ancestors of the variables that matter (the others sum to one and are dropped). The
contraction follows a pairwise order found once per set of variables with ``opt_einsum`` and cached.

All marginals come from one forward and one backward pass: ``Z`` is linear in each ``lambda_X``, so
``lambda_X[n, x] * dZ[n]/dlambda_X[n, x] / Z[n] = P(X = x | e_n)`` (Darwiche 2003, "A differential
approach to inference in Bayesian networks"). Every intermediate table is rescaled per case by its largest
entry to avoid underflow; the scales are kept, so ``log Z`` is exact, and the backward pass uses the same
scales. A case whose evidence has probability zero is reported, never turned into NaN.

Evidence on noisy-OR / noisy-MAX leaves does not enter the contraction at all: each case is expanded into a
few signed product terms on the leaves' parents (Heckerman's Quickscore, generalised to noisy-MAX through
the decomposition of Diez and Galan), so a batch shares one contraction over the rest of the network
whatever findings its cases have. Cancellation between the terms is bounded per case and, where the bound
exceeds ``ERROR_BUDGET``, the case is recomputed in extended precision or with its findings inside the
contraction (see :meth:`InferenceEngine._expanded`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from threading import Lock

import numpy as np
import opt_einsum

from .exceptions import ModelTooLargeError

__all__ = ["BatchPosterior", "CompiledNetwork", "InferenceEngine"]

#: Largest intermediate table (entries per case) the engine will build.
MAX_ENTRIES_PER_CASE = 2**27
#: Memory budget, in float64 entries, for the tables of one chunk of cases (8 MiB: faster than larger chunks,
#: whose tables fall out of the cache).
CHUNK_BUDGET_ENTRIES = 2**20
#: Above this many entries per case, a batch is split by each case's pattern of observed variables.
SPLIT_ENTRIES = 2**13
#: Most signed terms a case may expand into (2**k for k positive binary findings); above, its own contraction.
MAX_TERMS = 2**12
#: A noisy finding observed above its lowest level, with at most this many parents the case does not
#: observe, enters as positive telescoped terms instead of two signed ones (see InferenceEngine._telescoped).
TELESCOPE_PARENTS = 2
#: Largest relative rounding error allowed for a case computed as a signed sum of terms, bounded by machine
#: epsilon times sum_r |term_r| * (50 + |log Z_r|) / |sum| (each term comes back from its log, log Z_r).
ERROR_BUDGET = 1e-10
#: Rows of expanded terms contracted together (bounds the memory of one block).
ROWS_PER_BLOCK = 2**16
#: Up to this many cases, a network without noisy CPDs uses one cached contraction carrying every variable
#: (when it is no larger than SPLIT_ENTRIES per case) instead of compiling one for the cases' own evidence.
SMALL_BATCH = 64
#: ... and has at most this many variables (compiling the all-variable program for munin's 1,041 took 0.4 s).
SMALL_NETWORK = 300
#: Without per-step rescaling, a case whose probability of evidence (likelihoods scaled to at most 1) comes out
#: below this is recomputed with rescaling: underflow can only have lost terms smaller than about 1e-308.
UNSCALED_FLOOR = 1e-200
#: Batch size assumed when searching for a contraction order.
_NOMINAL_BATCH = 1  # a larger value makes the optimizer multiply evidence-free CPDs into huge tables
_BATCH = -1  # index id of the batch axis
#: What a compiled contraction is for: (carried variables, decomposed variables, variables observed at their
#: lowest level in every case, variables observed in one state in every case).
ProgramKey = tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]


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
                    f"The CPD of {v!r} has a column that sums to {float(sums.flat[np.abs(sums - 1).argmax()])!r}, "
                    "not 1; fix the network."
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
    """

    marginals: dict[str, np.ndarray]
    log_evidence: np.ndarray
    impossible: np.ndarray


@dataclass(frozen=True)
class _Program:
    """A compiled contraction for one set of evidence-carrying variables."""

    operands: tuple[tuple[int, ...], ...]  # index ids per operand; CPD factors first, then lambdas
    sources: tuple[tuple[int, int, tuple[tuple[int, int], ...]], ...]  # per CPD operand: (variable,
    #   -1 table | 0 weights | k factor k-1 | -2 lowest-level weights | -(k+3) lowest-level factor k,
    #   ((axis, hard variable), ...) axes taken at each case's observed state: the operand is then per case)
    lambda_vars: tuple[int, ...]  # variable of each lambda operand, in operand order after the CPDs
    steps: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (input slots, output indices)
    entries_per_case: int  # total batched intermediate entries per case (memory)
    largest_per_case: int
    forward: tuple[tuple[tuple[int, ...], str, bool], ...] = ()  # per step: (input nodes, einsum spec, batched)
    backward: tuple[tuple[int, int, tuple[tuple[int, int, str, tuple[bool, ...] | None], ...]], ...] = ()
    # per step, last first: (step index, output node, ((child, other node or -1, spec, broadcast mask), ...))


def _tape(operands: Sequence[tuple[int, ...]], steps: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
          first_lambda: int) -> tuple[tuple, tuple]:
    """Einsum specs of the forward and backward passes, built once per program.

    Operands from ``first_lambda`` on are the likelihoods; the backward pass only follows nodes with a
    likelihood below them.
    """
    indices = list(operands)
    has_lambda = [k >= first_lambda for k in range(len(operands))]
    slot_nodes = list(range(len(operands)))
    forward = []
    step_inputs = []
    for contracted, out in steps:
        ins = tuple(slot_nodes[k] for k in contracted)
        has_lambda.append(any(has_lambda[i] for i in ins))
        for k in sorted(contracted, reverse=True):
            del slot_nodes[k]
        letters = _letters(*(indices[i] for i in ins), out)
        spec = _spec(letters, *(indices[i] for i in ins), out)
        forward.append((ins, spec, bool(out) and out[-1] == _BATCH))
        step_inputs.append(ins)
        indices.append(out)
        slot_nodes.append(len(indices) - 1)
    backward = []
    n_inputs = len(operands)
    for step in range(len(steps) - 1, -1, -1):
        node = n_inputs + step
        if not (indices[node] and indices[node][-1] == _BATCH):
            continue
        ins = step_inputs[step]
        plans = []
        for pos, child in enumerate(ins):
            target = indices[child]
            if not target or target[-1] != _BATCH or not has_lambda[child]:
                continue  # no lambda below this table
            other = ins[1 - pos] if len(ins) == 2 else -1
            io = indices[other] if other >= 0 else ()
            available = set(indices[node]) | set(io)
            kept = tuple(i for i in target if i in available)
            letters = _letters(indices[node], io, kept)
            spec = _spec(letters, indices[node], io, kept) if other >= 0 else _spec(letters, indices[node], kept)
            mask = None if len(kept) == len(target) else tuple(i in available for i in target)
            plans.append((child, other, spec, mask))
        backward.append((step, node, tuple(plans)))
    return tuple(forward), tuple(backward)


class ProgramCache:
    """Compiled contractions, shareable by the engines of networks with the same structure.

    A program depends only on the network's variables, cardinalities, parents and decompositions (never on
    the numbers in its tables), so the prior settings of one model file share one cache: each setting's
    engine reuses what another compiled.

    Parameters
    ----------
    optimize : str
        The contraction-order method the programs were compiled with.
    max_entries : int
        The engines' size limit (a program is compiled only under it).
    """

    def __init__(self, optimize: str = "elimination", max_entries: int = MAX_ENTRIES_PER_CASE) -> None:
        self.optimize = optimize
        self.max_entries = max_entries
        self.programs: OrderedDict[tuple[frozenset[int], ...], _Program] = OrderedDict()
        self.lock = Lock()


class InferenceEngine:
    """Exact batched posterior marginals for a :class:`CompiledNetwork`.

    Parameters
    ----------
    network : CompiledNetwork
    optimize : str, default "elimination"
        How the contraction order is found (once per set of evidence variables; cached).
        ``"elimination"`` eliminates one variable at a time, always the one whose merged table is
        smallest (the min-weight heuristic of variable elimination), and contracts the tables holding it
        smallest first; any ``opt_einsum`` optimizer name (``"greedy"``, ``"random-greedy"``, ...) is
        also accepted.
    max_entries : int, default 2**27
        The largest intermediate table, in entries per case, that the engine may build. Larger
        contractions raise :class:`~bayesdx.exceptions.ModelTooLargeError` before anything is allocated.
    programs : ProgramCache, optional
        A cache shared with engines of networks of the same structure (see :class:`ProgramCache`).
    """

    def __init__(self, network: CompiledNetwork, *, optimize: str = "elimination", max_entries: int = MAX_ENTRIES_PER_CASE,
                 programs: ProgramCache | None = None):
        self.network = network
        self.optimize = optimize
        self.max_entries = max_entries
        self._index = network.index()
        same = programs is not None and (programs.optimize, programs.max_entries) == (optimize, max_entries)
        shared = programs if same and programs is not None else ProgramCache(optimize, max_entries)
        self._programs = shared.programs
        self._lock = shared.lock
        decs = network.decompositions or (None,) * len(network.variables)
        self._decomposable = frozenset(v for v, d in enumerate(decs) if d is not None)
        self._has_children = frozenset(p for ps in network.parents for p in ps)
        self._too_large: set[tuple[frozenset[int], ...]] = set()
        self._small_network = len(network.variables) <= SMALL_NETWORK  # larger: the all-variable program costs more
        everything = frozenset(range(len(network.variables)))
        self._universal_key: ProgramKey = (everything, frozenset(), frozenset(), frozenset())

    # ------------------------------------------------------------------ public
    def posterior(
        self,
        likelihoods: Mapping[str, np.ndarray],
        targets: Sequence[str],
        n_cases: int,
        *,
        tables: Sequence[np.ndarray] | None = None,
        split: bool = True,
        expand: bool = True,
        dtype: type = np.float64,
        row_case: np.ndarray | None = None,
        row_likelihoods: Mapping[str, np.ndarray] | None = None,
    ) -> BatchPosterior:
        """Posterior marginals of ``targets`` for ``n_cases`` cases.

        Parameters
        ----------
        likelihoods : mapping of str to numpy.ndarray
            Per variable, an array of shape ``(n_cases, n_states)`` of non-negative likelihoods (one-hot for
            an observed state, ones for unobserved). Variables not listed are unobserved in every case.
        targets : sequence of str
            The variables whose marginals are wanted.
        n_cases : int
        tables : sequence of numpy.ndarray, optional
            Replacement CPD tables with the same shapes as ``network.tables`` (for example other priors);
            the contraction order is reused.
        split : bool, default True
            Split the batch by each case's pattern of observed variables when one contraction over all of
            them would build tables larger than ``SPLIT_ENTRIES`` per case.
        expand : bool, default True
            Enter evidence on noisy-OR / noisy-MAX leaves by expanding each case into signed terms
            (Quickscore, see :meth:`_expanded`), so that every case shares one contraction over the rest of
            the network whatever its findings.
        dtype : numpy floating type, default numpy.float64
            The precision of the arithmetic (``numpy.longdouble`` for extended precision).
        row_case : numpy.ndarray of int, optional
            Answer rows instead of cases: row ``r`` has the evidence of case ``row_case[r]``, times its own
            ``row_likelihoods``. The result then has one entry per row. Many rows of one case (the outcomes of
            its candidate next steps, say) share the work on the case's own evidence.
        row_likelihoods : mapping of str to numpy.ndarray, optional
            Per variable, ``(len(row_case), n_states)`` likelihoods that multiply the case's.
        """
        net = self.network
        if tables is None:
            tables = net.tables
        elif len(tables) != len(net.tables) or any(a.shape != b.shape for a, b in zip(tables, net.tables, strict=True)):
            raise ValueError("Replacement tables must match the network's tables in number and shape.")
        lam: dict[int, np.ndarray] = {self._index[v]: np.asarray(a, dtype=dtype) for v, a in likelihoods.items()}
        for v, a in lam.items():
            if a.shape != (n_cases, len(net.states[v])):
                raise ValueError(
                    f"Likelihood of {net.variables[v]!r} has shape {a.shape}; "
                    f"expected {(n_cases, len(net.states[v]))}."
                )
        target_ids = [self._index[t] for t in targets]
        if row_case is not None:
            row_case = np.asarray(row_case)
            if row_case.dtype.kind not in "iu":
                raise ValueError(f"row_case must hold integer case positions; got dtype {row_case.dtype}.")
            return self._rows(lam, target_ids, tables, n_cases, row_case.astype(np.intp),
                              dict(row_likelihoods or {}), split=split, expand=expand, dtype=dtype)
        if row_likelihoods:
            raise ValueError("row_likelihoods need row_case (the case of each row).")
        marg: dict[int, np.ndarray] = {t: np.empty((n_cases, len(net.states[t])), dtype=dtype) for t in target_ids}
        log_z: np.ndarray = np.empty(n_cases, dtype=dtype)
        carried = frozenset(lam) | frozenset(target_ids)
        decomposed = self._decomposed(tables)
        if expand and split:
            leaves = self._expandable(lam, target_ids, decomposed)
            if leaves:
                return self._expanded(lam, target_ids, tables, leaves, n_cases, dtype=dtype)
        # without expansion, findings stay in the contraction (at their lowest level they need no level index)
        lowest_rows = {v: self._at_lowest(v, lam[v]) for v in decomposed if v in lam}
        offset = None
        lowest = frozenset(v for v, rows in lowest_rows.items() if rows.all())
        hard = frozenset(v for v, a in lam.items() if n_cases and (np.count_nonzero(a, axis=1) == 1).all())
        carried_key = (carried, decomposed, lowest, hard)
        if n_cases <= SMALL_BATCH and not decomposed and self._small_network and self._affordable(self._universal_key):
            # a few cases: one cached contraction carrying every variable costs less than compiling one
            # for these cases' own evidence
            carried_key, hard = self._universal_key, frozenset()
        program = self._program(carried_key) if (not split or self._affordable(carried_key)) else None
        if program is None and n_cases > 1:
            # the variables observed somewhere in the batch make too large a contraction: split the batch
            # by each case's own pattern of observed variables, one (cached) contraction per pattern
            # (observed at the lowest level of a noisy CPD needs no level index: a pattern of its own)
            # targets are carried by every program, whatever their likelihood: they do not split the batch
            always = {v for v in lam if v in set(target_ids)}
            observed = {v: ~(a == 1.0).all(axis=1) for v, a in lam.items() if v not in always}
            names = list(observed)
            keys = np.zeros((n_cases, 2 * len(names)), dtype=bool)
            for k, v in enumerate(names):
                keys[:, 2 * k] = observed[v]
                keys[:, 2 * k + 1] = lowest_rows.get(v, False)
            patterns, inverse = np.unique(keys, axis=0, return_inverse=True)
            for p, pattern in enumerate(patterns):
                rows = np.flatnonzero(inverse.ravel() == p)
                sub = {net.variables[names[k]]: lam[names[k]][rows] for k in np.flatnonzero(pattern[0::2])}
                sub.update({net.variables[v]: lam[v][rows] for v in always})
                part = self.posterior(sub, targets, rows.size, tables=tables, split=False, dtype=dtype)
                log_z[rows] = part.log_evidence
                for t in target_ids:
                    marg[t][rows] = part.marginals[net.variables[t]]
            return _finish(net, marg, log_z, offset)
        if program is None:
            program = self._program(carried_key)
        chunk = max(1, min(n_cases, CHUNK_BUDGET_ENTRIES // max(1, program.entries_per_case)))
        ones = {v: np.ones((1, len(net.states[v]))) for v in program.lambda_vars}
        observed = {v: np.argmax(lam[v] != 0, axis=1) for v in hard}  # each case's state of a hard variable
        for v in hard:  # its likelihood there (1 for plain evidence) multiplies P(e)
            with np.errstate(divide="ignore"):
                offset = (0.0 if offset is None else offset) + np.log(lam[v][np.arange(n_cases), observed[v]])
            if v in marg:
                marg[v][:] = 0.0
                marg[v][np.arange(n_cases), observed[v]] = 1.0
        for start in range(0, n_cases, chunk):
            stop = min(n_cases, start + chunk)
            size = stop - start
            lambdas = [
                lam[v][start:stop] if v in lam else np.broadcast_to(ones[v], (size, len(net.states[v])))
                for v in program.lambda_vars
            ]
            columns = [np.ascontiguousarray(a.T) for a in lambdas]  # (states, cases): the batch axis last
            states = {v: o[start:stop] for v, o in observed.items()}
            grads, log_z[start:stop] = _run(program, tables, net.decompositions, columns, size, states, dtype)
            for v, column, g in zip(program.lambda_vars, columns, grads, strict=True):
                if v in marg:
                    m = column * g
                    onehot = np.count_nonzero(column, axis=0) == 1  # observed: the marginal is the state itself, exactly
                    if onehot.any():
                        m[:, onehot] = column[:, onehot] != 0
                    marg[v][start:stop] = m.T
        return _finish(net, marg, log_z, offset)

    def _decomposed(self, tables: Sequence[np.ndarray]) -> frozenset[int]:
        """The noisy variables whose decomposition still holds with ``tables`` (a replaced table has none)."""
        if tables is self.network.tables:
            return self._decomposable
        return frozenset(v for v in self._decomposable if tables[v] is self.network.tables[v])

    def _expandable(self, lam: Mapping[int, np.ndarray], target_ids: Sequence[int], decomposed: frozenset[int]) -> list[int]:
        """The noisy leaves with evidence that enter as signed terms (see :meth:`_expanded`)."""
        targets = set(target_ids)
        return [v for v in sorted(lam) if v in decomposed and v not in self._has_children and v not in targets]

    def _rows(
        self, lam: dict[int, np.ndarray], target_ids: list[int], tables: Sequence[np.ndarray], n: int, row_case: np.ndarray,
        row_likelihoods: Mapping[str, np.ndarray], *, split: bool, expand: bool, dtype: type,
    ) -> BatchPosterior:
        """:meth:`posterior` for rows that share their case's evidence (see its ``row_case``)."""
        net = self.network
        if row_case.ndim != 1 or (row_case.size and (row_case.min() < 0 or row_case.max() >= n)):
            raise ValueError(f"row_case must be a 1-d array of case positions in [0, {n}).")
        row_lam: dict[int, np.ndarray] = {self._index[v]: np.asarray(a, dtype=dtype) for v, a in row_likelihoods.items()}
        for v, a in row_lam.items():
            if a.shape != (row_case.size, len(net.states[v])):
                raise ValueError(f"Row likelihood of {net.variables[v]!r} has shape {a.shape}; "
                                 f"expected {(row_case.size, len(net.states[v]))}.")
        decomposed = self._decomposed(tables)
        leaves = self._expandable(lam, target_ids, decomposed) if expand and split else []
        if leaves and not set(row_lam) & set(leaves):
            return self._expanded(lam, target_ids, tables, leaves, n, row_case, row_lam, dtype=dtype)
        merged = {v: a[row_case] for v, a in lam.items()}
        for v, a in row_lam.items():
            merged[v] = merged[v] * a if v in merged else a
        return self.posterior({net.variables[v]: a for v, a in merged.items()}, [net.variables[t] for t in target_ids],
                              row_case.size, tables=tables, split=split, expand=expand, dtype=dtype)

    def _expanded(
        self, lam: dict[int, np.ndarray], target_ids: list[int], tables: Sequence[np.ndarray], leaves: list[int], n: int,
        row_case: np.ndarray | None = None, row_lam: Mapping[int, np.ndarray] | None = None,
        dtype: type = np.float64,
    ) -> BatchPosterior:
        """Evidence on noisy leaves as a signed sum of products (Heckerman's Quickscore, generalised).

        For a noisy leaf ``v`` with likelihood ``lambda``, ``sum_y lambda(y) P(v = y | pa)`` equals
        ``sum_t a_t * prod_i G_i[t, pa_i]`` with ``a = W @ lambda`` (see :class:`Decomposition`): a few
        terms, each a product of one likelihood per parent. A negative finding has one term (``L(0)``), a
        positive binary finding two (``1`` and ``-L(0)``), an unobserved one a single term of ones.
        Single terms fold into the parents' likelihoods of the case. A case with several multi-term leaves
        becomes one row per combination of their terms, with a signed coefficient; every row is the same
        contraction over the rest of the network, so a whole batch shares one compiled program however its
        findings differ. The case's ``P(e)`` and joint marginals are the signed sums over its rows.

        The terms can cancel: the rows' relative rounding errors (about ``eps * (50 + |log Z_r|)``: the steps
        of the contraction and the way back from ``log Z_r``) grow by ``sum|terms| / |sum|``.
        A case whose bound exceeds ``ERROR_BUDGET`` is recomputed in extended precision (``np.longdouble``,
        where the platform has it), and failing that, or with more than ``MAX_TERMS`` rows, through the
        pattern-splitting path, which keeps its findings inside the contraction.
        """
        net = self.network
        decs = net.decompositions
        assert decs is not None
        leaf_set = set(leaves)
        case_lam = {v: a for v, a in lam.items() if v not in leaf_set}
        copied: set[int] = set()
        case_coef = np.ones(n)  # product of the single terms; common to all rows of a case, so an input
        case_log = np.zeros(n)  # log of the scale taken out of each leaf's coefficients (no under- or overflow)
        counts: np.ndarray = np.ones(n)
        multi = []  # leaves with several signed terms in some case: (v, coefficients, term order, count per case)
        telescoped = []  # leaves with several positive terms in some case: (count per case, coefficients, factors)
        # each case's state of the variables it observes (one-hot likelihood), -1 elsewhere: a leaf's observed
        # parents are constants of the case, its other parents are free
        observed_state = {v: np.where(np.count_nonzero(a, axis=1) == 1, np.argmax(a != 0, axis=1), -1)
                          for v, a in lam.items()}

        def fold(rows: np.ndarray, coef: np.ndarray, factors: Sequence[tuple[int, np.ndarray]]) -> None:
            """Multiply a single term into its cases: the coefficient, and a likelihood on each parent."""
            case_coef[rows] *= coef
            for p, factor in factors:
                if (factor == 1.0).all():
                    continue  # an unobserved leaf: its term is all ones
                if p not in copied:
                    base = case_lam.get(p)
                    case_lam[p] = np.ones((n, len(net.states[p]))) if base is None else base.copy()
                    copied.add(p)
                case_lam[p][rows] *= factor

        for v in leaves:
            dec = decs[v]
            assert dec is not None  # leaves are decomposed variables
            # a = W @ lambda per case, as products then sums: equal likelihoods cancel to exactly zero (BLAS may not)
            a = (lam[v][:, None, :] * dec.weights[None, :, :]).sum(axis=2)  # (n, levels)
            tel = self._telescoped(v, lam[v], observed_state, n)
            if tel is not None:
                rows, t_count, t_coef, t_factors = tel
                a[rows] = 0.0
                a[rows, 0] = 1.0  # a placeholder single term, replaced by the telescoped terms below
            scale = np.abs(a).max(axis=1)
            scale = np.where(scale > 0, scale, 1.0)
            a = a / scale[:, None]
            case_log += np.log(scale)
            nonzero = a != 0
            count = nonzero.sum(axis=1)
            order = np.argsort(~nonzero, axis=1, kind="stable")  # the nonzero terms first, in level order
            single = np.flatnonzero(count == 1)
            if tel is not None:
                single = np.setdiff1d(single, rows, assume_unique=True)
                scale_t = np.abs(t_coef).max(axis=1)
                scale_t = np.where(scale_t > 0, scale_t, 1.0)
                t_coef = t_coef / scale_t[:, None]
                case_log[rows] += np.log(scale_t)
                one = t_count == 1
                if one.any():
                    fold(rows[one], t_coef[one, 0], [(p, f[one, 0]) for p, f in t_factors])
                if (~one).any():
                    full = np.ones(n, dtype=np.int64)
                    full[rows] = t_count
                    place = np.full(n, -1)
                    place[rows] = np.arange(rows.size)
                    telescoped.append((full, place, t_coef, t_factors))
                count = count.copy()
                count[rows] = t_count
            counts = np.minimum(counts * count, MAX_TERMS + 1)
            if single.size:
                term = order[single, 0]
                fold(single, a[single, term], [(p, dec.factors[i][term]) for i, p in enumerate(net.parents[v])])
            signed = count > 1
            if tel is not None:
                signed[rows] = False
            if signed.any():
                multi.append((v, a, order, np.where(signed, count, 1)))
        if row_case is None:  # one row per case
            row_case = np.arange(n)
        row_lam = row_lam or {}
        units = row_case.size
        case_counts = counts.astype(np.int64)
        counts = case_counts[row_case]  # per row of the result
        target_names = [net.variables[t] for t in target_ids]
        marg = {t: np.full((units, len(net.states[t])), np.nan) for t in target_ids}
        log_z = np.full(units, -np.inf)

        def case_terms(cases: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
            """The terms of ``cases``: where each case's start, their coefficients and (states, terms) likelihoods.

            Built in ``dtype``: the terms of a case differ, so their rounding errors are independent and
            need the precision.
            """
            c_count = case_counts[cases]
            term_start = np.zeros(n, dtype=np.int64)
            term_start[cases] = np.cumsum(c_count) - c_count
            term_case = np.repeat(cases, c_count)
            within = np.arange(term_case.size) - np.repeat(term_start[cases], c_count)
            term_coef = case_coef[term_case].astype(dtype)
            term_lam: dict[int, np.ndarray] = {v: np.ascontiguousarray(a.T[:, term_case], dtype=dtype)
                                               for v, a in case_lam.items()}
            stride = np.ones(term_case.size, dtype=np.int64)
            for v, a, order, count in multi:
                c = count[term_case]
                sel = np.flatnonzero(c > 1)  # the terms of the cases where this leaf has several
                if not sel.size:
                    continue
                term = order[term_case[sel], (within[sel] // stride[sel]) % c[sel]]
                stride[sel] *= c[sel]
                term_coef[sel] *= a[term_case[sel], term]
                for i, p in enumerate(net.parents[v]):
                    if p not in term_lam:
                        term_lam[p] = np.ones((len(net.states[p]), term_case.size), dtype=dtype)
                    factor = decs[v].factors[i]  # type: ignore[union-attr]  # v is a decomposed leaf
                    for state in range(factor.shape[1]):
                        term_lam[p][state, sel] *= factor[term, state]
            for full, place, t_coef, t_factors in telescoped:
                c = full[term_case]
                sel = np.flatnonzero(c > 1)
                if not sel.size:
                    continue
                term = (within[sel] // stride[sel]) % c[sel]
                stride[sel] *= c[sel]
                at = place[term_case[sel]]
                term_coef[sel] *= t_coef[at, term]
                for p, factor in t_factors:
                    if p not in term_lam:
                        term_lam[p] = np.ones((len(net.states[p]), term_case.size), dtype=dtype)
                    term_lam[p][:, sel] *= factor[at, term].T
            return term_start, term_coef, term_lam

        def signed_sums(todo: np.ndarray, dtype: type) -> np.ndarray:
            """Fill in the rows ``todo``; returns those whose rounding bound exceeds the budget."""
            eps = float(np.finfo(dtype).eps)
            todo = todo[np.argsort(row_case[todo], kind="stable")]  # a case's rows together: its terms once per block
            ends = np.cumsum(counts[todo])
            unstable = []
            first = 0
            while first < todo.size:
                done = ends[first - 1] if first else 0
                last = max(first + 1, int(np.searchsorted(ends, done + ROWS_PER_BLOCK, side="right")))
                block = todo[first:last]
                first = last
                term_start, term_coef, term_lam = case_terms(np.unique(row_case[block]), dtype)
                m = counts[block]
                starts = np.concatenate([[0], np.cumsum(m)[:-1]])
                rows = int(m.sum())
                row_unit = np.repeat(block, m)
                index = np.repeat(term_start[row_case[block]] - starts, m) + np.arange(rows)  # each row's term
                coef = term_coef[index]
                # likelihoods as (states, rows), the layout of the contraction
                core = {v: a[:, index] for v, a in term_lam.items()}
                for v, a in row_lam.items():
                    own = a.T[:, row_unit]
                    core[v] = core[v] * own if v in core else np.ascontiguousarray(own, dtype=dtype)
                post = self.posterior({net.variables[v]: a.T for v, a in core.items()}, target_names, rows, tables=tables,
                                      expand=False, dtype=dtype)
                peak = np.maximum.reduceat(post.log_evidence, starts)
                finite_peak = np.where(np.isfinite(peak), peak, 0.0)
                with np.errstate(invalid="ignore"):
                    weight = np.where(post.impossible, 0.0, coef * np.exp(post.log_evidence - np.repeat(finite_peak, m)))
                z = np.add.reduceat(weight, starts)
                # each weight is exp(log Z_r - peak): relative error about eps * (steps + |log Z_r|), independent
                # between rows; the sum's relative error is at most their sum over |z| (with 50 for the steps)
                error = np.abs(weight) * (50.0 + np.abs(np.where(post.impossible, 0.0, post.log_evidence)))
                spread = np.add.reduceat(error, starts)
                ok = z > 0  # a signed sum at or below zero: the evidence is impossible
                bad = (spread > 0) & (~ok | (eps * spread > ERROR_BUDGET * z))
                unstable.append(block[bad])
                keep = ~bad
                with np.errstate(divide="ignore", invalid="ignore"):
                    log_z[block[keep]] = np.where(ok, finite_peak + np.log(np.where(ok, z, 1.0)), -np.inf)[keep]
                    log_z[block[keep]] += case_log[row_case[block[keep]]]
                    for t, name in zip(target_ids, target_names, strict=True):
                        joint = np.add.reduceat(weight[:, None] * np.nan_to_num(post.marginals[name]), starts, axis=0)
                        marg[t][block[keep]] = (joint / z[:, None])[keep]
            return np.concatenate(unstable) if unstable else np.zeros(0, dtype=np.int64)

        unstable = signed_sums(np.flatnonzero((counts > 0) & (counts <= MAX_TERMS)), dtype)  # no term: impossible
        if unstable.size and np.finfo(np.longdouble).eps < np.finfo(dtype).eps:
            unstable = signed_sums(unstable, np.longdouble)
        retry = np.concatenate([np.flatnonzero(counts > MAX_TERMS), unstable])
        if retry.size:  # too many terms, or too much cancellation: one contraction per pattern instead
            sub = {v: a[row_case[retry]] for v, a in lam.items()}
            for v, a in row_lam.items():
                sub[v] = sub[v] * a[retry] if v in sub else a[retry]
            part = self.posterior({net.variables[v]: a for v, a in sub.items()}, target_names, retry.size,
                                  tables=tables, expand=False, dtype=dtype)
            log_z[retry] = part.log_evidence
            for t, name in zip(target_ids, target_names, strict=True):
                marg[t][retry] = part.marginals[name]
        return _finish(net, marg, log_z, None)

    def _telescoped(self, v: int, lam_v: np.ndarray, observed_state: Mapping[int, np.ndarray], n: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]] | None:
        """Positive terms for a noisy leaf observed above its lowest level in cases where few parents are free.

        Observed at level ``y > 0`` the leaf contributes ``F(y) - F(y - 1)`` with ``F(t) = L(t) prod_i C_i(t)``:
        a difference of two products, which the signed expansion enters as two terms that cancel (the
        cancellation grows with every rare finding, and a case past the error budget is redone in extended
        precision). With ``A_i = C_i(y)`` and ``B_i = C_i(y - 1)`` (``A_i >= B_i``: the CDFs grow with the
        level) the difference telescopes into positive terms,

            prod_{i=0..f} A_i - prod_{i=0..f} B_i = sum_m (A_m - B_m) prod_{i<m} B_i prod_{i>m} A_i,

        one per free parent plus one for the constants (the leak and the parents the case observes). With no
        free parent that is one number, with one a likelihood on it: exact, a single term and no cancellation;
        with up to ``TELESCOPE_PARENTS`` free parents, ``f + 1`` positive terms instead of two signed ones.

        Returns ``(cases, terms per case, coefficients (cases, T), [(parent, factors (cases, T, states))])``
        for the cases this applies to, or None.
        """
        net = self.network
        dec = net.decompositions[v]  # type: ignore[index]
        if dec is None or dec.leak_cdf is None:
            return None
        onehot = np.count_nonzero(lam_v, axis=1) == 1
        observed = np.argmax(lam_v != 0, axis=1)
        level_of = np.full(lam_v.shape[1], -1)
        level_of[list(dec.order)] = np.arange(len(dec.order))
        level = level_of[observed]
        parents = net.parents[v]
        free = np.stack([observed_state[p] < 0 if p in observed_state else np.ones(n, dtype=bool) for p in parents],
                        axis=1) if parents else np.zeros((n, 0), dtype=bool)
        n_free = free.sum(axis=1)
        rows = np.flatnonzero(onehot & (level > 0) & (n_free <= TELESCOPE_PARENTS)
                              & (np.abs(lam_v[np.arange(n), observed]) > 0))
        if not rows.size:
            return None
        y = level[rows]
        m = rows.size
        f = n_free[rows]
        is_free = free[rows]
        # the constants: the leak and the observed parents' factors at their states
        a_c = dec.leak_cdf[y] * lam_v[rows, observed[rows]]
        b_c = dec.leak_cdf[y - 1] * lam_v[rows, observed[rows]]
        a_par, b_par = [], []
        for i, p in enumerate(parents):
            g = dec.factors[i]
            a_i, b_i = g[y], g[y - 1]  # (m, states)
            a_par.append(a_i)
            b_par.append(b_i)
            hard = ~is_free[:, i]
            if hard.any():
                s_obs = observed_state[p][rows[hard]]
                a_c[hard] *= a_i[hard, s_obs]
                b_c[hard] *= b_i[hard, s_obs]
        width = max(1, int(f.max()) + 1)
        count = np.where(f <= 1, 1, f + 1)
        coef = np.zeros((m, width))
        coef[:, 0] = np.where(f == 1, 1.0, a_c - b_c)
        many = f >= 2
        for t in range(1, width):
            coef[:, t] = np.where(many & (t <= f), b_c, 0.0)
        position = np.cumsum(is_free, axis=1) - 1  # rank of each free parent among the case's free parents
        factors: list[tuple[int, np.ndarray]] = []
        for i, p in enumerate(parents):
            if not is_free[:, i].any():
                continue
            a_i, b_i = a_par[i], b_par[i]
            out = np.ones((m, width, a_i.shape[1]))
            mine = is_free[:, i]
            single = mine & (f == 1)
            out[single, 0] = a_c[single, None] * a_i[single] - b_c[single, None] * b_i[single]
            several = mine & many
            out[several, 0] = a_i[several]
            for t in range(1, width):
                here = several & (t <= f)
                before = here & (position[:, i] < t - 1)
                at = here & (position[:, i] == t - 1)
                after = here & (position[:, i] > t - 1)
                out[before, t] = b_i[before]
                out[at, t] = a_i[at] - b_i[at]
                out[after, t] = a_i[after]
            factors.append((p, out))
        return rows, count, coef, factors

    def _at_lowest(self, v: int, lam: np.ndarray) -> np.ndarray:
        """Rows whose likelihood for noisy variable ``v`` is one-hot at its lowest level."""
        decs = self.network.decompositions
        dec = decs[v] if decs is not None else None
        assert dec is not None  # only decomposed variables are asked
        lowest = int(np.argmax(dec.weights[0] > 0))  # the state of level 0 carries +L(0)
        onehot = np.zeros(lam.shape[1])
        onehot[lowest] = 1.0
        return (lam == onehot).all(axis=1)

    def _affordable(self, carried: tuple[frozenset[int], ...]) -> bool:
        """Whether one contraction carrying ``carried`` keeps its tables at or under SPLIT_ENTRIES per case."""
        if carried in self._too_large:
            return False
        try:
            return self._program(carried).largest_per_case <= SPLIT_ENTRIES
        except ModelTooLargeError:
            with self._lock:
                self._too_large.add(carried)  # not compiled again
            return False

    def largest_intermediate(self, carried: Sequence[str]) -> int:
        """Entries per case of the largest table built when ``carried`` variables hold evidence or are targets."""
        key: ProgramKey = (frozenset(self._index[v] for v in carried), self._decomposable, frozenset(), frozenset())
        return self._program(key).largest_per_case

    # ------------------------------------------------------------------ compile
    def _program(self, carried: tuple[frozenset[int], ...]) -> _Program:
        with self._lock:
            program = self._programs.get(carried)
            if program is not None:
                self._programs.move_to_end(carried)
                return program
        program = self._compile(carried)
        with self._lock:
            self._programs[carried] = program
            if len(self._programs) > 4096:
                self._programs.popitem(last=False)
        return program

    def _compile(self, key: tuple[frozenset[int], ...]) -> _Program:
        carried, decomposed, lowest, hard = key
        net = self.network
        n_vars = len(net.variables)
        keep = sorted(net.ancestors(sorted(carried)))  # barren variables sum to one: drop them
        lambda_vars = tuple(sorted(carried - hard))
        cards = dict(enumerate(net.cards))
        cards[_BATCH] = _NOMINAL_BATCH
        operands: list[tuple[int, ...]] = []
        sources: list[tuple[int, int, tuple[tuple[int, int], ...]]] = []
        for v in keep:
            dec = net.decompositions[v] if v in decomposed and net.decompositions else None
            if dec is None:
                operands.append((v, *net.parents[v]))
                sources.append((v, -1, ()))
                continue
            if v in lowest:  # observed at the lowest level in every case: L(0) * prod_i G_i[0, pa_i], no sum
                operands.append((v,))
                sources.append((v, -2, ()))
                for k, p in enumerate(net.parents[v]):
                    operands.append((p,))
                    sources.append((v, -(k + 3), ()))
                continue
            level = n_vars + v  # the hidden level index of this CPD
            cards[level] = dec.weights.shape[0]
            operands.append((level, v))
            sources.append((v, 0, ()))
            for k, p in enumerate(net.parents[v]):
                operands.append((level, p))
                sources.append((v, k + 1, ()))
        # a variable observed in every case (one state, a single nonzero likelihood) is not summed over: each
        # operand holding it is taken at the case's state, a per-case operand without that index
        for k, (op, (v, kind, _)) in enumerate(zip(operands, sources, strict=True)):
            axes = tuple((pos, i) for pos, i in enumerate(op) if i in hard)
            if axes:
                operands[k] = (*[i for i in op if i not in hard], _BATCH)
            sources[k] = (v, kind, axes)
        operands += [(v, _BATCH) for v in lambda_vars]
        symbols = {i: opt_einsum.get_symbol(k) for k, i in enumerate(sorted({i for op in operands for i in op}))}
        equation = ",".join("".join(symbols[i] for i in op) for op in operands) + "->" + symbols[_BATCH]
        shapes = [tuple(cards[i] for i in op) for op in operands]
        if len(operands) == 1:
            path: list[tuple[int, ...]] = [(0,)]
        elif self.optimize == "elimination":
            path = _elimination_path(operands, cards)
        else:
            path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=self.optimize)
        steps = []
        slots = list(operands)
        entries = 0
        largest = 1
        for contracted in _pairwise(path, len(operands)):
            inputs = [slots[k] for k in contracted]
            for k in sorted(contracted, reverse=True):
                del slots[k]
            remaining = {i for op in slots for i in op} | {_BATCH}
            seen: list[int] = []
            for op in inputs:
                seen.extend(i for i in op if i not in seen)
            out = tuple(i for i in seen if i in remaining)
            if _BATCH in out:  # the batch axis always last: contiguous inner loops over cases
                out = (*[i for i in out if i != _BATCH], _BATCH)
            size = math.prod(cards[i] for i in out if i != _BATCH)
            largest = max(largest, size)
            if _BATCH in out:
                entries += size
            steps.append((tuple(contracted), out))
            slots.append(out)
        if largest > self.max_entries:
            names = ", ".join(net.variables[i] for i in sorted(carried))[:200]
            raise ModelTooLargeError(largest, self.max_entries, f"(variables carrying evidence: {names}) ")
        forward, backward = _tape(operands, steps, len(sources))
        gathered = sum(math.prod(cards[i] for i in op if i != _BATCH) for op, src in zip(operands, sources, strict=False) if src[2])
        return _Program(
            operands=tuple(operands),
            sources=tuple(sources),  # type: ignore[arg-type]
            lambda_vars=lambda_vars,
            steps=tuple(steps),
            entries_per_case=entries + gathered + sum(net.cards[v] for v in lambda_vars),
            largest_per_case=largest,
            forward=forward,
            backward=backward,
        )


def _elimination_path(operands: Sequence[tuple[int, ...]], cards: Mapping[int, int]) -> list[tuple[int, ...]]:
    """A pairwise contraction path from a min-weight variable elimination order.

    Repeatedly picks the index (never the batch axis) whose operands, merged, make the smallest table,
    and contracts those operands pairwise, smallest first. As in ``_compile``, an index is summed out in
    the step after which no other operand holds it. Positions follow opt_einsum's convention.
    """
    ops: dict[int, tuple[int, ...]] = dict(enumerate(operands))  # table id -> its indices
    alive = list(range(len(operands)))  # table ids in opt_einsum's list order
    holders: dict[int, set[int]] = {}
    for k, op in ops.items():
        for i in op:
            holders.setdefault(i, set()).add(k)
    next_id = len(operands)
    path: list[tuple[int, ...]] = []
    cost: dict[int, tuple[int, int]] = {}

    def size(indices: Iterable[int]) -> int:
        return math.prod(cards[i] for i in indices if i != _BATCH)

    def contract(ids: Sequence[int]) -> None:
        nonlocal next_id
        path.append(tuple(alive.index(k) for k in ids))
        inputs = [ops.pop(k) for k in ids]
        for k, op in zip(ids, inputs, strict=True):
            alive.remove(k)
            for i in op:
                holders[i].discard(k)
        merged = tuple(i for i in dict.fromkeys(i for op in inputs for i in op) if i == _BATCH or holders[i])
        ops[next_id] = merged
        alive.append(next_id)
        for i in merged:
            holders[i].add(next_id)
        for op in inputs:  # the merged size of every index these tables held may have changed
            for i in op:
                cost.pop(i, None)
        next_id += 1

    def index_cost(v: int) -> tuple[int, int]:
        c = cost.get(v)
        if c is None:
            union = {i for k in holders[v] for i in ops[k]}
            c = cost[v] = (size(union), len(union))
        return c

    while True:
        remaining = [i for i, h in holders.items() if h and i != _BATCH]
        if not remaining:
            break
        best = min(remaining, key=lambda v: (*index_cost(v), v))
        while len(holders[best]) > 1:
            pair = sorted(holders[best], key=lambda k: (size(ops[k]), k))[:2]
            contract(pair)
        if holders[best]:
            contract([next(iter(holders[best]))])  # the index lives in one table only: sum it out there
    while len(alive) > 1:
        pair = sorted(alive, key=lambda k: (size(ops[k]), k))[:2]
        contract(pair)
    return path


def _pairwise(path: Sequence[tuple[int, ...]], n_operands: int) -> list[tuple[int, ...]]:
    """Split the steps of an opt_einsum path that contract more than two operands into pairwise steps.

    Positions follow opt_einsum's convention: the contracted operands leave the list and their result is
    appended at its end.
    """
    result: list[tuple[int, ...]] = []
    m = n_operands
    for contracted in path:
        c = sorted(contracted)
        if len(c) <= 2:
            result.append(tuple(c))
            m = m - len(c) + 1
            continue
        result.append((c[0], c[1]))
        m -= 1
        for removed, p in enumerate(c[2:], start=2):
            result.append((p - removed, m - 1))  # the latest intermediate is last
            m -= 1
    return result


# ---------------------------------------------------------------------- execution
def _finish(net: CompiledNetwork, marg: dict[int, np.ndarray], log_z: np.ndarray, offset: np.ndarray | None) -> BatchPosterior:
    """The result of a batch: log-evidence offsets applied, impossible cases flagged and their marginals NaN."""
    if offset is not None:
        log_z = log_z + offset
    impossible = ~np.isfinite(log_z)
    for m in marg.values():
        m[impossible] = np.nan
    return BatchPosterior({net.variables[t]: m for t, m in marg.items()}, log_z, impossible)


def _letters(*index_lists: tuple[int, ...]) -> dict[int, str]:
    ids: list[int] = []
    for lst in index_lists:
        ids.extend(i for i in lst if i not in ids)
    return {i: chr(ord("a") + k) if k < 26 else chr(ord("A") + k - 26) for k, i in enumerate(ids)}


def _spec(letters: dict[int, str], *index_lists: tuple[int, ...]) -> str:
    *inputs, out = index_lists
    return ",".join("".join(letters[i] for i in lst) for lst in inputs) + "->" + "".join(letters[i] for i in out)


def _decomposition(decompositions: Sequence[Decomposition | None] | None, v: int) -> Decomposition:
    """The decomposition of a variable a program contracts as one (there is one)."""
    dec = decompositions[v] if decompositions is not None else None
    assert dec is not None
    return dec


def _run(program: _Program, tables: Sequence[np.ndarray], decompositions: Sequence[Decomposition | None] | None,
         lambdas: list[np.ndarray], n: int, states: Mapping[int, np.ndarray], dtype: type = np.float64,
         ) -> tuple[list[np.ndarray], np.ndarray]:
    """Forward and backward pass for one chunk of ``n`` cases.

    ``lambdas`` are ``(states, n)`` arrays; ``states`` gives each case's state of the variables observed in
    every case, at which their operands are taken. Returns the gradient of ``log Z`` with respect to each lambda
    operand, in scaled form (``dZ/dlambda / Z``), and ``log Z`` per case.

    A program whose operands are all non-negative (no decomposed CPD weights) first runs without per-step
    rescaling, its likelihoods divided by their largest entry so that every operand is at most 1; a case
    whose ``Z`` then comes out below ``UNSCALED_FLOOR`` (where underflow could have lost terms) is rerun
    with every intermediate table rescaled.
    """
    inputs: list[np.ndarray] = []
    for v, k, axes in program.sources:
        if k == -1:
            base = tables[v]
        elif k == -2:
            base = _decomposition(decompositions, v).weights[0]
        elif k < -2:
            base = _decomposition(decompositions, v).factors[-k - 3][0]
        else:
            dec = _decomposition(decompositions, v)
            base = dec.weights if k == 0 else dec.factors[k - 1]
        if axes:  # taken at each case's state of its hard variables: (remaining axes..., cases)
            front = np.moveaxis(base, [pos for pos, _ in axes], list(range(len(axes))))
            base = np.ascontiguousarray(np.moveaxis(front[tuple(states[h] for _, h in axes)], 0, -1))
        inputs.append(base)
    if any(k == 0 for _, k, _ in program.sources):
        return _passes(program, inputs, lambdas, n, scaled=True, dtype=dtype)
    peaks = [lam.max(axis=0) for lam in lambdas]
    peaks = [np.where(peak > 0, peak, 1.0) for peak in peaks]
    grads, log_z = _passes(program, inputs, [lam / peak for lam, peak in zip(lambdas, peaks, strict=True)], n,
                           scaled=False, dtype=dtype)
    redo = np.flatnonzero(~(log_z >= math.log(UNSCALED_FLOOR)))  # also zero: underflow, or impossible evidence
    for peak in peaks:
        log_z += np.log(peak)
    grads = [g / peak for g, peak in zip(grads, peaks, strict=True)]
    if redo.size:
        per_case = [x[..., redo] if axes else x for x, (_, _, axes) in zip(inputs, program.sources, strict=True)]
        again, log_again = _passes(program, per_case, [lam[:, redo] for lam in lambdas], redo.size, scaled=True, dtype=dtype)
        log_z[redo] = log_again
        for g, h in zip(grads, again, strict=True):
            g[:, redo] = h
    return grads, log_z


def _passes(program: _Program, inputs: list[np.ndarray], lambdas: list[np.ndarray], n: int, *,
            scaled: bool, dtype: type = np.float64) -> tuple[list[np.ndarray], np.ndarray]:
    """The forward and backward passes; with ``scaled``, every batched table is rescaled per case."""
    values = [x.astype(dtype, copy=False) for x in inputs] + lambdas
    scales: list[np.ndarray | None] = []
    work = np.result_type(*lambdas, dtype)
    log_z: np.ndarray = np.zeros(n, dtype=work)
    dead = np.zeros(n, dtype=bool)
    for ins, spec, batched in program.forward:
        if len(ins) == 1:
            raw = np.einsum(spec, values[ins[0]])
            if scaled:
                raw = raw.copy()  # einsum may return a view, and it is divided in place
        else:
            raw = np.einsum(spec, values[ins[0]], values[ins[1]], optimize=False)
        if batched and scaled:
            scale = np.abs(raw).reshape(-1, n).max(axis=0) if raw.ndim > 1 else np.abs(raw)
            zero = scale <= 0
            if zero.any():
                dead |= zero
                scale[zero] = 1.0
            raw /= scale
            log_z += np.log(scale)
            scales.append(scale)
        else:
            scales.append(None)
        values.append(raw)
    root = np.broadcast_to(values[-1], (n,))
    dead |= ~(root > 0)  # a sum with negative terms (decomposed CPDs) that came out at or below zero, or NaN
    with np.errstate(divide="ignore"):
        log_z += np.log(np.where(dead, 1.0, root))
    # backward: gradient of log Z, i.e. dZ/d(table) / Z, scaled like the forward values
    grads: dict[int, np.ndarray] = {len(values) - 1: 1.0 / np.where(dead, 1.0, root).astype(work)}
    for step, node, plans in program.backward:
        g = grads.pop(node, None)
        if g is None:
            continue
        scale = scales[step]
        if scale is not None:
            g = g / scale
        for child, other, spec, mask in plans:
            dg = np.einsum(spec, g, values[other], optimize=False) if other >= 0 else np.einsum(spec, g)
            if mask is not None:
                shape = values[child].shape
                dg = np.broadcast_to(dg.reshape([d if keep else 1 for d, keep in zip(shape, mask, strict=True)]), shape)
            grads[child] = grads[child] + dg if child in grads else dg
    out_grads = []
    first_lambda = len(program.sources)
    for k, lam in enumerate(lambdas):
        g = grads.get(first_lambda + k)
        out_grads.append(np.zeros_like(lam) if g is None else g)
    log_z[dead] = -np.inf
    return out_grads, log_z
