"""Case mix: weighting vignettes so that metrics describe a declared population, not the vignette set.

Vignette sets are balanced by cause or by acuity (Semigran 2015; Gilbert 2020), so the share of each cause
among the vignettes is the writers' choice, not the share among people who present. On a balanced set a
uniform prior matches the test distribution by construction, and a prior close to the real case mix is
penalised for being right about the population (the prior-shift problem of Saerens, Latinne and Decaestecker,
Neural Computation 2002). Kopka et al. (RepVig, 2025) and the base-rate stratified vignettes of Frontiers in
Digital Health (2024) make the same point for symptom checkers: accuracy on vignettes must be weighted by
the case mix of the population it is claimed for.

Weights
-------
A case mix ``pi`` gives each cause a share of the population. It is normalised over the causes the vignettes
cover, and vignette ``i`` with true cause ``c_i`` gets the weight

    w_i = pi(c_i) / n(c_i),

with ``n(c)`` the number of vignettes of cause ``c``. The weights sum to one, and a weighted metric
``sum_i w_i m_i`` is the mean of the metric over causes weighted by ``pi``: each cause's vignettes stand for
that cause in the population (post-stratification).

Intervals resample the vignettes *within* each cause (a stratified bootstrap) and reweight each resample by
``pi``: the weights are fixed by the declared population, the uncertainty is that of each cause's accuracy
estimated from its ``n(c)`` vignettes.

References
----------
A case mix is named by

- a prior setting (a bundled name such as ``"article"`` or a prior file): ``pi`` is its
  ``prior_probabilities``, the probability of each cause in a person who presents with the model's complaint;
- a CSV file with the columns ``cause`` and ``weight`` (one row per cause; weights >= 0, any scale);
- a mapping of cause id to weight (named ``"custom"``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .._resources import available
from ..exceptions import InputFileError
from ..model import Model

__all__ = ["CaseMix", "case_mix_weights", "read_case_mix", "stratified_bootstrap"]

CaseMixSource = str | os.PathLike[str] | Mapping[str, float]


@dataclass(frozen=True)
class CaseMix:
    """A declared case mix and the weights it gives a vignette set.

    Attributes
    ----------
    name : str
        What the case mix was read from (a prior setting's id, a file path, or ``"custom"``).
    shares : mapping of str to float
        ``pi``: each cause's share, normalised over the causes the vignettes cover.
    weights : numpy.ndarray
        ``w_i`` per vignette, in vignette order; sums to 1.
    """

    name: str
    shares: Mapping[str, float]
    weights: np.ndarray


def read_case_mix(source: CaseMixSource, model: Model) -> tuple[str, dict[str, float]]:
    """The name and the (unnormalised) weight of every cause of a case-mix reference.

    Parameters
    ----------
    source : str, path-like or mapping
        A prior setting (bundled name or ``.toml`` prior file), a CSV of ``cause,weight``, or a mapping of
        cause id to weight.
    model : Model
        The model whose causes the weights are for (and whose priors are swapped for a prior setting).

    Raises
    ------
    InputFileError
        For a CSV that cannot be read as ``cause,weight`` (naming the file, line, column and value).
    ValueError
        For an unknown reference, cause or weight.
    FileNotFoundError
        For a missing file.
    """
    ids = [h.id for h in model.hypotheses]
    if isinstance(source, Mapping):
        weights = {}
        for cause, weight in source.items():
            if cause not in ids:
                raise ValueError(
                    f"The case mix names the cause {cause!r}, which the model does not have. Valid causes are {', '.join(map(repr, ids))}."
                )
            weights[cause] = _weight(weight, f"The case mix weight of {cause!r}")
        return "custom", weights
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "The 'case_mix' parameter of evaluate must be a prior setting name, a path to a prior "
            f"file (.toml) or to a CSV of cause,weight, or a mapping. Got {type(source).__name__} instead."
        )
    text = os.fspath(source)
    if text.lower().endswith(".csv"):
        return text, _read_csv(Path(text), ids)
    is_path = not isinstance(source, str) or text.lower().endswith(".toml")
    if is_path and not Path(text).is_file():
        raise FileNotFoundError(f"No such prior file: {text!r}")
    if not is_path and text not in available("priors"):
        raise ValueError(
            "The 'case_mix' parameter of evaluate must name a prior setting among "
            f"{', '.join(map(repr, available('priors')))}, a prior file (.toml) or a CSV of cause,weight. "
            f"Got {text!r} instead."
        )
    if model.spec is None:
        raise ValueError(
            f"Model {model.id!r} carries its own prior tables, so a prior setting cannot be read as "
            "its case mix; give a CSV of cause,weight or a mapping instead."
        )
    setting = model if text == model.priors else model.with_priors(text)
    return setting.priors, dict(setting.prior_probabilities)


def _weight(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number >= 0. Got {value!r} instead.")
    weight = float(value)
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{what} must be a finite number >= 0. Got {value!r} instead.")
    return weight


def _read_csv(path: Path, ids: Sequence[str]) -> dict[str, float]:
    import pandas as pd

    source = os.fspath(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such case-mix file: {source!r}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(source, f"is not a CSV of cause,weight ({exc})") from exc
    columns = [str(c).strip() for c in frame.columns]
    if sorted(columns) != ["cause", "weight"]:
        raise InputFileError(source, f"must have exactly the columns 'cause' and 'weight'; it has {', '.join(map(repr, columns))}", line=1)
    frame.columns = columns
    weights: dict[str, float] = {}
    for k, (cause, text) in enumerate(zip(frame["cause"], frame["weight"], strict=True)):
        line = k + 2  # the header is line 1
        cause = cause.strip()
        if cause not in ids:
            raise InputFileError(
                source,
                f"unknown cause {cause!r}; valid causes are {', '.join(map(repr, ids))}",
                line=line,
                row=k + 1,
                column="cause",
                value=cause,
                valid_states=tuple(ids),
            )
        if cause in weights:
            raise InputFileError(source, f"the cause {cause!r} has a second weight", line=line, row=k + 1, column="cause", value=cause)
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise InputFileError(
                source, f"the weight {text!r} is not a finite number >= 0", line=line, row=k + 1, column="weight", value=text
            )
        weights[cause] = weight
    if not weights:
        raise InputFileError(source, "has no rows; give one cause,weight row per cause")
    return weights


def case_mix_weights(source: CaseMixSource, model: Model, true_causes: Sequence[str]) -> CaseMix:
    """The weights ``w_i = pi(c_i) / n(c_i)`` of vignettes whose true causes are ``true_causes``.

    Parameters
    ----------
    source : str, path-like or mapping
        The case mix (see :func:`read_case_mix`).
    model : Model
    true_causes : sequence of str
        Each vignette's true cause.

    Returns
    -------
    CaseMix

    Raises
    ------
    ValueError
        When the case mix gives no weight to a cause the vignettes cover (a CSV or mapping that leaves it
        out: give it weight 0 to leave it out on purpose), or zero weight to all of them.
    """
    name, raw = read_case_mix(source, model)
    covered = sorted(set(true_causes), key=[h.id for h in model.hypotheses].index)
    missing = [c for c in covered if c not in raw]
    if missing:
        raise ValueError(
            f"The case mix {name!r} gives no weight to {', '.join(map(repr, missing))}, which the vignettes cover. "
            "Give every such cause a weight (0 leaves its vignettes out)."
        )
    total = sum(raw[c] for c in covered)
    if not total > 0:
        raise ValueError(f"The case mix {name!r} gives weight 0 to every cause the vignettes cover.")
    shares = {c: raw[c] / total for c in covered}
    counts = dict.fromkeys(covered, 0)
    for c in true_causes:
        counts[c] += 1
    weights = np.array([shares[c] / counts[c] for c in true_causes], dtype=float)
    return CaseMix(name, MappingProxyType(shares), weights)


def stratified_bootstrap(
    values: np.ndarray,
    strata: Sequence[str],
    shares: Mapping[str, float],
    *,
    n_resamples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``sum_c shares[c] * mean(values of stratum c)``, resampling within strata.

    Parameters
    ----------
    values : numpy.ndarray
        Per-vignette values.
    strata : sequence of str
        Each vignette's true cause.
    shares : mapping of str to float
        The case mix, normalised over the strata.
    n_resamples : int
    rng : numpy.random.Generator
    confidence : float, default 0.95

    Returns
    -------
    tuple of float
        ``(low, high)``; NaN for fewer than two vignettes.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2 or n_resamples < 1:
        return math.nan, math.nan
    labels = np.asarray(strata, dtype=object)
    total = np.zeros(n_resamples)
    for cause, share in shares.items():
        members = values[labels == cause]
        if share == 0 or members.size == 0:
            continue
        picks = rng.integers(members.size, size=(n_resamples, members.size))
        total += share * members[picks].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(total, [alpha, 1.0 - alpha])
    return float(low), float(high)
