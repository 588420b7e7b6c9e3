"""Where the bundled model and prior files live.

In an installed wheel they are package data under ``bayesdx/_data``; in a source checkout (editable
install) they are the top-level ``models/`` and ``priors/`` folders.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BUNDLED_MODEL = "leg_twitch"


def data_dir(kind: str) -> Path:
    """The folder of bundled ``models`` or ``priors``."""
    packaged = resources.files("bayesdx") / "_data" / kind
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / kind


def available(kind: str) -> tuple[str, ...]:
    """Names (file stems) of the bundled ``models`` or ``priors``."""
    folder = data_dir(kind)
    return tuple(sorted(p.stem for p in folder.glob("*.toml"))) if folder.is_dir() else ()


def bundled_name(path: str | os.PathLike[str], kind: str) -> str:
    """The bundled name of a bundled model or prior file (so that another process loads its own copy), else
    the file's path."""
    path = Path(path)
    if path.suffix == ".toml" and path.resolve() == (data_dir(kind) / path.name).resolve():
        return path.stem
    return os.fspath(path)
