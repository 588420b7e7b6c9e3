"""Evidence on noisy leaves entered as signed terms (Quickscore), and its guards against cancellation.

The engine answers a batch with one contraction over the network without its noisy leaves: a positive
finding ``P(f | pa) = 1 - L * prod_i q_i(pa_i)`` becomes two rows with coefficients ``+1`` and ``-L``. The
terms can cancel, so each case is checked: a case whose rounding bound exceeds the budget is recomputed in
extended precision, then by one contraction per evidence pattern. Every tier is checked here against
pgmpy's VariableElimination to 1e-9, and the ill-conditioned network shows that the guards are needed.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesdx
from bayesdx import inference
from bayesdx.engine import quickscore, sweep
from bayesdx.inference import CompiledNetwork, Decomposition, InferenceEngine

ATOL = 1e-9
EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps


@pytest.fixture(autouse=True)
def _quickscore_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests exercise Quickscore's tiers (signed terms, extended precision, own contractions). By default
    a case with several positive findings is swept instead (:mod:`bayesdx.engine.sweep`, ``tests/test_sweep.py``)."""
    monkeypatch.setattr(sweep, "SWEEP", False)


class Spy:
    """Records the precision and path of every engine call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, bool]] = []  # (dtype, findings kept inside the contraction)
        original = InferenceEngine.posterior
        spy = self

        def posterior(self: InferenceEngine, likelihoods: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("expand", True):
                net = self.network
                leaves = {net.variables[v] for v in self._decomposable - self._has_children}
                spy.calls.append((np.dtype(kwargs.get("dtype", np.float64)).name, bool(leaves & set(likelihoods))))
            return original(self, likelihoods, *args, **kwargs)

        monkeypatch.setattr(InferenceEngine, "posterior", posterior)
        original_rows = InferenceEngine.term_rows

        def term_rows(self: InferenceEngine, columns: Any, target_ids: Any, n_rows: int, tables: Any, dtype: Any = np.float64) -> Any:
            result = original_rows(self, columns, target_ids, n_rows, tables, dtype)
            if result is not None:  # expanded rows contracted without their findings
                spy.calls.append((np.dtype(dtype).name, False))
            return result

        monkeypatch.setattr(InferenceEngine, "term_rows", term_rows)

    def used(self, dtype: str | None = None, *, patterns: bool = False) -> bool:
        """Whether expanded rows were contracted at ``dtype``, or, with ``patterns``, findings kept inside."""
        if patterns:
            return any(inside for _, inside in self.calls)
        return any(d == dtype and not inside for d, inside in self.calls)


def _tier(monkeypatch: pytest.MonkeyPatch, tier: str) -> None:
    if tier == "extended":
        if not EXTENDED:
            pytest.skip("numpy.longdouble is float64 on this platform")
        # no double-precision case can meet this budget (its bound is at least 50 eps); extended ones can
        monkeypatch.setattr(quickscore, "ERROR_BUDGET", 5e-15)
    elif tier == "patterns":
        monkeypatch.setattr(quickscore, "MAX_TERMS", 1)  # any case with a positive finding is split


@pytest.mark.parametrize("tier", ["double", "extended", "patterns"])
def test_every_tier_matches_variable_elimination_on_the_bundled_model(
    tier, monkeypatch, bundled_model, ve_reference, evidence_sampler, rng
):
    # many observed findings, so most cases have several positive findings and cancelling terms
    hidden = [v for v in bundled_model.network.nodes() if v not in bundled_model.variables]  # divorced noisy parts
    exclude = (*bundled_model.causes, *hidden, *bundled_model.presenting)
    cases = evidence_sampler(bundled_model.network, 30, rng, observe=0.5, exclude=exclude)
    cases = [{**c, **bundled_model.presenting} for c in cases]
    model = bayesdx.load_model()  # a fresh engine, so no program is cached from other tests
    _tier(monkeypatch, tier)
    spy = Spy(monkeypatch)
    frame = bayesdx.score(cases, model=model, top_k=len(model.hypotheses))
    assert spy.used("float128" if tier == "extended" else "float64") if tier != "patterns" else spy.used(patterns=True)
    for k, case in enumerate(cases):
        expected = ve_reference(model.network, model, case)
        row = frame.iloc[k]
        got = {row[f"cause_{j}"]: row[f"probability_{j}"] for j in range(1, len(expected) + 1)}
        assert_allclose([got[i] for i in expected], list(expected.values()), atol=ATOL, rtol=0, err_msg=f"case {k}: {case!r}")


# ---------------------------------------------------------------------- an ill-conditioned network
RARE = 1e-3  # prior of each cause
LINK = 0.9
LEAK = 1e-7
N_CAUSES = 5


def _rare_causes_network() -> tuple[CompiledNetwork, Any]:
    """Five rare independent causes, each with one noisy-OR finding: positives cancel to 1e-3 each.

    A positive finding's two terms are ``1`` and ``L * q`` with ``P(f = yes) ~ 1e-3``, so with ``k``
    positives the terms cancel by a factor of about ``(2 / 1e-3) ** k``: 4e6 for two, 3e16 for five.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    causes = [f"c{i}" for i in range(N_CAUSES)]
    findings = [f"f{i}" for i in range(N_CAUSES)]
    variables = tuple(causes + findings)
    states = tuple([("present", "absent")] * N_CAUSES + [("yes", "no")] * N_CAUSES)
    parents = tuple([()] * N_CAUSES + [(i,) for i in range(N_CAUSES)])
    decs: list[Decomposition | None] = [None] * N_CAUSES
    tables = [np.array([RARE, 1 - RARE])] * N_CAUSES
    for _ in range(N_CAUSES):
        # levels: 0 = "no" (state 1), 1 = "yes" (state 0); F(0 | present) = (1 - LEAK) * (1 - LINK)
        dec = Decomposition.from_cdfs((1, 0), np.array([1 - LEAK, 1.0]), [np.array([[1 - LINK, 1.0], [1.0, 1.0]])])
        decs.append(dec)
        table = np.einsum("ty,tp->yp", dec.weights, dec.factors[0])
        tables.append(table)
    net = CompiledNetwork(variables, states, parents, tuple(tables), tuple(decs))
    pg = DiscreteBayesianNetwork([(c, f) for c, f in zip(causes, findings, strict=True)])
    for v, s, ps, t in zip(variables, states, parents, tables, strict=True):
        names = {v: list(s), **{variables[p]: list(states[p]) for p in ps}}
        pg.add_cpds(
            TabularCPD(
                v, 2, t.reshape(2, -1), evidence=[variables[p] for p in ps] or None, evidence_card=[2] * len(ps) or None, state_names=names
            )
        )
    pg.check_model()
    return net, pg


