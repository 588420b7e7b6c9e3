"""Case-mix weighting and the safety metrics of bayesdx evaluate (issue 14).

The weighted metrics are recomputed from scratch: one rank_causes call per vignette, and the case mix's
cause shares from pgmpy VariableElimination on the prior setting's network (not the engine), on the
development vignettes, where the weights change which setting wins. The safety metrics are checked on a
hand-built set with every kind of triage error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.batch import InputFileError
from bayesdx.cli import main
from bayesdx.evaluation import evaluate
from bayesdx.evaluation import metrics as m
from bayesdx.evaluation.case_mix import case_mix_weights, stratified_bootstrap

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "evaluation" / "vignettes" / "dev.csv"
SETTINGS = ("article", "uniform")
LEVELS = ("self_care", "routine_appointment", "prompt_specialist", "emergency")


def _pgmpy_shares(setting: str) -> dict[str, float]:
    """P(cause present | the presenting complaint) by pgmpy VariableElimination on the setting's network."""
    from pgmpy.inference import VariableElimination

    model = bayesdx.load_model(priors=setting)
    ve = VariableElimination(model.network)
    shares = {}
    for h in model.hypotheses:
        q = ve.query([h.node], evidence=dict(model.presenting), show_progress=False)
        shares[h.id] = float(q.get_value(**{h.node: h.state}))
    return shares


@pytest.fixture(scope="module")
def dev_frame() -> pd.DataFrame:
    return pd.read_csv(DEV, dtype=str)


@pytest.fixture(scope="module")
def recomputed(dev_frame: pd.DataFrame) -> dict[str, list[bayesdx.Diagnosis]]:
    evidence = dev_frame.drop(columns=["case_id", "true_cause", "true_triage", "rationale"])
    cases = [{k: v for k, v in row.items() if isinstance(v, str)} for row in evidence.to_dict("records")]
    return {s: [bayesdx.rank_causes(c, priors=s, next_steps=False) for c in cases] for s in SETTINGS}


