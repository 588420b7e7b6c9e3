"""Contraction plans: which tables to multiply in which order for one set of evidence-carrying variables.

A :class:`Program` is compiled once per :data:`ProgramKey` (what the batch carries) and cached by the engine.
Its operands are the CPD tables (or the factors of a noisy CPD's decomposition, :class:`OperandKind`)
followed by one likelihood per variable with evidence; every step contracts two operands, with the batch
axis last. ``print(program)`` shows the einsum equation, each step and the largest table, like
opt_einsum's ``PathInfo``.
"""

from __future__ import annotations

import bisect
import enum
import functools
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import opt_einsum

from ..exceptions import ModelTooLargeError
from .network import CompiledNetwork

__all__ = ["BATCH", "MAX_ENTRIES_PER_CASE", "Operand", "OperandKind", "Program", "ProgramKey", "compile_program"]

#: Largest intermediate table (entries per case) the engine will build.
MAX_ENTRIES_PER_CASE = 2**27
#: A noisy CPD carried above its lowest level with at most this many parents enters a contraction as its
#: non-negative decomposition (:attr:`~bayesdx.engine.network.Decomposition.positive`: parents + 2 terms, no
#: cancellation) rather than its signed levels (2 for noisy-OR). With more, the larger hidden index costs more
#: than the cancellation: on the bundled model's vignettes (findings of 1 to 7 parents, and two of 20), every
#: own contraction then met its rounding bound in double precision, 1.67 ms a case against 1.96 without.
POSITIVE_PARENTS = 8
#: Batch size assumed when searching for a contraction order.
_NOMINAL_BATCH = 1  # a larger value makes the optimizer multiply evidence-free CPDs into huge tables
BATCH = -1  # index id of the batch axis
_BATCH = BATCH
#: What a compiled contraction is for: (carried variables, decomposed variables, variables observed at their
#: lowest level in every case, variables observed in one state in every case).
ProgramKey = tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]


class OperandKind(enum.Enum):
    """Where a CPD operand's numbers come from."""

    TABLE = "table"  #: the variable's full CPD table
    WEIGHTS = "weights"  #: W[level, state] of a noisy CPD's decomposition
    FACTOR = "factor"  #: G_i[level, parent state] of one parent of a noisy CPD
    LOWEST_WEIGHT = "lowest weight"  #: W at the lowest level (the variable observed there in every case)
    LOWEST_FACTOR = "lowest factor"  #: G_i at the lowest level
    POSITIVE_WEIGHTS = "positive weights"  #: W+[term, state] of the non-negative decomposition
    POSITIVE_FACTOR = "positive factor"  #: G+_i[term, parent state]