def _evidence_sets() -> list[dict[str, str]]:
    """Every assignment of yes / no / unobserved to the five findings: 0 to 5 positives."""
    sets = []
    for combo in itertools.product(["yes", "no", None], repeat=N_CAUSES):
        sets.append({f"f{i}": s for i, s in enumerate(combo) if s is not None})
    return sets


def _posteriors(engine: InferenceEngine, sets: list[dict[str, str]]) -> Any:
    net = engine.network
    lik = {}
    for i in range(N_CAUSES):
        arr = np.ones((len(sets), 2))
        for k, e in enumerate(sets):
            if f"f{i}" in e:
                arr[k] = [1.0, 0.0] if e[f"f{i}"] == "yes" else [0.0, 1.0]
        lik[f"f{i}"] = arr
    return engine.posterior(lik, [net.variables[i] for i in range(N_CAUSES)], len(sets))


def _reference(pg: Any, sets: list[dict[str, str]]) -> np.ndarray:
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(pg)
    out = np.empty((len(sets), N_CAUSES))
    for k, e in enumerate(sets):
        q = ve.query([f"c{i}" for i in range(N_CAUSES)], evidence=e, joint=False, show_progress=False)
        out[k] = [q[f"c{i}"].get_value(**{f"c{i}": "present"}) for i in range(N_CAUSES)]
    return out


def _present(post: Any) -> np.ndarray:
    return np.column_stack([post.marginals[f"c{i}"][:, 0] for i in range(N_CAUSES)])


def test_cancelling_terms_are_recomputed_and_match_variable_elimination(monkeypatch):
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)  # signed terms for every finding (see below)
    net, pg = _rare_causes_network()
    sets = _evidence_sets()
    post = _posteriors(InferenceEngine(net), sets)
    assert_allclose(_present(post), _reference(pg, sets), atol=ATOL, rtol=0)
    # two positives cancel by ~4e6 (beyond double precision's budget, within extended precision's);
    # five cancel by ~3e16 (beyond both): all three tiers ran, as the result records
    assert post.route == "quickscore"
    assert (~post.extended & ~post.own_contraction).any()
    assert post.extended.any() or not EXTENDED
    assert post.own_contraction.any()


