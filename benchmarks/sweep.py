"""Sweep bayesdx against pyAgrum's LazyPropagation over pgmpy's example networks (issue 16).

For every network of ``pgmpy.utils.get_example_model`` named in ``--networks`` (CPD columns renormalized as
in ``run.py``), the causes are the root nodes (nodes without parents) and the cases are forward samples
(seeded) with 20-40% of the leaves observed (a fraction drawn per case). In one process per network, with
bayesdx and pyAgrum in that same process, it times

* **single**: one ``bayesdx.rank_causes(case, model=m, next_steps=False)`` per case, the median over a few
  cases after a warm-up call (the cold call below), against one pyAgrum ``LazyPropagation`` posterior of every
  cause per case (one engine built once, targets the causes, evidence erased and set per case; median over
  the same cases, after its first inference);
* **single, one engine after the other**: as single, on as many other cases, but bayesdx answers all of them
  and then pyAgrum does. Alternating the two libraries call by call leaves each call's caches cold from the
  other library's call, which costs bayesdx's Python more than pyAgrum's C++ (about 1.5x against 1.2x on
  hailfinder); both columns are reported;
* **cold**: the first answer from a freshly loaded network: ``bayesdx.load_model(network, causes=roots)``
  and its first ``rank_causes``, against building the ``gum.BayesNet`` (``run.to_pyagrum``), the
  ``LazyPropagation`` and its first inference (libraries already imported and warmed up on another network);
* **batch**: ``bayesdx.score(frame, model=m, top_k=<number of cause hypotheses>, next_step=False)`` per case
  on a batch (best of up to three runs), against the single calls of both engines.

Every posterior bayesdx gave (the single calls, the cold call and the batch rows pyAgrum also answered) must
agree with pyAgrum to 1e-9; the largest difference per network is in the table, and the script exits 1
after writing the table if a network disagrees. Every ratio is reported, also where bayesdx is slower.

Each network runs in a child process (``--worker``) that reports each step as it starts. A step (loading
the network, one call, one batch) that takes longer than ``--budget`` seconds, or a network that takes
longer than ``--network-budget`` seconds in all, is stopped and the network recorded as skipped with the
step and the reason, as is a network that fails to load, that bayesdx refuses (``ModelTooLargeError``) or
that needs more than ``--memory-limit`` GiB of address space (pyAgrum on ``link`` needs more than 8 GiB).
What was measured before the stop is reported with it.

Run ``python benchmarks/sweep.py --help``; ``--quick`` is a smoke run on fewer cases.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _run_module() -> ModuleType:
    """``benchmarks/run.py`` (for ``_example``, ``_normalized``, ``to_pyagrum``, ``forward_samples``, ``_ratio``)."""
    name = "bayesdx_benchmarks_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name("run.py"))
        if spec is None or spec.loader is None:
            raise ImportError("cannot load benchmarks/run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return sys.modules[name]


run = _run_module()

ATOL = run.ATOL
SEED = run.SEED
NETWORKS = (
    "asia",
    "cancer",
    "earthquake",
    "sachs",
    "survey",
    "alarm",
    "barley",
    "child",
    "insurance",
    "mildew",
    "water",
    "hailfinder",
    "hepar2",
    "win95pts",
    "andes",
    "diabetes",
    "pigs",
    "link",
    "munin",
    "pathfinder",
)
#: Networks whose cases are kept few (large networks; pathfinder's Fault node has 63 states).
FEW_CASES = ("link", "munin", "pathfinder")
#: (single cases, batch size) per mode; the single cases come after the cold call's case.
CASES = {"full": (25, 200), "full-few": (9, 20), "quick": (2, 10), "quick-few": (2, 5)}
OBSERVED = (0.2, 0.4)  # fraction of the leaves observed per case, drawn uniformly
PREFIX = "@@sweep "  # marks the worker's event lines on its stdout


class AgreementError(AssertionError):
    """bayesdx and pyAgrum disagree on a posterior."""


@dataclasses.dataclass
class Sweep:
    """The sweep's results: one dict per network measured, one per network skipped, and the table."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: str = ""


# ---------------------------------------------------------------------- cases
@dataclasses.dataclass
class _Tables:
    """A pgmpy network's CPDs in topological order, the layout ``run.forward_samples`` reads."""

    variables: list[str]
    states: list[list[str]]
    tables: list[np.ndarray]  # (states, *parent states)
    parents: list[list[int]]