class Operand(NamedTuple):
    """One CPD operand of a program.

    Attributes
    ----------
    variable : int
        The variable whose CPD it comes from.
    kind : OperandKind
    parent : int
        For factors, the position of the parent among the variable's parents (-1 otherwise).
    hard_axes : tuple of (int, int)
        ``(axis, variable)`` of the axes taken at each case's observed state (the operand is then per case).
    """

    variable: int
    kind: OperandKind
    parent: int = -1
    hard_axes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Program:
    """A compiled contraction for one set of evidence-carrying variables."""

    operands: tuple[tuple[int, ...], ...]  # index ids per operand; CPD factors first, then lambdas
    sources: tuple[Operand, ...]  # per CPD operand, in operand order
    lambda_vars: tuple[int, ...]  # variable of each lambda operand, in operand order after the CPDs
    steps: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (input slots, output indices)
    entries_per_case: int  # total batched intermediate entries per case (memory)
    largest_per_case: int
    forward: tuple[tuple[tuple[int, ...], str, bool], ...] = ()  # per step: (input nodes, einsum spec, batched)
    backward: tuple[tuple[int, int, tuple[tuple[int, int, str, tuple[bool, ...] | None], ...]], ...] = ()
    # per step, last first: (step index, output node, ((child, other node or -1, spec, broadcast mask), ...))
    equation: str = ""  # the whole contraction as one einsum equation (batch axis last)
    variables: tuple[str, ...] = ()  # the network's variable names, for printing
    # rounded operations per entry of each step, filled in by :class:`~bayesdx.engine.rounding.RunningError`
    terms: dict[tuple[int, ...], int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def weighted(self) -> bool:
        """Whether an operand holds a noisy CPD's signed weights over its level index (the decomposition of
        Diez and Galan: the contraction can cancel)."""
        return any(src.kind is OperandKind.WEIGHTS for src in self.sources)

    def _name(self, index: int) -> str:
        if index == _BATCH:
            return "case"
        n = len(self.variables)
        if index >= n:  # the hidden level index of a noisy CPD
            return f"level({self.variables[index - n]})" if index - n < n else str(index)
        return self.variables[index] if index < n else str(index)

    def __repr__(self) -> str:
        """The equation, every operand, every step with the table it builds, and the largest table."""
        lines = [
            f"Program: {len(self.sources)} CPD operands, {len(self.lambda_vars)} likelihoods, {len(self.steps)} steps",
            f"  equation: {self.equation}",
        ]
        for k, (op, src) in enumerate(zip(self.operands, self.sources, strict=False)):
            what = self.variables[src.variable] if src.variable < len(self.variables) else str(src.variable)
            part = f" parent {src.parent}" if src.parent >= 0 else ""
            hard = f", taken at the case's {', '.join(self._name(h) for _, h in src.hard_axes)}" if src.hard_axes else ""
            lines.append(f"  operand {k}: {src.kind.value} of {what}{part} [{', '.join(self._name(i) for i in op)}]{hard}")
        for k, v in enumerate(self.lambda_vars):
            lines.append(f"  operand {len(self.sources) + k}: likelihood of {self._name(v)}")
        n_operands = len(self.operands)
        for k, (_, out) in enumerate(self.steps):
            nodes = self.forward[k][0] if k < len(self.forward) else ()
            names = " x ".join(f"operand {i}" if i < n_operands else f"table {i - n_operands}" for i in nodes)
            lines.append(f"  step {k}: table {k} = {names} -> [{', '.join(self._name(i) for i in out)}]")
        lines.append(f"  largest table: {self.largest_per_case} entries per case; {self.entries_per_case} entries per case in all")
        return "\n".join(lines)


def _tape(
    operands: Sequence[tuple[int, ...]],
    texts: Sequence[str],
    steps: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
    first_lambda: int,
) -> tuple[tuple, tuple]:
    """Einsum specs of the forward and backward passes, built once per program.

    ``texts`` are the operands' :func:`_text`. Operands from ``first_lambda`` on are the likelihoods; the
    backward pass only follows nodes with a likelihood below them.
    """
    indices = list(operands)
    text = list(texts)  # each node's indices as a string, for lettering (see _einsum)
    n = len(operands)
    has_lambda = [False] * first_lambda + [True] * (n - first_lambda)
    # per node, whether it is batched with a likelihood below it (the backward pass visits it)
    wanted = [False] * first_lambda + [bool(op) and op[-1] == _BATCH for op in operands[first_lambda:]]
    slot_nodes = list(range(n))
    forward = []
    for contracted, out in steps:
        if len(contracted) == 2:
            p, q = contracted
            ins: tuple[int, ...] = (slot_nodes[p], slot_nodes[q])
            del slot_nodes[max(p, q)], slot_nodes[min(p, q)]
            below = has_lambda[ins[0]] or has_lambda[ins[1]]
            spec = _einsum((text[ins[0]], text[ins[1]]), out_text := _text(out))
        else:
            ins = tuple([slot_nodes[k] for k in contracted])
            for k in sorted(contracted, reverse=True):
                del slot_nodes[k]
            below = True in [has_lambda[i] for i in ins]
            spec = _einsum(tuple([text[i] for i in ins]), out_text := _text(out))
        batched = bool(out) and out[-1] == _BATCH
        forward.append((ins, spec, batched))
        has_lambda.append(below)
        wanted.append(below and batched)
        indices.append(out)
        text.append(out_text)
        slot_nodes.append(len(indices) - 1)

    def plan(node: int, child: int, other: int) -> tuple[int, int, str, tuple[bool, ...] | None]:
        """How ``child``'s gradient comes from ``node``'s and the ``other`` input (-1: none)."""
        target = indices[child]
        available = {*indices[node], *indices[other]} if other >= 0 else set(indices[node])
        kept = tuple([i for i in target if i in available])
        if len(kept) == len(target):
            return child, other, _einsum((text[node], text[other]) if other >= 0 else (text[node],), text[child]), None
        spec = _einsum((text[node], text[other]) if other >= 0 else (text[node],), _text(kept))
        return child, other, spec, tuple([i in available for i in target])

    backward = []
    for step in range(len(steps) - 1, -1, -1):
        ins, _, batched = forward[step]
        if not batched:
            continue
        node = n + step
        if len(ins) == 2:
            a, b = ins
            plans = ((plan(node, a, b),) if wanted[a] else ()) + ((plan(node, b, a),) if wanted[b] else ())
        else:
            plans = tuple([plan(node, child, -1) for child in ins if wanted[child]])
        backward.append((step, node, plans))
    return tuple(forward), tuple(backward)


def compile_program(
    net: CompiledNetwork,
    key: ProgramKey,
    optimize: str = "elimination",
    max_entries: int = MAX_ENTRIES_PER_CASE,
    positive_parents: int | None = None,
) -> Program:
    """The program for one :data:`ProgramKey`: operands, a pairwise contraction order and the pass tapes.

    A noisy CPD carried above its lowest level with at most ``positive_parents`` parents (default
    :data:`POSITIVE_PARENTS`) enters as its non-negative decomposition, where it has one.

    Raises
    ------
    ModelTooLargeError
        If an intermediate table would exceed ``max_entries`` entries per case.
    """
    carried, decomposed, lowest, hard = key
    n_vars = len(net.variables)
    keep = sorted(net.ancestors(sorted(carried)))  # barren variables sum to one: drop them
    lambda_vars = tuple(sorted(carried - hard))
    cards = dict(enumerate(net.cards))
    cards[_BATCH] = _NOMINAL_BATCH
    if not decomposed:  # full CPD tables only
        operands: list[tuple[int, ...]] = [(v, *net.parents[v]) for v in keep]
        sources: list[Operand] = list(map(_table_source, keep))
    else:
        operands, sources = [], []
        for v in keep:
            dec = net.decompositions[v] if v in decomposed and net.decompositions else None
            if dec is None:
                operands.append((v, *net.parents[v]))
                sources.append(_table_source(v))
                continue
            if v in lowest:  # observed at the lowest level in every case: L(0) * prod_i G_i[0, pa_i], no sum
                operands.append((v,))
                sources.append(Operand(v, OperandKind.LOWEST_WEIGHT))
                for k, p in enumerate(net.parents[v]):
                    operands.append((p,))
                    sources.append(Operand(v, OperandKind.LOWEST_FACTOR, k))
                continue
            level = n_vars + v  # the hidden level index of this CPD
            # non-negative terms where they are few (nothing to cancel), else the signed levels
            limit = POSITIVE_PARENTS if positive_parents is None else positive_parents
            positive = len(net.parents[v]) <= limit and dec.nonnegative
            cards[level] = dec.positive[0].shape[0] if positive else dec.weights.shape[0]
            operands.append((level, v))
            sources.append(Operand(v, OperandKind.POSITIVE_WEIGHTS if positive else OperandKind.WEIGHTS))
            for k, p in enumerate(net.parents[v]):
                operands.append((level, p))
                sources.append(Operand(v, OperandKind.POSITIVE_FACTOR if positive else OperandKind.FACTOR, k))
    # a variable observed in every case (one state, a single nonzero likelihood) is not summed over: each
    # operand holding it is taken at the case's state, a per-case operand without that index
    gathered = 0  # entries per case of those operands
    for k, op in enumerate(operands):
        if not hard.isdisjoint(op):
            kept = [i for i in op if i not in hard]
            gathered += math.prod(map(cards.__getitem__, kept))
            operands[k] = (*kept, _BATCH)
            v, kind, parent, _ = sources[k]
            sources[k] = Operand(v, kind, parent, tuple([(pos, i) for pos, i in enumerate(op) if i in hard]))
    operands += [(v, _BATCH) for v in lambda_vars]
    texts = [_text(op) for op in operands]
    ids = sorted(set().union(*operands))
    symbols = dict(zip([_FIRST + i for i in ids], _symbols(len(ids)), strict=False))
    equation = (",".join(texts) + "->" + _text((_BATCH,))).translate(symbols)
    if len(operands) == 1:
        steps = _replay([(0,)], operands)
    elif optimize == "elimination":
        steps = _elimination_steps(operands, cards)
    else:
        shapes = [tuple(cards[i] for i in op) for op in operands]
        path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=optimize)
        steps = _replay(path, operands)
    card = cards if cards[_BATCH] == 1 else {**cards, _BATCH: 1}  # entries per case
    largest = 1
    entries = 0
    for _, out in steps:
        size = math.prod(map(card.__getitem__, out))
        largest = max(largest, size)
        if out and out[-1] == _BATCH:
            entries += size
    if largest > max_entries:
        names = ", ".join(net.variables[i] for i in sorted(carried))[:200]
        raise ModelTooLargeError(largest, max_entries, f"(variables carrying evidence: {names}) ")
    forward, backward = _tape(operands, texts, steps, len(sources))
    return Program(
        operands=tuple(operands),
        sources=tuple(sources),
        equation=equation,
        variables=tuple(net.variables),
        lambda_vars=lambda_vars,
        steps=tuple(steps),
        entries_per_case=entries + gathered + sum(net.cards[v] for v in lambda_vars),
        largest_per_case=largest,
        forward=forward,
        backward=backward,
    )