def test_rows_of_a_cancelling_case_go_straight_to_extended_precision(monkeypatch):
    """Rows that share their case (next steps, counterfactual scores) share its terms and their cancellation.

    One row per case is contracted in double precision first; the other rows of a case whose row cancelled past
    the budget go straight to extended precision, without a double-precision attempt. Every row still matches
    VariableElimination on its own evidence (the case's findings and the row's likelihood on ``c0``).
    """
    if not EXTENDED:
        pytest.skip("numpy.longdouble is float64 on this platform")
    from pgmpy.inference import VariableElimination

    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)
    monkeypatch.setattr(quickscore, "FORECAST", False)  # the probe alone (the forecast: tests/test_forecast.py)
    net, pg = _rare_causes_network()
    # 0 to 2 positives: two cancel past double precision's budget, within extended precision's
    sets = [e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) <= 2 and "f0" not in e]
    n = len(sets)
    engine = InferenceEngine(net)
    contracted: dict[str, int] = {}
    original = engine.term_rows

    def term_rows(columns: Any, target_ids: Any, n_rows: int, tables: Any, dtype: Any = np.float64) -> Any:
        name = np.dtype(dtype).name
        contracted[name] = contracted.get(name, 0) + n_rows
        return original(columns, target_ids, n_rows, tables, dtype)

    monkeypatch.setattr(engine, "term_rows", term_rows)
    clamps = [None, "present", "absent"]  # each case's rows: c0 free, c0 present, c0 absent
    row_case = np.repeat(np.arange(n), len(clamps))
    row_c0 = np.tile(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), (n, 1))
    lik = {f"f{i}": np.ones((n, 2)) for i in range(N_CAUSES)}
    for k, e in enumerate(sets):
        for v, s in e.items():
            lik[v][k] = [1.0, 0.0] if s == "yes" else [0.0, 1.0]
    causes = [f"c{i}" for i in range(N_CAUSES)]
    post = engine.posterior(lik, causes, n, row_case=row_case, row_likelihoods={"c0": row_c0})
    ve = VariableElimination(pg)
    for r in range(row_case.size):
        evidence = dict(sets[row_case[r]])
        if clamps[r % 3] is not None:
            evidence["c0"] = clamps[r % 3]
        free = [c for c in causes if c not in evidence]
        q = ve.query(free, evidence=evidence, joint=False, show_progress=False)
        for c in free:
            assert post.marginals[c][r, 0] == pytest.approx(q[c].get_value(**{c: "present"}), abs=ATOL), (r, evidence)
    cancelling = post.extended[::3]  # the first row of each case: tried in double precision, redone in extended
    assert cancelling.any()
    assert (~cancelling).any()
    assert post.extended.reshape(n, 3)[cancelling].all()  # and so were the case's other rows
    # double precision ran on one row per case and on every row of the cases that did not cancel, no more
    # (counted in contracted rows: a case with k positive findings has 2**k terms)
    terms = np.array([2 ** sum(s == "yes" for s in e.values()) for e in sets])
    assert contracted["float64"] == terms.sum() + 2 * terms[~cancelling].sum()
    assert contracted[np.dtype(np.longdouble).name] == 3 * terms[cancelling].sum()


def test_without_the_guards_the_ill_conditioned_cases_would_be_wrong(monkeypatch):
    """The network above is ill-conditioned enough that the checks are needed (the test of the guards can fail)."""
    net, pg = _rare_causes_network()
    sets = [e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) == N_CAUSES]
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)
    monkeypatch.setattr(quickscore, "ERROR_BUDGET", np.inf)
    post = _posteriors(InferenceEngine(net), sets)
    assert np.abs(np.nan_to_num(_present(post), nan=10.0) - _reference(pg, sets)).max() > ATOL


def test_cases_with_too_many_terms_use_one_contraction_per_pattern(monkeypatch):
    net, pg = _rare_causes_network()
    sets = [e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) >= 3]
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)
    monkeypatch.setattr(quickscore, "MAX_TERMS", 4)  # 2**3 terms and more: too many
    post = _posteriors(InferenceEngine(net), sets)
    assert post.own_contraction.all()  # every case has too many terms: each in a contraction of its own
    assert_allclose(_present(post), _reference(pg, sets), atol=ATOL, rtol=0)