@pytest.fixture(scope="module")
def weighted_result(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("weighted")
    shares = _pgmpy_shares("article")
    csv = folder / "mix.csv"
    pd.DataFrame({"cause": list(shares), "weight": [2.5 * v for v in shares.values()]}).to_csv(csv, index=False)
    result = evaluate(
        DEV, priors=SETTINGS, n_bootstrap=200, n_self_consistency=0, case_mix=["article", str(csv)], report_dir=folder, seed=3
    )
    return result, shares, csv, folder


def _direct(dx_list: list[bayesdx.Diagnosis], truth: list[str], weights: np.ndarray) -> dict[str, float]:
    ranks = np.array([[c.id for c in dx.causes].index(t) + 1 for dx, t in zip(dx_list, truth, strict=True)])
    p_true = np.array([next(c.probability for c in dx.causes if c.id == t) for dx, t in zip(dx_list, truth, strict=True)])
    brier = np.array([np.mean([(c.probability - (c.id == t)) ** 2 for c in dx.causes]) for dx, t in zip(dx_list, truth, strict=True)])
    return {
        "top1": float(np.sum(weights * (ranks == 1))),
        "top3": float(np.sum(weights * (ranks <= 3))),
        "mrr": float(np.sum(weights / ranks)),
        "log_loss": float(np.sum(weights * -np.log(np.clip(p_true, 1e-15, 1.0)))),
        "brier": float(np.sum(weights * brier)),
    }


def test_weighted_metrics_match_a_direct_recomputation_where_the_weights_change_the_winner(weighted_result, recomputed, dev_frame):
    """w_i = pi(c_i) / n(c_i) with pi the article setting's P(cause | twitching) from pgmpy, normalised over the
    causes the vignettes cover; every weighted metric equals sum_i w_i m_i from rank_causes to 1e-9."""
    result, shares, csv, _ = weighted_result
    truth = dev_frame["true_cause"].tolist()
    covered = set(truth)
    total = sum(shares[c] for c in covered)
    counts = pd.Series(truth).value_counts()
    weights = np.array([shares[c] / total / counts[c] for c in truth])
    assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    for mix in ("article", str(csv)):  # the prior setting and a CSV of the same shares x 2.5 (scale-free)
        for setting in SETTINGS:
            row = result.metrics[(result.metrics["priors"] == setting) & (result.metrics["case_mix"] == mix)]
            assert len(row) == 1
            row = row.iloc[0]
            direct = _direct(recomputed[setting], truth, weights)
            for metric, value in direct.items():
                assert abs(row[f"{metric}_weighted"] - value) <= 1e-9, (mix, setting, metric)
                assert row[f"{metric}_weighted_lo"] <= row[f"{metric}_weighted"] + 1e-12
                assert row[f"{metric}_weighted"] <= row[f"{metric}_weighted_hi"] + 1e-12
            balanced = _direct(recomputed[setting], truth, np.full(len(truth), 1 / len(truth)))
            assert abs(row["top1"] - balanced["top1"]) <= 1e-12
    # the point of a declared case mix: the balanced winner and the weighted winner differ on these vignettes
    rows = result.metrics[result.metrics["case_mix"] == "article"].set_index("priors")
    assert rows.loc["uniform", "top1"] > rows.loc["article", "top1"]
    assert rows.loc["article", "top1_weighted"] > rows.loc["uniform", "top1_weighted"]


def test_the_report_explains_balanced_against_weighted_with_the_numbers(weighted_result):
    result, _, _, folder = weighted_result
    text = (folder / "report.md").read_text()
    assert "## Case mix: balanced against weighted" in text
    assert "Saerens" in text
    assert "Kopka" in text
    rows = result.metrics[result.metrics["case_mix"] == "article"].set_index("priors")
    assert f"({rows.loc['article', 'top1_weighted']:.3f})" in text  # the weighted winner, with its number
    table = pd.read_csv(folder / "metrics.csv")
    assert len(table) == 2 * len(SETTINGS)  # one row per setting and case mix
    assert set(table["case_mix"]) == {"article", str(weighted_result[2])}


def test_stratified_bootstrap_resamples_within_each_cause(rng):
    """A cause whose vignettes all agree contributes no spread: with two causes, one always right and one
    always wrong, every resample gives exactly the weighted mean."""
    values = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    strata = ["a", "a", "a", "b", "b"]
    lo, hi = stratified_bootstrap(values, strata, {"a": 0.9, "b": 0.1}, n_resamples=300, rng=rng)
    assert lo == pytest.approx(0.9, abs=1e-12)
    assert hi == pytest.approx(0.9, abs=1e-12)
    mixed = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    lo, hi = stratified_bootstrap(mixed, strata, {"a": 0.5, "b": 0.5}, n_resamples=300, rng=rng)
    assert lo < 0.5 * (2 / 3) + 0.5 * 0.5 < hi


# ---------------------------------------------------------------------- case-mix input errors
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mix.csv"
    path.write_text(text)
    return path


def test_case_mix_csv_errors_name_the_file_line_column_and_what_is_valid(tmp_path, bundled_model):
    truth = ["stress_anxiety", "als"]
    with pytest.raises(InputFileError) as err:
        case_mix_weights(_write(tmp_path, "cause,weight\nstress_anxiety,1\nstres,2\n"), bundled_model, truth)
    assert (err.value.line, err.value.column, err.value.value) == (3, "cause", "stres")
    assert "stress_anxiety" in str(err.value)
    assert "mix.csv" in str(err.value)
    with pytest.raises(InputFileError) as err:
        case_mix_weights(_write(tmp_path, "cause,weight\nstress_anxiety,-1\n"), bundled_model, truth)
    assert (err.value.line, err.value.column) == (2, "weight")
    with pytest.raises(InputFileError) as err:
        case_mix_weights(_write(tmp_path, "cause,weight\nals,1\nals,2\n"), bundled_model, truth)
    assert err.value.line == 3
    assert "second weight" in str(err.value)
    with pytest.raises(InputFileError, match="exactly the columns"):
        case_mix_weights(_write(tmp_path, "cause,share\nals,1\n"), bundled_model, truth)
    with pytest.raises(ValueError, match="gives no weight to 'stress_anxiety'"):
        case_mix_weights(_write(tmp_path, "cause,weight\nals,1\n"), bundled_model, truth)
    with pytest.raises(ValueError, match="weight 0 to every cause"):
        case_mix_weights(_write(tmp_path, "cause,weight\nals,0\nstress_anxiety,0\n"), bundled_model, truth)
    with pytest.raises(ValueError, match="must name a prior setting among"):
        case_mix_weights("artcle", bundled_model, truth)
    with pytest.raises(FileNotFoundError):
        case_mix_weights(tmp_path / "missing.csv", bundled_model, truth)


def test_a_zero_weight_leaves_a_cause_out_and_a_mapping_works(bundled_model):
    mix = case_mix_weights({"stress_anxiety": 3.0, "als": 0.0}, bundled_model, ["stress_anxiety", "als", "als"])
    assert mix.name == "custom"
    assert mix.weights.tolist() == [1.0, 0.0, 0.0]


# ---------------------------------------------------------------------- safety
def test_safety_metrics_on_every_kind_of_triage_error():
    """Seven vignettes, one per kind of triage outcome (levels lowest first)."""
    cases = [  # (true, advised): exact, over by two, under by one, under by two, emergency caught,
        ("routine_appointment", "routine_appointment"),  # exact: safe
        ("self_care", "prompt_specialist"),  # over-triage: safe
        ("prompt_specialist", "routine_appointment"),  # one level less cautious: under-triage, still safe
        ("prompt_specialist", "self_care"),  # two levels less: under-triage, unsafe
        ("emergency", "emergency"),  # emergency caught
        ("emergency", "prompt_specialist"),  # emergency missed by one level: unsafe (Gilbert 2020)
        ("routine_appointment", "emergency"),  # a non-emergency sent to the emergency department
    ]
    true = [t for t, _ in cases]
    advised = [a for _, a in cases]
    assert m.safe_triage(advised, true, LEVELS).tolist() == [1, 1, 1, 0, 1, 0, 1]
    assert m.under_triage(advised, true, LEVELS).tolist() == [0, 0, 1, 1, 0, 1, 0]
    assert m.over_triage(advised, true, LEVELS).tolist() == [0, 1, 0, 0, 0, 0, 1]
    caught = [a == "emergency" for t, a in cases if t == "emergency"]
    assert caught == [True, False]
    lo, hi = m.clopper_pearson(sum(caught), len(caught))
    # Clopper-Pearson from the beta distribution: [B(a/2; x, n-x+1), B(1-a/2; x+1, n-x)]
    from scipy import stats

    assert_allclose([lo, hi], [stats.beta.ppf(0.025, 1, 2), stats.beta.ppf(0.975, 2, 1)], rtol=1e-9)
    assert_allclose(m.clopper_pearson(7, 7), [0.025 ** (1 / 7), 1.0], rtol=1e-9)
    assert all(math.isnan(x) for x in m.clopper_pearson(0, 0))


def test_emergency_recall_in_the_report_is_caught_over_total_with_an_exact_interval(weighted_result):
    result, *_ = weighted_result
    frame = pd.read_csv(DEV, dtype=str)
    emergencies = int((frame["true_triage"] == "emergency").sum())
    for setting in SETTINGS:
        row = result.metrics[result.metrics["priors"] == setting].iloc[0]
        assert row["emergencies"] == emergencies
        advised = result.cases[f"triage_{setting}"][frame["true_triage"] == "emergency"]
        caught = int((advised == "emergency").sum())
        assert row["emergency_recall"] == caught / emergencies
        assert_allclose([row["emergency_recall_lo"], row["emergency_recall_hi"]], m.clopper_pearson(caught, emergencies), rtol=1e-12)
    assert f"/{emergencies} = " in result.safety_markdown()


def test_per_cause_recall_by_hand():
    ranks = np.array([1, 2, 4, 1, 3])
    table = m.per_cause_recall(ranks, ["a", "a", "a", "b", "b"], ["a", "b", "c"])
    assert table["cause"].tolist() == ["a", "b"]  # no vignette of c: left out
    assert table["n"].tolist() == [3, 2]
    assert_allclose(table["top1"], [1 / 3, 1 / 2])
    assert_allclose(table["top3"], [2 / 3, 1.0])
    assert_allclose(table.loc[1, ["top3_lo", "top3_hi"]].to_numpy(dtype=float), [0.025 ** (1 / 2), 1.0])


def test_per_cause_table_and_plot_are_written(weighted_result):
    result, _, _, folder = weighted_result
    table = pd.read_csv(folder / "per_cause.csv")
    frame = pd.read_csv(DEV, dtype=str)
    assert set(table["priors"]) == set(SETTINGS)
    assert table.groupby("priors")["n"].sum().tolist() == [len(frame)] * len(SETTINGS)
    for setting in SETTINGS:
        ranks = result.cases[f"rank_{setting}"]
        for row in table[table["priors"] == setting].itertuples():
            at = result.cases["true_cause"] == row.cause
            assert row.top3 == pytest.approx(float((ranks[at] <= 3).mean()), abs=1e-12)
    assert (folder / "per_cause.png").stat().st_size > 1000
    assert "## Per-cause sensitivity" in (folder / "report.md").read_text()


# ---------------------------------------------------------------------- libraries
def test_library_metrics_equal_the_definitions(rng):
    """The scikit-learn calls of summary_metrics give the documented definitions, with and without weights,
    ties broken as the ranking broke them."""
    n, n_h = 30, 6
    probabilities = np.round(rng.random((n, n_h)), 1)  # many ties
    truth = rng.integers(n_h, size=n)
    order = np.argsort(-probabilities, axis=1, kind="stable")
    ranks = m.true_cause_ranks(probabilities, truth)
    for weights in (None, rng.random(n)):
        w = np.full(n, 1.0 / n) if weights is None else weights / weights.sum()
        got = m.summary_metrics(order, probabilities, truth, weights)
        assert got["top1"] == pytest.approx(np.sum(w * (ranks == 1)), abs=1e-12)
        assert got["top3"] == pytest.approx(np.sum(w * (ranks <= 3)), abs=1e-12)
        assert got["mrr"] == pytest.approx(np.sum(w / ranks), abs=1e-12)
        assert got["brier"] == pytest.approx(np.sum(w * m.brier_scores(probabilities, truth)), abs=1e-12)
        assert got["log_loss"] == pytest.approx(np.sum(w * m.log_losses(probabilities[np.arange(n), truth])), abs=1e-12)


def test_reliability_table_equals_sklearn_calibration_curve_away_from_bin_edges(rng):
    from sklearn.calibration import calibration_curve

    predicted = rng.random(500)
    predicted = predicted[np.abs(predicted * 10 - np.round(predicted * 10)) > 1e-9]
    outcome = (rng.random(predicted.size) < predicted).astype(float)
    table = m.reliability_table(predicted, outcome)
    prob_true, prob_pred = calibration_curve(outcome, predicted, n_bins=10, strategy="uniform")
    filled = table[table["n"] > 0]
    assert_allclose(filled["observed_frequency"], prob_true, rtol=1e-12)
    assert_allclose(filled["mean_predicted"], prob_pred, rtol=1e-12)


def test_cli_case_mix_writes_the_weighted_columns(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(DEV),
            "--priors",
            "article",
            "--case-mix",
            "epidemiology",
            "--samples",
            "0",
            "--bootstrap",
            "20",
            "-o",
            str(tmp_path),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["case_mix"].tolist() == ["epidemiology"]
    assert 0.0 <= table.loc[0, "top1_weighted"] <= 1.0
    assert "Weighted by case mix" in result.output
    bad = CliRunner().invoke(main, ["evaluate", str(DEV), "--case-mix", "nope", "--samples", "0", "-q"])
    assert bad.exit_code != 0
    assert "must name a prior setting" in bad.output


def test_progress_is_reported_inside_the_long_stages():
    """Every stage announces itself, and the two long ones report inside: each consultation round and each
    block of prior draws."""
    frame = pd.read_csv(DEV, dtype=str).head(4)
    messages: list[str] = []
    evaluate(frame, priors=["article"], next_steps=True, n_prior_draws=3, n_self_consistency=0, n_bootstrap=5, progress=messages.append)
    assert any(m.startswith("article: scoring 4 cases") for m in messages)
    assert any("consultation round 1, 4 cases open" in m for m in messages)
    assert any(m == "article: prior draws 3/3" for m in messages)
