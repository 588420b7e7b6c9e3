"""The elimination order of :func:`bayesdx.engine.plan._elimination_steps` on random contractions: the steps
the reference's path makes (tests/plan_reference.py), whatever the operands (with or without the batch axis,
scalars, indices held once, ties), and the tapes built from them are those of the reference's."""

from __future__ import annotations

import numpy as np
import plan_reference
import pytest

from bayesdx.engine import plan


def random_operands(rng: np.random.Generator, lowest_card: int = 1) -> tuple[list[tuple[int, ...]], dict[int, int]]:
    """A few tables over a few indices, some with the batch axis last, some of one index, some empty."""
    n_indices = int(rng.integers(1, 12))
    cards = {i: int(rng.integers(lowest_card, 5)) for i in range(n_indices)}
    cards[plan.BATCH] = 1
    operands: list[tuple[int, ...]] = []
    for _ in range(int(rng.integers(2, 14))):
        size = int(rng.integers(0, min(5, n_indices) + 1))
        op = tuple(int(i) for i in rng.choice(n_indices, size=size, replace=False))
        operands.append((*op, plan.BATCH) if rng.random() < 0.4 else op)
    return operands, cards


@pytest.mark.parametrize("seed", range(4))
def test_elimination_steps_match_the_reference_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(250):
        operands, cards = random_operands(rng, lowest_card=0 if seed == 3 else 1)  # seed 3: some without states
        steps = plan._elimination_steps(operands, cards)
        expected = plan._replay(plan_reference._elimination_path_reference(operands, cards), operands)
        assert steps == expected
        texts = [plan._text(op) for op in operands]
        first_lambda = len(operands) // 2
        assert plan._tape(operands, texts, steps, first_lambda) == plan_reference._tape(operands, steps, first_lambda)