def _tables(network: Any) -> _Tables:
    """The CPDs of ``network`` (not bayesdx's compiled model: reading that would warm bayesdx before its cold call)."""
    import networkx as nx

    cpds = {cpd.variable: cpd for cpd in network.get_cpds()}
    order = list(nx.topological_sort(network))
    index = {v: k for k, v in enumerate(order)}
    tables, parents, states = [], [], []
    for v in order:
        cpd = cpds[v]
        cards = [int(c) for c in cpd.cardinality]
        tables.append(np.asarray(cpd.get_values(), dtype=float).reshape(cards))
        parents.append([index[p] for p in cpd.variables[1:]])
        states.append([str(s) for s in cpd.state_names[v]])
    return _Tables(order, states, tables, parents)


def roots_and_leaves(network: Any) -> tuple[list[str], list[str]]:
    """The root nodes (the causes) and the leaves that are not roots (the observable findings), sorted.

    Parameters
    ----------
    network : pgmpy.models.DiscreteBayesianNetwork

    Returns
    -------
    roots, leaves : list of str
    """
    roots = sorted(str(n) for n in network.nodes() if not list(network.predecessors(n)))
    leaves = sorted(str(n) for n in network.nodes() if not list(network.successors(n)) and str(n) not in roots)
    return roots, leaves


