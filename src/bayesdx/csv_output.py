"""Writing the output of :func:`bayesdx.batch.score_csv`: the wide and long layouts, CSV rows, atomic files.

:func:`atomic_output` writes to a temporary file next to the destination and renames it over the
destination only when the block succeeds, so no partial output is ever left behind.
"""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from .csv_input import _Layout, _Parsed

__all__ = ["ERROR_COLUMN", "LONG_COLUMNS", "atomic_output"]

#: The column giving why a row was not scored (``skip_invalid=True``).
ERROR_COLUMN = "error"
#: The per-cause columns of the long layout (and ``score`` under a counterfactual ranking).
LONG_COLUMNS = ("rank", "cause", "probability")


# ---------------------------------------------------------------------- the output's layouts
def _wide(parsed: _Parsed, results: pd.DataFrame, layout: _Layout, n: int, skip_invalid: bool) -> pd.DataFrame:
    out = results.reindex(pd.RangeIndex(n))
    out.insert(0, layout.id_column, parsed.ids)
    for name in layout.annotations:
        out[name] = parsed.frame[name].to_numpy()
    if skip_invalid:
        out[ERROR_COLUMN] = [parsed.errors[k].reason if k in parsed.errors else "" for k in range(n)]
    return out


def _long(parsed: _Parsed, results: pd.DataFrame, layout: _Layout, n: int, k: int, skip_invalid: bool) -> pd.DataFrame:
    aligned = results.reindex(pd.RangeIndex(n))
    causes = aligned[[f"cause_{j}" for j in range(1, k + 1)]].to_numpy(dtype=object)
    probs = aligned[[f"probability_{j}" for j in range(1, k + 1)]].to_numpy(dtype=float)
    invalid = np.zeros(n, dtype=bool)
    invalid[list(parsed.errors)] = True
    take = np.ones((n, k), dtype=bool)
    take[invalid, 1:] = False
    ranks = np.tile(np.arange(1, k + 1), (n, 1))
    position = np.repeat(np.arange(n), take.sum(axis=1))
    rank = pd.array(ranks[take], dtype="Int64")
    rank[invalid[position]] = pd.NA
    out = pd.DataFrame(
        {
            layout.id_column: np.asarray(parsed.ids, dtype=object)[position],
            "rank": rank,
            "cause": causes[take],
            "probability": probs[take],
        }
    )
    if "score_1" in aligned.columns:
        out["score"] = aligned[[f"score_{j}" for j in range(1, k + 1)]].to_numpy(dtype=float)[take]
    for name in layout.annotations:
        out[name] = parsed.frame[name].to_numpy(dtype=object)[position]
    if skip_invalid:
        reasons = np.array([parsed.errors[j].reason if j in parsed.errors else "" for j in range(n)], dtype=object)
        out[ERROR_COLUMN] = reasons[position]
    return out


# ---------------------------------------------------------------------- CSV rows
def _write_rows(frame: pd.DataFrame, out: IO[str]) -> None:
    """Append ``frame``'s rows as CSV. A text cell holding a bare carriage return is quoted (the writer only
    quotes the characters of its line terminator, "\\n"), so no reader splits the row there."""
    quoting: Literal[0, 2] = csv.QUOTE_MINIMAL  # or csv.QUOTE_NONNUMERIC
    texts = frame.select_dtypes(include=["object", "string"])
    if len(texts.columns) and texts.apply(lambda col: col.astype(str).str.contains("\r", regex=False)).to_numpy().any():
        quoting = csv.QUOTE_NONNUMERIC
    frame.to_csv(out, header=False, index=False, lineterminator="\n", quoting=quoting)


# ---------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, newline: str = "") -> Iterator[IO[str]]:
    """A text handle on a temporary file next to ``path``, renamed over ``path`` when the block succeeds.

    On any exception the temporary file is removed (and directories created for it, if empty), so no
    partial output is left and an existing file at ``path`` is untouched. A symbolic link is written
    through (its target is replaced, the link kept); an existing file keeps its permissions (patient data
    written 0600 stays 0600); a FIFO or a device (``/dev/null``, ``/dev/stdout``) is written directly, never
    replaced by a regular file.
    """
    text = os.fspath(path)
    if not text:
        raise ValueError("The output path is empty; name a file, or - for standard output.")
    if text.endswith(("/", os.sep)):
        raise IsADirectoryError(f"The output path {text!r} ends with a separator: name a file, not a folder.")
    target = Path(os.path.realpath(text))
    if target.is_dir():
        raise IsADirectoryError(f"The output path {text!r} is a folder: name a file.")
    if target.exists() and not target.is_file():  # a FIFO or a device: no temporary file, no rename
        with open(target, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        return
    created: list[Path] = []
    parent = target.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    if not parent.is_dir():  # (else mkdir or mkstemp failed naming the temporary file)
        raise NotADirectoryError(f"The output path {text!r} goes through {os.fspath(parent)!r}, which is a file, not a folder.")
    for folder in reversed(created):
        folder.mkdir()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if target.exists():
            mode = stat.S_IMODE(target.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