def test_telescoped_findings_do_not_cancel():
    """A positive finding whose parents the case leaves free numbers at most TELESCOPE_PARENTS enters as
    positive telescoped terms (one parent: a single exact likelihood), so the rare-causes network, whose
    signed terms cancel by up to 3e16, needs neither extended precision nor per-pattern contractions: every
    case is one double-precision pass, and it still matches VariableElimination."""
    net, pg = _rare_causes_network()
    sets = _evidence_sets()
    post = _posteriors(InferenceEngine(net), sets)
    assert_allclose(_present(post), _reference(pg, sets), atol=ATOL, rtol=0)
    assert post.route == "quickscore"
    assert not post.extended.any()
    assert not post.own_contraction.any()


def test_impossible_evidence_is_reported_through_the_expanded_path():
    net, _ = _rare_causes_network()
    engine = InferenceEngine(net)
    lik = {"f0": np.array([[0.0, 0.0], [1.0, 0.0]])}  # first case: no state of f0 is possible
    post = engine.posterior(lik, ["c0"], 2)
    assert post.impossible.tolist() == [True, False]
    assert np.isnan(post.marginals["c0"][0]).all()
    assert np.isfinite(post.marginals["c0"][1]).all()


# ---------------------------------------------------------------------- review findings (regressions)
def test_likelihoods_far_from_one_neither_underflow_nor_overflow_the_coefficients():
    """Soft likelihoods of 1e-170 or 1e200 on noisy leaves: same answer as with the findings in the contraction."""
    net, _ = _rare_causes_network()
    engine = InferenceEngine(net)
    for value in (1e-170, 1e200):
        lik = {f"f{i}": np.array([[0.0, value], [value, 0.0]]) for i in range(3)}
        got = engine.posterior(lik, ["c0", "c1"], 2)
        kept = engine.posterior(lik, ["c0", "c1"], 2, expand=False)
        assert not got.impossible.any()
        assert_allclose(got.log_evidence, kept.log_evidence, rtol=1e-12)
        for c in ("c0", "c1"):
            assert_allclose(got.marginals[c], kept.marginals[c], atol=1e-12, rtol=0)


def test_an_observed_noisy_leaf_asked_as_a_target_keeps_its_observed_state():
    net, _ = _rare_causes_network()
    engine = InferenceEngine(net)
    lik = {"f0": np.array([[1.0, 0.0]]), "f1": np.array([[0.0, 1.0]])}  # f0 = yes, f1 = no
    for split in (True, False):
        post = engine.posterior(lik, ["c1", "f1"], 1, split=split)
        assert post.marginals["f1"].tolist() == [[0.0, 1.0]]


def test_cancelling_terms_with_a_tiny_probability_of_evidence_stay_within_the_error_budget():
    """log Z of about -400 adds its own rounding when each term comes back from its log: the bound counts it."""
    from fractions import Fraction

    rare, link, leak, m = 6e-5, 0.9, 1e-7, 60
    gen = np.random.default_rng(1)
    px = gen.uniform(0.5, 1.0, m + 1) * 10.0 ** gen.uniform(-170, -140, m + 1)
    px[-1] = 1 - px[:-1].sum()
    dec = Decomposition.from_cdfs((1, 0), np.array([1 - leak, 1.0]), [np.array([[1 - link, 1.0], [1.0, 1.0]])])
    table = np.einsum("ty,tp->yp", dec.weights, dec.factors[0])
    net = CompiledNetwork(
        ("X", "c0", "f0"),
        (tuple(f"x{i}" for i in range(m + 1)), ("present", "absent"), ("yes", "no")),
        ((), (), (1,)),
        (px, np.array([rare, 1 - rare]), table),
        (None, None, dec),
    )
    lik = {"X": np.eye(m + 1)[:m], "f0": np.tile([1.0, 0.0], (m, 1))}  # X observed at a state of probability ~1e-150
    post = InferenceEngine(net).posterior(lik, ["c0"], m)
    yes_present, yes_absent = Fraction(table[0, 0]), Fraction(table[0, 1])
    exact = float(Fraction(rare) * yes_present / (Fraction(rare) * yes_present + Fraction(1 - rare) * yes_absent))
    assert_allclose(post.marginals["c0"][:, 0], exact, rtol=inference.ERROR_BUDGET, atol=0)


