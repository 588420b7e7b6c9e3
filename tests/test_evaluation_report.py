"""The evaluation report on the development vignettes, against a direct recomputation with rank_causes.

Small settings keep it quick: 50 bootstrap resamples, 20 prior draws, 150 sampled cases, the step protocol
on three cases. No number is hard-coded: the network is still being improved, so every expected value is
recomputed here from the public API (rank_causes, one case at a time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

import bayesdx
from bayesdx.cli_evaluate import evaluate as evaluate_command
from bayesdx.evaluation import METRICS, VignetteError, evaluate
from bayesdx.evaluation.self_consistency import self_consistency

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "evaluation" / "vignettes" / "dev.csv"
SETTINGS = ("article", "uniform")
STEP_CASES = 3
LEVELS = ("self_care", "routine_appointment", "prompt_specialist", "emergency")
METRICS_CSV_COLUMNS = [
    "priors",
    "ranking",
    "n",
    "top1",
    "top1_lo",
    "top1_hi",
    "top3",
    "top3_lo",
    "top3_hi",
    "mrr",
    "mrr_lo",
    "mrr_hi",
    "log_loss",
    "log_loss_lo",
    "log_loss_hi",
    "brier",
    "brier_lo",
    "brier_hi",
    "ece",
    "ece_lo",
    "ece_hi",
    "triage_accuracy",
    "triage_accuracy_lo",
    "triage_accuracy_hi",
    "under_triage",
    "under_triage_lo",
    "under_triage_hi",
    "over_triage",
    "over_triage_lo",
    "over_triage_hi",
    "safe_triage",
    "safe_triage_lo",
    "safe_triage_hi",
    "emergency_recall",
    "emergency_recall_lo",
    "emergency_recall_hi",
    "policy_auc",
    "policy_auc_lo",
    "policy_auc_hi",
    "cost_to_top1",
    "cost_to_top1_lo",
    "cost_to_top1_hi",
    "policy_top1",
    "policy_top1_lo",
    "policy_top1_hi",
    "emergencies",
    "case_mix",
    "top1_weighted",
    "top1_weighted_lo",
    "top1_weighted_hi",
    "top3_weighted",
    "top3_weighted_lo",
    "top3_weighted_hi",
    "mrr_weighted",
    "mrr_weighted_lo",
    "mrr_weighted_hi",
    "log_loss_weighted",
    "log_loss_weighted_lo",
    "log_loss_weighted_hi",
    "brier_weighted",
    "brier_weighted_lo",
    "brier_weighted_hi",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("report")
    result = evaluate(
        DEV,
        priors=SETTINGS,
        n_bootstrap=50,
        n_prior_draws=20,
        n_self_consistency=150,
        next_steps=True,
        step_cases=STEP_CASES,
        seed=7,
        report_dir=folder,
        case_mix="article",
    )
    return result, folder


@pytest.fixture(scope="module")
def recomputed() -> dict[str, list[bayesdx.Diagnosis]]:
    """rank_causes on every development vignette, one call per case, per setting."""
    frame = pd.read_csv(DEV, dtype=str)
    evidence = frame.drop(columns=["case_id", "true_cause", "true_triage", "rationale"])
    cases = [{k: v for k, v in row.items() if isinstance(v, str)} for row in evidence.to_dict("records")]
    return {s: [bayesdx.rank_causes(c, priors=s, next_steps=False) for c in cases] for s in SETTINGS}


def consultation_by_rank_causes(evidence: dict[str, str], cause: str, model: bayesdx.Model) -> list[tuple[float, bool]]:
    """The simulated consultation of bayesdx.evaluation.consultation, written out with one rank_causes call per
    step: start from age and sex, take the best step with positive value not yet asked, pay its cost, reveal
    the vignette's answer or leave it unknown (a study reveals whichever of its tests the vignette records),
    until the stop rule. Returns (cost spent, cause first) per step."""
    current = {v: evidence[v] for v in ("age_group", "sex") if v in evidence}
    asked: set[str] = set()
    spent = 0.0
    history = []
    while True:
        dx = bayesdx.rank_causes(current, model=model)
        history.append((spent, dx.causes[0].id == cause))
        if dx.should_stop or len(asked) >= 30:
            return history
        step = next((s for s in dx.next_steps if s.value > 0 and s.id not in asked), None)
        if step is None:
            return history
        asked.add(step.id)
        spent += step.cost
        items = model.studies[step.id].tests if step.id in model.studies else (step.id,)
        asked.update(items)  # a study's tests are done with it ...
        asked.update(sid for sid, study in model.studies.items() if step.id in study.tests)  # ... and vice versa
        current.update({v: evidence[v] for v in items if v in evidence})


def test_metrics_csv_has_one_row_per_setting_and_the_documented_columns(report):
    _result, folder = report
    table = pd.read_csv(folder / "metrics.csv")
    assert list(table.columns) == METRICS_CSV_COLUMNS
    assert table["priors"].tolist() == list(SETTINGS)
    assert (table["n"] == 87).all()
    for m in METRICS:
        ok = table[m].notna()
        assert ((table.loc[ok, f"{m}_lo"] <= table.loc[ok, m] + 1e-12) & (table.loc[ok, m] <= table.loc[ok, f"{m}_hi"] + 1e-12)).all(), m


def test_report_files_and_plots(report):
    _, folder = report
    for name in (
        "metrics.csv",
        "cases.csv",
        "report.md",
        "reliability.png",
        "top_k.png",
        "tornado.png",
        "self_consistency.png",
        "sensitivity.csv",
        "stability.csv",
        "mcnemar.csv",
    ):
        assert (folder / name).is_file(), name
    text = (folder / "report.md").read_text(encoding="utf-8")
    for image in ("reliability.png", "top_k.png", "tornado.png", "self_consistency.png"):
        assert f"]({image})" in text
    cases = pd.read_csv(folder / "cases.csv")
    assert cases.columns[:3].tolist() == ["case_id", "true_cause", "true_triage"]
    assert {f"rank_{s}" for s in SETTINGS} <= set(cases.columns)


def test_ranks_probabilities_and_triage_match_rank_causes(report, recomputed):
    result, _ = report
    cases = result.cases
    for s in SETTINGS:
        dxs = recomputed[s]
        assert cases[f"rank_{s}"].tolist() == [dx.rank(t) for dx, t in zip(dxs, cases["true_cause"], strict=True)]
        expected = [dx.probability(t) for dx, t in zip(dxs, cases["true_cause"], strict=True)]
        assert_allclose(cases[f"probability_{s}"], expected, rtol=1e-9, atol=1e-12)
        assert cases[f"top1_{s}"].tolist() == [dx.causes[0].id for dx in dxs]
        assert cases[f"triage_{s}"].tolist() == [dx.triage for dx in dxs]


def test_metrics_match_a_recomputation_from_rank_causes(report, recomputed):
    result, _ = report
    truth = result.cases["true_cause"].tolist()
    true_triage = result.cases["true_triage"].tolist()
    for s in SETTINGS:
        dxs = recomputed[s]
        ranks = np.array([dx.rank(t) for dx, t in zip(dxs, truth, strict=True)])
        p_true = np.array([dx.probability(t) for dx, t in zip(dxs, truth, strict=True)])
        pairs = [(c.probability, float(c.id == t)) for dx, t in zip(dxs, truth, strict=True) for c in dx.causes]
        p, y = np.array(pairs).T
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs((p[bins == b] - y[bins == b]).sum()) for b in range(10)) / len(p)
        advised = [dx.triage for dx in dxs]
        expected = {
            "top1": np.mean(ranks == 1),
            "top3": np.mean(ranks <= 3),
            "mrr": np.mean(1 / ranks),
            "log_loss": np.mean(-np.log(np.maximum(p_true, 1e-15))),
            "brier": np.mean([np.mean([(c.probability - (c.id == t)) ** 2 for c in dx.causes]) for dx, t in zip(dxs, truth, strict=True)]),
            "ece": ece,
            "triage_accuracy": np.mean([a == t for a, t in zip(advised, true_triage, strict=True)]),
            "under_triage": np.mean([LEVELS.index(t) > LEVELS.index(a) for a, t in zip(advised, true_triage, strict=True)]),
        }
        row = result.metrics.set_index("priors").loc[s]
        for metric, value in expected.items():
            assert_allclose(row[metric], value, rtol=1e-9, atol=1e-12, err_msg=f"{s} {metric}")


def test_simulated_consultations_match_a_rank_causes_loop(report):
    result, _ = report
    frame = pd.read_csv(DEV, dtype=str).head(STEP_CASES)
    evidence = frame.drop(columns=["case_id", "true_cause", "true_triage", "rationale"])
    cases = [{k: v for k, v in row.items() if isinstance(v, str)} for row in evidence.to_dict("records")]
    for s in SETTINGS:
        model = bayesdx.load_model(priors=s)
        histories = [consultation_by_rank_causes(c, t, model) for c, t in zip(cases, frame.true_cause, strict=True)]
        first = [next((cost for cost, ok in h if ok), np.nan) for h in histories]
        got = result.cases[f"cost_to_top1_{s}"]
        assert_allclose(got.head(STEP_CASES).to_numpy(dtype=float), first, rtol=0, atol=1e-12)
        assert got.iloc[STEP_CASES:].isna().all()
        row = result.metrics.set_index("priors").loc[s]
        assert_allclose(row["policy_top1"], np.mean([h[-1][1] for h in histories]))
        # the area under "cause first" against cost, 0 to 100, by hand from the step function
        areas = []
        for h in histories:
            points = [*h, (float("inf"), False)]
            areas.append(sum(ok * (min(points[i + 1][0], 100.0) - min(c, 100.0)) for i, (c, ok) in enumerate(h)) / 100.0)
        assert_allclose(row["policy_auc"], np.mean(areas))
        curve = result.consultation[result.consultation.priors == s].set_index("budget")["accuracy"]
        for budget in (0.0, 10.0, 100.0):
            assert_allclose(curve[budget], np.mean([[ok for c, ok in h if c <= budget][-1] for h in histories]))


def test_score_orders_causes_exactly_as_rank_causes(report, recomputed):
    frame = pd.read_csv(DEV, dtype=str).head(10)
    scored = bayesdx.score(
        frame.drop(columns=["case_id", "true_cause", "true_triage", "rationale"]), top_k=len(bayesdx.load_model().hypotheses)
    )
    for k in range(10):
        dx = recomputed["article"][k]
        assert [scored.iloc[k][f"cause_{j + 1}"] for j in range(len(dx.causes))] == [c.id for c in dx.causes]


def test_mcnemar_and_robustness_tables_are_consistent(report):
    result, _ = report
    row = result.mcnemar.iloc[0]
    hits = {s: result.cases[f"rank_{s}"] == 1 for s in SETTINGS}
    assert row["a_only"] == int((hits["article"] & ~hits["uniform"]).sum())
    assert row["b_only"] == int((~hits["article"] & hits["uniform"]).sum())
    sens = result.sensitivity
    assert len(sens) == 2 * 87 * 20
    leading = sens[sens["top1"]]
    assert (leading["factor"].dropna() < 1).all()
    assert (sens[~sens["top1"]]["factor"].dropna() > 1).all()
    assert result.stability["stability"].between(0, 1).all()
    assert set(result.prior_uncertainty["priors"]) == set(SETTINGS)


def test_self_consistency_is_calibrated_on_the_bundled_model():
    """Cases sampled from the network itself: exact inference must be calibrated up to sampling noise."""
    model = bayesdx.load_model()
    result = self_consistency(model, n_samples=600, rng=np.random.default_rng(20261124))
    assert result.ece < 0.02
    table = result.reliability[result.reliability["n"] >= 100]
    assert_allclose(table["observed_frequency"], table["mean_predicted"], atol=0.06)


def test_forward_samples_follow_the_networks_marginals_and_links():
    """The self-consistency sampler draws from the model's joint distribution: every state's frequency
    in 20,000 draws is within 4.5 standard errors of its exact marginal (pgmpy VariableElimination on the
    pgmpy network, independent of the sampler), and so is a cause-finding joint frequency."""
    from pgmpy.inference import VariableElimination

    from bayesdx.evaluation.self_consistency import forward_sample

    model = bayesdx.load_model()
    n = 20_000
    samples = forward_sample(model, n, np.random.default_rng(7))
    assert len(samples) == n
    assert set(model.variables) <= set(samples.columns)
    ve = VariableElimination(model.network)
    checked = [
        "age_group",
        "sex",
        "stress_anxiety",
        "diabetes_mellitus",
        "polyneuropathy",
        "leg_twitching",
        "numbness_tingling",
        "frequency",
        "creatine_kinase",
    ]
    for var in checked:
        exact = ve.query([var], show_progress=False)
        for state, p in zip(exact.state_names[var], exact.values, strict=True):
            freq = float((samples[var] == state).mean())
            assert abs(freq - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12, (var, state, freq, p)
    joint = ve.query(["diabetes_mellitus", "numbness_tingling"], show_progress=False)
    p = float(joint.get_value(diabetes_mellitus="present", numbness_tingling="yes"))
    freq = float(((samples["diabetes_mellitus"] == "present") & (samples["numbness_tingling"] == "yes")).mean())
    assert abs(freq - p) <= 4.5 * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------- errors
def tiny_frame(**changes: object) -> pd.DataFrame:
    frame = pd.DataFrame({"case_id": ["a", "b"], "true_cause": ["flu", "cold"], "fever": ["yes", "no"]})
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=[column])
        else:
            frame[column] = value
    return frame


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (tiny_frame(true_cause=None), r"In <DataFrame>: there is no 'true_cause' column"),
        (tiny_frame(case_id=None), r"there is no 'case_id' column"),
        (
            tiny_frame(true_cause=["flu", "colds"]),
            r"In case 'b' of <DataFrame>: true_cause 'colds' is not a cause hypothesis of model 'tiny'\. "
            r"Did you mean 'cold'\?",
        ),
        (tiny_frame(fevr=["yes", "no"]), r"column 'fevr' is neither a variable of model 'tiny' .* Did you mean 'fever'\?"),
        (tiny_frame(case_id=["a", "a"]), r"In case 'a' of <DataFrame>: the case_id appears more than once"),
    ],
)
def test_bad_vignettes(tiny_model, frame, match):
    with pytest.raises(VignetteError, match=match):
        evaluate(frame, model=tiny_model, priors=("tiny",), n_prior_draws=0, n_self_consistency=0)


def test_bad_evidence_cell_names_the_case(tiny_model):
    with pytest.raises(bayesdx.InvalidStateError, match=r"'maybe'.* in case 'b'"):
        evaluate(tiny_frame(fever=["yes", "maybe"]), model=tiny_model, priors=("tiny",), n_prior_draws=0, n_self_consistency=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"priors": ("articel",)},
            ValueError,
            r"The 'priors' parameter of evaluate must name prior settings among .*'article'.*Got 'articel' instead",
        ),
        ({"priors": ()}, ValueError, r"The 'priors' parameter of evaluate must be a non-empty sequence"),
        ({"priors": ("article", "article")}, ValueError, r"names the setting 'article' twice"),
        ({"priors": ("missing.toml",)}, FileNotFoundError, r"No such prior file: 'missing.toml'"),
        ({"n_bootstrap": 0}, ValueError, r"The 'n_bootstrap' parameter of evaluate must be an int >= 1\. Got 0"),
        ({"prior_spread": -1.0}, ValueError, r"The 'prior_spread' parameter of evaluate must be a finite number >= 0"),
        ({"next_steps": "yes"}, TypeError, r"The 'next_steps' parameter of evaluate must be a bool"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate(DEV, **{"n_prior_draws": 0, "n_self_consistency": 0, **kwargs})


def test_missing_vignette_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such vignette file: '.*nope\.csv'"):
        evaluate(tmp_path / "nope.csv")


# ---------------------------------------------------------------------- command line
def test_cli_prints_the_metrics_and_writes_the_report(tmp_path, tiny_model_path):
    csv = tmp_path / "v.csv"
    tiny_frame().to_csv(csv, index=False)
    out = tmp_path / "rep"
    result = CliRunner().invoke(
        evaluate_command,
        [
            str(csv),
            "--model",
            str(tiny_model_path),
            "--priors",
            "tiny",
            "-o",
            str(out),
            "--bootstrap",
            "20",
            "--prior-draws",
            "5",
            "--samples",
            "50",
            "--no-steps",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("| priors | n | top1 |")
    assert "| tiny | 2 |" in result.stdout
    assert (out / "metrics.csv").is_file()
    assert (out / "report.md").is_file()


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["--bootstrap", "x"], 2, r"Invalid value for '--bootstrap'"),
        (["--prior-draws", "-1"], 2, r"Invalid value for '--prior-draws'"),
        (["--priors", "nope"], 1, r"Error: No such prior file|Error: .*'nope'"),
    ],
)
def test_cli_errors(tmp_path, tiny_model_path, args, code, match):
    csv = tmp_path / "v.csv"
    tiny_frame().to_csv(csv, index=False)
    result = CliRunner().invoke(evaluate_command, [str(csv), "--model", str(tiny_model_path), *args])
    assert result.exit_code == code
    assert result.stderr.strip().splitlines()[-1].startswith("Error:")
    import re

    assert re.search(match, result.stderr)


def test_cli_bad_data_exits_1(tmp_path):
    csv = tmp_path / "v.csv"
    tiny_frame(true_cause=None).to_csv(csv, index=False)
    result = CliRunner().invoke(evaluate_command, [str(csv), "--no-steps", "--prior-draws", "0"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: In ")
    assert "there is no 'true_cause' column" in result.stderr


@pytest.mark.parametrize("flag", ["--no-next-steps", "--no-next-step"])
def test_cli_takes_both_spellings_of_no_next_steps(tmp_path, tiny_model_path, flag):
    """Found in a user review (session 15): evaluate offered --next-steps but only --no-next-step, so the spelling
    its own --next-steps suggests exited 2. Both spellings of each side are accepted."""
    csv = tmp_path / "v.csv"
    tiny_frame().to_csv(csv, index=False)
    result = CliRunner().invoke(
        evaluate_command, [str(csv), "--model", str(tiny_model_path), "--priors", "tiny", flag, "--prior-draws", "0", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "| tiny | 2 |" in result.stdout
