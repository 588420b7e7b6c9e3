"""The :class:`Model`: a pgmpy network with roles, hypotheses and costs, and :func:`load_model`.

Model and prior files are read by :mod:`bayesdx.model_file`; pgmpy networks and BIF/XMLBIF files are read
and their roles checked by :mod:`bayesdx.network_loading`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _resources
from .calibration import calibrate_base_rates, compile_spec
from .engine import CompiledNetwork, InferenceEngine, ProgramCache
from .harm import HarmWeights
from .model_file import files_mtime, read_model_file, read_prior_file, resolve_priors
from .model_spec import Hypothesis, ModelSpec, PriorSetting, hypotheses_of
from .network_build import build_network
from .network_loading import NETWORK_SUFFIXES, network_roles, read_network_file, roles_must_be_absent
from .studies import Study, parse_studies
from .triage import ReferralPolicy, TriagePolicy

__all__ = ["Hypothesis", "Model", "load_model"]


@dataclass(frozen=True, eq=False)
class Model:
    """A diagnostic model: a discrete Bayesian network whose nodes have roles.

    Create it with :func:`load_model`.

    Attributes
    ----------
    network : pgmpy.models.DiscreteBayesianNetwork
        The network every probability is computed on.
    causes, findings, tests : tuple of str
        Node ids by role. Every node that is neither a cause nor a test is a finding (model files may also
        declare ``hidden`` nodes: modelling devices that are never asked about).
    hidden : tuple of str
        Hidden nodes (model files only).
    presenting : mapping of str to str
        Evidence every case carries unless it says otherwise: the presenting complaint.
    base_rates : mapping of str to float
        The causes' base rates in the network, calibrated so that each cause's probability at the model's
        reference evidence equals its prior (see :mod:`bayesdx.calibration`).
    hypotheses : tuple of Hypothesis
        The cause hypotheses that are ranked, in model order.
    states : mapping of str to tuple of str
        State names of every node.
    normal_states : mapping of str to str or None
        The normal (not-a-hypothesis, negative) state of each node, where it has one.
    aliases : mapping of str to mapping of str to tuple of str
        Per node, coarser answers that stand for several states (``electromyography = "abnormal"`` means
        neurogenic or myopathic): entered as soft evidence, a likelihood of one on each listed state.
    costs : mapping of str to float
        Cost of observing each finding (asking) and test (doing), on the model's cost scale.
    labels : mapping of str to str
        Human-readable label of each node.
    id, version : str
        The model's identity, recorded in every result.
    priors : str
        Name of the prior setting in force (``"network"`` for a network that carries its own priors).
    source : str
        Where the model came from (a file path, or ``"<pgmpy model>"``).
    spec : ModelSpec or None
        The parsed model file, for models read from TOML.
    triage_policy, referral_policy : TriagePolicy or ReferralPolicy or None
        The model file's triage and referral rules, if it declares them.
    studies : mapping of str to Study
        Tests done together as one next step (see :mod:`bayesdx.studies`).
    examinations : tuple of str
        Tests done at the bedside in the consultation (model files may mark them ``examination = true``);
        next steps list them with kind ``"examination"``.
    harm : HarmWeights or None
        What missing each cause costs (see :mod:`bayesdx.harm`), if the model file declares it: next steps
        then pursue every cause, weighted by it.
    prior_setting : PriorSetting or None
        The parsed prior file, for models read from TOML.
    """

    causes: tuple[str, ...]
    findings: tuple[str, ...] = field(repr=False)
    tests: tuple[str, ...] = field(repr=False)
    hypotheses: tuple[Hypothesis, ...] = field(repr=False)
    states: Mapping[str, tuple[str, ...]] = field(repr=False)
    normal_states: Mapping[str, str | None] = field(repr=False)
    costs: Mapping[str, float] = field(repr=False)
    labels: Mapping[str, str] = field(repr=False)
    id: str = ""
    version: str = ""
    priors: str = ""
    source: str = ""
    spec: ModelSpec | None = field(default=None, repr=False)
    prior_setting: PriorSetting | None = field(default=None, repr=False)
    triage_policy: TriagePolicy | None = field(default=None, repr=False)
    referral_policy: ReferralPolicy | None = field(default=None, repr=False)
    harm: HarmWeights | None = field(default=None, repr=False)
    examinations: tuple[str, ...] = field(default=(), repr=False)
    studies: Mapping[str, Study] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    hidden: tuple[str, ...] = field(default=(), repr=False)
    presenting: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    base_rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    aliases: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    _pgmpy: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def network(self) -> Any:
        """The pgmpy ``DiscreteBayesianNetwork`` every probability is computed on.

        For a model file it is built on first use (importing pgmpy and filling every full table takes
        seconds; the engine works on :attr:`compiled` and never needs it).
        """
        if self._pgmpy is None and self.spec is not None:
            return build_network(self.spec, self.base_rates or None)
        return self._pgmpy

    def answers(self, variable: str) -> tuple[str, ...]:
        """Every accepted answer for ``variable``: its states, then its aliases."""
        return (*self.states[variable], *self.aliases.get(variable, {}))

    def answer_vector(self, variable: str, answer: str) -> np.ndarray:
        """The likelihood vector of an answer: one-hot for a state, ones on the listed states for an alias."""
        states = self.states[variable]
        vector = np.zeros(len(states))
        members = self.aliases.get(variable, {}).get(answer)
        for state in (answer,) if members is None else members:
            vector[states.index(state)] = 1.0
        return vector

    def __repr__(self) -> str:
        return (
            f"Model(id={self.id!r}, version={self.version!r}, priors={self.priors!r}, "
            f"causes={len(self.causes)}, findings={len(self.findings)}, tests={len(self.tests)})"
        )

    @property
    def variables(self) -> tuple[str, ...]:
        """Every node id, causes first, then findings, then tests, then hidden nodes."""
        return self.causes + self.findings + self.tests + self.hidden

    def role(self, variable: str) -> str:
        """``"cause"``, ``"finding"``, ``"test"`` or ``"hidden"``."""
        if variable in self.causes:
            return "cause"
        if variable in self.hidden:
            return "hidden"
        return "test" if variable in self.tests else "finding"

    @cached_property
    def compiled(self) -> CompiledNetwork:
        """The network as arrays, for the inference engine (with noisy CPDs decomposed for model files)."""
        if self.spec is not None:
            return compile_spec(self.spec, self.base_rates)
        return CompiledNetwork.from_pgmpy(self.network)

    @cached_property
    def engine(self) -> InferenceEngine:
        """The exact batched inference engine of this model (the prior settings of one model file share its
        compiled programs)."""
        if self.spec is not None:
            return InferenceEngine(self.compiled, programs=self.spec.__dict__.setdefault("_programs", ProgramCache()))
        return InferenceEngine(self.compiled)

    @cached_property
    def _hypothesis_columns(self) -> tuple[tuple[str, list[int] | None], ...]:
        """Per run of consecutive hypotheses of one cause node, the node and the states they stand for (None:
        every state in order), which :func:`bayesdx.posteriors.hypothesis_matrix` gathers."""
        runs = []
        for node, rows in itertools.groupby(self.hypotheses, key=lambda h: h.node):
            states = self.states[node]
            idx = [states.index(h.state) for h in rows]
            runs.append((node, None if idx == list(range(len(states))) else idx))
        return tuple(runs)

    @cached_property
    def prior_probabilities(self) -> Mapping[str, float]:
        """Probability of every hypothesis before any evidence but the presenting complaint."""
        from .evidence import likelihoods_from_evidence

        post = self.engine.posterior(likelihoods_from_evidence(self, [dict(self.presenting)]), self.causes, 1)
        return MappingProxyType({h.id: float(post.marginals[h.node][0, self.states[h.node].index(h.state)]) for h in self.hypotheses})

    def __reduce__(self) -> tuple:
        """Pickle as a recipe (Dask workers, multiprocessing; :class:`bayesdx.dask.ModelRecipe` is the same
        recipe): a model file by bundled name or path, read once per process, or the network rewrapped."""
        if self.spec is not None:
            prior = None if self.prior_setting is None else _resources.bundled_name(self.prior_setting.path, "priors")
            return (_unpickle_spec_model, (_resources.bundled_name(self.spec.path, "models"), prior))
        normals = {c: self.normal_states.get(c) for c in self.causes}
        return (
            _unpickle_network_model,
            (self.network, self.causes, self.tests, normals, self.source, self.id, dict(self.presenting), self.hidden, dict(self.costs)),
        )

    def with_priors(self, priors: str | os.PathLike[str]) -> Model:
        """The same model with another prior setting (models read from a model file only)."""
        if self.spec is None:
            raise ValueError(
                f"Model {self.id!r} was not read from a model file, so its priors cannot be swapped; "
                "its network carries its own prior tables."
            )
        return _from_spec(self.spec, priors)


# ---------------------------------------------------------------------- loading
def load_model(
    source: str | os.PathLike[str] | Any | None = None,
    *,
    priors: str | os.PathLike[str] | None = None,
    causes: Sequence[str] | None = None,
    tests: Sequence[str] = (),
    normal_states: Mapping[str, str | None] | None = None,
    presenting: Mapping[str, str] | None = None,
    hidden: Sequence[str] | None = None,
    costs: Mapping[str, float] | None = None,
) -> Model:
    """Load a diagnostic model.

    Parameters
    ----------
    source : str, path-like, pgmpy network or None, default None
        ``None`` loads the bundled leg-twitch network. A name such as ``"leg_twitch"`` loads a bundled
        model; a path to a ``.toml`` model file, a ``.bif`` or ``.xml``/``.xmlbif`` file, or a pgmpy
        ``DiscreteBayesianNetwork`` loads that network.
    priors : str or path-like, optional
        For model files: the prior setting, by bundled name (``"article"``, ``"uniform"``, ...) or as a
        path to a prior file. Defaults to the model's ``default_priors``. Not allowed for BIF, XMLBIF and
        pgmpy networks, which carry their own priors.
    causes : sequence of str, optional
        For BIF, XMLBIF and pgmpy networks (required there): the nodes to rank. Not allowed for model files,
        which declare roles themselves.
    tests : sequence of str, default ()
        For BIF, XMLBIF and pgmpy networks: the nodes that are tests. Every other node is a finding.
    normal_states : mapping of str to str or None, optional
        The normal state of a cause (not ranked) where it is not named absent/normal/no/false; map a cause
        to ``None`` to rank every one of its states.
    presenting : mapping of str to str, optional
        For networks: evidence every case carries unless it states otherwise (the presenting complaint;
        ``{"leg_twitching": "yes"}`` when reloading the bundled model's BIF export).
    hidden : sequence of str, optional
        For networks: modelling devices that are never asked about or ranked. Default: the divorcing parts
        ``<node>__part<k>`` that ``bayesdx model export`` writes.
    costs : mapping of str to float, optional
        For networks: the cost of asking each finding or doing each test (default 1 each).

    Returns
    -------
    Model

    Raises
    ------
    ModelFileError
        If a model or prior file is malformed (naming the file, key and value).
    FileNotFoundError
        If a file does not exist.
    ValueError
        For an unknown bundled name or prior setting, or roles that do not fit the network.

    Examples
    --------
    >>> import bayesdx
    >>> model = bayesdx.load_model()
    >>> model.id, model.priors
    ('leg_twitch', 'article')
    >>> "als" in model.causes
    True
    """
    extra: dict[str, Any] = {"presenting": presenting, "hidden": hidden, "costs": costs}
    if source is None or (isinstance(source, str) and source in _resources.available("models")):
        name = _resources.BUNDLED_MODEL if source is None else source
        roles_must_be_absent(causes, tests, normal_states, "a model file", extra)
        model_path = _resources.data_dir("models") / f"{name}.toml"
        if priors is not None and not (isinstance(priors, str) and priors in _resources.available("priors")):
            return _from_spec(read_model_file(model_path), priors)  # a prior file by path: never cached
        return _bundled(name, priors, files_mtime(model_path), files_mtime(_resources.data_dir("priors")))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix == ".toml":
            roles_must_be_absent(causes, tests, normal_states, "a model file", extra)
            return _from_spec(read_model_file(path), priors)
        if suffix in NETWORK_SUFFIXES:
            network = read_network_file(path)
            return from_network(
                network,
                causes=causes,
                tests=tests,
                normal_states=normal_states,
                priors=priors,
                source=str(path),
                model_id=path.stem,
                **extra,
            )
        if not path.exists() and isinstance(source, str) and os.sep not in source and "." not in source:
            bundled = ", ".join(repr(n) for n in _resources.available("models"))
            raise ValueError(
                f"The 'source' parameter of load_model must be a bundled model name ({bundled}), a path to a "
                f".toml, .bif or .xmlbif file, or a pgmpy network. Got {source!r} instead."
            )
        raise ValueError(
            f"Cannot load {str(source)!r}: the file type {suffix or '(none)'!r} is not supported. "
            "Use a .toml model file, a .bif or an .xmlbif/.xml file."
        )
    if hasattr(source, "get_cpds") and hasattr(source, "nodes"):
        return from_network(
            source,
            causes=causes,
            tests=tests,
            normal_states=normal_states,
            priors=priors,
            source="<pgmpy model>",
            model_id=getattr(source, "name", "") or "network",
            **extra,
        )
    raise TypeError(
        "The 'source' parameter of load_model must be None, a str or path-like, or a pgmpy "
        f"DiscreteBayesianNetwork. Got {type(source).__name__} instead."
    )


@functools.lru_cache(maxsize=16)
def _bundled(name: str, priors: str | None, _model_mtime: float, _priors_mtime: float) -> Model:
    """A bundled model with a bundled prior setting; cached, and re-read when a file changes."""
    return _from_spec(_bundled_spec(name, _model_mtime), priors)


@functools.lru_cache(maxsize=4)
def _bundled_spec(name: str, _model_mtime: float) -> ModelSpec:
    """A bundled model file, read once (its prior settings share it, with its compiled structure)."""
    return read_model_file(_resources.data_dir("models") / f"{name}.toml")


def _from_spec(spec: ModelSpec, priors: str | os.PathLike[str] | None) -> Model:
    setting: PriorSetting | None = None
    if any(cpd["kind"] == "cause_prior" for cpd in spec.cpds.values()):
        setting = read_prior_file(resolve_priors(spec, priors), spec)
    elif priors is not None:
        raise ValueError(f"Model file {str(spec.path)!r} has no 'cause_prior' causes, so it takes no priors.")
    base_rates: dict[str, float] | None = None
    if setting is not None:
        base_rates = dict(setting.probabilities)
        if spec.prior_reference is not None:
            reference = {**spec.presenting, **spec.prior_reference}
            base_rates = calibrate_base_rates(spec, setting.probabilities, reference)
    nodes = spec.nodes.values()
    causes = tuple(n.id for n in nodes if n.role == "cause")
    hypotheses = hypotheses_of(causes, {n.id: n.states for n in nodes}, {n.id: n.normal for n in nodes})
    hyp_ids = [h.id for h in hypotheses]
    states = {n.id: n.states for n in nodes}
    normals = {n.id: n.normal for n in nodes}
    answers = {n.id: (*n.states, *n.aliases) for n in nodes}
    triage = (
        None
        if spec.triage is None
        else TriagePolicy.parse(spec.path, spec.triage, answers, hyp_ids, normals, tuple(spec.presenting), {n.id: n.aliases for n in nodes})
    )
    referral = (
        None
        if spec.referral is None
        else ReferralPolicy.parse(spec.path, spec.referral, hyp_ids, None if triage is None else triage.levels)
    )
    costs = {n.id: (n.cost if n.cost is not None else spec.question_cost) for n in nodes if n.role in ("finding", "test")}
    model = Model(
        causes=causes,
        findings=tuple(n.id for n in nodes if n.role == "finding"),
        tests=tuple(n.id for n in nodes if n.role == "test"),
        hidden=tuple(n.id for n in nodes if n.role == "hidden"),
        presenting=MappingProxyType(dict(spec.presenting)),
        base_rates=MappingProxyType(dict(base_rates or {})),
        hypotheses=hypotheses,
        states=MappingProxyType(states),
        normal_states=MappingProxyType({n.id: n.normal for n in nodes}),
        aliases=MappingProxyType({n.id: MappingProxyType(dict(n.aliases)) for n in nodes if n.aliases}),
        costs=MappingProxyType(costs),
        labels=MappingProxyType({n.id: n.label for n in nodes}),
        id=spec.id,
        version=spec.version,
        priors=setting.id if setting is not None else "network",
        source=str(spec.path),
        spec=spec,
        prior_setting=setting,
        triage_policy=triage,
        referral_policy=referral,
        harm=None if spec.harm is None else HarmWeights.parse(spec.path, spec.harm, hyp_ids),
        examinations=tuple(n.id for n in nodes if n.examination),
        studies=MappingProxyType(parse_studies(spec.path, spec.studies, {n.id: n.role for n in nodes}, list(states))),
    )
    # every table is built (and checked) at load; the pgmpy network only when asked for (Model.network)
    model.__dict__["compiled"] = compile_spec(spec, base_rates or {})
    return model


def from_network(
    network: Any,
    *,
    causes: Sequence[str] | None,
    tests: Sequence[str] = (),
    normal_states: Mapping[str, str | None] | None = None,
    priors: Any = None,
    source: str = "<pgmpy model>",
    model_id: str = "network",
    presenting: Mapping[str, str] | None = None,
    hidden: Sequence[str] | None = None,
    costs: Mapping[str, float] | None = None,
) -> Model:
    """Wrap a pgmpy ``DiscreteBayesianNetwork`` (see :func:`load_model`; the roles are checked by
    :func:`bayesdx.network_loading.network_roles`)."""
    roles = network_roles(
        network,
        causes=causes,
        tests=tests,
        normal_states=normal_states,
        priors=priors,
        source=source,
        presenting=presenting,
        hidden=hidden,
        costs=costs,
    )
    model = Model(
        _pgmpy=network,
        causes=roles.causes,
        findings=roles.findings,
        tests=roles.tests,
        hypotheses=hypotheses_of(roles.causes, roles.states, roles.normals),
        states=MappingProxyType({n: roles.states[n] for n in roles.nodes}),
        normal_states=MappingProxyType(roles.normals),
        costs=MappingProxyType(roles.costs),
        labels=MappingProxyType({n: n for n in roles.nodes}),
        id=model_id,
        version="",
        priors="network",
        source=source,
        hidden=roles.hidden,
        presenting=MappingProxyType(roles.presenting),
    )
    model.__dict__["compiled"] = roles.compiled  # already built; cached_property reads it from here
    return model


def check_model_file(path: str | os.PathLike[str], priors: str | os.PathLike[str] | None = None) -> Model:
    """Read, validate and build a model file; raise :class:`ModelFileError` on the first problem."""
    model = _from_spec(read_model_file(path), priors)
    model.network.check_model()  # the pgmpy network too, which a loaded model builds only on demand
    return model


def _model_or_default(model: Model | None, priors: str | os.PathLike[str] | None, function: str) -> Model:
    if model is None:
        return load_model(priors=priors)
    if not isinstance(model, Model):
        raise TypeError(
            f"The 'model' parameter of {function} must be a bayesdx Model (from load_model). Got {type(model).__name__} instead."
        )
    if priors is not None and (model.spec is None or os.fspath(priors) != model.priors):
        return model.with_priors(priors)
    return model


@functools.lru_cache(maxsize=8)
def _unpickle_spec_model(source: str, priors: str | None) -> Model:
    """A model file by bundled name or path, with priors by bundled name or path; read once per process."""
    bundled = _resources.available("priors")
    if source in _resources.available("models"):
        return load_model(source, priors=priors if priors is None or priors in bundled else Path(priors))
    return load_model(Path(source), priors=Path(priors) if priors is not None else None)


def _unpickle_network_model(
    network: Any,
    causes: tuple[str, ...],
    tests: tuple[str, ...],
    normals: dict[str, str | None],
    source: str,
    model_id: str,
    presenting: dict[str, str] | None = None,
    hidden: tuple[str, ...] | None = None,
    costs: dict[str, float] | None = None,
) -> Model:
    return from_network(
        network,
        causes=causes,
        tests=tests,
        normal_states=normals,
        source=source,
        model_id=model_id,
        presenting=presenting,
        hidden=hidden,
        costs=costs,
    )