@pytest.mark.parametrize("telescope", [-1, 0, 1, 2, 3])
def test_telescoped_terms_match_variable_elimination_on_graded_findings(monkeypatch, graded_model, telescope):
    """Every combination of evidence on the graded network (a noisy-MAX severity with three parents, a
    noisy-OR rash with two, age observed or not, a cause observed or not), with telescoping off (-1) and
    allowed up to 0, 1, 2 and 3 free parents: so positive findings enter as a constant, one likelihood,
    several positive terms, or signed terms, alone and mixed in one batch. Posteriors and P(e) match
    pgmpy VariableElimination to 1e-12."""
    from pgmpy.inference import VariableElimination

    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", telescope)
    model = graded_model
    engine = InferenceEngine(model.compiled)
    options = {v: [None, *model.states[v]] for v in ("age", "severity", "rash", "toxin")}
    sets = [{v: s for v, s in zip(options, combo, strict=True) if s is not None} for combo in itertools.product(*options.values())]
    lik = {v: np.ones((len(sets), len(model.states[v]))) for v in options}
    for k, e in enumerate(sets):
        for v, s in e.items():
            lik[v][k] = np.eye(len(model.states[v]))[model.states[v].index(s)]
    post = engine.posterior(lik, ["infection", "toxin"], len(sets))
    ve = VariableElimination(model.network)
    for k, e in enumerate(sets):
        q = ve.query(["infection"], evidence=e, show_progress=False)
        assert_allclose(post.marginals["infection"][k], q.values, atol=1e-12, rtol=0, err_msg=str(e))
        if e:
            z = ve.query(list(e), show_progress=False).get_value(**e)
            assert abs(post.log_evidence[k] - np.log(z)) <= 1e-12, e


def test_a_program_prints_its_plan(bundled_model):
    """print(program) shows the einsum equation, each operand by kind and variable, each step and the largest
    table (like opt_einsum's PathInfo)."""
    from bayesdx.engine import OperandKind, Program

    engine = InferenceEngine(bundled_model.compiled)
    lik = {"painful_cramps": np.array([[1.0, 0.0]]), "age_group": np.eye(len(bundled_model.states["age_group"]))[[0]]}
    post = engine.posterior(lik, ["stress_anxiety"], 1)
    assert post.route == "quickscore"
    program = next(iter(engine._programs.values()))
    assert isinstance(program, Program)
    text = repr(program)
    assert program.equation in text
    assert f"{len(program.steps)} steps" in text
    assert f"largest table: {program.largest_per_case} entries per case" in text
    assert "likelihood of stress_anxiety" in text
    assert all(isinstance(src.kind, OperandKind) for src in program.sources)
    assert any(f"{src.kind.value} of " in text for src in program.sources)


def test_lowered_findings_match_pyagrum_with_the_finding_observed_normal(bundled_model, to_pyagrum):
    """``lower``: each case with one positive finding observed at its lowest (normal) level instead, read off
    the case's own signed terms. Checked against pyAgrum LazyPropagation on that evidence: the probability of
    the evidence and every cause's posterior, for every (case, finding) the engine gives."""
    import pyagrum as gum

    from bayesdx.evidence import likelihoods_from_evidence
    from bayesdx.posteriors import add_presenting

    cases = [
        {"age_group": "adult", "sex": "male", "numbness_tingling": "yes", "both_legs": "yes", "frequency": "daily"},
        {"age_group": "older_adult", "muscle_weakness": "yes", "muscle_wasting": "yes", "painful_cramps": "yes"},
        {"fever": "yes", "loss_of_consciousness": "yes", "neck_stiffness_or_confusion": "yes", "duration": "days_to_weeks"},
        {"muscle_weakness": "yes", "electromyography": "abnormal", "creatine_kinase": "mildly_raised", "rapidly_worsening": "yes"},
    ]
    model = bundled_model
    n = len(cases)
    lik = add_presenting(model, likelihoods_from_evidence(model, cases), n)
    findings = [v for v in lik if v not in model.causes and v not in ("age_group", "sex")]
    post = model.engine.posterior(lik, model.causes, n, lower=findings)
    bn = to_pyagrum(model.network)
    checked = 0
    net = model.compiled
    for v, lowered in post.lowered.items():
        dec = net.decompositions[net.index()[v]]
        lowest = model.states[v][dec.order[0]]
        for k in np.flatnonzero(lowered.available):
            evidence = {**model.presenting, **cases[k], v: lowest}
            ie = gum.LazyPropagation(bn)
            ie.setEvidence({u: model.answer_vector(u, a).tolist() for u, a in evidence.items()})  # aliases as soft evidence
            ie.makeInference()
            assert lowered.log_evidence[k] == pytest.approx(np.log(ie.evidenceProbability()), abs=ATOL), (k, v)
            for c in model.causes:
                if c not in evidence:
                    assert_allclose(lowered.marginals[c][k], ie.posterior(c).toarray(), atol=ATOL, rtol=0, err_msg=f"{k} {v} {c}")
            checked += 1
    assert checked >= 10  # most positive findings with more than two free parents are given
    assert "leg_twitching" in post.lowered
    with pytest.raises(ValueError, match="not variables"):
        model.engine.posterior(lik, model.causes, n, lower=["no_such_finding"])


