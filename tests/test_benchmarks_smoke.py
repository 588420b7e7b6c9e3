"""Smoke tests of the benchmark scripts (benchmarks/run.py, benchmarks/sweep.py): tiny runs, no timing assertions.

They check that run.py runs end to end on the bundled model and pgmpy's child for both workloads (sampled
cases and vignettes), that the agreement check against pgmpy's VariableElimination and pyAgrum's
LazyPropagation ran (posteriors and EIG, to 1e-9), that the Markdown table has one row per network,
workload, task and batch size, and that sweep.py measures asia and cancer against pyAgrum in a child
process, agreeing to 1e-9, and records a network whose step runs over the budget as skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyagrum")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
ENGINES = ("pgmpy", "pgmpy (next steps)", "pyAgrum", "pyAgrum (next steps)")
TASKS = ("ranking", "ranking+next steps")


def _load(stem: str):
    spec = importlib.util.spec_from_file_location(f"bayesdx_benchmarks_{stem}", BENCHMARKS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


@pytest.fixture(scope="module")
def bench():
    module = _load("run")
    try:
        yield module
    finally:
        for stem in ("run", "workloads"):
            sys.modules.pop(f"bayesdx_benchmarks_{stem}", None)


@pytest.fixture(scope="module")
def sweep(bench):
    module = _load("sweep")
    try:
        yield module
    finally:
        sys.modules.pop("bayesdx_benchmarks_sweep", None)


@pytest.fixture(scope="module")
def quick(bench, tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "table.md"
    lines: list[str] = []
    results = bench.main(["--quick", "--sizes", "1,2", "--output", str(output)], log=lines.append)
    return results, output, lines


def test_quick_benchmark_checks_agreement_and_writes_the_table(bench, quick):
    results, output, _ = quick
    networks = ["leg_twitch", "child"]
    checked = {(a["network"], a["workload"], a["engine"]) for a in results.agreement}
    for network in networks:
        for engine in ENGINES:
            assert (network, "sampled", engine) in checked
    for entry in results.agreement:
        assert entry["cases"] >= 1
        assert entry["max_posterior_diff"] <= bench.ATOL
        assert entry["max_eig_diff"] <= bench.ATOL
        if entry["engine"].endswith("(next steps)"):
            assert entry["eig_values"] > 0  # EIGs were compared, not only posteriors

    expected = {(n, "sampled", task, b) for n in networks for task in TASKS for b in (1, 2)}
    expected |= {("leg_twitch", "vignettes", task, b) for task in TASKS for b in (1, 2)}
    assert {(r.network, r.workload, r.task, r.batch) for r in results.rows} == expected
    assert all(r.bayesdx_ms > 0 and r.pgmpy_ms > 0 and r.pyagrum_ms > 0 for r in results.rows)

    table = output.read_text(encoding="utf-8")
    assert table == results.table
    body = [
        line
        for line in table.splitlines()
        if line.startswith(("| leg_twitch | sampled | ranking", "| child | sampled | ranking", "| leg_twitch | vignettes | ranking"))
    ]
    assert len(body) == len(expected)
    assert "| network | workload | task | batch |" in table
    assert "peak RSS of a fresh process" in table
    assert results.memory  # measured in a child process: its peak, and what the call added to it
    assert all(m["peak_mib"] > 0 and m["growth_mib"] >= 0 and m["cases"] >= 2 for m in results.memory)


def test_quick_benchmark_runs_the_vignette_workload(bench, quick):
    results, _, lines = quick
    vignettes = [a for a in results.agreement if a["workload"] == "vignettes"]
    assert {a["engine"] for a in vignettes} == set(ENGINES)
    assert all(
        a["network"] == "leg_twitch" and a["max_posterior_diff"] <= bench.ATOL and a["max_eig_diff"] <= bench.ATOL for a in vignettes
    )
    assert "Vignette workload: the 255 vignettes of dev.csv, dev2.csv, safety.csv" in results.table
    assert "Sampled and vignette workload side by side" in results.table
    side = [line for line in results.table.splitlines() if line.startswith("| leg_twitch | ranking")]
    assert len(side) == 4  # two tasks, two batch sizes
    assert any(line.startswith("[leg_twitch/vignettes] batch") for line in lines)


def test_vignette_cases_replicate_the_pooled_vignettes(bench):
    import bayesdx

    model = bayesdx.load_model()
    pool = bench.workloads.vignette_pool(model)
    cases, distinct = bench.workloads.vignette_cases(model, 600, bench.SEED)
    assert distinct == len(pool) == 255
    assert len(cases) == 600
    assert cases[:distinct] == cases[distinct : 2 * distinct]  # replicated in the same seeded order
    assert sorted(map(sorted, (c.items() for c in cases[:distinct]))) == sorted(map(sorted, (c.items() for c in pool)))
    assert all("true_cause" not in c and "case_id" not in c and "rationale" not in c for c in cases)
    assert bench.workloads.parse_workloads("vignettes,sampled") == ["sampled", "vignettes"]
    with pytest.raises(ValueError, match="unknown workload"):
        bench.workloads.parse_workloads("sampled,vignets")


def test_references_take_set_valued_answers(bench):
    """Vignettes answer EMG 'abnormal' (myopathic or neurogenic): the references must condition on the set."""
    import bayesdx

    model = bayesdx.load_model()
    pool = bench.workloads.vignette_pool(model)
    case = next(c for c in pool if any(s not in model.states[v] for v, s in c.items()))
    full = [{**bench.presenting(model), **case}]
    ours, _ = bench.bayesdx_answers(model, full, steps=False)
    pg, _ = bench.run_pgmpy(model, full, None)
    ga, _ = bench.run_pyagrum(model, bench.to_pyagrum(model.network, model), full, None)
    for engine, theirs in (("pgmpy", pg), ("pyAgrum", ga)):
        entry = bench.check_agreement(model, "leg_twitch", engine, ours, theirs, full)
        assert entry["max_posterior_diff"] <= bench.ATOL


def test_engines_that_disagree_fail_loudly(bench):
    import bayesdx

    model = bayesdx.load_model()
    ours = [bench.Answer({h.id: 0.5 for h in model.hypotheses}, {})]
    theirs = [bench.Answer({h.id: 0.5 + (1e-6 if k == 0 else 0.0) for k, h in enumerate(model.hypotheses)}, {})]
    with pytest.raises(bench.AgreementError, match=r"in bayesdx and .* in pgmpy \(difference 1e-06"):
        bench.check_agreement(model, "leg_twitch", "pgmpy", ours, theirs, [{}])


def test_quick_sweep_agrees_with_pyagrum(sweep, tmp_path):
    output = tmp_path / "sweep.md"
    lines: list[str] = []
    result = sweep.main(["--quick", "--networks", "asia,cancer", "--output", str(output)], log=lines.append)
    assert not result.skipped
    assert [r["network"] for r in result.rows] == ["asia", "cancer"]
    for r in result.rows:
        assert r["max_difference"] <= sweep.ATOL
        assert r["compared_cases"] >= 3  # the cold call's case and the single cases
        assert r["roots"] == 2
        assert r["single_cases"] >= 1
        assert r["batch"] >= 1
        for key in ("single_bayesdx_ms", "single_pyagrum_ms", "cold_bayesdx_s", "cold_pyagrum_s", "batch_bayesdx_ms"):
            assert r[key] > 0
    table = output.read_text(encoding="utf-8")
    assert table == result.table
    assert sum(line.startswith(("| asia |", "| cancer |")) for line in table.splitlines()) == 2
    assert "bayesdx is slower than pyAgrum in:" in table


def test_sweep_cases_observe_a_fifth_to_two_fifths_of_the_leaves(sweep):
    network = sweep.run._normalized(sweep.run._example("alarm"))
    roots, leaves = sweep.roots_and_leaves(network)
    assert not set(roots) & set(leaves)
    cases = sweep.sweep_cases(network, leaves, 50, sweep.SEED)
    assert cases == sweep.sweep_cases(network, leaves, 50, sweep.SEED)  # seeded
    for case in cases:
        assert set(case) <= set(leaves)
        assert 0.2 * len(leaves) - 0.5 <= len(case) <= 0.4 * len(leaves) + 0.5


def test_sweep_records_a_network_over_budget_as_skipped(sweep):
    lines: list[str] = []
    result = sweep.main(["--quick", "--networks", "asia", "--budget", "0.05"], log=lines.append)
    assert not result.rows
    assert [s["network"] for s in result.skipped] == ["asia"]
    assert "more than --budget" in result.skipped[0]["reason"]
    assert "| skipped network | step | reason | measured before the stop |" in result.table


def test_single_calls_are_timed_on_cases_nothing_computed_before(bench, monkeypatch):
    """A batch of one times new cases: not the agreement check's (their programs are cached), and different
    ones for ranking and for next steps (session 12: pathfinder's single calls looked faster than its batch)."""
    import bayesdx

    model = bench.load("child")
    cases = bench.sample_cases(model, 8, 4, np.random.default_rng(bench.SEED))
    args = bench.parser().parse_args(["--sizes", "1,8", "--single-cases", "2", "--no-memory"])
    args.pgmpy_cases, args.pgmpy_step_cases, args.pyagrum_cases, args.pyagrum_step_cases = 1, 1, 3, 2
    computed: list[dict] = []
    answers = bench.bayesdx_answers

    def recording(model_, cases_, *, steps):
        computed.extend(dict(c) for c in cases_)
        return answers(model_, cases_, steps=steps)

    timed: dict[bool, list[dict]] = {False: [], True: []}
    rank_causes = bayesdx.rank_causes

    def timing(case, *, model=None, next_steps=True, **kwargs):
        timed[next_steps].append(dict(case))
        return rank_causes(case, model=model, next_steps=next_steps, **kwargs)

    monkeypatch.setattr(bench, "bayesdx_answers", recording)
    monkeypatch.setattr(bayesdx, "rank_causes", timing)
    bench.bench_cases("child", "sampled", model, cases, [1, 8], args, bench.Results(), lambda _: None)
    full = [{**bench.presenting(model), **c} for c in cases]
    seen = [full.index(c) for c in computed]
    rank_at = [cases.index(c) for c in timed[False] if c]  # ({}: the warm-up call)
    steps_at = [cases.index(c) for c in timed[True] if c]
    assert max(seen) == 2  # the agreement check ran on the first three cases
    assert rank_at == [3, 4]
    assert steps_at == [0, 5, 6]  # case 0: the count of engine calls, untimed