def _elimination_steps(operands: Sequence[tuple[int, ...]], cards: Mapping[int, int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Pairwise contraction steps ``(input positions, output indices)`` from a min-weight elimination order.

    Repeatedly picks the index (never the batch axis) whose operands, merged, make the smallest table
    (ties: fewer indices, then the smaller index id), and contracts those operands pairwise, smallest first
    (ties: the older table). As in ``_compile``, an index is summed out in the step after which no other
    operand holds it. Positions follow opt_einsum's convention (the inputs leave the list, the output is
    appended); the steps are those :func:`_replay` makes of this path.

    Each index keeps its tables, its merged scope (the union of their indices) and that scope's size.
    Eliminating an index replaces its tables by one, which drops the indices no other table holds: every
    index of the new table trades the old tables for it, and its scope loses the dropped indices and gains
    the new table's; nothing else changes. The costs live in a heap (stale entries stay until they surface).
    Tables keep increasing ids, so a table's position is its rank among the live ids.
    """
    card = cards if cards.get(_BATCH, 1) == 1 else {**cards, _BATCH: 1}
    size_of = card.__getitem__
    ops: dict[int, tuple[int, ...]] = dict(enumerate(operands))  # live table id -> its indices
    sizes = {k: math.prod(map(size_of, op)) for k, op in ops.items()}  # table id -> entries per case
    alive = list(ops)  # live table ids in opt_einsum's list order, which is increasing id order
    holders: dict[int, list[tuple[int, ...]]] = {}  # index -> its tables
    for op in operands:
        for i in op:
            if i in holders:
                holders[i].append(op)
            else:
                holders[i] = [op]
    holders.pop(_BATCH, None)
    count = {i: len(h) for i, h in holders.items()}  # index -> how many live tables hold it, while it lives
    count[_BATCH] = 0  # the batch axis, never summed out, is put last by hand
    scope = {i: set().union(*h) for i, h in holders.items()}  # live index -> the indices of its tables, merged
    cost = {i: (math.prod(map(size_of, s)), len(s)) for i, s in scope.items()}  # index -> (merged size, merged indices)
    heap = [(*c, i) for i, c in cost.items()]  # (merged size, number of merged indices, index); stale entries stay
    heapq.heapify(heap)
    steps: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    while True:
        while heap and (heap[0][2] not in scope or cost[heap[0][2]] != heap[0][:2]):
            heapq.heappop(heap)  # eliminated, or its cost has changed since
        if heap:
            best = heap[0][2]
            h = [k for k, op in ops.items() if best in op]
        elif len(alive) > 1:  # no index left: the tables hold the batch axis at most, join them
            h = alive
        else:
            return steps
        if len(h) == 1:  # the index lives in one table only: sum it out there
            (a,) = h
            position = bisect.bisect_left(alive, a)
            del alive[position]
            held = ops.pop(a)
            out = tuple([i for i in held if count[i] > 1])  # held by another table too
            if _BATCH in held:
                out += (_BATCH,)  # the batch axis always last
            steps.append(((position,), out))
        else:  # contract them pairwise, the two smallest (ties: older) each time
            queue = sorted([(sizes[k], k) for k in h])
            while True:  # the last pair's table no longer holds the index
                a = heapq.heappop(queue)[1]
                b = heapq.heappop(queue)[1]
                if a > b:
                    a, b = b, a
                pb = bisect.bisect_left(alive, b)
                del alive[pb]
                pa = bisect.bisect_left(alive, a)
                del alive[pa]
                first, second = ops.pop(a), ops.pop(b)
                for i in set(first).intersection(second):
                    count[i] -= 1  # two tables leave, one comes
                held = first + second
                out = tuple([i for i in dict.fromkeys(held) if count[i] > 1])  # held by another table too
                if _BATCH in held:
                    out += (_BATCH,)  # the batch axis always last
                steps.append(((pa, pb), out))
                if not queue:
                    break
                table = len(operands) + len(steps) - 1
                ops[table] = out
                sizes[table] = size = math.prod(map(size_of, out))
                alive.append(table)
                heapq.heappush(queue, (size, table))
        table = len(operands) + len(steps) - 1
        ops[table] = out
        alive.append(table)
        if not heap:
            return steps
        sizes[table] = math.prod(map(size_of, out))
        merged = set(out)
        dropped = scope.pop(best) - merged  # held by the eliminated tables only
        for i in dropped:
            if i != best:
                del scope[i]
        for i in out:
            if i == _BATCH:
                continue
            s = scope[i]
            gone = s & dropped  # never empty: it holds ``best``
            s -= gone
            divisor = math.prod(map(size_of, gone))
            size = cost[i][0] // divisor if divisor else math.prod(map(size_of, s))  # (0: a variable without states)
            gained = merged - s
            if gained:
                s |= gained
                size *= math.prod(map(size_of, gained))
            c = (size, len(s))
            if cost[i] != c:
                cost[i] = c
                heapq.heappush(heap, (*c, i))


def _replay(path: Sequence[tuple[int, ...]], operands: Sequence[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The pairwise steps ``(input positions, output indices)`` of an opt_einsum path: each output keeps
    the indices of its inputs (in order of appearance) that another table or the result still holds, the
    batch axis last."""
    steps = []
    slots = list(operands)
    held: dict[int, int] = {}  # index -> how many tables in ``slots`` hold it
    for op in operands:
        for i in op:
            held[i] = held.get(i, 0) + 1
    for contracted in _pairwise(path, len(operands)):
        inputs = [slots[k] for k in contracted]
        for k in sorted(contracted, reverse=True):
            del slots[k]
        for op in inputs:
            for i in op:
                held[i] -= 1
        out = tuple(i for i in dict.fromkeys(i for op in inputs for i in op) if i == _BATCH or held[i])
        if _BATCH in out:  # the batch axis always last: contiguous inner loops over cases
            out = (*[i for i in out if i != _BATCH], _BATCH)
        steps.append((tuple(contracted), out))
        slots.append(out)
        for i in out:
            held[i] += 1
    return steps


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


def _letter(k: int) -> str:
    return chr(ord("a") + k) if k < 26 else chr(ord("A") + k - 26)


_LETTERS = tuple(_letter(k) for k in range(52))
_FIRST = 0x100  # index i is the character chr(_FIRST + i) of a node's text (the batch axis 0xFF)


@functools.cache
def _table_source(v: int) -> Operand:
    """The source of variable ``v``'s full CPD table (shared: programs hold many)."""
    return Operand(v, OperandKind.TABLE)


_SYMBOLS: list[str] = []  # opt_einsum's index symbols, in order, as many as asked so far


def _symbols(n: int) -> list[str]:
    """opt_einsum's first ``n`` index symbols (or more)."""
    if len(_SYMBOLS) < n:
        _SYMBOLS.extend(map(opt_einsum.get_symbol, range(len(_SYMBOLS), n)))
    return _SYMBOLS


@functools.lru_cache(maxsize=1 << 16)
def _text(indices: tuple[int, ...]) -> str:
    """A node's indices as a string (cached: the programs of one network hold many of the same tables)."""
    return "".join([chr(_FIRST + i) for i in indices])


@functools.lru_cache(maxsize=1 << 14)
def _einsum(inputs: tuple[str, ...], out: str) -> str:
    """The einsum spec ``inputs->out`` of index texts (see :func:`_text`), each index lettered ``a``, ``b``, ...
    in order of first appearance in the inputs (which hold every index of ``out``).

    Cached: the programs of one network's evidence patterns contract many of the same tables."""
    ids = dict.fromkeys("".join(inputs))
    letters = _LETTERS if len(ids) <= len(_LETTERS) else map(_letter, range(len(ids)))
    return (",".join(inputs) + "->" + out).translate(dict(zip(map(ord, ids), letters, strict=False)))
