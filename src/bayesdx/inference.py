"""Compatibility: the inference engine lives in the package :mod:`bayesdx.engine`; these names stay
importable from here."""

from __future__ import annotations

from .engine.engine import CHUNK_BUDGET_ENTRIES, SMALL_BATCH, SMALL_NETWORK, SPLIT_ENTRIES, InferenceEngine, ProgramCache
from .engine.execute import UNSCALED_FLOOR
from .engine.network import BatchPosterior, CompiledNetwork, Decomposition
from .engine.plan import MAX_ENTRIES_PER_CASE, ProgramKey
from .engine.quickscore import ERROR_BUDGET, MAX_TERMS, ROWS_PER_BLOCK, TELESCOPE_PARENTS

__all__ = [
    "CHUNK_BUDGET_ENTRIES",
    "ERROR_BUDGET",
    "MAX_ENTRIES_PER_CASE",
    "MAX_TERMS",
    "ROWS_PER_BLOCK",
    "SMALL_BATCH",
    "SMALL_NETWORK",
    "SPLIT_ENTRIES",
    "TELESCOPE_PARENTS",
    "UNSCALED_FLOOR",
    "BatchPosterior",
    "CompiledNetwork",
    "Decomposition",
    "InferenceEngine",
    "ProgramCache",
    "ProgramKey",
]
