"""Helpers shared by the command-line modules (cli, cli_interview): errors, loading, evidence, tables."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from .exceptions import BayesdxError

__all__ = ["_PRIORS_HELP", "_fmt", "_load", "_model_options", "_parse_evidence", "_ranking_option", "_show_progress", "_table",
           "_user_errors"]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's errors about the user's input into ``Error: message`` and exit code 1."""
    try:
        yield
    except (BayesdxError, ValueError, TypeError, OSError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise click.ClickException(message) from None


def _load(model: str | None, priors: str | None) -> Any:
    from .model import load_model

    with _user_errors():
        return load_model(model, priors=priors)


def _show_progress(quiet: bool) -> bool:
    return not quiet and not os.environ.get("CI") and sys.stderr.isatty()


def _fmt(value: float, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A plain text table; columns listed in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    lines = []
    for i, r in enumerate(cells):
        parts = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


_MODEL_HELP = "Model: a bundled name or a .toml model file.  [default: the bundled leg_twitch]"
_PRIORS_HELP = "Prior setting: a bundled name (article, uniform, ...) or a prior file.  [default: the model's]"


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--priors", "priors", metavar="NAME", default=None, help=_PRIORS_HELP)(f)
    return click.option("--model", "model", metavar="MODEL", default=None, help=_MODEL_HELP)(f)


def _parse_evidence(pairs: Sequence[str]) -> dict[str, str]:
    evidence: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not of the form variable=state (for example fever=yes).",
                                     param_hint="EVIDENCE")
        if name in evidence and evidence[name] != value.strip():
            raise click.BadParameter(f"{name!r} is given twice ({evidence[name]!r} and {value.strip()!r}).",
                                     param_hint="EVIDENCE")
        evidence[name] = value.strip()
    return evidence


def _ranking_option(f: Any) -> Any:
    from .counterfactual import RANKINGS

    return click.option(
        "--ranking", type=click.Choice(sorted(RANKINGS)), default=None,
        show_default="expected_disablement (posterior for networks of full tables)",
        help="What the causes are ranked by: " + "; ".join(f"{k}: {v}" for k, v in RANKINGS.items()) + ".",
    )(f)
