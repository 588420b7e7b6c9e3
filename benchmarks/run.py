"""Benchmark bayesdx against pgmpy's VariableElimination and pyAgrum's LazyPropagation (issue 7).

In one process, on the same cases, for every network and batch size this times

* (a) ranking: the posterior of every cause hypothesis, and
* (b) ranking plus next steps: (a) and the expected information gain (EIG) of every unobserved finding and
  test about the pursued hypotheses of the bayesdx result,

with three engines:

* pgmpy ``VariableElimination`` as a user would write it: one ``query([cause], evidence=e)`` per cause
  node; for next steps one ``query([X], evidence=e)`` per candidate ``X`` for ``P(X = x | e)`` and one
  ``query([c], evidence=e + {X: x})`` per pursued cause node ``c`` and possible outcome ``x``;
* pyAgrum ``LazyPropagation`` on a ``gum.BayesNet`` built from the same CPDs (state order checked), one
  engine per role reused between cases: targets restricted to the causes (outcomes enter with
  ``addEvidence`` / ``eraseEvidence``), and one engine targeting the candidates for ``P(X = x | e)``;
* bayesdx: ``rank_causes`` for a batch of one (the interactive call), ``score`` for larger batches
  (``next_step=True`` for (b)).

pgmpy and pyAgrum answer one case at a time, so they are timed on the first few cases only (see
``--pgmpy-cases`` and friends) and compared per case. All three must agree to 1e-9 on every posterior
and every EIG of the cases the references ran; a disagreement raises :class:`AgreementError`.

Two workloads (``--workloads``, default both): *sampled* cases (forward samples of each ``--networks`` network)
and *vignettes* (issue 16): the rows of ``evaluation/vignettes/*.csv`` on the bundled model, replicated to
``--vignette-cases`` cases (see ``benchmarks/workloads.py``). Both run the same tasks, batch sizes and
agreement checks, and the table has a ``workload`` column plus the two side by side.

Run ``python benchmarks/run.py --help``; ``--quick`` is a smoke run of about 20 seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

import bayesdx
from bayesdx.ranking import analyse_cases

ATOL = 1e-9
SEED = 20261124
NETWORKS = ("leg_twitch", "child", "hepar2", "pathfinder")
CAUSES: dict[str, tuple[str, ...]] = {
    "child": ("Disease",),
    "hepar2": ("Cirrhosis", "PBC", "hepatotoxic", "THepatitis", "ChHepatitis", "fibrosis", "Steatosis", "Hyperbilirubinemia"),
    "pathfinder": ("Fault",),
}
TOP_K = 3


def load_sibling(stem: str, folder: str = "benchmarks") -> ModuleType:
    """The module ``<folder>/<stem>.py`` of the repository (the benchmarks are scripts, not a package), imported
    once per process."""
    name = f"bayesdx_{folder}_{stem}"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / folder / f"{stem}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {folder}/{stem}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return sys.modules[name]


workloads = load_sibling("workloads")
#: The reference helpers the tests use too (one place: tests/references.py).
references = load_sibling("references", "tests")


class AgreementError(AssertionError):
    """bayesdx, pgmpy and pyAgrum disagree on a posterior or an EIG."""


@dataclasses.dataclass
class Row:
    network: str
    task: str  # "ranking" or "ranking+next steps"
    batch: int
    call: str
    bayesdx_ms: float  # per case
    pgmpy_ms: float
    pgmpy_n: int
    pyagrum_ms: float
    pyagrum_n: int
    estimated: bool = False  # not run: per-case time of the largest batch that ran within --budget
    workload: str = "sampled"  # "sampled" or "vignettes"

    @property
    def cases_per_second(self) -> float:
        return 1e3 / self.bayesdx_ms

    @property
    def vs_pgmpy(self) -> float:
        return self.pgmpy_ms / self.bayesdx_ms

    @property
    def vs_pyagrum(self) -> float:
        return self.pyagrum_ms / self.bayesdx_ms


@dataclasses.dataclass
class Results:
    rows: list[Row] = dataclasses.field(default_factory=list)
    memory: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    too_large: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    agreement: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one entry per network checked
    engine_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: str = ""


# ---------------------------------------------------------------------- networks and cases
def _example(name: str) -> Any:
    """One of pgmpy's example networks (``tests/references.py``)."""
    return references.example_network(name)


def _normalized(network: Any) -> Any:
    """A copy whose CPD columns sum to 1 (hepar2 ships columns off by 1e-7, which moves answers by 1e-8)."""
    return references.normalized(network)


def load(name: str) -> bayesdx.Model:
    if name == "leg_twitch":
        return bayesdx.load_model()
    return bayesdx.load_model(_normalized(_example(name)), causes=list(CAUSES[name]))


