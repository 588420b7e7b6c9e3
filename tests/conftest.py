"""Shared fixtures of the engine-core tests.

Reference numbers never come from bayesdx itself: they come from a hand calculation written out in a
test, from pgmpy's ``VariableElimination`` or from pyAgrum's ``LazyPropagation``. The helpers below build
those references; the networks of pgmpy's example repository are read offline and cached per session.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from references import example_network, normalized, pgmpy_evidence, pyagrum_from_pgmpy

import bayesdx

SEED = 20261124
DATA = Path(__file__).parent / "data"

CHILD_CAUSES = ("Disease",)
HEPAR2_CAUSES = (
    "Cirrhosis",
    "PBC",
    "hepatotoxic",
    "THepatitis",
    "ChHepatitis",
    "fibrosis",
    "Steatosis",
    "Hyperbilirubinemia",
)


# ---------------------------------------------------------------------- randomness
@pytest.fixture
def rng() -> np.random.Generator:
    """The one source of randomness of the suite: seeded, fresh for every test."""
    return np.random.default_rng(SEED)


# ---------------------------------------------------------------------- files and small models
@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    return DATA / "models" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_priors_path() -> Path:
    return DATA / "priors" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path: Path) -> bayesdx.Model:
    return bayesdx.load_model(tiny_model_path)


@pytest.fixture(scope="session")
def graded_model() -> bayesdx.Model:
    """A cause_prior/noisy_max/noisy_or network whose tables are worked out in test_hand_computed.py."""
    return bayesdx.load_model(DATA / "models" / "graded.toml")


@pytest.fixture(scope="session")
def tiny_text(tiny_model_path: Path) -> str:
    return tiny_model_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_priors_text(tiny_priors_path: Path) -> str:
    return tiny_priors_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def impossible_model(tmp_path_factory: pytest.TempPathFactory, tiny_text: str, tiny_priors_path: Path) -> bayesdx.Model:
    """The tiny model with P(thermometer=normal | fever=yes) = 0: that pair of observations is impossible."""
    text = tiny_text.replace("probabilities = [0.1, 0.9]", "probabilities = [0.0, 1.0]")
    assert text != tiny_text
    path = tmp_path_factory.mktemp("impossible") / "impossible.toml"
    path.write_text(text, encoding="utf-8")
    return bayesdx.load_model(path, priors=tiny_priors_path)


# ---------------------------------------------------------------------- pgmpy example networks
@pytest.fixture(scope="session")
def child_network() -> Any:
    return example_network("child")


@pytest.fixture(scope="session")
def hepar2_raw_network() -> Any:
    """pgmpy's hepar2 as shipped: some CPD columns sum to 1 only within 1e-7 (``ggtp``)."""
    return example_network("hepar2")


@pytest.fixture(scope="session")
def hepar2_network(hepar2_raw_network: Any) -> Any:
    """hepar2 with its CPD columns renormalized (see :func:`normalized`)."""
    return normalized(hepar2_raw_network)


@pytest.fixture(scope="session")
def pathfinder_network() -> Any:
    return example_network("pathfinder")


@pytest.fixture(scope="session")
def pathfinder_normalized(pathfinder_network: Any) -> Any:
    """pathfinder with its CPD columns renormalized (see :func:`normalized`)."""
    return normalized(pathfinder_network)


@pytest.fixture(scope="session")
def child_model(child_network: Any) -> bayesdx.Model:
    return bayesdx.load_model(child_network, causes=list(CHILD_CAUSES))


@pytest.fixture(scope="session")
def hepar2_model(hepar2_network: Any) -> bayesdx.Model:
    return bayesdx.load_model(hepar2_network, causes=list(HEPAR2_CAUSES))


@pytest.fixture(scope="session")
def bundled_model() -> bayesdx.Model:
    """The bundled leg-twitch model (models/leg_twitch.toml with priors/article.toml)."""
    return bayesdx.load_model()


