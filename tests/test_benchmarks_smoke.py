"""Smoke test of the benchmark script (benchmarks/run.py): a tiny run, no timing assertions.

It checks that the script runs end to end on the bundled model and pgmpy's child, that the agreement check
against pgmpy's VariableElimination and pyAgrum's LazyPropagation ran (posteriors and EIG, to 1e-9), and
that the Markdown table has one row per network, task and batch size.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyagrum")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bayesdx_benchmarks_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_quick_benchmark_checks_agreement_and_writes_the_table(bench, tmp_path):
    output = tmp_path / "table.md"
    lines: list[str] = []
    results = bench.main(["--quick", "--sizes", "1,2", "--output", str(output)], log=lines.append)

    networks = ["leg_twitch", "child"]
    checked = {(a["network"], a["engine"]) for a in results.agreement}
    for network in networks:
        for engine in ("pgmpy", "pgmpy (next steps)", "pyAgrum", "pyAgrum (next steps)"):
            assert (network, engine) in checked
    for entry in results.agreement:
        assert entry["cases"] >= 1
        assert entry["max_posterior_diff"] <= bench.ATOL
        assert entry["max_eig_diff"] <= bench.ATOL
        if entry["engine"].endswith("(next steps)"):
            assert entry["eig_values"] > 0  # EIGs were compared, not only posteriors

    expected = {(n, task, b) for n in networks for task in ("ranking", "ranking+next steps") for b in (1, 2)}
    assert {(r.network, r.task, r.batch) for r in results.rows} == expected
    assert all(r.bayesdx_ms > 0 and r.pgmpy_ms > 0 and r.pyagrum_ms > 0 for r in results.rows)

    table = output.read_text(encoding="utf-8")
    assert table == results.table
    body = [line for line in table.splitlines() if line.startswith(("| leg_twitch | ranking", "| child | ranking"))]
    assert len(body) == len(expected)
    assert "| network | task | batch |" in table
    assert "peak memory" in table


def test_engines_that_disagree_fail_loudly(bench):
    import bayesdx

    model = bayesdx.load_model()
    ours = [bench.Answer({h.id: 0.5 for h in model.hypotheses}, {})]
    theirs = [bench.Answer({h.id: 0.5 + (1e-6 if k == 0 else 0.0) for k, h in enumerate(model.hypotheses)}, {})]
    with pytest.raises(bench.AgreementError, match=r"in bayesdx and .* in pgmpy \(difference 1e-06"):
        bench.check_agreement(model, "leg_twitch", "pgmpy", ours, theirs, [{}])