def forward_samples(compiled: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_variables)`` state codes drawn from the network (its variables are in topological order)."""
    codes = np.zeros((n, len(compiled.variables)), dtype=np.int64)
    for v, (table, parents) in enumerate(zip(compiled.tables, compiled.parents, strict=True)):
        probs = table[(slice(None), *(codes[:, p] for p in parents))] if parents else table[:, None]
        cum = np.cumsum(probs, axis=0)
        u = rng.random(n) * cum[-1]
        codes[:, v] = np.minimum((u[None, :] >= cum).sum(axis=0), table.shape[0] - 1)
    return codes


def presenting(model: bayesdx.Model) -> dict[str, str]:
    """Evidence bayesdx adds to every case (the model's presenting complaint), which the references need too."""
    return dict(getattr(model, "presenting", {}) or {})


def split_evidence(model: bayesdx.Model, evidence: Mapping[str, str]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Split a case into hard evidence and set-valued answers, as the references must enter them.

    Parameters
    ----------
    model : bayesdx.Model
    evidence : mapping
        ``{variable: answer}``; an answer is a state or an alias of the model file (the vignettes answer EMG
        ``abnormal`` for ``myopathic`` or ``neurogenic``).

    Returns
    -------
    hard : dict
        ``{variable: state}``.
    soft : dict
        ``{variable: 0/1 likelihood over its states}`` for the aliases.
    """
    hard: dict[str, str] = {}
    soft: dict[str, np.ndarray] = {}
    for variable, answer in evidence.items():
        if answer in model.states[variable]:
            hard[variable] = answer
        else:
            soft[variable] = model.answer_vector(variable, answer)
    return hard, soft


def sample_cases(model: bayesdx.Model, n: int, n_observed: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """``n`` possible cases: forward samples with ``n_observed`` findings or tests observed.

    Samples are drawn given the presenting complaint (by rejection), which is not among the observed.
    """
    compiled = model.compiled
    index = compiled.index()
    given = {index[v]: compiled.states[index[v]].index(s) for v, s in presenting(model).items()}
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < n:
        draw = forward_samples(compiled, max(n, 1000), rng)
        kept.append(draw[np.all([draw[:, v] == s for v, s in given.items()], axis=0)] if given else draw)
    codes = np.concatenate(kept)[:n]
    observable = set(model.findings + model.tests) - set(model.causes) - set(presenting(model))
    pool = [k for k, v in enumerate(compiled.variables) if v in observable]
    chosen = np.argsort(rng.random((n, len(pool))), axis=1)[:, :n_observed]
    cases = []
    for row, picks in zip(codes, chosen, strict=True):
        cases.append({compiled.variables[pool[j]]: compiled.states[pool[j]][row[pool[j]]] for j in sorted(picks)})
    return cases


def to_pyagrum(network: Any, model: bayesdx.Model) -> Any:
    """A ``gum.BayesNet`` built CPD by CPD from the pgmpy tables (``tests/references.py``), with every variable's
    state order checked against bayesdx's."""
    bn = references.pyagrum_from_pgmpy(network)
    for name in model.variables:
        labels = tuple(bn.variable(name).labels())
        if labels != tuple(model.states[name]):
            raise AgreementError(f"pyAgrum state order of {name!r} is {labels!r}; bayesdx has {model.states[name]!r}")
    return bn


# ---------------------------------------------------------------------- the shared EIG formula
def _h2(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0.0))


def _entropy(model: bayesdx.Model, pursued: Sequence[Any], marginals: Mapping[str, np.ndarray]) -> float:
    """Entropy of the pursued hypotheses, each weighted by the model file's harm weight (1 without [harm])."""
    weight = model.harm.weights if model.harm is not None else {}
    return float(sum(weight.get(h.id, 1.0) * _h2(marginals[h.node][model.states[h.node].index(h.state)]) for h in pursued))


def candidates(model: bayesdx.Model, case: Mapping[str, str]) -> list[str]:
    nodes = {h.node for h in model.hypotheses}
    return [v for v in model.findings + model.tests if v not in nodes and v not in case]


@dataclasses.dataclass
class Answer:
    """One engine's answer for one case."""

    probabilities: dict[str, float]  # hypothesis id -> posterior
    eig: dict[str, float] | None = None  # candidate -> EIG


def _probabilities(model: bayesdx.Model, marginals: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {h.id: float(marginals[h.node][model.states[h.node].index(h.state)]) for h in model.hypotheses}


def _eig(
    model: bayesdx.Model,
    pursued: Sequence[Any],
    base: Mapping[str, np.ndarray],
    outcome: Callable[[str, np.ndarray], list[Mapping[str, np.ndarray] | None]],
    p_x: Callable[[str], np.ndarray],
    case: Mapping[str, str],
    limit: int | None,
) -> dict[str, float]:
    s_now = _entropy(model, pursued, base)
    result = {}
    for var in candidates(model, case)[:limit]:
        px = p_x(var)
        after = outcome(var, px)
        expected = sum(px[k] * _entropy(model, pursued, m) for k, m in enumerate(after) if m is not None)
        result[var] = max(s_now - expected, 0.0)
    return result


# ---------------------------------------------------------------------- pgmpy
def run_pgmpy(
    model: bayesdx.Model, cases: Sequence[Mapping[str, str]], pursued: Sequence[Sequence[Any]] | None, limit: int | None = None
) -> tuple[list[Answer], list[float]]:
    """pgmpy VariableElimination, one query per cause node (and per candidate outcome with ``pursued``)."""
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(model.network)

    def marginal(var: str, evidence: Mapping[str, str]) -> np.ndarray:
        hard, soft = split_evidence(model, evidence)
        if not soft:
            factor = ve.query([var], evidence=hard, show_progress=False)
            names = [str(s) for s in factor.state_names[var]]
            return np.array([factor.values[names.index(s)] for s in model.states[var]], dtype=float)
        # a set-valued answer X in S: the joint of var and X given the hard evidence, summed over S
        factor = ve.query([var, *soft], evidence=hard, joint=True, show_progress=False)
        values = np.asarray(factor.values, dtype=float)
        for axis, name in enumerate(factor.variables):
            names = [str(s) for s in factor.state_names[name]]
            values = np.take(values, [names.index(s) for s in model.states[name]], axis=axis)
        for name, likelihood in soft.items():
            shape = [1] * values.ndim
            shape[factor.variables.index(name)] = -1
            values = values * likelihood.reshape(shape)
        p = values.sum(axis=tuple(k for k, name in enumerate(factor.variables) if name != var))
        return p / p.sum()

    answers, seconds = [], []
    for k, case in enumerate(cases):
        start = time.perf_counter()
        base = {c: marginal(c, case) for c in model.causes}
        eig = None
        if pursued is not None:
            nodes = list(dict.fromkeys(h.node for h in pursued[k]))

            def outcome(
                var: str, px: np.ndarray, case: Mapping[str, str] = case, nodes: list[str] = nodes
            ) -> list[dict[str, np.ndarray] | None]:
                return [{c: marginal(c, {**case, var: x}) for c in nodes} if px[j] > 0 else None for j, x in enumerate(model.states[var])]

            eig = _eig(model, pursued[k], base, outcome, lambda var, case=case: marginal(var, case), case, limit)
        seconds.append(time.perf_counter() - start)
        answers.append(Answer(_probabilities(model, base), eig))
    return answers, seconds


# ---------------------------------------------------------------------- pyAgrum
def _pyagrum_evidence(model: bayesdx.Model, case: Mapping[str, str]) -> dict[str, str | list[float]]:
    """``setEvidence`` argument: a label per hard finding, a likelihood list per set-valued answer."""
    hard, soft = split_evidence(model, case)
    return {**hard, **{v: vector.tolist() for v, vector in soft.items()}}


def run_pyagrum(
    model: bayesdx.Model, bn: Any, cases: Sequence[Mapping[str, str]], pursued: Sequence[Sequence[Any]] | None, limit: int | None = None
) -> tuple[list[Answer], list[float]]:
    """pyAgrum LazyPropagation, engines reused between cases, targets restricted to what is asked."""
    import pyagrum as gum

    ie = gum.LazyPropagation(bn)
    ie.setTargets(set(model.causes))
    ie_x = None
    if pursued is not None:
        ie_x = gum.LazyPropagation(bn)
        ie_x.setTargets(set(model.findings + model.tests) - {h.node for h in model.hypotheses})

    answers, seconds = [], []
    for k, case in enumerate(cases):
        start = time.perf_counter()
        ie.eraseAllEvidence()
        ie.setEvidence(_pyagrum_evidence(model, case))
        ie.makeInference()
        base = {c: ie.posterior(c).toarray() for c in model.causes}
        eig = None
        if pursued is not None:
            assert ie_x is not None
            ie_x.eraseAllEvidence()
            ie_x.setEvidence(_pyagrum_evidence(model, case))
            ie_x.makeInference()
            nodes = list(dict.fromkeys(h.node for h in pursued[k]))

            def outcome(var: str, px: np.ndarray, nodes: list[str] = nodes) -> list[dict[str, np.ndarray] | None]:
                after: list[dict[str, np.ndarray] | None] = []
                for j, x in enumerate(model.states[var]):
                    if px[j] <= 0:
                        after.append(None)
                        continue
                    ie.addEvidence(var, x)
                    ie.makeInference()
                    after.append({c: ie.posterior(c).toarray() for c in nodes})
                    ie.eraseEvidence(var)
                return after

            eig = _eig(model, pursued[k], base, outcome, lambda var: ie_x.posterior(var).toarray(), case, limit)
        seconds.append(time.perf_counter() - start)
        answers.append(Answer(_probabilities(model, base), eig))
    return answers, seconds


# ---------------------------------------------------------------------- bayesdx
def bayesdx_answers(model: bayesdx.Model, cases: Sequence[Mapping[str, str]], *, steps: bool) -> tuple[list[Answer], list[tuple]]:
    """Posteriors (and EIGs, pursued hypotheses with ``steps``) from bayesdx: one batched analysis, untimed."""
    from bayesdx.evidence import likelihoods_from_evidence

    results = analyse_cases(model, list(cases), likelihoods_from_evidence(model, list(cases)), list(range(len(cases))), next_steps=steps)
    by_id = {h.id: h for h in model.hypotheses}
    answers = [
        Answer(
            {c.id: c.probability for c in r.causes},  # studies (tests done together) have no per-variable reference
            {s.id: s.expected_information_gain for s in r.next_steps if s.id not in model.studies} if steps else None,
        )
        for r in results
    ]
    return answers, [tuple(by_id[i] for i in r.pursued) for r in results]


def _best(function: Callable[[], Any], repeats: int) -> float:
    """Best of ``repeats`` runs; runs longer than two seconds are not repeated."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
        if best > 2.0:
            break
    return best


def time_bayesdx(
    model: bayesdx.Model,
    cases: Sequence[Mapping[str, str]],
    frame: pd.DataFrame,
    batch: int,
    steps: bool,
    single_cases: int,
    quick: bool = False,
    first: int = 0,
) -> tuple[str, float]:
    """Seconds per case. A batch of one is the interactive ``rank_causes`` call, averaged over the
    ``single_cases`` cases from position ``first`` on (wrapping round)."""
    if batch == 1:
        chosen = [cases[(first + j) % len(cases)] for j in range(single_cases)]
        start = time.perf_counter()
        for case in chosen:
            bayesdx.rank_causes(case, model=model, next_steps=steps)
        return "rank_causes", (time.perf_counter() - start) / len(chosen)
    sub = frame.iloc[:batch]
    repeats = 3 if batch <= 1000 and not quick else 1
    elapsed = _best(lambda: bayesdx.score(sub, model=model, top_k=TOP_K, next_step=steps), repeats)
    return ("score(next_step=True)" if steps else "score"), elapsed / batch


def count_engine_calls(model: bayesdx.Model, function: Callable[[], Any]) -> int:
    engine = model.engine
    original = engine.posterior
    calls = 0

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    engine.posterior = counting  # type: ignore[method-assign]
    try:
        function()
    finally:
        del engine.posterior
    return calls


#: The child of :func:`peak_memory` (run as ``python -c``; argv[1] is the pickle of the model and the frame).
MEMORY_CHILD = """
import json, pickle, resource, sys, time
import bayesdx

def peak_mib():
    # VmHWM starts afresh with the new program; ru_maxrss keeps the parent's high-water mark across exec
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

with open(sys.argv[1], "rb") as handle:
    model, frame, top_k = pickle.load(handle)
bayesdx.score(frame.iloc[:5], model=model, top_k=top_k, next_step=True)
before = peak_mib()
start = time.perf_counter()
bayesdx.score(frame, model=model, top_k=top_k, next_step=True)
seconds = time.perf_counter() - start
peak = peak_mib()
print(json.dumps({"peak_mib": peak, "growth_mib": peak - before, "before_mib": before, "seconds": seconds}))
"""


def peak_memory(model: bayesdx.Model, frame: pd.DataFrame) -> dict[str, Any]:
    """Peak memory of ``score(next_step=True)`` on ``frame``, measured in a fresh Python process.

    The child unpickles the model and the frame, scores five cases (so that the first programs are
    compiled), then the whole frame. It reports its peak resident set size (``VmHWM`` of ``/proc/self/status``,
    which starts afresh with the new program, unlike ``ru_maxrss``, which keeps the parent's across ``exec``:
    the interpreter, numpy, the model and the frame included) and how much that peak grew during the call,
    which is what the batch itself needed. No tracemalloc: tracing every numpy buffer slowed 10,000 vignette cases more than
    tenfold.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "work.pkl"
        with path.open("wb") as handle:
            pickle.dump((model, frame, TOP_K), handle)
        done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the memory measurement failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return {"cases": len(frame), **json.loads(done.stdout.strip().splitlines()[-1])}


# ---------------------------------------------------------------------- agreement
def check_agreement(
    model: bayesdx.Model,
    name: str,
    engine: str,
    ours: Sequence[Answer],
    theirs: Sequence[Answer],
    cases: Sequence[Mapping[str, str]],
    limit: int | None = None,
) -> dict[str, Any]:
    worst_p = worst_eig = 0.0
    n_eig = 0
    for k, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if set(a.probabilities) != set(b.probabilities):
            raise AgreementError(f"{name}: {engine} and bayesdx rank different hypotheses for case {k}")
        for h, p in b.probabilities.items():
            diff = abs(a.probabilities[h] - p)
            worst_p = max(worst_p, diff)
            if not diff <= ATOL:
                raise AgreementError(
                    f"{name}, case {k} {dict(cases[k])!r}: P({h} | e) is {a.probabilities[h]!r} "
                    f"in bayesdx and {p!r} in {engine} (difference {diff:.3g} > {ATOL})."
                )
        if b.eig is not None:
            assert a.eig is not None
            if not b.eig or not set(b.eig) <= set(a.eig) or (limit is None and set(a.eig) != set(b.eig)):
                raise AgreementError(f"{name}, case {k}: candidates differ between bayesdx {sorted(a.eig)} and {engine} {sorted(b.eig)}")
            for var, g in b.eig.items():
                diff = abs(a.eig[var] - g)
                worst_eig = max(worst_eig, diff)
                n_eig += 1
                if not diff <= ATOL:
                    raise AgreementError(
                        f"{name}, case {k} {dict(cases[k])!r}: EIG of {var!r} is {a.eig[var]!r} "
                        f"in bayesdx and {g!r} in {engine} (difference {diff:.3g} > {ATOL})."
                    )
    return {
        "network": name,
        "engine": engine,
        "cases": len(theirs),
        "eig_values": n_eig,
        "max_posterior_diff": worst_p,
        "max_eig_diff": worst_eig,
    }


# ---------------------------------------------------------------------- networks too large
def grid_network(side: int, seed: int = SEED) -> Any:
    """A ``side`` x ``side`` grid of binary variables, each with its upper and left neighbours as parents.

    Its treewidth is ``side``: with every variable carried, exact inference needs tables of about
    ``2**side`` entries per case, whatever the elimination order.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    rng = np.random.default_rng(seed)
    name = lambda r, c: f"g{r}_{c}"  # noqa: E731
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(name(r, c) for r in range(side) for c in range(side))
    cpds = []
    for r in range(side):
        for c in range(side):
            parents = [name(r - 1, c)] * (r > 0) + [name(r, c - 1)] * (c > 0)
            network.add_edges_from((p, name(r, c)) for p in parents)
            p = rng.uniform(0.05, 0.95, size=2 ** len(parents))
            cpds.append(
                TabularCPD(name(r, c), 2, np.vstack([p, 1 - p]), evidence=parents or None, evidence_card=[2] * len(parents) or None)
            )
    network.add_cpds(*cpds)
    return network


def too_large(side: int = 40) -> dict[str, Any]:
    """Time to :class:`bayesdx.ModelTooLargeError` on a grid network with every leaf-row variable observed."""
    network = grid_network(side)
    causes = [f"g0_{c}" for c in range(side)]
    model = bayesdx.load_model(network, causes=causes)
    case = {f"g{side - 1}_{c}": "0" for c in range(side)}
    case = {k: model.states[k][0] for k in case}
    tracemalloc.start()
    start = time.perf_counter()
    try:
        bayesdx.rank_causes(case, model=model)
    except bayesdx.ModelTooLargeError as error:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {
            "network": f"grid{side}x{side}",
            "nodes": len(model.variables),
            "observed": len(case),
            "causes": causes,
            "seconds_to_error": elapsed,
            "largest_intermediate": error.largest_intermediate,
            "peak_mib": peak / 2**20,
            "message": str(error),
        }
    tracemalloc.stop()
    raise AgreementError(f"grid{side}x{side}: expected ModelTooLargeError; got an answer")


def munin_exact() -> dict[str, Any]:
    """Exact ranking on pgmpy's munin (1,041 nodes) with every leaf observed, checked against pyAgrum."""
    import pyagrum as gum

    network = _example("munin")
    roots = [n for n in network.nodes() if not list(network.predecessors(n))]
    causes = [n for n in roots if n.startswith("DIFFN_")] or roots[:4]
    model = bayesdx.load_model(network, causes=causes)
    leaves = [n for n in model.variables if not list(network.successors(n)) and n not in causes]
    codes = forward_samples(model.compiled, 1, np.random.default_rng(SEED))[0]
    index = model.compiled.index()
    case = {v: model.compiled.states[index[v]][codes[index[v]]] for v in leaves}
    start = time.perf_counter()
    dx = bayesdx.rank_causes(case, model=model, next_steps=False)
    ours = time.perf_counter() - start
    bn = to_pyagrum(network, model)
    start = time.perf_counter()
    ie = gum.LazyPropagation(bn)
    ie.setEvidence(case)
    ie.makeInference()
    theirs = time.perf_counter() - start
    diff = max(abs(dx.probability(h.id) - ie.posterior(h.node).toarray()[model.states[h.node].index(h.state)]) for h in model.hypotheses)
    if diff > 1e-9:
        raise AgreementError(f"munin: bayesdx and pyAgrum differ by {diff:.3g}")
    largest = model.engine.largest_intermediate(list(case) + list(causes))
    return {
        "network": "munin",
        "nodes": len(model.variables),
        "observed": len(case),
        "bayesdx_s": ours,
        "pyagrum_s": theirs,
        "max_difference": diff,
        "largest_intermediate": largest,
    }


# ---------------------------------------------------------------------- the run
def bench_network(
    name: str, args: argparse.Namespace, results: Results, log: Callable[[str], None], models: dict[str, bayesdx.Model] | None = None
) -> None:
    """The sampled workload on network ``name``: forward samples with ``--observed`` findings or tests."""
    model = _cached(name, models)
    rng = np.random.default_rng(SEED)
    cases = sample_cases(model, max(args.sizes), args.observed, rng)
    bench_cases(name, "sampled", model, cases, sorted(args.sizes), args, results, log)


def bench_vignettes(
    args: argparse.Namespace, results: Results, log: Callable[[str], None], models: dict[str, bayesdx.Model] | None = None
) -> None:
    """The vignette workload: ``evaluation/vignettes/*.csv`` on the bundled model, replicated to ``--vignette-cases``."""
    name = workloads.VIGNETTE_NETWORK
    model = _cached(name, models)
    cases, distinct = workloads.vignette_cases(model, args.vignette_cases, SEED, args.vignette_files)
    results.settings["vignettes"] = workloads.describe(cases, distinct, args.vignette_files)
    sizes = sorted(b for b in set(args.sizes) if b <= len(cases))
    dropped = sorted(b for b in set(args.sizes) if b > len(cases))
    if dropped:
        log(f"[{name}/vignettes] batch sizes {dropped} exceed --vignette-cases {len(cases)}: not run")
    log(f"[{name}/vignettes] {distinct} vignettes replicated to {len(cases):,} cases")
    bench_cases(name, "vignettes", model, cases, sizes, args, results, log)


def _cached(name: str, models: dict[str, bayesdx.Model] | None) -> bayesdx.Model:
    if models is None:
        return load(name)
    if name not in models:
        models[name] = load(name)
    return models[name]


def bench_cases(
    name: str,
    workload: str,
    model: bayesdx.Model,
    cases: Sequence[Mapping[str, str]],
    sizes: Sequence[int],
    args: argparse.Namespace,
    results: Results,
    log: Callable[[str], None],
) -> None:
    """Time both tasks at every batch size in ``sizes`` on ``cases``; references on the first few cases."""
    tag = name if workload == "sampled" else f"{name}/{workload}"
    n_cases = max(sizes)
    cases = list(cases)[:n_cases]
    columns = [v for v in model.findings + model.tests if v not in model.causes]
    frame = pd.DataFrame.from_records(cases, columns=columns)
    bayesdx.rank_causes({}, model=model)  # warm-up: priors, imports

    n_pg, n_pg_steps = min(args.pgmpy_cases, n_cases), min(args.pgmpy_step_cases, n_cases)
    n_ga, n_ga_steps = min(args.pyagrum_cases, n_cases), min(args.pyagrum_step_cases, n_cases)
    full = [{**presenting(model), **case} for case in cases]  # the evidence bayesdx conditions on
    ours, _ = bayesdx_answers(model, full[: max(n_pg, n_ga)], steps=False)
    ours_steps, pursued = bayesdx_answers(model, full[: max(n_pg_steps, n_ga_steps)], steps=True)

    log(f"[{tag}] pgmpy: ranking on {n_pg} cases, next steps on {n_pg_steps}")
    pg_rank, pg_rank_s = run_pgmpy(model, full[:n_pg], None)
    pg_steps, pg_steps_s = run_pgmpy(model, full[:n_pg_steps], pursued[:n_pg_steps], args.step_candidates)
    log(f"[{tag}] pyAgrum: ranking on {n_ga} cases, next steps on {n_ga_steps}")
    bn = to_pyagrum(model.network, model)
    ga_rank, ga_rank_s = run_pyagrum(model, bn, full[:n_ga], None)
    ga_steps, ga_steps_s = run_pyagrum(model, bn, full[:n_ga_steps], pursued[:n_ga_steps], args.step_candidates)

    checked = []
    for engine, rank, steps in (("pgmpy", pg_rank, pg_steps), ("pyAgrum", ga_rank, ga_steps)):
        checked.append(check_agreement(model, tag, engine, ours, rank, full))
        checked.append(check_agreement(model, tag, engine + " (next steps)", ours_steps, steps, full, args.step_candidates))
    for entry in checked:
        entry.update(network=name, workload=workload)
    results.agreement.extend(checked)
    log(
        f"[{tag}] agreement to {ATOL}: "
        + "; ".join(
            f"{a['engine']} {a['cases']} cases max |dp| {a['max_posterior_diff']:.1e} max |dEIG| {a['max_eig_diff']:.1e}" for a in checked
        )
    )

    fresh = max(n_pg, n_ga, n_pg_steps, n_ga_steps, 1)  # the cases before this one have been computed
    one = cases[0]
    results.engine_calls[f"{tag}: rank_causes, next steps"] = count_engine_calls(model, lambda: bayesdx.rank_causes(one, model=model))
    rate: dict[str, tuple[str, float]] = {}  # task -> (call, seconds per case) of the last batch that ran
    memory_batch = 0
    for batch in sizes:
        for task, steps, refs in (("ranking", False, (pg_rank_s, ga_rank_s)), ("ranking+next steps", True, (pg_steps_s, ga_steps_s))):
            estimated = task in rate and batch > 1 and rate[task][1] * batch > args.budget
            if estimated:
                call, per_case = rate[task]
                call = "score(next_step=True)" if steps else "score"
            else:
                # single calls on cases nothing has computed yet (not the agreement check's, whose programs are
                # cached; ranking and next steps on different ones), as a user's new case would be
                first = fresh + (args.single_cases if steps else 0)
                call, per_case = time_bayesdx(model, cases, frame, batch, steps, args.single_cases, args.quick, first)
                rate[task] = (call, per_case)
                if steps and batch > 1 and per_case * batch <= args.budget:
                    memory_batch = batch  # the memory run repeats the largest affordable batch
            pg = refs[0][: max(1, min(batch, len(refs[0])))]
            ga = refs[1][: max(1, min(batch, len(refs[1])))]
            row = Row(
                name,
                task,
                batch,
                call,
                per_case * 1e3,
                float(np.mean(pg)) * 1e3,
                len(pg),
                float(np.mean(ga)) * 1e3,
                len(ga),
                estimated,
                workload,
            )
            results.rows.append(row)
            log(
                f"[{tag}] batch {batch:>6} {task:<19} bayesdx {row.bayesdx_ms:9.4f} ms/case "
                f"{'(ESTIMATED, not run: over --budget) ' if estimated else ''}"
                f"({row.cases_per_second:9.0f}/s)  pgmpy {row.pgmpy_ms:9.2f} ms ({row.pgmpy_n})  "
                f"pyAgrum {row.pyagrum_ms:8.2f} ms ({row.pyagrum_n})  x{row.vs_pgmpy:8.0f} pgmpy  "
                f"x{row.vs_pyagrum:7.0f} pyAgrum"
            )
    if not args.no_memory and memory_batch:
        mem = {"network": name, "workload": workload, **peak_memory(model, frame.iloc[:memory_batch])}
        results.memory.append(mem)
        log(
            f"[{tag}] peak memory (fresh process), score(next_step=True) on {mem['cases']} cases: peak RSS "
            f"{mem['peak_mib']:.0f} MiB, {mem['growth_mib']:.0f} MiB more than before the call"
        )


def _ratio(x: float) -> str:
    return f"{x:,.0f}x" if x >= 10 else f"{x:.2g}x"


def markdown(results: Results) -> str:
    s = results.settings
    lines = [
        f"Machine: {s['machine']}. Python {s['python']}, numpy {s['numpy']}, pgmpy {s['pgmpy']}, "
        f"pyAgrum {s['pyagrum']}, bayesdx {s['bayesdx']}. Sampled workload: forward samples with {s['observed']} observed "
        f"findings or tests (plus the model's presenting complaint, given to all three engines), seed {SEED}. "
        + (f"{s['vignettes']} " if s.get("vignettes") else "")
        + "Both workloads: pgmpy and pyAgrum time the first cases only "
        "(counts in brackets); their per-case time is the mean over those cases, and the speed-up is "
        "(their ms per case) / (bayesdx ms per case). A batch of one is the interactive `rank_causes` call "
        f"(mean over {s['single_cases']} cases nothing had computed before: after the reference checks' cases, "
        "other cases for ranking and for next steps, where the workload has that many; a shorter one wraps round "
        "to cases computed already); larger batches are one `score` call. A row marked "
        f"≈ was not run: its time at the rate of the largest batch that ran would exceed --budget "
        f"({s['budget']:.0f} s)."
        + (
            ""
            if s["step_candidates"] is None
            else f" The references compute the EIG of the first {s['step_candidates']} candidates only (smoke run)."
        ),
        "",
        "| network | workload | task | batch | bayesdx call | bayesdx ms/case | bayesdx cases/s | pgmpy ms/case (cases) "
        "| pyAgrum ms/case (cases) | speed-up vs pgmpy | speed-up vs pyAgrum |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.rows:
        est = "≈" if r.estimated else ""
        lines.append(
            f"| {r.network} | {r.workload} | {r.task} | {r.batch:,} | `{r.call}`"
            f"{' (not run, est.)' if r.estimated else ''} "
            f"| {est}{r.bayesdx_ms:.4g} | "
            f"{est}{r.cases_per_second:,.0f} | {r.pgmpy_ms:.4g} ({r.pgmpy_n}) | {r.pyagrum_ms:.4g} ({r.pyagrum_n}) | "
            f"{est}{_ratio(r.vs_pgmpy)} | {est}{_ratio(r.vs_pyagrum)} |"
        )
    lines += workloads.side_by_side(results.rows, _ratio)
    if results.memory:
        lines += [
            "",
            "| network | workload | cases | peak RSS of a fresh process, `score(next_step=True)` | added by the call | before the call |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {m['network']} | {m.get('workload', 'sampled')} | {m['cases']:,} | {m['peak_mib']:.0f} MiB | "
            f"{m['growth_mib']:.0f} MiB | {m['before_mib']:.0f} MiB |"
            for m in results.memory
        ]
        lines.append(f"\nProcess peak RSS (ru_maxrss, whole run incl. pgmpy and pyAgrum): {s['maxrss_mib']:.0f} MiB.")
    if results.too_large:
        lines += [
            "",
            "| network | observed | time to ModelTooLargeError | largest intermediate (entries per case) | memory traced until the error |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {t['network']} | {t['observed']} | {t['seconds_to_error'] * 1e3:.0f} ms | "
            f"{t['largest_intermediate']:.3g} ({t['largest_intermediate'] * 8 / 2**30:.3g} GiB) | "
            f"{t['peak_mib']:.1f} MiB |"
            for t in results.too_large
        ]
    if results.agreement:
        lines += [
            "",
            "| network | workload | reference | cases | EIG values | max posterior difference | max EIG difference |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {a['network']} | {a.get('workload', 'sampled')} | {a['engine']} | {a['cases']} | {a['eig_values']} | "
            f"{a['max_posterior_diff']:.1e} | {a['max_eig_diff']:.1e} |"
            for a in results.agreement
        ]
    if results.engine_calls:
        lines += [
            "",
            "Engine calls of one `rank_causes` with next steps: "
            + ", ".join(f"{k.split(':')[0]} {v}" for k, v in results.engine_calls.items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _workloads(text: str) -> list[str]:
    try:
        return workloads.parse_workloads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sizes = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    p.add_argument("--sizes", type=sizes, default=[1, 100, 10_000], help="batch sizes, comma-separated")
    p.add_argument(
        "--networks",
        type=lambda t: t.split(","),
        default=list(NETWORKS),
        help=f"comma-separated, from {', '.join(NETWORKS)} (sampled workload)",
    )
    p.add_argument(
        "--workloads",
        type=_workloads,
        default=list(workloads.WORKLOADS),
        help="comma-separated: sampled (forward samples of --networks), vignettes (evaluation/vignettes/*.csv on the bundled model)",
    )
    p.add_argument(
        "--vignette-cases",
        type=int,
        default=10_000,
        help="vignette workload: the vignettes are replicated to this many cases (--quick: the largest --sizes)",
    )
    p.add_argument(
        "--vignette-files",
        type=lambda t: t.split(","),
        default=None,
        help=f"vignette workload: comma-separated CSV files (default {','.join(workloads.VIGNETTE_FILES)} in evaluation/vignettes)",
    )
    p.add_argument("--observed", type=int, default=8, help="observed variables per case")
    p.add_argument("--pgmpy-cases", type=int, default=5, help="cases pgmpy ranks (per network)")
    p.add_argument("--pgmpy-step-cases", type=int, default=1, help="cases pgmpy ranks with next steps")
    p.add_argument("--pyagrum-cases", type=int, default=50, help="cases pyAgrum ranks")
    p.add_argument("--pyagrum-step-cases", type=int, default=5, help="cases pyAgrum ranks with next steps")
    p.add_argument("--single-cases", type=int, default=5, help="distinct cases timed at batch size 1")
    p.add_argument(
        "--budget", type=float, default=60.0, help="seconds one bayesdx measurement may take; larger ones are estimated, not run"
    )
    p.add_argument(
        "--step-candidates",
        type=int,
        default=None,
        help="references compute the EIG of the first N candidates only (smoke runs; default: all)",
    )
    p.add_argument(
        "--no-munin", action="store_true", help="skip pgmpy's munin (exact, against pyAgrum) and the too-large check on a 40x40 grid"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run (a fresh process)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: sizes 1,2, leg_twitch and child, 1/1 pgmpy and 2/1 pyAgrum cases, references' EIG "
        "on 3 candidates, no munin, vignettes replicated to the largest size only",
    )
    p.add_argument("--output", help="write the Markdown table to this file")
    return p


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> Results:
    args = parser().parse_args(argv)
    if args.quick:
        given = set(argv or ())
        if "--sizes" not in given:
            args.sizes = [1, 2]
        if "--networks" not in given:
            args.networks = ["leg_twitch", "child"]
        args.pgmpy_cases, args.pgmpy_step_cases, args.pyagrum_cases, args.pyagrum_step_cases = 1, 1, 2, 1
        args.single_cases, args.no_munin, args.step_candidates = 1, True, 3
        if "--vignette-cases" not in given:
            args.vignette_cases = max(args.sizes)
    if args.vignette_cases < 1:
        raise SystemExit("Error: --vignette-cases must be at least 1")
    unknown = [n for n in args.networks if n not in NETWORKS]
    if unknown:
        raise SystemExit(f"Error: unknown network(s) {unknown!r}; choose from {', '.join(NETWORKS)}")
    log = log or (lambda text: print(text, flush=True))
    import pgmpy
    import pyagrum

    results = Results()
    results.settings = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pgmpy": pgmpy.__version__,
        "pyagrum": pyagrum.__version__,
        "bayesdx": bayesdx.__version__,
        "observed": args.observed,
        "single_cases": args.single_cases,
        "sizes": args.sizes,
        "budget": args.budget,
        "step_candidates": args.step_candidates,
        "workloads": args.workloads,
    }
    models: dict[str, bayesdx.Model] = {}
    if "sampled" in args.workloads:
        for name in args.networks:
            bench_network(name, args, results, log, models)
    if "vignettes" in args.workloads:
        bench_vignettes(args, results, log, models)
    if not args.no_munin and "sampled" in args.workloads:
        exact = munin_exact()
        results.settings["munin"] = exact
        log(
            f"[munin] exact: {exact['observed']} leaves observed, ranking in {exact['bayesdx_s'] * 1e3:.0f} ms "
            f"(pyAgrum LazyPropagation {exact['pyagrum_s'] * 1e3:.0f} ms), largest table "
            f"{exact['largest_intermediate']:,} entries, max difference {exact['max_difference']:.1e}"
        )
        entry = too_large()
        results.too_large.append(entry)
        log(
            f"[{entry['network']}] ModelTooLargeError after {entry['seconds_to_error'] * 1e3:.0f} ms, largest "
            f"intermediate {entry['largest_intermediate']:.3g} entries, {entry['peak_mib']:.1f} MiB traced"
        )
    results.settings["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.table = markdown(results)
    log("\n" + results.table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(results.table)
    return results


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except AgreementError as error:
        print(f"Error: engines disagree: {error}", file=sys.stderr)
        sys.exit(1)
