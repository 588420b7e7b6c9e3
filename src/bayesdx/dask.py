"""Scoring a ``dask.dataframe`` partition by partition, on a Dask cluster or locally.

Needs the optional extra: ``python -m pip install "bayesdx[dask]"``. Dask is imported inside the
functions, so ``import bayesdx`` never needs it.

Every partition is scored with :func:`bayesdx.score`, so the results are exactly the in-process ones.
Workers do not receive the :class:`~bayesdx.Model` object itself but a small recipe to rebuild it (the
model file and prior file, or the pgmpy network and its roles), loaded once per worker and recipe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from . import _resources
from ._validation import check_positive_int
from .model import Model, _model_or_default, _unpickle_spec_model, load_model
from .scoring import score_frame as score

__all__ = ["ModelRecipe", "score_dask"]


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild a :class:`~bayesdx.Model` in another process: the recipe a Model pickles as
    (``Model.__reduce__``), as a value (one mechanism; model files are read once per process).

    Attributes
    ----------
    source : str or None
        The model file, for models read from one.
    priors : str or None
        The prior file in force, for model files with priors.
    network : object
        The pgmpy network, for models built from a network.
    causes, tests : tuple of str
    normal_states : tuple of (str, str or None)
    """

    source: str | None
    priors: str | None = None
    network: Any = None
    causes: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    normal_states: tuple[tuple[str, str | None], ...] = ()
    presenting: tuple[tuple[str, str], ...] = ()
    hidden: tuple[str, ...] = ()
    costs: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, model: Model) -> ModelRecipe:
        """The recipe of ``model``."""
        if model.spec is not None:
            prior = model.prior_setting.path if model.prior_setting is not None else None
            return cls(
                source=_resources.bundled_name(model.spec.path, "models"),
                priors=_resources.bundled_name(prior, "priors") if prior is not None else None,
            )
        return cls(
            source=None,
            network=model.network,
            causes=tuple(model.causes),
            tests=tuple(model.tests),
            normal_states=tuple((c, model.normal_states[c]) for c in model.causes),
            presenting=tuple(model.presenting.items()),
            hidden=tuple(model.hidden),
            costs=tuple(model.costs.items()),
        )

    def load(self) -> Model:
        """The model (cached per process for model files)."""
        if self.source is not None:
            return _unpickle_spec_model(self.source, self.priors)
        return load_model(
            self.network,
            causes=list(self.causes),
            tests=list(self.tests),
            normal_states=dict(self.normal_states),
            presenting=dict(self.presenting),
            hidden=list(self.hidden),
            costs=dict(self.costs),
        )


def _score_partition(frame: pd.DataFrame, recipe: ModelRecipe, options: Mapping[str, Any], meta: pd.DataFrame) -> pd.DataFrame:
    if len(frame) == 0:
        return meta.copy()
    return score(frame, model=recipe.load(), **options)


def score_dask(
    cases: Any,
    *,
    model: Model | None = None,
    priors: str | os.PathLike[str] | None = None,
    top_k: int = 3,
    next_step: bool = False,
    alpha: float | None = None,
    ranking: str | None = None,
) -> Any:
    """:func:`bayesdx.score` on every partition of a ``dask.dataframe.DataFrame``.

    Parameters
    ----------
    cases : dask.dataframe.DataFrame
        One row per case, one column per variable (see :func:`bayesdx.score`).
    model, priors, top_k, next_step, alpha, ranking
        As for :func:`bayesdx.score`.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; ``.compute()`` gives exactly ``bayesdx.score(cases.compute(), ...)``: the same columns,
        dtypes, index and values.

    Raises
    ------
    TypeError
        If ``cases`` is not a Dask DataFrame.
    UnknownVariableError
        For a column that is not a variable of the model (checked before anything runs).

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd
    >>> from bayesdx.dask import score_dask
    >>> cases = dd.from_pandas(pd.DataFrame({"fever": ["yes", "no", ""]}), npartitions=2)
    >>> list(score_dask(cases, top_k=1).compute().columns)
    ['cause_1', 'probability_1', 'score_1']
    """
    import dask.dataframe as dd

    if not isinstance(cases, dd.DataFrame):
        raise TypeError(f"The 'cases' parameter of score_dask must be a dask.dataframe.DataFrame. Got {type(cases).__name__} instead.")
    check_positive_int("score_dask", "top_k", top_k)
    model = _model_or_default(model, priors, "score_dask")
    options: dict[str, Any] = {"top_k": top_k, "next_step": next_step, "alpha": alpha, "ranking": ranking}
    # The explicit meta: score one case with nothing observed (always possible) through the same code path,
    # which also checks every column name and option before the graph runs.
    probe = pd.DataFrame({c: pd.Series([""], dtype=object) for c in cases.columns})
    meta = score(probe, model=model, **options).iloc[:0]
    meta.index = cases._meta.index[:0]
    return cases.map_partitions(_score_partition, ModelRecipe.of(model), options, meta, meta=meta)