def sweep_cases(network: Any, leaves: Sequence[str], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` forward samples of ``network`` with 20-40% of ``leaves`` observed (a fraction drawn per case).

    Parameters
    ----------
    network : pgmpy.models.DiscreteBayesianNetwork
    leaves : sequence of str
    n : int
    seed : int

    Returns
    -------
    list of dict
        ``{leaf: state}`` per case, at least one leaf each.
    """
    tables = _tables(network)
    rng = np.random.default_rng(seed)
    codes = run.forward_samples(tables, n, rng)
    column = {v: k for k, v in enumerate(tables.variables)}
    cases = []
    for row in codes:
        k = max(1, round(rng.uniform(*OBSERVED) * len(leaves)))
        picks = sorted(rng.choice(len(leaves), size=k, replace=False))
        cases.append({leaves[j]: tables.states[column[leaves[j]]][row[column[leaves[j]]]] for j in picks})
    return cases


# ---------------------------------------------------------------------- the measurement (in the worker)
def _difference(model: Any, probability: Callable[[str], float], posterior: Mapping[str, np.ndarray]) -> float:
    """Largest |bayesdx - pyAgrum| over the cause hypotheses of one case."""
    return max(abs(probability(h.id) - float(posterior[h.node][model.states[h.node].index(h.state)])) for h in model.hypotheses)


def _pyagrum_posterior(ie: Any, case: Mapping[str, str], roots: Sequence[str]) -> tuple[dict[str, np.ndarray], float]:
    """pyAgrum's posterior of every root for ``case`` (evidence erased and set, inference), and its seconds."""
    start = time.perf_counter()
    ie.eraseAllEvidence()
    ie.setEvidence(case)
    ie.makeInference()
    posterior = {c: ie.posterior(c).toarray() for c in roots}
    return posterior, time.perf_counter() - start


def warm_up_network() -> Any:
    """A three-node chain built here (not one of the swept networks, so nothing of theirs is cached by the warm-up)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    network = DiscreteBayesianNetwork([("warm_a", "warm_b"), ("warm_b", "warm_c")])
    network.add_cpds(
        TabularCPD("warm_a", 2, [[0.3], [0.7]]),
        TabularCPD("warm_b", 3, [[0.2, 0.5], [0.3, 0.25], [0.5, 0.25]], evidence=["warm_a"], evidence_card=[2]),
        TabularCPD("warm_c", 2, [[0.9, 0.4, 0.1], [0.1, 0.6, 0.9]], evidence=["warm_b"], evidence_card=[3]),
    )
    return network


def _warm_up() -> None:
    """Import and call both libraries once on a small network, so that a cold measurement is the network's own."""
    import pyagrum as gum

    import bayesdx

    network = run._normalized(warm_up_network())
    roots, leaves = roots_and_leaves(network)
    model = bayesdx.load_model(network, causes=roots)
    case = sweep_cases(network, leaves, 1, SEED)[0]
    bayesdx.rank_causes(case, model=model, next_steps=False)
    bayesdx.score([case], model=model, top_k=len(model.hypotheses), next_step=False)
    ie = gum.LazyPropagation(run.to_pyagrum(network, model))
    ie.setEvidence(case)
    ie.makeInference()


def measure(name: str, n_single: int, n_batch: int, seed: int, step: Callable[..., None]) -> dict[str, Any]:
    """Time bayesdx and pyAgrum on network ``name`` (see the module docstring); ``step`` announces each step.

    Parameters
    ----------
    name : str
        A name for ``pgmpy.utils.get_example_model``.
    n_single : int
        Cases timed one by one (after the cold call's case).
    n_batch : int
        Cases in the ``score`` batch.
    seed : int
    step : callable
        Called with a step's name when it starts, and as keywords what has been measured so far (reported
        with the network if a later step stops it).

    Returns
    -------
    dict
        The timings (seconds unless the key says ms), sizes and the largest difference from pyAgrum.
    """
    import pyagrum as gum

    import bayesdx

    step("warm-up (another network)")
    _warm_up()
    step("pgmpy get_example_model")
    start = time.perf_counter()
    network = run._normalized(run._example(name))
    pgmpy_load = time.perf_counter() - start
    roots, leaves = roots_and_leaves(network)
    n_cases = max(1 + 2 * n_single, n_batch)
    cases = sweep_cases(network, leaves, n_cases, seed)

    step("cold: bayesdx load_model")
    start = time.perf_counter()
    model = bayesdx.load_model(network, causes=roots)
    load = time.perf_counter() - start
    step("cold: bayesdx first rank_causes")
    start = time.perf_counter()
    first = bayesdx.rank_causes(cases[0], model=model, next_steps=False)
    first_call = time.perf_counter() - start

    step("cold: pyAgrum BayesNet (run.to_pyagrum)", bayesdx_cold_s=load + first_call)
    start = time.perf_counter()
    bn = run.to_pyagrum(network, model)
    build = time.perf_counter() - start
    step("cold: pyAgrum LazyPropagation first inference")
    start = time.perf_counter()
    ie = gum.LazyPropagation(bn)
    ie.setTargets(set(roots))
    ie.setEvidence(cases[0])
    ie.makeInference()
    posteriors = [{c: ie.posterior(c).toarray() for c in roots}]
    engine_first = time.perf_counter() - start
    worst = _difference(model, first.probability, posteriors[0])

    singles = cases[1 : 1 + n_single]
    ours, theirs = [], []
    step("single", pyagrum_cold_s=build + engine_first)
    for k, case in enumerate(singles):
        step(f"single: bayesdx rank_causes, case {k + 1} of {len(singles)}")
        start = time.perf_counter()
        dx = bayesdx.rank_causes(case, model=model, next_steps=False)
        ours.append(time.perf_counter() - start)
        step(f"single: pyAgrum inference, case {k + 1} of {len(singles)}")
        posterior, elapsed = _pyagrum_posterior(ie, case, roots)
        theirs.append(elapsed)
        posteriors.append(posterior)
        worst = max(worst, _difference(model, dx.probability, posterior))

    # other cases, each engine on all of them in turn: no other library's calls between two calls
    blocked = cases[1 + n_single : 1 + 2 * n_single]
    ours_blocked, theirs_blocked, blocked_posteriors = [], [], []
    for k, case in enumerate(blocked):
        step(f"single, one after the other: bayesdx rank_causes, case {k + 1} of {len(blocked)}")
        start = time.perf_counter()
        dx = bayesdx.rank_causes(case, model=model, next_steps=False)
        ours_blocked.append(time.perf_counter() - start)
        blocked_posteriors.append(dx.probability)
    for k, (case, probability) in enumerate(zip(blocked, blocked_posteriors, strict=True)):
        step(f"single, one after the other: pyAgrum inference, case {k + 1} of {len(blocked)}")
        posterior, elapsed = _pyagrum_posterior(ie, case, roots)
        theirs_blocked.append(elapsed)
        worst = max(worst, _difference(model, probability, posterior))

    import pandas as pd

    # the same cases as one batch: is a batch ever slower per case than single calls on the same cases?
    same = pd.DataFrame.from_records(singles, columns=leaves)
    same_best = math.inf
    for repeat in range(3):
        step(f"batch: bayesdx score on the {len(same)} single cases, run {repeat + 1}")
        start = time.perf_counter()
        bayesdx.score(same, model=model, top_k=len(model.hypotheses), next_step=False)
        same_best = min(same_best, time.perf_counter() - start)

    frame = pd.DataFrame.from_records(cases[:n_batch], columns=leaves)
    top_k = len(model.hypotheses)
    best = math.inf
    scored = None
    for repeat in range(3):
        step(f"batch: bayesdx score on {len(frame)} cases, run {repeat + 1}")
        start = time.perf_counter()
        scored = bayesdx.score(frame, model=model, top_k=top_k, next_step=False)
        best = min(best, time.perf_counter() - start)
        if best > 2.0:
            break
    assert scored is not None
    for r, posterior in enumerate(posteriors[: len(frame)]):
        listed = {scored[f"cause_{i}"].iloc[r]: float(scored[f"probability_{i}"].iloc[r]) for i in range(1, top_k + 1)}
        if set(listed) != {h.id for h in model.hypotheses}:
            raise AgreementError(f"{name}: score lists {sorted(listed)} for row {r}, not every cause hypothesis")
        worst = max(worst, _difference(model, listed.__getitem__, posterior))

    return {
        "network": name,
        "nodes": len(network.nodes()),
        "edges": len(network.edges()),
        "roots": len(roots),
        "hypotheses": len(model.hypotheses),
        "leaves": len(leaves),
        "observed_mean": float(np.mean([len(c) for c in cases])),
        "pgmpy_load_s": pgmpy_load,
        "single_cases": len(singles),
        "single_bayesdx_ms": float(np.median(ours)) * 1e3,
        "single_bayesdx_mean_ms": float(np.mean(ours)) * 1e3,
        "same_batch_ms": same_best / max(1, len(same)) * 1e3,
        "single_pyagrum_ms": float(np.median(theirs)) * 1e3,
        "single_pyagrum_mean_ms": float(np.mean(theirs)) * 1e3,
        "blocked_bayesdx_ms": float(np.median(ours_blocked)) * 1e3,
        "blocked_pyagrum_ms": float(np.median(theirs_blocked)) * 1e3,
        "cold_bayesdx_load_s": load,
        "cold_bayesdx_first_s": first_call,
        "cold_bayesdx_s": load + first_call,
        "cold_pyagrum_build_s": build,
        "cold_pyagrum_engine_s": engine_first,
        "cold_pyagrum_s": build + engine_first,
        "batch": len(frame),
        "batch_bayesdx_ms": best / len(frame) * 1e3,
        "compared_cases": len(posteriors) + len(blocked),
        "max_difference": worst,
    }


def worker(name: str, n_single: int, n_batch: int, seed: int, memory_limit_gib: float = 0.0) -> None:
    """Run :func:`measure` and print its events, one JSON line each, prefixed with ``@@sweep``.

    Parameters
    ----------
    name : str
    n_single, n_batch, seed : int
        See :func:`measure`.
    memory_limit_gib : float, default 0
        Address-space limit of this process (``RLIMIT_AS``), so that an engine that runs out of memory fails
        here instead of pushing the machine into its out-of-memory killer; 0 for none.
    """
    if memory_limit_gib > 0:
        import resource

        limit = int(memory_limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(PREFIX + json.dumps(event) + "\n")
        sys.stdout.flush()

    current = "start"

    def step(text: str, **measured: float) -> None:
        nonlocal current
        current = text
        emit({"event": "step", "step": text, "measured": measured})

    try:
        emit({"event": "result", "result": measure(name, n_single, n_batch, seed, step)})
    except Exception as error:
        emit({"event": "skip", "step": current, "reason": f"{type(error).__name__}: {error}".strip()})


# ---------------------------------------------------------------------- the sweep (in the parent)
def _reader(stream: Any, events: queue.Queue[dict[str, Any] | None]) -> None:
    for line in stream:
        if line.startswith(PREFIX):
            events.put(json.loads(line[len(PREFIX) :]))
    events.put(None)


def _tail(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return lines[-1][:300] if lines else ""


def run_network(name: str, n_single: int, n_batch: int, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """One network in a child process; a ``{"event": "result"}`` or ``{"event": "skip"}`` dict.

    Parameters
    ----------
    name : str
    n_single, n_batch : int
    args : argparse.Namespace
        ``budget`` (seconds per step), ``network_budget`` (seconds per network), ``seed``.
    log : callable

    Returns
    -------
    dict
    """
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--single-cases",
        str(n_single),
        "--batch",
        str(n_batch),
        "--seed",
        str(args.seed),
        "--memory-limit",
        str(args.memory_limit),
    ]
    with tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False) as err:
        stderr_path = err.name
    try:
        with open(stderr_path, "w", encoding="utf-8") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ))
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        thread = threading.Thread(target=_reader, args=(process.stdout, events), daemon=True)
        thread.start()
        started = step_started = time.monotonic()
        current, outcome = "start", None
        measured: dict[str, float] = {}
        while outcome is None:
            now = time.monotonic()
            wait = min(step_started + args.budget, started + args.network_budget) - now
            try:
                event = events.get(timeout=max(wait, 0.0))
            except queue.Empty:
                over_network = now - started >= args.network_budget
                process.kill()  # our own child, by its handle
                process.wait()
                reason = (
                    f"the network took more than --network-budget {args.network_budget:.0f} s"
                    if over_network
                    else f"the step took more than --budget {args.budget:.0f} s"
                )
                outcome = {"event": "skip", "step": current, "reason": reason + " (stopped)"}
                break
            if event is None:  # the worker ended without a result
                process.wait()
                code = process.returncode
                why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                if code == -9:
                    why += " (out of memory?)"
                tail = _tail(stderr_path)
                outcome = {"event": "skip", "step": current, "reason": f"the worker {why}" + (f": {tail}" if tail else "")}
            elif event["event"] == "step":
                current, step_started = event["step"], time.monotonic()
                measured.update(event.get("measured", {}))
                log(f"[{name}] {current}")
            else:
                outcome = event
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if outcome["event"] == "skip":
            outcome["measured"] = measured
        return outcome
    finally:
        os.unlink(stderr_path)


def _ratio(x: float) -> str:
    return run._ratio(x)


def _measured(skipped: Mapping[str, Any]) -> str:
    names = {"bayesdx_cold_s": "bayesdx cold", "pyagrum_cold_s": "pyAgrum cold"}
    done = skipped.get("measured") or {}
    return ", ".join(f"{names.get(k, k)} {v:.3g} s" for k, v in done.items()) or "-"


def markdown(sweep: Sweep) -> str:
    """The sweep's Markdown: settings, one row per measured network, then the skipped networks.

    Parameters
    ----------
    sweep : Sweep

    Returns
    -------
    str
    """
    s = sweep.settings
    lines = [
        f"Machine: {s['machine']}. Python {s['python']}, numpy {s['numpy']}, pgmpy {s['pgmpy']}, pyAgrum {s['pyagrum']}, "
        f"bayesdx {s['bayesdx']}. pgmpy example networks, CPD columns renormalized; causes = the root nodes; cases = "
        f"forward samples with {OBSERVED[0]:.0%}-{OBSERVED[1]:.0%} of the leaves observed (drawn per case), seed "
        f"{s['seed']}. Single: median ms of one `rank_causes(case, next_steps=False)` against one pyAgrum "
        "LazyPropagation posterior of every cause (engine built once, evidence erased and set per case), after a "
        "warm-up call, the two libraries alternating case by case; one after the other: the same on as many other "
        "cases, bayesdx on all of them, then pyAgrum. Cold: `load_model(network, causes=roots)` + first `rank_causes` against building the "
        "`gum.BayesNet` from the pgmpy CPDs (`run.to_pyagrum`, Python API, in brackets) + `LazyPropagation` + first "
        "inference, both libraries already imported and warmed up on another network. Batch: best of up to 3 "
        "`score(frame, top_k=<hypotheses>, next_step=False)` runs, ms per case; the single cases are also scored as "
        "one batch and compared with the mean of their single calls (the same cases: the batch column compares "
        "different cases, a mean with a median); a batch's per-case time against pyAgrum is against the mean of "
        "pyAgrum's single calls (a mean with a mean: on diabetes or barley a few slow cases put the mean at twice "
        "the median). Speed-up = the other's time / "
        "bayesdx's time (below 1x: bayesdx is slower). Max |diff|: largest difference of any cause posterior from "
        f"pyAgrum over the cases compared (tolerance {ATOL:g}). Budget: {s['budget']:.0f} s per step, "
        f"{s['network_budget']:.0f} s per network, "
        + (f"{s['memory_limit']:g} GiB of address space per network." if s["memory_limit"] > 0 else "no memory limit."),
        "",
        "| network | nodes | causes (roots) | leaves observed / leaves | single bayesdx ms | single pyAgrum ms "
        "| single speed-up | one after the other: bayesdx / pyAgrum ms | speed-up "
        "| cold bayesdx s | cold pyAgrum s (build) | cold speed-up | cold speed-up excl. build "
        "| batch | batch bayesdx ms/case | batch vs bayesdx single | batch vs pyAgrum single mean "
        "| same cases: single mean / batch ms | batch vs single, same cases | max abs diff (cases) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sweep.rows:
        lines.append(
            f"| {r['network']} | {r['nodes']:,} | {r['roots']} | {r['observed_mean']:.1f} / {r['leaves']} | "
            f"{r['single_bayesdx_ms']:.3g} | {r['single_pyagrum_ms']:.3g} | "
            f"{_ratio(r['single_pyagrum_ms'] / r['single_bayesdx_ms'])} | "
            f"{r['blocked_bayesdx_ms']:.3g} / {r['blocked_pyagrum_ms']:.3g} | "
            f"{_ratio(r['blocked_pyagrum_ms'] / r['blocked_bayesdx_ms'])} | {r['cold_bayesdx_s']:.3g} | "
            f"{r['cold_pyagrum_s']:.3g} ({r['cold_pyagrum_build_s']:.2g}) | "
            f"{_ratio(r['cold_pyagrum_s'] / r['cold_bayesdx_s'])} | "
            f"{_ratio(r['cold_pyagrum_engine_s'] / r['cold_bayesdx_s'])} | {r['batch']:,} | "
            f"{r['batch_bayesdx_ms']:.3g} | {_ratio(r['single_bayesdx_ms'] / r['batch_bayesdx_ms'])} | "
            f"{_ratio(r['single_pyagrum_mean_ms'] / r['batch_bayesdx_ms'])} | "
            f"{r['single_bayesdx_mean_ms']:.3g} / {r['same_batch_ms']:.3g} | "
            f"{_ratio(r['single_bayesdx_mean_ms'] / r['same_batch_ms'])} | "
            f"{r['max_difference']:.1e} ({r['compared_cases']}) |"
        )
    slower = [
        (r["network"], what)
        for r in sweep.rows
        for what, ratio in (
            ("single", r["single_pyagrum_ms"] / r["single_bayesdx_ms"]),
            ("single, one after the other", r["blocked_pyagrum_ms"] / r["blocked_bayesdx_ms"]),
            ("cold", r["cold_pyagrum_s"] / r["cold_bayesdx_s"]),
            ("cold excl. build", r["cold_pyagrum_engine_s"] / r["cold_bayesdx_s"]),
            ("batch", r["single_pyagrum_mean_ms"] / r["batch_bayesdx_ms"]),
        )
        if ratio < 1
    ]
    if sweep.rows:
        lines += [
            "",
            "bayesdx is slower than pyAgrum in: "
            + (", ".join(f"{n} ({w})" for n, w in slower) if slower else "none of the measurements")
            + ".",
        ]
    if sweep.skipped:
        lines += ["", "| skipped network | step | reason | measured before the stop |", "|---|---|---|---|"]
        lines += [f"| {k['network']} | {k['step']} | {k['reason'].replace('|', '/')} | {_measured(k)} |" for k in sweep.skipped]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        "--networks",
        type=lambda t: [n.strip() for n in t.split(",") if n.strip()],
        default=list(NETWORKS),
        help=f"comma-separated pgmpy example networks (default all {len(NETWORKS)})",
    )
    p.add_argument(
        "--single-cases",
        type=int,
        default=None,
        help=f"cases timed one by one (default {CASES['full'][0]}; {CASES['full-few'][0]} for "
        f"{', '.join(FEW_CASES)}; --quick {CASES['quick'][0]})",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"cases in the score batch (default {CASES['full'][1]}; {CASES['full-few'][1]} for "
        f"{', '.join(FEW_CASES)}; --quick {CASES['quick'][1]}, {CASES['quick-few'][1]})",
    )
    p.add_argument("--budget", type=float, default=60.0, help="seconds one step (a load, a call, a batch) may take")
    p.add_argument("--network-budget", type=float, default=600.0, help="seconds one network may take in all")
    p.add_argument(
        "--memory-limit",
        type=float,
        default=8.0,
        help="GiB of address space each network's process may use (RLIMIT_AS; 0: no limit); an engine that "
        "needs more fails and the network is recorded as skipped",
    )
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer cases per network")
    p.add_argument("--output", help="write the Markdown table to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure this one network, print events
    return p


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> Sweep:
    """Run the sweep; print progress and the table, optionally write the table.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).
    log : callable, optional
        Receives each progress line (default: print).

    Returns
    -------
    Sweep

    Raises
    ------
    AgreementError
        After the table is written, when bayesdx and pyAgrum disagree on some network.
    """
    args = parser().parse_args(argv)
    if args.worker:
        worker(args.worker, args.single_cases, args.batch, args.seed, args.memory_limit)
        return Sweep()
    log = log or (lambda text: print(text, flush=True))
    unknown = [n for n in args.networks if n not in NETWORKS]
    if unknown:
        raise SystemExit(f"Error: unknown network(s) {unknown!r}; choose from {', '.join(NETWORKS)}")
    import pgmpy
    import pyagrum

    import bayesdx

    sweep = Sweep(
        settings={
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pgmpy": pgmpy.__version__,
            "pyagrum": pyagrum.__version__,
            "bayesdx": bayesdx.__version__,
            "seed": args.seed,
            "budget": args.budget,
            "network_budget": args.network_budget,
            "quick": args.quick,
            "memory_limit": args.memory_limit,
        }
    )
    mode = "quick" if args.quick else "full"
    failed: list[str] = []
    for name in args.networks:
        default_single, default_batch = CASES[f"{mode}-few" if name in FEW_CASES else mode]
        n_single = args.single_cases if args.single_cases is not None else default_single
        n_batch = args.batch if args.batch is not None else default_batch
        outcome = run_network(name, max(1, n_single), max(1, n_batch), args, log)
        if outcome["event"] == "result":
            r = outcome["result"]
            sweep.rows.append(r)
            log(
                f"[{name}] {r['nodes']} nodes, {r['roots']} causes, {r['observed_mean']:.1f}/{r['leaves']} leaves observed: "
                f"single {r['single_bayesdx_ms']:.3g} ms vs pyAgrum {r['single_pyagrum_ms']:.3g} ms "
                f"({_ratio(r['single_pyagrum_ms'] / r['single_bayesdx_ms'])}); cold {r['cold_bayesdx_s']:.3g} s vs "
                f"{r['cold_pyagrum_s']:.3g} s ({_ratio(r['cold_pyagrum_s'] / r['cold_bayesdx_s'])}); batch of "
                f"{r['batch']} {r['batch_bayesdx_ms']:.3g} ms/case "
                f"({_ratio(r['single_pyagrum_mean_ms'] / r['batch_bayesdx_ms'])} vs pyAgrum's single mean); "
                f"max |diff| {r['max_difference']:.1e}"
            )
        elif outcome["reason"].startswith("AgreementError"):
            failed.append(f"{name}: {outcome['reason']}")
            sweep.skipped.append(
                {
                    "network": name,
                    "step": outcome["step"],
                    "reason": "DISAGREES: " + outcome["reason"],
                    "measured": outcome.get("measured", {}),
                }
            )
            log(f"[{name}] DISAGREES at {outcome['step']!r}: {outcome['reason']}")
        else:
            sweep.skipped.append(
                {"network": name, "step": outcome["step"], "reason": outcome["reason"], "measured": outcome.get("measured", {})}
            )
            log(f"[{name}] SKIPPED at {outcome['step']!r}: {outcome['reason']} (measured before: {_measured(sweep.skipped[-1])})")
    sweep.table = markdown(sweep)
    log("\n" + sweep.table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(sweep.table)
    failed += [
        f"{r['network']}: bayesdx and pyAgrum differ by {r['max_difference']:.3g}" for r in sweep.rows if not r["max_difference"] <= ATOL
    ]
    if failed:
        raise AgreementError("; ".join(failed))
    return sweep


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except AgreementError as error:
        print(f"Error: engines disagree: {error}", file=sys.stderr)
        sys.exit(1)