def test_term_rows_take_variables_every_row_observes_at_their_state(to_pyagrum, monkeypatch):
    """Rows that all observe ``age_group`` and ``sex`` (nearly every vignette) are contracted by a program without
    their axes, their likelihoods there multiplying P(e): the same marginals and evidence as VariableElimination,
    and, in extended precision, the same log-evidence as the program that carries them to 1e-18 (a likelihood of
    1/3 at the observed state: the factor must enter in the rows' precision, not in double)."""
    gum = pytest.importorskip("pyagrum")
    model = bayesdx.load_model()
    engine, net = model.engine, model.compiled
    index = net.index()
    rng = np.random.default_rng(7)
    n = 24
    columns: dict[int, np.ndarray] = {}
    for name in ("age_group", "sex"):
        v = index[name]
        column = np.zeros((len(net.states[v]), n))
        column[rng.integers(0, len(net.states[v]), n), np.arange(n)] = 1.0 / 3.0
        columns[v] = column
    for name in ("stress_anxiety", "polyneuropathy", "als"):  # soft likelihoods on causes, as term factors are
        columns[index[name]] = rng.uniform(0.05, 1.0, size=(2, n))
    targets = [index[c] for c in model.causes if c not in ("stress_anxiety",)]
    compiled: list[Any] = []
    original = engine._program

    def program(key: Any) -> Any:
        compiled.append(key)
        return original(key)

    monkeypatch.setattr(engine, "_program", program)  # restored after the test (the model is shared)
    post = engine.term_rows(columns, targets, n, net.tables)
    assert post is not None
    assert any({index["age_group"], index["sex"]} <= key[3] for key in compiled)  # taken at their states
    bn = to_pyagrum(model.network)
    for k in range(4):
        ie = gum.LazyPropagation(bn)
        # pyAgrum gets the observations as 0/1 (its evidence probability with a lone 1/3 came out wrong) and
        # the soft likelihoods as they are; each observation's 1/3 multiplies P(e)
        hard = {index["age_group"], index["sex"]}
        ie.setEvidence({net.variables[v]: (c[:, k] != 0 if v in hard else c[:, k]).astype(float).tolist() for v, c in columns.items()})
        ie.makeInference()
        assert post.log_evidence[k] == pytest.approx(np.log(ie.evidenceProbability()) + 2 * np.log(1 / 3), abs=ATOL)
        for t in targets:
            assert_allclose(post.marginals[net.variables[t]][k], ie.posterior(net.variables[t]).toarray(), atol=ATOL, rtol=0)
    if not EXTENDED:
        return
    ext = {v: c.astype(np.longdouble) for v, c in columns.items()}
    sliced = engine.term_rows(ext, targets, n, net.tables, np.longdouble)
    carried = engine.term_rows(ext, [*targets, index["age_group"], index["sex"]], n, net.tables, np.longdouble)  # targets: carried
    assert sliced is not None
    assert carried is not None
    gap = np.abs(sliced.log_evidence - carried.log_evidence) / np.abs(carried.log_evidence)
    assert gap.max() < 1e-18


def _rational_posterior(prior, p_f):
    """Exact P(c = first state | e) and log P(e) for a root ``c`` and one finding with P(e_f | c) = ``p_f``
    (Fractions of the stored doubles)."""
    import math
    from fractions import Fraction

    joint = [Fraction(float(prior[x])) * p_f[x] for x in range(2)]
    total = sum(joint)
    return float(joint[0] / total), math.log(total)


