"""The Dask path (bayesdx[dask]): on a local cluster it gives exactly the in-process results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from pandas.testing import assert_frame_equal

import bayesdx

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from bayesdx.cli import main  # noqa: E402
from bayesdx.dask import ModelRecipe, score_dask  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "evaluation" / "vignettes" / "dev.csv"
ANNOTATIONS = ["case_id", "true_cause", "true_triage", "rationale"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def evidence() -> pd.DataFrame:
    return pd.read_csv(DEV, dtype=str, keep_default_na=False).drop(columns=ANNOTATIONS)


def _per_partition(frame: pd.DataFrame, parts, **kwargs) -> pd.DataFrame:
    """``bayesdx.score`` in this process on the same partitions, concatenated."""
    return pd.concat([bayesdx.score(p.compute(), **kwargs) for p in parts.partitions])


def test_score_dask_on_a_local_cluster_equals_score(client, evidence):
    parts = dd.from_pandas(evidence, npartitions=4)
    got = score_dask(parts, top_k=5).compute()
    # bit for bit what this process computes on the same partitions ...
    assert_frame_equal(got, _per_partition(evidence, parts, top_k=5), check_exact=True)
    # ... and what it computes on the whole frame at once, up to the engine's rounding for another batch size
    assert_frame_equal(got, bayesdx.score(evidence, top_k=5), check_exact=False, rtol=0, atol=1e-10)


def test_score_dask_with_next_steps_equals_score(client, evidence):
    cases = evidence.iloc[:6]
    parts = dd.from_pandas(cases, npartitions=3)
    got = score_dask(parts, top_k=2, next_step=True).compute()
    assert_frame_equal(got, _per_partition(cases, parts, top_k=2, next_step=True), check_exact=True)
    assert_frame_equal(got, bayesdx.score(cases, top_k=2, next_step=True), check_exact=False, rtol=0, atol=1e-10)


def test_workers_rebuild_bundled_models_by_name():
    assert ModelRecipe.of(bayesdx.load_model()) == ModelRecipe(source="leg_twitch", priors="article")


def test_score_dask_with_a_pgmpy_network_model(client):
    from pgmpy.utils import get_example_model

    model = bayesdx.load_model(get_example_model("asia"), causes=["lung", "tub"])
    cases = pd.DataFrame({"xray": ["yes", "no", "", "yes"], "smoke": ["yes", "", "no", "no"]})
    expected = bayesdx.score(cases, model=model, top_k=2)
    got = score_dask(dd.from_pandas(cases, npartitions=2), model=model, top_k=2).compute()
    assert_frame_equal(got, expected, check_exact=True)
    assert ModelRecipe.of(model).load().causes == model.causes


def test_score_dask_checks_its_input_before_running():
    with pytest.raises(TypeError, match=r"must be a dask\.dataframe\.DataFrame\. Got DataFrame instead"):
        score_dask(pd.DataFrame({"fever": ["yes"]}))
    with pytest.raises(bayesdx.UnknownVariableError, match="'fevr'"):
        score_dask(dd.from_pandas(pd.DataFrame({"fevr": ["yes"]}), npartitions=1))


def test_cli_engine_dask_writes_the_same_file_as_the_local_engine(tmp_path):
    runner = CliRunner()
    local, remote = tmp_path / "local.csv", tmp_path / "dask.csv"
    result = runner.invoke(main, ["score", str(DEV), "-o", str(local), "--no-next-step", "--top-k", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["score", str(DEV), "-o", str(remote), "--no-next-step", "--top-k", "4", "--engine", "dask", "--chunk-size", "40"]
    )
    assert result.exit_code == 0, result.output
    read = {"dtype": str, "keep_default_na": False}
    got, expected = pd.read_csv(remote, **read), pd.read_csv(local, **read)
    assert len(got) == 87
    probability = [f"{name}_{j}" for j in range(1, 5) for name in ("probability", "score")]
    assert got.drop(columns=probability).equals(expected.drop(columns=probability))
    assert_frame_equal(got[probability].astype(float), expected[probability].astype(float), check_exact=False, rtol=0, atol=1e-10)


def test_cli_engine_dask_reports_bad_rows_like_the_local_engine(tmp_path):
    bad = Path(__file__).parent / "data" / "cli" / "bad_state.csv"
    result = CliRunner().invoke(main, ["score", str(bad), "-o", str(tmp_path / "o.csv"), "--engine", "dask"])
    assert result.exit_code == 1
    assert "line 5 (row 3, case 'b3'): invalid state 'maybe' for column 'fever'" in result.stderr
    assert list(tmp_path.iterdir()) == []
