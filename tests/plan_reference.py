"""The contraction compiler as it was before its per-step bookkeeping was made incremental: the reference
the compiler of :mod:`bayesdx.engine.plan` must match program for program (tests/test_plan_compile.py).

A verbatim copy of ``compile_program`` and its helpers at commit f7a1143, renamed; kept straightforward
(every elimination pick is a ``min`` over all indices, every step recomputes which indices remain), so it
is slow on large networks and only the tests run it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import opt_einsum

from bayesdx.engine.network import CompiledNetwork
from bayesdx.engine.plan import _BATCH, _NOMINAL_BATCH, MAX_ENTRIES_PER_CASE, Operand, OperandKind, Program, ProgramKey
from bayesdx.exceptions import ModelTooLargeError


def _tape(
    operands: Sequence[tuple[int, ...]], steps: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], first_lambda: int
) -> tuple[tuple, tuple]:
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


def compile_program_reference(
    net: CompiledNetwork, key: ProgramKey, optimize: str = "elimination", max_entries: int = MAX_ENTRIES_PER_CASE
) -> Program:
    """The program for one :data:`ProgramKey`: operands, a pairwise contraction order and the pass tapes.

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
    operands: list[tuple[int, ...]] = []
    sources: list[Operand] = []
    for v in keep:
        dec = net.decompositions[v] if v in decomposed and net.decompositions else None
        if dec is None:
            operands.append((v, *net.parents[v]))
            sources.append(Operand(v, OperandKind.TABLE))
            continue
        if v in lowest:  # observed at the lowest level in every case: L(0) * prod_i G_i[0, pa_i], no sum
            operands.append((v,))
            sources.append(Operand(v, OperandKind.LOWEST_WEIGHT))
            for k, p in enumerate(net.parents[v]):
                operands.append((p,))
                sources.append(Operand(v, OperandKind.LOWEST_FACTOR, k))
            continue
        level = n_vars + v  # the hidden level index of this CPD
        cards[level] = dec.weights.shape[0]
        operands.append((level, v))
        sources.append(Operand(v, OperandKind.WEIGHTS))
        for k, p in enumerate(net.parents[v]):
            operands.append((level, p))
            sources.append(Operand(v, OperandKind.FACTOR, k))
    # a variable observed in every case (one state, a single nonzero likelihood) is not summed over: each
    # operand holding it is taken at the case's state, a per-case operand without that index
    for k, (op, source) in enumerate(zip(operands, sources, strict=True)):
        axes = tuple((pos, i) for pos, i in enumerate(op) if i in hard)
        if axes:
            operands[k] = (*[i for i in op if i not in hard], _BATCH)
            sources[k] = source._replace(hard_axes=axes)
    operands += [(v, _BATCH) for v in lambda_vars]
    symbols = {i: opt_einsum.get_symbol(k) for k, i in enumerate(sorted({i for op in operands for i in op}))}
    equation = ",".join("".join(symbols[i] for i in op) for op in operands) + "->" + symbols[_BATCH]
    shapes = [tuple(cards[i] for i in op) for op in operands]
    if len(operands) == 1:
        path: list[tuple[int, ...]] = [(0,)]
    elif optimize == "elimination":
        path = _elimination_path_reference(operands, cards)
    else:
        path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=optimize)
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
    if largest > max_entries:
        names = ", ".join(net.variables[i] for i in sorted(carried))[:200]
        raise ModelTooLargeError(largest, max_entries, f"(variables carrying evidence: {names}) ")
    forward, backward = _tape(operands, steps, len(sources))
    gathered = sum(math.prod(cards[i] for i in op if i != _BATCH) for op, src in zip(operands, sources, strict=False) if src.hard_axes)
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


def _elimination_path_reference(operands: Sequence[tuple[int, ...]], cards: Mapping[int, int]) -> list[tuple[int, ...]]:
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


def _letters(*index_lists: tuple[int, ...]) -> dict[int, str]:
    ids: list[int] = []
    for lst in index_lists:
        ids.extend(i for i in lst if i not in ids)
    return {i: chr(ord("a") + k) if k < 26 else chr(ord("A") + k - 26) for k, i in enumerate(ids)}


def _spec(letters: dict[int, str], *index_lists: tuple[int, ...]) -> str:
    *inputs, out = index_lists
    return ",".join("".join(letters[i] for i in lst) for lst in inputs) + "->" + "".join(letters[i] for i in out)
