"""The engine: :class:`InferenceEngine` chooses a route for each batch, compiles (and caches) its program and
runs it. The routes: ``quickscore`` (evidence on noisy leaves as terms, :mod:`~bayesdx.engine.quickscore`),
``sweep`` (the same evidence as chains carried through a sweep, :mod:`~bayesdx.engine.sweep`), ``contraction``
(one program for the batch), ``universal`` (a few cases of a small network: one cached program carrying every
variable), ``patterns`` (a batch split by each case's observed variables) and ``single target`` (one case, one
target, a new pattern: an elimination without a program, :mod:`~bayesdx.engine.single_target`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..exceptions import ModelTooLargeError
from .cache import ProgramCache
from .exactness import cancelled, compute_again, rounding_error
from .execute import finish, marginals_of_targets, run
from .folding import fold_leaves, foldable
from .hard import one_hot_variables, states_and_log_likelihood
from .network import BatchPosterior, CompiledNetwork, rows_at_lowest
from .patterns import split_by_pattern, union_costs_more
from .plan import MAX_ENTRIES_PER_CASE, Program, ProgramKey, compile_program
from .recheck import recheck_impossible
from .single_target import Orders, posterior_of_one
from .sweep import positive_findings as expand_terms
from .universal import UniversalRunner

__all__ = ["InferenceEngine", "ProgramCache"]

#: Memory budget, in float64 entries, for the tables of one chunk of cases (8 MiB: faster than larger chunks,
#: whose tables fall out of the cache).
CHUNK_BUDGET_ENTRIES = 2**20
#: A chunk narrower than this is timed against one case at a time, once per program (see InferenceEngine.posterior).
MIN_CHUNK = 16
#: Above this many entries per case, a batch is split by each case's pattern of observed variables.
SPLIT_ENTRIES = 2**13
#: Up to this many cases, a network without noisy CPDs uses one cached contraction carrying every variable
#: (when it is no larger than SPLIT_ENTRIES per case) instead of compiling one for the cases' own evidence.
SMALL_BATCH = 64
#: ... and has at most this many variables (compiling the all-variable program for munin's 1,041 took 0.4 s).
SMALL_NETWORK = 300


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

    def __init__(
        self,
        network: CompiledNetwork,
        *,
        optimize: str = "elimination",
        max_entries: int = MAX_ENTRIES_PER_CASE,
        programs: ProgramCache | None = None,
        positive_parents: int | None = None,
    ):
        self.network = network
        self._positive_parents = positive_parents  # see compile_program (None: plan.POSITIVE_PARENTS)
        self.optimize = optimize
        self.max_entries = max_entries
        self._index = network.index()
        same = programs is not None and (programs.optimize, programs.max_entries) == (optimize, max_entries)
        shared = programs if same and programs is not None else ProgramCache(optimize, max_entries)
        self._programs = shared.programs
        self._lock = shared.lock
        self._narrow = shared.narrow
        decs = network.decompositions or (None,) * len(network.variables)
        self._decomposable = frozenset(v for v, d in enumerate(decs) if d is not None)
        self._has_children = frozenset(p for ps in network.parents for p in ps)
        self._foldable = foldable(network, self._decomposable)  # leaves of one parent (engine/folding.py)
        self._too_large: set[ProgramKey] = set()
        self._small_network = len(network.variables) <= SMALL_NETWORK  # larger: the all-variable program costs more
        everything = frozenset(range(len(network.variables)))
        self._universal_key: ProgramKey = (everything, frozenset(), frozenset(), frozenset())
        self._runner: UniversalRunner | None = None
        self._no_runner = False  # decided: a few cases do not take the universal route
        self._twin: InferenceEngine | None = None
        self._orders: Orders = {}  # elimination orders of the single-target route, by pattern

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
        lower: Sequence[str] = (),
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
            (Quickscore, see :func:`~bayesdx.engine.quickscore.expand`), so that every case shares one contraction over the rest of
            the network whatever its findings.
        dtype : numpy floating type, default numpy.float64
            The precision of the arithmetic (``numpy.longdouble`` for extended precision).
        row_case : numpy.ndarray of int, optional
            Answer rows instead of cases: row ``r`` has the evidence of case ``row_case[r]``, times its own
            ``row_likelihoods``. The result then has one entry per row. Many rows of one case (the outcomes of
            its candidate next steps, say) share the work on the case's own evidence.
        row_likelihoods : mapping of str to numpy.ndarray, optional
            Per variable, ``(len(row_case), n_states)`` likelihoods that multiply the case's.
        lower : sequence of str, optional
            Noisy findings for which the result's ``lowered`` also gives each case with that finding observed
            at its lowest level instead, where the case's signed terms or its sweep give it at no extra contraction
            (:class:`~bayesdx.engine.network.Lowered`; not with ``row_case``).
        """
        net = self.network
        if tables is None:
            tables = net.tables
        elif len(tables) != len(net.tables) or any(a.shape != b.shape for a, b in zip(tables, net.tables, strict=True)):
            raise ValueError("Replacement tables must match the network's tables in number and shape.")
        lam: dict[int, np.ndarray] = {self._index[v]: np.asarray(a, dtype=dtype) for v, a in likelihoods.items()}
        for v, a in lam.items():
            if a.shape != (n_cases, len(net.states[v])):
                raise ValueError(f"Likelihood of {net.variables[v]!r} has shape {a.shape}; expected {(n_cases, len(net.states[v]))}.")
        targets = list(dict.fromkeys(targets))  # a target named twice is one target (its marginal came out zero)
        target_ids = [self._index[t] for t in targets]
        if row_case is None and 0 < n_cases <= SMALL_BATCH and tables is net.tables and dtype is np.float64:
            runner = self._universal()
            if runner is not None and n_cases <= runner.max_cases:
                done = runner.posterior(lam, target_ids, n_cases)
                if done is not None:  # else a case needs rescaling: the passes of _route
                    result = finish(net, done[0], done[1], None, route="universal")
                    return recheck_impossible(self, lam, result, target_ids, targets, tables)
        # the universal program pays little for an observed leaf; an own program pays a step for it: fold it
        folded = fold_leaves(lam, self._foldable, net.parents, tables, target_ids) if self._foldable and row_case is None else None
        arguments = (target_ids, targets, n_cases, tables, split, expand, dtype, row_case, row_likelihoods, lower)
        result = self._route(lam if folded is None else folded.likelihoods, *arguments)
        if folded is not None:
            scale = folded.log_scale  # what folding took out of every case's P(e), the lowered cases' included
            lowered = {v: replace(low, log_evidence=low.log_evidence + scale) for v, low in result.lowered.items()}
            result = replace(result, log_evidence=result.log_evidence + scale, lowered=lowered)
        return recheck_impossible(self, lam, result, target_ids, targets, tables, wanted=row_case is None and dtype is np.float64)

    def _route(
        self,
        lam: dict[int, np.ndarray],
        target_ids: list[int],
        targets: Sequence[str],
        n_cases: int,
        tables: Sequence[np.ndarray],
        split: bool,
        expand: bool,
        dtype: type,
        row_case: np.ndarray | None,
        row_likelihoods: Mapping[str, np.ndarray] | None,
        lower: Sequence[str],
        *,
        shared: bool = True,
    ) -> BatchPosterior:
        """:meth:`posterior` past the universal route, the foldable leaves folded: the other routes (without
        ``shared``, not the universal program: see :mod:`~bayesdx.engine.recheck`)."""
        net = self.network
        if row_case is not None:
            row_case = np.asarray(row_case)
            if row_case.dtype.kind not in "iu":
                raise ValueError(f"row_case must hold integer case positions; got dtype {row_case.dtype}.")
            return self._rows(
                lam,
                target_ids,
                tables,
                n_cases,
                row_case.astype(np.intp),
                dict(row_likelihoods or {}),
                split=split,
                expand=expand,
                dtype=dtype,
            )
        if row_likelihoods:
            raise ValueError("row_likelihoods need row_case (the case of each row).")
        marg: dict[int, np.ndarray] = {t: np.empty((n_cases, len(net.states[t])), dtype=dtype) for t in target_ids}
        log_z: np.ndarray = np.empty(n_cases, dtype=dtype)
        decomposed = self.decomposed(tables)
        if expand and split:
            leaves = self._expandable(lam, target_ids, decomposed)
            if leaves:
                unknown = [v for v in lower if v not in self._index]
                if unknown:
                    raise ValueError(f"lower names {unknown!r}, not variables of the network.")
                low = [self._index[v] for v in lower if self._index[v] in leaves]
                return expand_terms(self, lam, target_ids, tables, leaves, n_cases, dtype=dtype, lower=low)
        # without expansion, findings stay in the contraction (at their lowest level they need no level index)
        lowest_rows = {v: rows_at_lowest(net, v, lam[v]) for v in decomposed if v in lam}
        split = split and bool(lam)  # without evidence every case has the same pattern: nothing to split
        offset = None
        carried_key = self._key(lam, target_ids, decomposed, lowest_rows)
        hard = carried_key[3]
        if shared and n_cases <= SMALL_BATCH and not decomposed and self._small_network and self._affordable(self._universal_key):
            # a few cases: one cached contraction carrying every variable costs less than compiling one
            # for these cases' own evidence
            carried_key, hard = self._universal_key, frozenset()
        one = n_cases == 1 and len(target_ids) == 1 and target_ids[0] not in hard and dtype is np.float64
        if one and not decomposed and carried_key not in self._programs:  # a new pattern: no program (engine/single_target.py)
            observed, offset = states_and_log_likelihood(lam, hard)
            at = {v: int(o[0]) for v, o in observed.items()}
            done = posterior_of_one(net, lam, target_ids[0], at, tables, self.max_entries, self._orders)
            if done is not None:
                marg[target_ids[0]][0], log_z[0] = done
                return finish(net, marg, log_z, offset, route="single target")
        # a few cases whose joint program is not compiled yet: one program (one case, one target: none) per pattern,
        # what their single calls use (compiling the joint one first cost diabetes' batches of 5 cases
        # 2.5 times their single calls)
        few = split and 1 < n_cases < MIN_CHUNK and carried_key != self._universal_key and carried_key not in self._programs
        program = None
        if not few and (not split or self._affordable(carried_key)):
            program = self._program(carried_key)
        if (
            program is not None
            and split
            and n_cases > 1
            and carried_key != self._universal_key
            and union_costs_more(program, lam, target_ids, lowest_rows, lambda sub: self._own_program(sub, target_ids, decomposed))
        ):
            program = None  # cheaper case by case: every observed variable taken at its state
        if program is None and n_cases > 1:
            # the variables observed somewhere in the batch make too large a contraction: split the batch
            # by each case's own pattern of observed variables, one (cached) contraction per pattern
            for rows, sub in split_by_pattern(lam, target_ids, lowest_rows):
                part = self.posterior(
                    {net.variables[v]: a for v, a in sub.items()}, targets, rows.size, tables=tables, split=False, dtype=dtype
                )
                log_z[rows] = part.log_evidence
                for t in target_ids:
                    marg[t][rows] = part.marginals[net.variables[t]]
            return finish(net, marg, log_z, offset, route="patterns")
        if program is None:
            program = self._program(carried_key)
        fits = CHUNK_BUDGET_ENTRIES // max(1, program.entries_per_case)  # cases whose tables fit the budget
        chunk = max(1, min(n_cases, fits))
        # A chunk narrowed by large tables can cost more per case than one case at a time (einsum's inner loops
        # over a handful of cases: on mildew 4 at a time cost 3.6 times 1 at a time; on pathfinder's next-step
        # rows 5 at a time cost 0.7 times). Which wins is measured once per program, on the batch's own cases.
        # A few cases of small tables run together (a vignette's own contraction for its 12 copies: one at a
        # time cost about 12 times as much, the passes' Python steps paid per case).
        trial = False
        if 1 < chunk < MIN_CHUNK and fits < MIN_CHUNK:
            if carried_key in self._narrow:
                chunk = min(chunk, self._narrow[carried_key])
            elif n_cases > chunk:
                trial = True
            else:
                chunk = 1  # too few cases to compare: one at a time, the cheaper mistake
        timing: list[float] = []
        error = np.zeros(n_cases) if program.weighted else None  # each case's rounding bound
        ones = {v: np.ones((1, len(net.states[v]))) for v in program.lambda_vars}
        # each case's state of a hard variable; its likelihood there (1 for plain evidence) multiplies P(e)
        observed, offset = states_and_log_likelihood(lam, hard)
        for v in hard & marg.keys():
            marg[v][:] = 0.0
            marg[v][np.arange(n_cases), observed[v]] = 1.0
        start = 0
        while start < n_cases:
            if trial and len(timing) == 2:  # the first chunk ran wide, the next case alone: keep the faster
                chunk, trial = self._narrow[carried_key], False
            width = 1 if trial and len(timing) == 1 else chunk
            stop = min(n_cases, start + width)
            size = stop - start
            clock = time.perf_counter()
            lambdas = [
                lam[v][start:stop] if v in lam else np.broadcast_to(ones[v], (size, len(net.states[v]))) for v in program.lambda_vars
            ]
            columns = [np.ascontiguousarray(a.T) for a in lambdas]  # (states, cases): the batch axis last
            states = {v: o[start:stop] for v, o in observed.items()}
            passed = run(program, tables, net.decompositions, columns, size, states, dtype, targets=marg.keys())
            grads, log_z[start:stop] = passed.grads, passed.log_z
            if error is not None:
                error[start:stop] = rounding_error(program, columns, passed, marg)
            marginals_of_targets(program, passed.columns or columns, grads, marg, start, stop)
            if trial:
                timing.append((time.perf_counter() - clock) / size)
                if len(timing) == 2:
                    self._narrow[carried_key] = 1 if timing[1] < timing[0] else chunk
            start = stop
        if error is not None and (redo := cancelled(error)).size:
            compute_again(self, lam, target_ids, tables, redo, log_z, marg, offset, dtype)
        return finish(net, marg, log_z, offset, route="universal" if carried_key == self._universal_key else "contraction")

    def term_rows(
        self,
        columns: Mapping[int, np.ndarray],
        target_ids: Sequence[int],
        n_rows: int,
        tables: Sequence[np.ndarray],
        dtype: type = np.float64,
    ) -> BatchPosterior | None:
        """Marginals for the rows of Quickscore terms, their likelihoods given as ``(states, rows)`` columns.

        The rows of :func:`~bayesdx.engine.quickscore.expand` are many (a case's terms times its rows) and
        carry plain likelihoods on the variables that are not noisy leaves; they are contracted by one
        program, in the layout the program runs in, without the checks and transposes of :meth:`posterior`.
        Returns None where that does not apply (a carried noisy variable, a program larger than
        ``SPLIT_ENTRIES`` per row, or chunks narrower than ``MIN_CHUNK`` rows): then :meth:`posterior`.
        """
        net = self.network
        decomposed = self.decomposed(tables)
        if decomposed & set(columns):
            return None
        # a variable every row observes (at most one nonzero likelihood per row, the case's age or sex say) is
        # taken at each row's state: its axis leaves the tables, and its likelihood there multiplies P(e)
        hard = frozenset(v for v, c in columns.items() if v not in target_ids and (np.count_nonzero(c, axis=0) <= 1).all())
        key: ProgramKey = (frozenset(columns) | frozenset(target_ids), decomposed, frozenset(), hard)
        if not self._affordable(key):
            return None
        program = self._program(key)
        chunk = max(1, min(n_rows, CHUNK_BUDGET_ENTRIES // max(1, program.entries_per_case)))
        if chunk < min(n_rows, MIN_CHUNK) or program.weighted:  # signed: posterior bounds its rounding errors
            return None
        marg: dict[int, np.ndarray] = {t: np.empty((n_rows, len(net.states[t])), dtype=dtype) for t in target_ids}
        log_z: np.ndarray = np.empty(n_rows, dtype=dtype)
        observed = {v: np.argmax(columns[v] != 0, axis=0) for v in hard}
        offset: np.ndarray = np.zeros(n_rows, dtype=dtype)  # in the rows' precision: it enters every term of a signed sum
        with np.errstate(divide="ignore"):
            for v, state in observed.items():
                offset += np.log(columns[v][state, np.arange(n_rows)])
        for start in range(0, n_rows, chunk):
            stop = min(n_rows, start + chunk)
            size = stop - start
            part = [
                (columns[v] if size == n_rows else np.ascontiguousarray(columns[v][:, start:stop]))
                if v in columns
                else np.ones((len(net.states[v]), size), dtype=dtype)
                for v in program.lambda_vars
            ]
            states = {v: state[start:stop] for v, state in observed.items()}
            passed = run(program, tables, net.decompositions, part, size, states, dtype)
            log_z[start:stop] = passed.log_z
            marginals_of_targets(program, passed.columns or part, passed.grads, marg, start, stop)
        return finish(net, marg, log_z, offset if hard else None, route="contraction")

    def _key(
        self,
        lam: Mapping[int, np.ndarray],
        target_ids: Sequence[int],
        decomposed: frozenset[int],
        lowest_rows: Mapping[int, np.ndarray] | None = None,
    ) -> ProgramKey:
        """The program key :meth:`posterior` uses for cases with likelihoods ``lam`` (without splitting);
        ``lowest_rows`` (see :func:`~bayesdx.engine.network.rows_at_lowest`) where the caller has them already."""
        if lowest_rows is None:
            lowest_rows = {v: rows_at_lowest(self.network, v, lam[v]) for v in decomposed if v in lam}
        lowest = frozenset(v for v, rows in lowest_rows.items() if rows.all())
        return (frozenset(lam) | frozenset(target_ids), decomposed, lowest, one_hot_variables(lam))

    def _own_program(self, lam: Mapping[int, np.ndarray], target_ids: Sequence[int], decomposed: frozenset[int]) -> Program | None:
        """The program of cases with likelihoods ``lam`` (see :meth:`_key`), or None where it is not affordable."""
        key = self._key(lam, target_ids, decomposed)
        return self._program(key) if self._affordable(key) else None

    def decomposed(self, tables: Sequence[np.ndarray]) -> frozenset[int]:
        """The noisy variables whose decomposition still holds with ``tables`` (a replaced table has none)."""
        if tables is self.network.tables:
            return self._decomposable
        return frozenset(v for v in self._decomposable if tables[v] is self.network.tables[v])

    def _expandable(self, lam: Mapping[int, np.ndarray], target_ids: Sequence[int], decomposed: frozenset[int]) -> list[int]:
        """The noisy leaves with evidence that enter as signed terms (see :func:`~bayesdx.engine.quickscore.expand`)."""
        targets = set(target_ids)
        return [v for v in sorted(lam) if v in decomposed and v not in self._has_children and v not in targets]

    def _rows(
        self,
        lam: dict[int, np.ndarray],
        target_ids: list[int],
        tables: Sequence[np.ndarray],
        n: int,
        row_case: np.ndarray,
        row_likelihoods: Mapping[str, np.ndarray],
        *,
        split: bool,
        expand: bool,
        dtype: type,
    ) -> BatchPosterior:
        """:meth:`posterior` for rows that share their case's evidence (see its ``row_case``)."""
        net = self.network
        if row_case.ndim != 1 or (row_case.size and (row_case.min() < 0 or row_case.max() >= n)):
            raise ValueError(f"row_case must be a 1-d array of case positions in [0, {n}).")
        row_lam: dict[int, np.ndarray] = {self._index[v]: np.asarray(a, dtype=dtype) for v, a in row_likelihoods.items()}
        for v, a in row_lam.items():
            if a.shape != (row_case.size, len(net.states[v])):
                raise ValueError(
                    f"Row likelihood of {net.variables[v]!r} has shape {a.shape}; expected {(row_case.size, len(net.states[v]))}."
                )
        decomposed = self.decomposed(tables)
        leaves = self._expandable(lam, target_ids, decomposed) if expand and split else []
        if leaves and not set(row_lam) & set(leaves):
            return expand_terms(self, lam, target_ids, tables, leaves, n, row_case, row_lam, dtype=dtype)
        merged = {v: a[row_case] for v, a in lam.items()}
        for v, a in row_lam.items():
            merged[v] = merged[v] * a if v in merged else a
        return self.posterior(
            {net.variables[v]: a for v, a in merged.items()},
            [net.variables[t] for t in target_ids],
            row_case.size,
            tables=tables,
            split=split,
            expand=expand,
            dtype=dtype,
        )

    def positive_twin(self) -> InferenceEngine:
        """An engine for the same network that compiles every noisy CPD as its non-negative decomposition
        (:attr:`~bayesdx.engine.network.Decomposition.positive`; its full table where that has a negative entry):
        larger contractions that never cancel."""
        if self._twin is None:
            net = self.network
            decs = tuple(d if d is not None and d.nonnegative else None for d in net.decompositions or ())
            twin = replace(net, decompositions=decs or None)  # the same tables: replacement tables still apply
            self._twin = InferenceEngine(twin, optimize=self.optimize, max_entries=self.max_entries, positive_parents=sys.maxsize)
        return self._twin

    def _universal(self) -> UniversalRunner | None:
        """The runner of the universal program with this engine's tables (built once), or None where a few
        cases do not take the universal route (noisy CPDs, a large network, too large a program)."""
        if self._no_runner:
            return None
        if self._runner is None:
            if self._decomposable or not self._small_network or not self._affordable(self._universal_key):
                self._no_runner = True
                return None
            program = self._program(self._universal_key)
            self._runner = UniversalRunner(
                program, self.network.tables, CHUNK_BUDGET_ENTRIES // max(1, program.entries_per_case), self.network.parents
            )
        return self._runner

    def _compile(self, key: ProgramKey) -> Program:
        return compile_program(self.network, key, self.optimize, self.max_entries, self._positive_parents)

    def at_lowest(self, v: int, lam: np.ndarray) -> np.ndarray:
        """Rows whose likelihood for noisy variable ``v`` is one-hot at its lowest level (see :func:`rows_at_lowest`)."""
        return rows_at_lowest(self.network, v, lam)

    def _affordable(self, carried: ProgramKey) -> bool:
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
    def _program(self, carried: ProgramKey) -> Program:
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