@pytest.mark.parametrize("observe_parent", [False, True], ids=["parent free", "parent observed"])
@pytest.mark.parametrize("n", [1, 70])
def test_a_telescoped_finding_far_below_its_factors_keeps_its_digits(observe_parent, n):
    """Found in review (session 15). Fact: ``F(1) - F(0) = L(1) C(1, x) - L(0) C(0, x)`` taken as a difference of
    two rounded products keeps only the products' absolute rounding (about 1e-17 here) on a difference of about
    2e-14: P(c | f) came out 0.3651551 against an exact 0.3649663 (1.9e-4 off), unchecked. Telescoped,
    ``(L(1) - L(0)) C(1, x) + L(0) (C(1, x) - C(0, x))`` is positive terms of differences of stored numbers.
    A three-level noisy-MAX observed at its middle level, its parent free or observed, against the rational value
    of the same doubles."""
    from fractions import Fraction

    leak = np.array([0.37, 0.37 + 1.37e-14, 1.0])
    cdf = np.array([[0.61, 0.61 + 2.71e-14, 1.0], [1.0, 1.0, 1.0]])  # C(t, x): parent present / absent
    prior = np.array([0.3, 0.7])
    cdfs = [[Fraction(float(leak[t])) * Fraction(float(cdf[x, t])) for t in range(3)] for x in range(2)]
    pmf = [[cdfs[x][0], cdfs[x][1] - cdfs[x][0], cdfs[x][2] - cdfs[x][1]] for x in range(2)]
    table = np.array([[float(pmf[x][s]) for x in range(2)] for s in range(3)])
    dec = Decomposition.from_cdfs((0, 1, 2), leak, [cdf])
    net = CompiledNetwork(("c", "f"), (("present", "absent"), ("l0", "l1", "l2")), ((), (0,)), (prior, table), (None, dec))
    lik = {"f": np.tile([0.0, 1.0, 0.0], (n, 1))}
    expected, log_z = _rational_posterior(prior, [pmf[0][1], pmf[1][1]])
    if observe_parent:  # the parent observed present: P(e) = P(c = present) P(f = l1 | present)
        lik["c"] = np.tile([1.0, 0.0], (n, 1))
        expected, log_z = 1.0, float(np.log(prior[0])) + float(np.log(float(pmf[0][1])))
    post = InferenceEngine(net).posterior(lik, ["c"], n)
    assert post.route == "quickscore"
    assert not post.extended.any()
    assert not post.own_contraction.any()
    assert_allclose(post.marginals["c"][:, 0], expected, atol=1e-12, rtol=0)
    assert_allclose(post.log_evidence, log_z, atol=1e-12, rtol=0)


def test_a_weighted_rare_finding_with_a_leak_of_1e_11_keeps_its_digits():
    """Found in review (session 15): a binary noisy-OR with leak 1.3e-11, observed present with a weight w (likelihood
    (w, 0)), telescoped as w C(1, x) - (w L(0)) C(0, x): the rounding of w L(0) (about 1e-17) sat on a difference of
    about w * 1e-11, and P(c | e) was 1e-6 off. Against the rational value of the same doubles."""
    from fractions import Fraction

    prior, leak, link = np.array([2e-11, 1 - 2e-11]), 1.3e-11, 0.5
    l0 = 1 - leak
    dec = Decomposition.from_cdfs((1, 0), np.array([l0, 1.0]), [np.array([[1 - link, 1.0], [1.0, 1.0]])])
    absent = np.array([l0 * (1 - link), l0])
    net = CompiledNetwork(
        ("c", "f"), (("present", "absent"), ("yes", "no")), ((), (0,)), (prior, np.stack([1 - absent, absent])), (None, dec)
    )
    engine = InferenceEngine(net)
    for w in (0.37, 0.61, 0.9):
        p_f = [Fraction(w) * (1 - Fraction(l0) * Fraction(1 - link)), Fraction(w) * (1 - Fraction(l0))]
        expected, log_z = _rational_posterior(prior, p_f)
        post = engine.posterior({"f": np.array([[w, 0.0]])}, ["c"], 1)
        assert post.route == "quickscore"
        assert_allclose(post.marginals["c"][0, 0], expected, rtol=1e-12, atol=0)
        assert_allclose(post.log_evidence[0], log_z, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [1, 70])