# ---------------------------------------------------------------------- a random small network
def random_network(seed: int, n_nodes: int = 7, max_parents: int = 2) -> Any:
    """A random discrete network whose every CPD entry is positive (so no evidence is impossible).

    Nodes ``c0`` and ``c1`` are meant as causes (``c0`` binary with states present/absent, ``c1`` with
    three states low/mid/high and no normal state); ``f2``... are findings with 2 or 3 states.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    gen = np.random.default_rng(seed)
    names = ["c0", "c1"] + [f"f{k}" for k in range(2, n_nodes)]
    states: dict[str, list[str]] = {"c0": ["present", "absent"], "c1": ["low", "mid", "high"]}
    for name in names[2:]:
        states[name] = ["yes", "no"] if gen.random() < 0.5 else ["s0", "s1", "s2"]
    parents: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        earlier = names[:k]
        count = int(gen.integers(0, min(max_parents, len(earlier)) + 1))
        parents[name] = sorted(gen.choice(earlier, size=count, replace=False).tolist()) if count else []
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(names)
    network.add_edges_from((p, n) for n in names for p in parents[n])
    cpds = []
    for name in names:
        columns = math.prod(len(states[p]) for p in parents[name])
        values = gen.dirichlet(np.full(len(states[name]), 1.5), size=columns).T
        values = 0.02 / len(states[name]) + 0.98 * values  # keep every entry away from zero
        cpds.append(
            TabularCPD(
                name,
                len(states[name]),
                values,
                evidence=parents[name] or None,
                evidence_card=[len(states[p]) for p in parents[name]] or None,
                state_names={name: states[name], **{p: states[p] for p in parents[name]}},
            )
        )
    network.add_cpds(*cpds)
    network.check_model()
    return network


@pytest.fixture(scope="session")
def random_small_network() -> Any:
    return random_network(SEED)


@pytest.fixture(scope="session")
def random_small_model(random_small_network: Any) -> bayesdx.Model:
    return bayesdx.load_model(random_small_network, causes=["c0", "c1"])


# ---------------------------------------------------------------------- references

_VE_CACHE: dict[int, Any] = {}


def variable_elimination(network: Any) -> Any:
    from pgmpy.inference import VariableElimination

    key = id(network)
    if key not in _VE_CACHE:
        _VE_CACHE[key] = (network, VariableElimination(network))
    return _VE_CACHE[key][1]


def ve_hypothesis_probabilities(network: Any, model: bayesdx.Model, evidence: Mapping[str, str]) -> dict[str, float]:
    """P(hypothesis | evidence) for every hypothesis of ``model``, by pgmpy's VariableElimination.

    A cause that is itself observed has a one-hot posterior (pgmpy refuses to query an observed variable).
    The model's presenting complaint (``model.presenting``, evidence every case carries unless it states
    that variable otherwise) is added to the evidence, as the model's definition says.
    """
    evidence = {**dict(getattr(model, "presenting", {}) or {}), **evidence}
    unobserved = [c for c in model.causes if c not in evidence]
    factors = {}
    if unobserved:
        hard, virtual = pgmpy_evidence(network, evidence)
        factors = variable_elimination(network).query(
            variables=unobserved, evidence=hard, virtual_evidence=virtual, joint=False, show_progress=False
        )
    result = {}
    for h in model.hypotheses:
        if h.node in evidence:
            result[h.id] = 1.0 if evidence[h.node] == h.state else 0.0
        else:
            factor = factors[h.node]
            result[h.id] = float(factor.values[list(factor.state_names[h.node]).index(h.state)])
    return result


def ve_marginal(network: Any, variable: str, evidence: Mapping[str, str], states: Sequence[str]) -> np.ndarray:
    """P(variable | evidence) in the order ``states``, by VariableElimination."""
    if variable in evidence:
        return np.array([1.0 if s == evidence[variable] else 0.0 for s in states])
    hard, virtual = pgmpy_evidence(network, evidence)
    factor = variable_elimination(network).query(
        variables=[variable], evidence=hard, virtual_evidence=virtual, joint=False, show_progress=False
    )[variable]
    names = list(factor.state_names[variable])
    return np.array([factor.values[names.index(s)] for s in states], dtype=float)


def sample_evidence(
    network: Any, n: int, rng: np.random.Generator, *, observe: float = 0.3, exclude: Sequence[str] = ()
) -> list[dict[str, str]]:
    """``n`` evidence sets that are possible under ``network``: forward samples with a random subset observed.

    Each variable (except ``exclude``) is observed with probability ``observe``; every case observes at
    least one variable.
    """
    from pgmpy.sampling import BayesianModelSampling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = BayesianModelSampling(network).forward_sample(size=n, seed=int(rng.integers(2**31 - 1)), show_progress=False)
    columns = [c for c in samples.columns if c not in exclude]
    cases = []
    for k in range(n):
        row = samples.iloc[k]
        mask = rng.random(len(columns)) < observe
        if not mask.any():
            mask[int(rng.integers(len(columns)))] = True
        cases.append({c: str(row[c]) for c, m in zip(columns, mask, strict=True) if m})
    return cases


@pytest.fixture(scope="session")
def ve_reference() -> Callable[..., dict[str, float]]:
    """``ve_reference(network, model, evidence)``: hypothesis probabilities by VariableElimination."""
    return ve_hypothesis_probabilities


@pytest.fixture(scope="session")
def ve_marginal_reference() -> Callable[..., np.ndarray]:
    return ve_marginal


@pytest.fixture(scope="session")
def to_pyagrum() -> Callable[[Any], Any]:
    return pyagrum_from_pgmpy


@pytest.fixture(scope="session")
def evidence_sampler() -> Callable[..., list[dict[str, str]]]:
    """``evidence_sampler(network, n, rng, observe=0.3, exclude=())``: possible evidence sets."""
    return sample_evidence


@pytest.fixture(scope="session")
def random_network_factory() -> Callable[..., Any]:
    return random_network


def by_id(diagnosis: bayesdx.Diagnosis) -> dict[str, float]:
    return {c.id: c.probability for c in diagnosis.causes}


@pytest.fixture(scope="session")
def probabilities_by_id() -> Callable[[bayesdx.Diagnosis], dict[str, float]]:
    """``probabilities_by_id(diagnosis)``: ``{hypothesis id: probability}``."""
    return by_id


@pytest.fixture(scope="session")
def bundled_ve(bundled_model: bayesdx.Model) -> Any:
    """pgmpy's VariableElimination on the bundled network: the independent reference."""
    from pgmpy.inference import VariableElimination

    return VariableElimination(bundled_model.network)


@pytest.fixture(scope="session")
def hepar2_ve(hepar2_network: Any) -> Any:
    """pgmpy's VariableElimination on the renormalised hepar2."""
    from pgmpy.inference import VariableElimination

    return VariableElimination(hepar2_network)
