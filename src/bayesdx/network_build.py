"""Building the pgmpy ``DiscreteBayesianNetwork`` of a model file (:func:`build_network`).

This module is the one place where a pgmpy network is built from data (pgmpy is imported when a network
is built, not before); the tables come from :mod:`bayesdx.cpd_tables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .cpd_tables import divorced_tables, table_for
from .exceptions import ModelFileError
from .model_spec import ModelSpec

__all__ = ["MAX_TABLE_PARENTS", "build_network"]

#: A noisy CPD with more parents than this is divorced into hidden parts for pgmpy.
MAX_TABLE_PARENTS = 6


def build_network(spec: ModelSpec, base_rates: Mapping[str, float] | None) -> Any:
    """Build the pgmpy ``DiscreteBayesianNetwork`` of a model, with ``base_rates`` for its causes.

    Noisy CPDs with more than ``MAX_TABLE_PARENTS`` parents enter pgmpy divorced into hidden parts
    (:func:`divorced_tables`), so that no pgmpy table is larger than ``3 * 3**6`` entries; the
    distribution of every declared node is unchanged.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    entries: list[tuple[str, tuple[str, ...], np.ndarray]] = []
    states = {n: spec.nodes[n].states for n in spec.nodes}
    for node_id in spec.nodes:
        kind = spec.cpds[node_id]["kind"]
        parents = spec.parents(node_id)
        if kind in ("noisy_or", "noisy_max") and len(parents) > MAX_TABLE_PARENTS:
            for name, pa, table in divorced_tables(spec, node_id):
                states.setdefault(name, spec.nodes[node_id].states)
                entries.append((name, pa, table))
            continue
        prior = None
        if kind == "cause_prior":
            if base_rates is None:
                raise ModelFileError(spec.path, f"cpds.{node_id}", "is a 'cause_prior' but no prior setting was given")
            prior = base_rates[node_id]
        entries.append((node_id, parents, table_for(spec, node_id, prior=prior)))
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(name for name, _, _ in entries)
    network.add_edges_from((p, name) for name, pa, _ in entries for p in pa)
    cpds = []
    for name, parents, table in entries:
        cpds.append(
            TabularCPD(
                variable=name,
                variable_card=len(states[name]),
                values=table.reshape(len(states[name]), -1),
                evidence=list(parents) or None,
                evidence_card=[len(states[p]) for p in parents] or None,
                state_names={name: list(states[name]), **{p: list(states[p]) for p in parents}},
            )
        )
    network.add_cpds(*cpds)
    network.check_model()
    return network
