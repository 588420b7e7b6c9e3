"""The exact batched inference engine.


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
contraction (see :func:`bayesdx.engine.quickscore.expand`). That contraction holds signed weights too; its
passes carry a running bound on their rounding errors (:mod:`~bayesdx.engine.rounding`), and a case past
the budget is computed again in extended precision, then with every noisy CPD as non-negative terms
(:mod:`~bayesdx.engine.exactness`). Noisy CPDs with few parents enter every contraction in that form.

Cases with many findings above their lowest level, in groups, and the cases whose signed terms would
cancel past extended precision's budget are swept instead (:mod:`~bayesdx.engine.sweep`): each such finding
is a two-state chain over its parents carried through one sweep of the other variables, forward and
backward. Every number of a sweep is a probability, so nothing cancels and double precision is exact.

The package, by job: :mod:`~bayesdx.engine.network` (the network as arrays), :mod:`~bayesdx.engine.plan`
(contraction programs, printable), :mod:`~bayesdx.engine.cache` (compiled programs, shared),
:mod:`~bayesdx.engine.execute` (the passes and their scaling),
:mod:`~bayesdx.engine.quickscore` (evidence on noisy leaves as terms), :mod:`~bayesdx.engine.sweep` (the
same evidence swept) and :mod:`~bayesdx.engine.engine`
(the cache and the route chooser).
"""

from .engine import InferenceEngine, ProgramCache
from .network import BatchPosterior, CompiledNetwork, Decomposition
from .plan import Operand, OperandKind, Program, ProgramKey

__all__ = [
    "BatchPosterior",
    "CompiledNetwork",
    "Decomposition",
    "InferenceEngine",
    "Operand",
    "OperandKind",
    "Program",
    "ProgramCache",
    "ProgramKey",
]
