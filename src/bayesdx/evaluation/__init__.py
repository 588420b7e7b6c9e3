"""Evaluation of prior settings on vignettes: accuracy, calibration, triage, steps and robustness.

:func:`evaluate` scores vignettes (cases with a known true cause) under one or more prior settings and
returns an :class:`EvaluationResult` with the metrics and their bootstrap intervals, paired tests between
settings, the prior sensitivity of every ranking, a Monte Carlo over prior uncertainty and a
self-consistency check on cases sampled from the network; ``.write(folder)`` writes CSV tables, PNG plots
and a Markdown report. The definitions live in the modules:

- :mod:`~bayesdx.evaluation.metrics`: rank, top-k, MRR, log loss, Brier, ECE, triage, bootstrap, McNemar;
- :mod:`~bayesdx.evaluation.consultation`: simulated consultations, the next-step policy's accuracy against
  cost (``policy_auc``, ``cost_to_top1``, ``policy_top1``);
- :mod:`~bayesdx.evaluation.robustness`: rank-flip factors and the prior Monte Carlo;
- :mod:`~bayesdx.evaluation.self_consistency`: calibration on the model's own samples;
- :mod:`~bayesdx.evaluation.vignettes`: the vignette format;
- :mod:`~bayesdx.evaluation.report`: the result object and the report files;
- :mod:`~bayesdx.evaluation.plots`: the figures (the only module that needs matplotlib).
"""

from __future__ import annotations

from ..exceptions import VignetteError
from .metrics import McNemarResult
from .pipeline import evaluate
from .report import METRICS, EvaluationResult

__all__ = ["METRICS", "EvaluationResult", "McNemarResult", "VignetteError", "evaluate"]