def test_many_negative_findings_of_one_cause_do_not_multiply_its_likelihood_to_zero(n):
    """Found in review (session 15): a cause observed present and 80 negative noisy-OR findings it produces with
    probability 1 - 1e-5 each. Each negative finding is a single term folded into the cause's likelihood, and 80
    factors of about 1e-5 multiplied it to zero: possible evidence (log P(e) = log 0.3 + 80 log(0.99e-5), about
    -923) came out impossible. Against that sum in logs, and the marginal of the cause's other child (0.9)."""
    k, q, leak = 80, 1e-5, 0.01
    variables = ["c", "d"] + [f"f{i}" for i in range(k)]
    states = [("present", "absent"), ("y", "n")] + [("yes", "no")] * k
    parents = [(), (0,)] + [(0,)] * k
    tables = [np.array([0.3, 0.7]), np.array([[0.9, 0.2], [0.1, 0.8]])]
    decs: list[Any] = [None, None]
    absent = np.array([(1 - leak) * q, 1 - leak])
    for _ in range(k):
        tables.append(np.stack([1 - absent, absent]))
        decs.append(Decomposition.from_cdfs((1, 0), np.array([1 - leak, 1.0]), [np.array([[q, 1.0], [1.0, 1.0]])]))
    net = CompiledNetwork(tuple(variables), tuple(states), tuple(parents), tuple(tables), tuple(decs))
    lik = {f"f{i}": np.tile([0.0, 1.0], (n, 1)) for i in range(k)}
    lik["c"] = np.tile([1.0, 0.0], (n, 1))
    post = InferenceEngine(net).posterior(lik, ["d"], n)
    assert post.route == "quickscore"
    assert not post.impossible.any()
    assert_allclose(post.log_evidence, np.log(0.3) + k * np.log((1 - leak) * q), rtol=1e-12, atol=0)
    assert_allclose(post.marginals["d"][:, 0], 0.9, atol=1e-12, rtol=0)


def test_a_weight_above_one_in_one_case_does_not_hide_another_cases_underflow():
    """Found in review of the fix above (session 15): the bound that says when a parent's likelihood may have fallen
    below 2^-256 was shared by the cases, and one case's finding observed with a weight of 1e300 raised it for all,
    so 70 other cases (each 80 negative findings of 1e-5 on the same cause) were never rescaled; the second look at
    impossible cases rescued 64, and 6 stayed impossible. A term now lowers the bound or leaves it."""
    k, q, leak = 80, 1e-5, 0.01
    variables, states, parents = ["c", "g"], [("present", "absent"), ("yes", "no")], [(), (0,)]
    absent_g = np.array([0.25, 0.5])  # g: leak 0.5, link 0.5
    tables = [np.array([0.3, 0.7]), np.stack([1 - absent_g, absent_g])]
    decs: list[Any] = [None, Decomposition.from_cdfs((1, 0), np.array([0.5, 1.0]), [np.array([[0.5, 1.0], [1.0, 1.0]])])]
    absent = np.array([(1 - leak) * q, 1 - leak])
    for i in range(k):
        variables.append(f"f{i}")
        states.append(("yes", "no"))
        parents.append((0,))
        tables.append(np.stack([1 - absent, absent]))
        decs.append(Decomposition.from_cdfs((1, 0), np.array([1 - leak, 1.0]), [np.array([[q, 1.0], [1.0, 1.0]])]))
    net = CompiledNetwork(tuple(variables), tuple(states), tuple(parents), tuple(tables), tuple(decs))
    victims = 70
    lik = {f"f{i}": np.vstack([np.tile([0.0, 1.0], (victims, 1)), [[1.0, 1.0]]]) for i in range(k)}
    lik["c"] = np.vstack([np.tile([1.0, 0.0], (victims, 1)), [[1.0, 1.0]]])
    lik["g"] = np.vstack([np.ones((victims, 2)), [[1e300, 0.0]]])
    post = InferenceEngine(net).posterior(lik, ["c"], victims + 1)
    assert not post.impossible.any()
    assert_allclose(post.log_evidence[:victims], np.log(0.3) + k * np.log((1 - leak) * q), rtol=1e-12, atol=0)
    assert_allclose(post.log_evidence[-1], np.log(1e300 * (0.3 * 0.75 + 0.7 * 0.5)), rtol=1e-12, atol=0)
