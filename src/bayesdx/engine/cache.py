"""The cache of compiled programs that engines of networks with the same structure share."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from .plan import MAX_ENTRIES_PER_CASE, Program, ProgramKey

__all__ = ["ProgramCache"]


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
        self.programs: OrderedDict[tuple[frozenset[int], ...], Program] = OrderedDict()
        self.narrow: dict[ProgramKey, int] = {}  # chunk width measured best, per program of narrow chunks
        self.lock = Lock()
