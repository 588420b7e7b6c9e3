"""Reading and checking vignettes: cases with a known true cause (and, optionally, a true triage level).

A vignette file is a CSV (or a DataFrame) with one row per case and the columns

``case_id``
    A unique id (required).
``true_cause``
    The id of the cause hypothesis the case was written for (required).
``true_triage``
    The triage level the case deserves (optional; without it the triage metrics are NaN).
``rationale``
    Free text (optional, ignored).

and one column per observed variable of the model, holding state names; an empty cell means not
observed. Any other column is an error (a misspelt variable would otherwise be dropped silently).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from ..evidence import normalize_evidence
from ..exceptions import VignetteError
from ..model import Model

__all__ = ["META_COLUMNS", "VignetteError", "Vignettes", "read_vignettes"]

#: Columns of a vignette file that are not evidence.
META_COLUMNS = ("case_id", "true_cause", "true_triage", "rationale")


@dataclass(frozen=True)
class Vignettes:
    """Checked vignettes.

    Attributes
    ----------
    source : str
    case_ids : tuple of str
    true_cause : tuple of str
    true_triage : tuple of str or None
        None when the vignettes carry no ``true_triage`` column (or a case leaves it empty).
    evidence : tuple of dict
        Each case's validated ``{variable: state}`` evidence (without the model's presenting complaint).
    frame : pandas.DataFrame
        The evidence columns, indexed by case id (what :func:`bayesdx.score` is given).
    """

    source: str
    case_ids: tuple[str, ...]
    true_cause: tuple[str, ...]
    true_triage: tuple[str | None, ...]
    evidence: tuple[dict[str, str], ...]
    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.case_ids)


def _hint(value: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(valid), n=3)
    if close:
        return f" Did you mean {' or '.join(map(repr, close))}?"
    return f" Valid values are {', '.join(map(repr, valid))}."


def read_vignettes(vignettes: str | os.PathLike[str] | pd.DataFrame, model: Model) -> Vignettes:
    """Read and check vignettes against ``model``.

    Parameters
    ----------
    vignettes : str, path-like or pandas.DataFrame
        A CSV file or a frame with the columns described in :mod:`bayesdx.evaluation.vignettes`.
    model : Model

    Returns
    -------
    Vignettes

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    VignetteError
        For a missing ``case_id`` or ``true_cause`` column, a column that is not a variable of the model,
        a duplicate or empty case id, an unknown true cause or triage level; the message names the file,
        the case and the value.
    UnknownVariableError, InvalidStateError
        For a bad evidence cell (naming the case and column).
    """
    if isinstance(vignettes, pd.DataFrame):
        source = "<DataFrame>"
        raw = vignettes.copy()
    elif isinstance(vignettes, (str, os.PathLike)):
        path = Path(vignettes)
        source = repr(str(path))
        if not path.is_file():
            raise FileNotFoundError(f"No such vignette file: {str(path)!r}")
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    else:
        raise TypeError(
            "The 'vignettes' parameter of evaluate must be a path to a CSV file or a pandas DataFrame. "
            f"Got {type(vignettes).__name__} instead."
        )
    for column in ("case_id", "true_cause"):
        if column not in raw.columns:
            raise VignetteError(
                source,
                f"there is no {column!r} column; vignettes need 'case_id', 'true_cause' and one column "
                "per observed variable ('true_triage' and 'rationale' are optional).",
                column=column,
            )
    if len(raw) == 0:
        raise VignetteError(source, "there are no cases.")
    unknown = [c for c in raw.columns if c not in META_COLUMNS and c not in model.states]
    if unknown:
        c = str(unknown[0])
        close = difflib.get_close_matches(c, list(model.states), n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise VignetteError(
            source,
            f"column {c!r} is neither a variable of model {model.id!r} nor one of {', '.join(map(repr, META_COLUMNS))}.{hint}",
            column=c,
            value=c,
        )
    ids: list[str] = []
    for k, value in enumerate(raw["case_id"].tolist()):
        if pd.isna(value) or str(value).strip() == "":
            raise VignetteError(source, f"row {k + 1} has an empty case_id.", column="case_id", value=value)
        if str(value) in ids:
            raise VignetteError(source, "the case_id appears more than once.", case=str(value), column="case_id", value=value)
        ids.append(str(value))
    hypotheses = [h.id for h in model.hypotheses]
    truth = []
    for cid, value in zip(ids, raw["true_cause"].tolist(), strict=True):
        if pd.isna(value) or str(value) not in hypotheses:
            raise VignetteError(
                source,
                f"true_cause {value!r} is not a cause hypothesis of model {model.id!r}." + _hint(str(value), hypotheses),
                case=cid,
                column="true_cause",
                value=value,
            )
        truth.append(str(value))
    triage: list[str | None] = [None] * len(ids)
    if "true_triage" in raw.columns:
        levels = model.triage_policy.levels if model.triage_policy is not None else None
        for k, (cid, value) in enumerate(zip(ids, raw["true_triage"].tolist(), strict=True)):
            if pd.isna(value):
                continue
            if levels is not None and value not in levels:
                raise VignetteError(
                    source,
                    f"true_triage {value!r} is not a triage level of model {model.id!r}." + _hint(str(value), levels),
                    case=cid,
                    column="true_triage",
                    value=value,
                )
            triage[k] = str(value)
    frame = raw[[c for c in raw.columns if c not in META_COLUMNS]].copy()
    frame.index = pd.Index(ids, name="case_id")
    evidence = tuple(normalize_evidence(_row(frame, k), model, where=f" in case {cid!r}") for k, cid in enumerate(ids))
    return Vignettes(source, tuple(ids), tuple(truth), tuple(triage), evidence, frame)


def _row(frame: pd.DataFrame, k: int) -> Mapping[str, Any]:
    return {cast(str, c): v for c, v in frame.iloc[k].items() if not pd.isna(v)}  # column labels: variable names
