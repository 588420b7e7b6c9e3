"""The ``bayesdx model`` commands: show, validate and export a model (see :mod:`bayesdx.cli`)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import click

from . import _resources
from ._cli_common import (
    _PRIORS_HELP,
    _fmt,
    _load,
    _model_options,
    _quiet,
    _quiet_option,
    _table,
    _user_errors,
)
from .results import CAVEAT

__all__ = ["model_group"]

_EXPORT_FORMATS = ("bif", "xmlbif")


# ---------------------------------------------------------------------- the group
@click.group("model")
def model_group() -> None:
    """Show, validate or export a model."""


@model_group.command("show")
@_model_options
@_quiet_option
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the model as JSON instead of tables.")
def model_show(model: str | None, priors: str | None, as_json: bool) -> None:
    """Print a model's nodes by role with their states, costs and labels, and its priors with provenance."""
    m = _load(model, priors)
    if as_json:
        click.echo(json.dumps(_model_summary(m), indent=2))
        return
    out = [
        f"Model {m.id} {m.version}" + (f": {m.spec.title}" if m.spec is not None and m.spec.title else ""),
        f"Source: {m.source}",
        f"Priors: {m.priors}" + (f" ({m.prior_setting.path})" if m.prior_setting is not None else ""),
        "",
    ]
    setting = m.prior_setting
    prior = m.prior_probabilities
    rows = []
    provenance = []
    for h in m.hypotheses:
        base = setting.probabilities.get(h.node) if setting is not None else None
        rows.append(
            (h.id, m.labels.get(h.node, h.node), "/".join(m.states[h.node]), _fmt(base) if base is not None else "", _fmt(prior[h.id]))
        )
        if setting is not None and h.node in setting.provenance:
            text = "; ".join(f"{k}: {v}" for k, v in setting.provenance[h.node].items())
            provenance.append(textwrap.fill(f"{h.id}: {text}", width=100, subsequent_indent="    "))
    out.append(f"Causes ({len(m.causes)}): prior as set, and probability before any evidence")
    out.append(_table(["id", "label", "states", "prior", "before evidence"], rows, right=(3, 4)))
    if provenance:
        out.extend(["", "Where the priors come from", *provenance])
    for title, nodes in (
        ("Findings (questions)", m.findings),
        ("Tests", m.tests),
        ("Hidden (never asked)", tuple(getattr(m, "hidden", ()))),
    ):
        if not nodes and title.startswith("Hidden"):
            continue
        out.extend(["", f"{title} ({len(nodes)})"])
        out.append(
            _table(
                ["id", "label", "states", "cost"],
                [(n, m.labels.get(n, n), "/".join(m.states[n]), f"{m.costs.get(n, float('nan')):g}") for n in nodes],
                right=(3,),
            )
        )
    if m.spec is not None and m.spec.cost_scale:
        out.extend(["", "Cost scale: " + " ".join(m.spec.cost_scale.split())])
    out.extend(["", CAVEAT])
    click.echo("\n".join(out))


def _model_summary(m: Any) -> dict[str, Any]:
    """``model show --json``: the model as plain values."""
    setting = m.prior_setting

    def node(n: str) -> dict[str, Any]:
        return {
            "id": n,
            "label": m.labels.get(n, n),
            "states": list(m.states[n]),
            "cost": m.costs.get(n),
            "aliases": {a: list(v) for a, v in m.aliases.get(n, {}).items()},
        }

    return {
        "id": m.id,
        "version": m.version,
        "title": m.spec.title if m.spec is not None else "",
        "source": m.source,
        "priors": m.priors,
        "presenting": dict(m.presenting),
        "causes": [
            {
                "id": h.id,
                "label": m.labels.get(h.node, h.node),
                "states": list(m.states[h.node]),
                "prior": setting.probabilities.get(h.node) if setting is not None else None,
                "before_evidence": m.prior_probabilities[h.id],
                "provenance": dict(setting.provenance.get(h.node, {})) if setting is not None else {},
                "harm": m.harm.weights.get(h.id) if m.harm is not None else None,
            }
            for h in m.hypotheses
        ],
        "findings": [node(n) for n in m.findings],
        "tests": [node(n) for n in m.tests],
        "hidden": list(m.hidden),
        "studies": [{"id": st.id, "label": st.label, "tests": list(st.tests), "cost": st.cost} for st in m.studies.values()],
        "triage_levels": list(m.triage_policy.levels) if m.triage_policy is not None else [],
        "triage_rules": len(m.triage_policy.rules) if m.triage_policy is not None else 0,
        "caveat": CAVEAT,
    }


@model_group.command("validate")
@_quiet_option
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--priors", "priors", metavar="NAME", default=None, help=_PRIORS_HELP)
def model_validate(path: str | None, priors: str | None) -> None:
    """Check a .toml model file (default: the bundled model) and its priors; print OK or the first problem."""
    from .model import check_model_file

    target = Path(path) if path is not None else _resources.data_dir("models") / f"{_resources.BUNDLED_MODEL}.toml"
    with _user_errors():
        if not target.is_file():
            raise FileNotFoundError(f"No such model file: {str(target)!r}")
        m = check_model_file(target, priors)
    click.echo(
        f"OK: {target} (model {m.id} {m.version}, priors {m.priors}; {len(m.causes)} causes, "
        f"{len(m.findings)} findings, {len(m.tests)} tests)"
    )


@model_group.command("export")
@_model_options
@_quiet_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_EXPORT_FORMATS),
    default="bif",
    show_default=True,
    help="bif (GeNIe, pyAgrum, Netica) or xmlbif (name the file .bifxml for pyAgrum).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, writable=True),
    required=True,
    help="The file to write (- for standard output).",
)
def model_export(model: str | None, priors: str | None, fmt: str, output: str) -> None:
    """Export the model's network (with the chosen priors) through pgmpy's BIF or XMLBIF writer."""
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    from .batch import atomic_output

    m = _load(model, priors)
    network = m.network.copy()
    network.name = m.id
    text = str(BIFWriter(network)) if fmt == "bif" else str(XMLBIFWriter(network))
    if output == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    with _user_errors(), atomic_output(output) as handle:
        handle.write(text)
    # BIF and XMLBIF carry the network only: say what a reload needs to give the same answers
    roles = [f"causes={list(m.causes)!r}", f"tests={list(m.tests)!r}"]
    if m.presenting:
        roles.append(f"presenting={dict(m.presenting)!r}")
    if _quiet():
        return
    click.echo(
        f"Wrote {output}. {fmt.upper()} carries no roles, presenting complaint, costs, triage or "
        f"priors' sources; reload with bayesdx.load_model({output!r}, {', '.join(roles)}) "
        "(the __part nodes are hidden by default).",
        err=True,
    )
