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

__all__ = [
    "_PRIORS_HELP",
    "_fmt",
    "_load",
    "_model_options",
    "_parse_evidence",
    "_quiet",
    "_quiet_option",
    "_ranking_option",
    "_show_progress",
    "_table",
    "_user_errors",
]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's errors about the user's input into ``Error: message`` and exit code 1."""
    try:
        yield
    except (BayesdxError, ValueError, TypeError, OSError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise click.ClickException(message) from None


def _load(model: str | None, priors: str | None) -> Any:
    """The model named on the command line, with the roles given by --causes, --tests, --hidden and
    --presenting for a BIF or XMLBIF network (see _model_options)."""
    from .model import load_model

    roles = click.get_current_context().meta.get("bayesdx.roles", {}) if click.get_current_context(silent=True) else {}
    roles = {k: v for k, v in roles.items() if v}
    with _user_errors():
        return load_model(model, priors=priors, **roles)


def _store_role(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if not value:
            return
        roles = ctx.meta.setdefault("bayesdx.roles", {})
        if name == "presenting":
            roles[name] = _parse_evidence(value)
        else:
            roles[name] = [v.strip() for part in value for v in part.split(",") if v.strip()]

    return store


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


_MODEL_HELP = "Model: a bundled name, a .toml model file, or a .bif/.xmlbif network (with --causes).  [default: the bundled leg_twitch]"
_PRIORS_HELP = "Prior setting: a bundled name (article, uniform, ...) or a prior file.  [default: the model's]"


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, meta, text in (
        ("presenting", "VAR=STATE", "For a BIF/XMLBIF network: evidence every case carries (repeatable)."),
        (
            "hidden",
            "NODES",
            "For a BIF/XMLBIF network: nodes never asked or ranked, comma-separated (default: the __part nodes of a bayesdx export).",
        ),
        ("tests", "NODES", "For a BIF/XMLBIF network: the test nodes, comma-separated."),
        ("causes", "NODES", "For a BIF/XMLBIF network (required there): the nodes to rank, comma-separated."),
    ):
        f = click.option(
            f"--{name}", multiple=True, metavar=meta, expose_value=False, is_eager=True, callback=_store_role(name), help=text
        )(f)
    f = click.option("--priors", "priors", metavar="NAME", default=None, help=_PRIORS_HELP)(f)
    return click.option("--model", "model", metavar="MODEL", default=None, help=_MODEL_HELP)(f)


def _quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-q/--quiet`` on every subcommand: no notes, progress or summaries on stderr (results still print)."""

    def store(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta["bayesdx.quiet"] = True

    return click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=store, help="No notes, progress or summaries on stderr."
    )(f)


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("bayesdx.quiet"))


def _parse_evidence(pairs: Sequence[str]) -> dict[str, str]:
    evidence: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not of the form variable=state (for example fever=yes).", param_hint="EVIDENCE")
        if name in evidence and evidence[name] != value.strip():
            raise click.BadParameter(f"{name!r} is given twice ({evidence[name]!r} and {value.strip()!r}).", param_hint="EVIDENCE")
        evidence[name] = value.strip()
    return evidence


def _ranking_option(f: Any) -> Any:
    from .counterfactual import RANKINGS

    return click.option(
        "--ranking",
        type=click.Choice(sorted(RANKINGS)),
        default=None,
        show_default="expected_disablement (posterior for networks of full tables)",
        help="What the causes are ranked by: " + "; ".join(f"{k}: {v}" for k, v in RANKINGS.items()) + ".",
    )(f)
