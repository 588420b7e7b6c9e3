"""The universal program (every variable carried) run for a few cases, paying only for what they observe and
what is asked.

A forward step with no observed likelihood below it computes the same table for every case: it is computed
once per engine, with every likelihood one, and reused (its batch axis has length one and broadcasts). The
backward pass follows only the paths from the root to the targets' likelihoods: the gradients of the other
likelihoods are never read. Which steps run is derived once per pattern of observed variables and targets,
in Python over the program's steps, which costs far less than compiling a program for the pattern.

A target that is independent of every observed variable keeps its prior marginal, computed once: no backward
step runs for it. The test is the ancestral one (Lauritzen et al. 1990; Koller & Friedman 2009, section 3.3):
when no ancestor of the target (itself included) is an ancestor of an observed variable (itself included), the
joint of the two ancestral sets is the product of their own CPDs, so the target and the evidence are
independent. On hailfinder, 13 of the 17 roots are independent of a typical case's evidence.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from threading import Lock
from typing import Literal, NamedTuple

import numpy as np

from .execute import UNSCALED_FLOOR
from .kernels import einsum
from .plan import OperandKind, Program

__all__ = ["UniversalRunner"]

#: Patterns (observed likelihoods, targets) whose pruned passes are kept per runner.
MAX_TAPES = 1024


_Joint = tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]  # P(v), the stacked P(t, v), each target's rows


class _Tape(NamedTuple):
    """The steps one pattern runs: forward ``(node, inputs, spec)``; backward ``(node, plans)``."""

    forward: tuple[tuple[int, tuple[int, ...], str], ...]
    backward: tuple[tuple[int, tuple[tuple[int, int, str, tuple[int, ...]], ...]], ...]  # (child, other, spec, axes it lacks)
    independent: frozenset[int]  # targets independent of the evidence: their prior marginal


class UniversalRunner:
    """The universal program of one engine's tables, run pruned to each batch's evidence and targets.

    Parameters
    ----------
    program : Program
        A program without decomposed CPD operands and without variables taken at their state (the
        universal program carries every variable as a likelihood).
    tables : sequence of numpy.ndarray
        The CPD tables the constant tables are computed from.
    max_cases : int, default 64
        The most cases the engine runs at once (its memory budget for the program's tables).
    parents : sequence of sequence of int, optional
        Each variable's parents. Without them no target is taken as independent of the evidence.
    """

    def __init__(
        self, program: Program, tables: Sequence[np.ndarray], max_cases: int = 64, parents: Sequence[Sequence[int]] | None = None
    ) -> None:
        if any(src.kind is not OperandKind.TABLE or src.hard_axes for src in program.sources):
            raise ValueError("The universal runner needs a program of plain CPD tables.")
        self.program = program
        self.tables = tables
        self.max_cases = max_cases
        self._first_lambda = len(program.sources)
        self._lambda_node = {v: self._first_lambda + k for k, v in enumerate(program.lambda_vars)}
        values: list[np.ndarray] = [np.asarray(tables[src.variable], dtype=np.float64) for src in program.sources]
        values += [np.ones((int(tables[v].shape[0]), 1)) for v in program.lambda_vars]
        for ins, spec, _ in program.forward:
            values.append(einsum(spec, *(values[i] for i in ins)))
        self._constants = values  # every node with every likelihood one; batch axes of length one
        # per node, the likelihoods below it as the bits of an int (bit k: program.lambda_vars[k]); a step runs
        # forward when an observed likelihood is below it, backward when a target's is
        below = [0] * self._first_lambda + [1 << k for k in range(len(program.lambda_vars))]
        for ins, _, _ in program.forward:
            mask = 0
            for i in ins:
                mask |= below[i]
            below.append(mask)
        self._below = below
        self._bit = {v: 1 << k for k, v in enumerate(program.lambda_vars)}
        n_inputs = len(program.operands)
        self._forward = [(n_inputs + step, ins, spec) for step, (ins, spec, _) in enumerate(program.forward)]
        self._backward = [
            (
                node,
                tuple(
                    (child, other, spec, () if mask is None else tuple(k for k, keep in enumerate(mask) if not keep))
                    for child, other, spec, mask in plans
                ),
            )
            for _, node, plans in program.backward
        ]
        self._tapes: OrderedDict[tuple[frozenset[int], tuple[int, ...]], _Tape] = OrderedDict()
        self._lock = Lock()
        self._ancestry = None if parents is None else _ancestors(parents)  # per variable, its ancestors and itself as bits
        self._prior: dict[int, np.ndarray] = {}  # per target, its (states, 1) marginal without evidence (filled when first needed)
        # per (observed variable, targets): P(v), the targets' joints with v and their rows, or False (see _one_observed)
        self._joints: OrderedDict[tuple[int, tuple[int, ...]], _Joint | Literal[False]] = OrderedDict()

    def posterior(self, lam: Mapping[int, np.ndarray], targets: Sequence[int], n: int) -> tuple[dict[int, np.ndarray], np.ndarray] | None:
        """Marginals of ``targets`` and ``log Z`` for ``n`` cases, or None where a case needs rescaling.

        Parameters
        ----------
        lam : mapping of int to numpy.ndarray
            Per variable, ``(n, states)`` likelihoods (variables not listed are unobserved).
        targets : sequence of int
        n : int

        Returns
        -------
        (dict of int to numpy.ndarray, numpy.ndarray) or None
            The ``(n, states)`` marginal of each target and ``log Z`` per case; None when some case's
            probability of evidence comes out below ``UNSCALED_FLOOR`` (or zero), which the caller then
            computes with per-step rescaling.
        """
        columns: dict[int, np.ndarray] = {}
        log_peak: np.ndarray | float = 0.0
        for v, a in lam.items():
            top = a.max()
            if top == 1.0 and a.min() == 1.0:
                continue  # unobserved in every case: the constant tables hold it
            column = np.asarray(a.T, dtype=np.float64)  # (states, cases): the batch axis last
            if top > 1.0:  # scaled to at most 1 per case, as UNSCALED_FLOOR assumes
                peak = column.max(axis=0)
                peak = np.where(peak > 0, peak, 1.0)
                log_peak = log_peak + np.log(peak)
                column = column / peak
            columns[v] = column
        if len(columns) == 1:
            done = self._one_observed(columns, log_peak, tuple(targets), n)
            if done is not None:
                return done
        return self._run(columns, log_peak, targets, n)

    def _one_observed(
        self, columns: Mapping[int, np.ndarray], log_peak: np.ndarray | float, targets: tuple[int, ...], n: int
    ) -> tuple[dict[int, np.ndarray], np.ndarray] | None:
        """:meth:`posterior` where one variable ``v`` carries evidence: ``P(t, e) = sum_s P(t, v = s) lambda(s)``
        from each target's joint with ``v``, computed once (None where that joint is not available)."""
        ((v, column),) = columns.items()
        key = (v, targets)
        with self._lock:
            joint = self._joints.get(key)
        if joint is None:
            joint = self._joint_with(v, targets)
            with self._lock:
                self._joints[key] = joint
                if len(self._joints) > MAX_TAPES:
                    self._joints.popitem(last=False)
        if joint is False:
            return None
        p_v, stacked, bounds = joint
        z = p_v @ column  # (cases,): P(e)
        if not z.min() >= UNSCALED_FLOOR:  # also zero or NaN: the passes of the caller
            return None
        joint_e = stacked @ column / z  # (all targets' states, cases)
        marg = {t: joint_e[start:stop].T.copy() for t, (start, stop) in zip(targets, bounds, strict=True)}
        return marg, np.log(z) + log_peak

    def _joint_with(self, v: int, targets: tuple[int, ...]) -> _Joint | Literal[False]:
        """``P(v = s)`` and each target's joint ``P(t, v = s)`` (stacked), from one run with ``v`` observed in
        each of its states; False where a state of ``v`` has probability below ``UNSCALED_FLOOR`` (or there are
        no targets, or more states than the runner takes cases)."""
        size = self._constants[self._lambda_node[v]].shape[0]
        if not targets or size > self.max_cases:
            return False
        done = self._run({v: np.eye(size)}, 0.0, targets, size)
        if done is None:
            return False
        marg, log_z = done
        p_v = np.exp(log_z)
        stacked = np.concatenate([(marg[t] * p_v[:, None]).T for t in targets], axis=0)
        ends = np.cumsum([marg[t].shape[1] for t in targets]).tolist()
        return p_v, stacked, list(zip([0, *ends[:-1]], ends, strict=True))

    def _run(
        self, columns: Mapping[int, np.ndarray], log_peak: np.ndarray | float, targets: Sequence[int], n: int
    ) -> tuple[dict[int, np.ndarray], np.ndarray] | None:
        """:meth:`posterior` from the likelihoods that carry evidence, as ``(states, cases)`` columns."""
        tape = self._tape(frozenset(columns), tuple(targets))
        if tape.independent:
            self._priors_of(tape.independent)
        values = list(self._constants)
        node_of = self._lambda_node
        for v, column in columns.items():
            values[node_of[v]] = column
        for node, ins, spec in tape.forward:
            values[node] = einsum(spec, *[values[i] for i in ins])
        root = values[-1]
        if root.shape != (n,):
            root = np.broadcast_to(root, (n,))
        if not root.min() >= UNSCALED_FLOOR:  # also zero or NaN
            return None
        log_z = np.log(root) + log_peak
        grads = _backward(tape, values, 1.0 / root)
        marg: dict[int, np.ndarray] = {}
        for t in targets:
            node = node_of[t]
            column = values[node]
            g = grads.pop(node, None)
            shape = (column.shape[0], n)
            if t in tape.independent:  # its prior: a copy, which finish() may overwrite
                prior = self._prior[t]
                m = prior.copy() if n == 1 else np.repeat(prior, n, axis=1)
            elif g is None:
                m = np.zeros(shape)
            elif t not in columns:  # its likelihood is all ones: the gradient is the marginal
                m = g if g.shape == shape and g.flags.writeable else np.broadcast_to(g, shape).copy()
            else:
                m = np.broadcast_to(column * g, shape).copy()
                onehot = np.count_nonzero(column, axis=0) == 1  # observed: the marginal is the state itself, exactly
                if onehot.any():
                    m[:, onehot] = column[:, onehot] != 0
            marg[t] = m.T
        return marg, log_z

    def _priors_of(self, targets: frozenset[int]) -> None:
        """Compute (once) the marginals without evidence of ``targets``."""
        missing = sorted(targets - self._prior.keys())
        if not missing:
            return
        tape = self._tape(frozenset(), tuple(missing), relevance=False)
        values = self._constants
        grads = _backward(tape, values, 1.0 / values[-1])
        found = {}
        for t in missing:
            if self._ancestry is not None and self._ancestry[t] == 1 << t:
                # a root: its own table, so that equal entries stay equal (tied causes then rank in model order,
                # not by the last bit of a contraction)
                table = np.asarray(self.tables[t], dtype=np.float64).reshape(-1, 1)
                found[t] = table / table.sum()
                continue
            g = grads.get(self._lambda_node[t])
            size = values[self._lambda_node[t]].shape[0]
            found[t] = np.zeros((size, 1)) if g is None else np.broadcast_to(g, (size, 1)).copy()
        with self._lock:
            self._prior.update(found)

    def _tape(self, observed: frozenset[int], targets: tuple[int, ...], *, relevance: bool = True) -> _Tape:
        """The forward steps with an observed likelihood below, the targets independent of the observed
        variables and the backward steps towards the others."""
        key = (observed, targets) if relevance else (observed, (-1, *targets))
        with self._lock:
            tape = self._tapes.get(key)
            if tape is not None:
                self._tapes.move_to_end(key)
                return tape
        independent: frozenset[int] = frozenset()
        ancestry = self._ancestry
        if relevance and ancestry is not None:
            evidence_ancestry = 0
            for v in observed:
                evidence_ancestry |= ancestry[v]
            independent = frozenset(t for t in targets if not ancestry[t] & evidence_ancestry)
        observed_bits = sum(self._bit[v] for v in observed)
        target_bits = sum(self._bit[t] for t in set(targets) - independent)
        below = self._below
        forward = [entry for entry in self._forward if below[entry[0]] & observed_bits]
        backward = []
        for node, plans in self._backward:
            if below[node] & target_bits:
                kept = tuple(plan for plan in plans if below[plan[0]] & target_bits)
                if kept:
                    backward.append((node, kept))
        tape = _Tape(tuple(forward), tuple(backward), independent)
        with self._lock:
            self._tapes[key] = tape
            if len(self._tapes) > MAX_TAPES:
                self._tapes.popitem(last=False)
        return tape


def _backward(tape: _Tape, values: Sequence[np.ndarray], top: np.ndarray) -> dict[int, np.ndarray]:
    """The tape's backward pass from the root's gradient ``top``: the gradient of each node it reaches."""
    grads: dict[int, np.ndarray] = {len(values) - 1: top}
    for node, plans in tape.backward:
        g = grads.pop(node, None)
        if g is None:
            continue
        for child, other, spec, lacking in plans:
            dg = einsum(spec, g, values[other]) if other >= 0 else einsum(spec, g)
            if lacking:  # the gradient does not vary along the axes it lacks: length one there
                dg = np.expand_dims(dg, lacking)
            grads[child] = grads[child] + dg if child in grads else dg
    return grads


def _ancestors(parents: Sequence[Sequence[int]]) -> list[int]:
    """Per variable, the bits of its ancestors and of itself (bit ``k``: variable ``k``)."""
    found: list[int | None] = [None] * len(parents)

    def bits(v: int) -> int:
        stack = [v]
        while stack:  # iterative: a chain of a thousand variables would exceed Python's recursion limit
            u = stack[-1]
            waiting = [p for p in parents[u] if found[p] is None]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            if found[u] is None:
                mask = 1 << u
                for p in parents[u]:
                    mask |= found[p]  # type: ignore[operator]
                found[u] = mask
        return found[v]  # type: ignore[return-value]

    return [bits(v) for v in range(len(parents))]
