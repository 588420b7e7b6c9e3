"""bayesdx: an exact, explainable Bayesian differential-diagnosis engine.

bayesdx ranks the likely causes of a complaint (bundled: twitching in the leg) with exact posterior
probabilities from a pgmpy Bayesian network. It supports a clinician's decision; it does not diagnose.
"""

from .exceptions import (
    BayesdxError,
    ImpossibleEvidenceError,
    InputFileError,
    InvalidStateError,
    ModelFileError,
    ModelTooLargeError,
    OutputPathError,
    UnknownVariableError,
    VignetteError,
)
from .model import Hypothesis, Model, load_model
from .ranking import rank_causes, score
from .results import CAVEAT, Diagnosis, RankedCause

__version__ = "0.1.0"

__all__ = [
    "CAVEAT",
    "BayesdxError",
    "Diagnosis",
    "Hypothesis",
    "ImpossibleEvidenceError",
    "InputFileError",
    "InvalidStateError",
    "Model",
    "ModelFileError",
    "ModelTooLargeError",
    "OutputPathError",
    "RankedCause",
    "UnknownVariableError",
    "VignetteError",
    "load_model",
    "rank_causes",
    "score",
]
