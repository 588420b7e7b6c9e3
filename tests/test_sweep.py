"""The sweep (:mod:`bayesdx.engine.sweep`): findings above their lowest level carried as two-state chains through
one sweep of the network, with no signed terms.

Facts encoded:

- a noisy-MAX child's ``P(level in [lo, hi] | pa)`` is the probability that a two-state chain over its parents
  ends in state 1 (the sequential decomposition of Heckerman and Breese 1996): the posteriors and ``log P(e)``
  of the sweep equal a brute-force sum over every configuration of the network's CPD tables, on random
  networks with a shared hub, graded (three-level) findings, hard and free parents, ranges of levels (soft
  evidence such as ``abnormal``) and rows of next-step likelihoods;
- the sweep never subtracts: cases whose Quickscore terms cancel by about 3e16 (past extended precision) are
  exact in double precision (pgmpy's VariableElimination);
- bundled-model vignettes with five or more positive findings, one without its age group (a free hub), are
  swept and match VariableElimination to 1e-9;
- ``log P(e)`` near 1e-600 (past double precision's range) and impossible evidence are handled.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_expansion import _evidence_sets, _present, _rare_causes_network, _reference

from bayesdx.engine import quickscore, sweep
from bayesdx.engine.sweep_plan import sweep_plan
from bayesdx.inference import CompiledNetwork, Decomposition, InferenceEngine

ATOL = 1e-9
DEV = Path(__file__).resolve().parents[1] / "evaluation" / "vignettes" / "dev.csv"


@pytest.fixture
def always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweep every case with two or more findings above their lowest level, however small the call."""
    monkeypatch.setattr(sweep, "SWEEP_SLOTS", 2)
    monkeypatch.setattr(sweep, "SWEEP_UNITS", 1)
    monkeypatch.setattr(sweep, "DIRECT_ENTRIES", sweep.SWEEP_ENTRIES)


# ---------------------------------------------------------------------------------------------- the plan
@pytest.mark.parametrize("seed", range(20))
def test_the_plan_is_topological_and_brings_in_every_table_once_before_its_variables_leave(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 12))
    parents = [tuple(sorted(rng.choice(v, size=min(v, int(rng.integers(0, 4))), replace=False).tolist())) if v else () for v in range(n)]
    cards = rng.integers(2, 4, size=n).tolist()
    hard = {v for v in range(n) if rng.random() < 0.2}
    plan = sweep_plan(parents, cards, set(range(n)), hard)
    free = [v for v in range(n) if v not in hard]
    assert sorted(s.variable for s in plan.steps) == free
    applied: list[int] = list(plan.constant)
    entered: set[int] = set()
    kept: tuple[int, ...] = ()
    for step in plan.steps:
        assert all(p in entered or p in hard for p in parents[step.variable])  # parents first
        assert step.scope == (*kept, step.variable)
        entered.add(step.variable)
        for v in step.tables:
            assert ({v, *parents[v]} - hard) <= entered
        applied += step.tables
        for v in set(step.scope) - set(step.kept):  # leaves only once every table holding it is in
            assert all(w in applied for w in range(n) if v in {w, *parents[w]})
        kept = step.kept
    assert sorted(applied) == list(range(n))
    assert kept == ()


# ------------------------------------------------------------------------------ a random noisy network
def _cdf(rng: np.random.Generator, levels: int) -> np.ndarray:
    """A random CDF over ``levels`` levels: non-decreasing, one at the top."""
    steps = np.sort(rng.uniform(0.0, 1.0, size=levels - 1))
    return np.append(steps, 1.0)


def _noisy_table(dec: Decomposition, child_states: int, parent_cards: list[int]) -> np.ndarray:
    """``P(child | parents) = sum_t W[t, child] prod_i G_i[t, pa_i]``, the definition of the decomposition."""
    table = np.zeros((child_states, *parent_cards))
    for config in itertools.product(*[range(c) for c in parent_cards]):
        for t in range(dec.weights.shape[0]):
            product = np.prod([g[t, s] for g, s in zip(dec.factors, config, strict=True)]) if config else 1.0
            table[(slice(None), *config)] += dec.weights[t] * product
    return table


def _random_network(seed: int) -> CompiledNetwork:
    """A hub (3 states), five binary causes under it (some also under an earlier cause) and eight noisy leaves,
    noisy-OR (yes, no) or noisy-MAX (three levels, the hub always among their parents: observed, it enters a
    slot's start), with one to five parents among the hub and the causes."""
    rng = np.random.default_rng(seed)
    variables = ["hub"] + [f"c{i}" for i in range(5)] + [f"f{j}" for j in range(8)]
    states: list[tuple[str, ...]] = [("h0", "h1", "h2")] + [("present", "absent")] * 5
    parents: list[tuple[int, ...]] = [()]
    tables: list[np.ndarray] = [rng.dirichlet(np.ones(3))]
    decs: list[Decomposition | None] = [None]
    for i in range(5):
        ps = (0,) if i < 2 else (0, int(rng.integers(1, i + 1)))
        parents.append(ps)
        shape = [2] + [3 if p == 0 else 2 for p in ps]
        present = rng.uniform(0.05, 0.6, size=shape[1:])
        tables.append(np.stack([present, 1.0 - present]))
        decs.append(None)
    for j in range(8):
        graded = j % 3 == 2
        levels = 3 if graded else 2
        ps = tuple(sorted(set(rng.choice(6, size=int(rng.integers(1, 5)), replace=False).tolist()) | ({0} if graded else set())))
        cdfs = []
        for p in ps:
            card = 3 if p == 0 else 2
            rows = [_cdf(rng, levels) for _ in range(card)]
            if p != 0:
                rows[1] = np.ones(levels)  # an absent cause produces nothing
            cdfs.append(np.array(rows))
        leak = _cdf(rng, levels)
        leak[:-1] = 1.0 - 0.3 * (1.0 - leak[:-1])  # leaks that mostly stay at the lowest level
        order = (0, 1, 2) if graded else (1, 0)
        dec = Decomposition.from_cdfs(order, leak, cdfs)
        states.append(("l0", "l1", "l2") if graded else ("yes", "no"))
        parents.append(ps)
        tables.append(_noisy_table(dec, levels, [3 if p == 0 else 2 for p in ps]))
        decs.append(dec)
    return CompiledNetwork(tuple(variables), tuple(states), tuple(parents), tuple(tables), tuple(decs))


def _random_evidence(net: CompiledNetwork, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per leaf: above its lowest level (one level, or a range such as mild-or-marked), at it, or unobserved;
    the hub observed in half the cases. Every case has at least two findings above their lowest level."""
    lik = {}
    leaves = [v for v, d in enumerate(net.decompositions or ()) if d is not None]
    high = np.zeros(n, dtype=int)
    for position, v in enumerate(leaves):
        dec = net.decompositions[v]  # type: ignore[index]
        arr = np.ones((n, len(net.states[v])))
        left = len(leaves) - position  # this leaf and those after it
        for k in range(n):
            r = rng.random()
            if r < 0.35 or high[k] + left <= 2:  # above the lowest level (at least two per case)
                level = int(rng.integers(1, len(dec.order)))
                arr[k] = 0.0
                arr[k, dec.order[level]] = 1.0
                if len(dec.order) == 3 and rng.random() < 0.3:
                    arr[k, list(dec.order[1:])] = 0.7  # a range of levels, one likelihood on it
                high[k] += 1
            elif r < 0.6:
                arr[k] = 0.0
                arr[k, dec.order[0]] = 1.0
        lik[net.variables[v]] = arr
    hub = np.ones((n, 3))
    seen = rng.random(n) < 0.5
    hub[seen] = np.eye(3)[rng.integers(0, 3, size=int(seen.sum()))]
    lik["hub"] = hub
    return lik


def _brute_force(net: CompiledNetwork, lik: dict[str, np.ndarray], targets: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``log P(e)`` and the targets' posteriors by summing the CPD tables over every configuration of the
    hub and the causes (the leaves summed with their likelihoods), in log space."""
    index = net.index()
    n = next(iter(lik.values())).shape[0]
    inner = [v for v in range(len(net.variables)) if net.decompositions[v] is None]  # type: ignore[index]
    leaves = [v for v in range(len(net.variables)) if v not in inner]
    configs = list(itertools.product(*[range(net.cards[v]) for v in inner]))
    logs = np.zeros((n, len(configs)))
    for c, config in enumerate(configs):
        state = dict(zip(inner, config, strict=True))
        for v in inner:
            logs[:, c] += np.log(net.tables[v][(state[v], *[state[p] for p in net.parents[v]])])
            if net.variables[v] in lik:
                with np.errstate(divide="ignore"):
                    logs[:, c] += np.log(lik[net.variables[v]][:, state[v]])
        for v in leaves:
            column = net.tables[v][(slice(None), *[state[p] for p in net.parents[v]])]
            a = lik.get(net.variables[v])
            with np.errstate(divide="ignore"):
                logs[:, c] += np.log(column.sum() if a is None else a @ column)
    peak = logs.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        weights = np.exp(logs - peak)  # NaN for impossible evidence
    log_z = peak[:, 0] + np.log(weights.sum(axis=1))
    marginals = {}
    for t in targets:
        v = index[t]
        position = inner.index(v)
        joint = np.stack(
            [weights[:, [c for c, cfg in enumerate(configs) if cfg[position] == s]].sum(axis=1) for s in range(net.cards[v])], axis=1
        )
        marginals[t] = joint / joint.sum(axis=1, keepdims=True)
    return log_z, marginals


@pytest.mark.parametrize("hub_target", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_the_sweep_equals_a_brute_force_sum_on_random_noisy_networks(seed, hub_target, always):
    """With the hub a target it is swept like a cause; without, the cases that observe it take it at its state
    (its factors enter each slot's start)."""
    net = _random_network(seed)
    rng = np.random.default_rng(100 + seed)
    lik = _random_evidence(net, rng, 40)
    targets = ["hub"] * hub_target + [f"c{i}" for i in range(5)]
    post = InferenceEngine(net).posterior(lik, targets, 40)
    assert post.route == "sweep"
    assert not post.extended.any()
    assert not post.own_contraction.any()
    log_z, marginals = _brute_force(net, lik, targets)
    assert_allclose(post.log_evidence, log_z, rtol=0, atol=1e-9)
    for t in targets:
        assert_allclose(post.marginals[t], marginals[t], atol=ATOL, rtol=0, err_msg=t)


@pytest.mark.parametrize("seed", range(3))
def test_rows_of_next_step_likelihoods_are_swept_and_equal_the_brute_force(seed, always):
    """Rows share their case's evidence and add likelihoods of their own (here on a cause and on a leaf at its
    lowest level, as next steps do): each row is swept with the product."""
    net = _random_network(seed)
    rng = np.random.default_rng(200 + seed)
    n = 12
    lik = _random_evidence(net, rng, n)
    row_case = np.repeat(np.arange(n), 3)
    cause = rng.uniform(0.0, 1.0, size=(row_case.size, 2))
    targets = ["hub", "c0", "c3"]
    post = InferenceEngine(net).posterior(lik, targets, n, row_case=row_case, row_likelihoods={"c1": cause})
    assert post.route == "sweep"
    merged = {name: a[row_case] for name, a in lik.items()}
    merged["c1"] = cause
    log_z, marginals = _brute_force(net, merged, targets)
    assert_allclose(post.log_evidence, log_z, rtol=0, atol=1e-9)
    for t in targets:
        assert_allclose(post.marginals[t], marginals[t], atol=ATOL, rtol=0, err_msg=t)


def test_a_soft_likelihood_that_is_not_constant_on_a_range_goes_to_quickscore_in_the_same_batch(always):
    net = _random_network(1)
    rng = np.random.default_rng(7)
    lik = _random_evidence(net, rng, 20)
    assert net.states[net.index()["f0"]] == ("yes", "no")
    lik["f0"][:5] = [0.2, 0.9]  # soft: not constant on a range of levels
    targets = ["hub", "c2"]
    post = InferenceEngine(net).posterior(lik, targets, 20)
    assert post.route == "quickscore"  # the five cases; the others were swept
    log_z, marginals = _brute_force(net, lik, targets)
    assert_allclose(post.log_evidence, log_z, rtol=0, atol=1e-9)
    for t in targets:
        assert_allclose(post.marginals[t], marginals[t], atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------ ill-conditioned cases
def test_cases_whose_signed_terms_cancel_past_extended_precision_are_exact_in_double_precision(always, monkeypatch):
    """The five rare causes of ``test_expansion``: with five positives Quickscore's terms cancel by ~3e16 and it
    needs contractions of their own. Swept, every case with two or more positives is exact, in double precision."""
    net, pg = _rare_causes_network()
    sets = [e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) >= 2]
    lik = {}
    for i in range(5):
        arr = np.ones((len(sets), 2))
        for k, e in enumerate(sets):
            if f"f{i}" in e:
                arr[k] = [1.0, 0.0] if e[f"f{i}"] == "yes" else [0.0, 1.0]
        lik[f"f{i}"] = arr
    post = InferenceEngine(net).posterior(lik, [f"c{i}" for i in range(5)], len(sets))
    assert post.route == "sweep"
    assert not post.extended.any()
    assert not post.own_contraction.any()
    assert_allclose(_present(post), _reference(pg, sets), atol=ATOL, rtol=0)


def test_without_forcing_the_sweep_takes_the_cases_quickscore_would_contract_on_their_own(monkeypatch):
    """Left to its defaults, a call of a few cases stays with Quickscore, except the cases whose terms cancel
    past extended precision (five positives, as signed terms): those are swept, not given contractions of their
    own."""
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)  # signed terms for every finding
    net, pg = _rare_causes_network()
    sets = [*[e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) == 5][:1], {"f0": "yes", "f1": "no"}]
    lik = {
        f"f{i}": np.array([[1.0, 0.0] if e.get(f"f{i}") == "yes" else [0.0, 1.0] if f"f{i}" in e else [1.0, 1.0] for e in sets])
        for i in range(5)
    }
    post = InferenceEngine(net).posterior(lik, [f"c{i}" for i in range(5)], len(sets))
    assert not post.own_contraction.any()
    assert_allclose(_present(post), _reference(pg, sets), atol=ATOL, rtol=0)
    monkeypatch.setattr(sweep, "SWEEP", False)
    assert InferenceEngine(net).posterior(lik, [f"c{i}" for i in range(5)], len(sets)).own_contraction[0]


# ------------------------------------------------------------------------------------------ the bundled model
def test_vignettes_with_many_positive_findings_are_swept_and_match_variable_elimination(bundled_model, ve_reference, always):
    from bayesdx.evaluation.vignettes import read_vignettes
    from bayesdx.evidence import likelihoods_from_evidence
    from bayesdx.posteriors import add_presenting

    model = bundled_model
    cases = [dict(e) for e in read_vignettes(DEV, model).evidence]
    positives = [sum(s != model.normal_states.get(v) for v, s in c.items() if v in model.findings) for c in cases]
    chosen = np.argsort(positives)[::-1][:6].tolist()
    chosen += [k for k, c in enumerate(cases) if "age_group" not in c and positives[k] >= 4][:1]  # a free hub
    chosen += [k for k, c in enumerate(cases) if "abnormal" in c.values() and positives[k] >= 3][:1]  # a range
    assert len(chosen) == 8
    picked = [cases[k] for k in chosen]
    lik = add_presenting(model, likelihoods_from_evidence(model, picked), len(picked))
    post = model.engine.posterior(lik, model.causes, len(picked))
    assert post.route == "sweep"
    for k, case in enumerate(picked):
        expected = ve_reference(model.network, model, {**model.presenting, **case})
        got = {h.id: float(post.marginals[h.node][k, model.states[h.node].index(h.state)]) for h in model.hypotheses}
        assert_allclose([got[h] for h in expected], list(expected.values()), atol=ATOL, rtol=0, err_msg=str(case))


# ---------------------------------------------------------------------------------- range and impossibility
def test_log_evidence_far_below_double_precision_and_impossible_evidence(always):
    net = _random_network(2)
    rng = np.random.default_rng(9)
    lik = _random_evidence(net, rng, 6)
    for name in ("f0", "f3", "f6"):
        lik[name] = lik[name] * 1e-200  # likelihoods scaled down: P(e) about 1e-600 and below
    index = net.index()
    impossible = {name: a.copy() for name, a in lik.items()}
    lik = {name: np.concatenate([a, impossible[name][:1]]) for name, a in lik.items()}
    dec = net.decompositions[index["f1"]]  # type: ignore[index]
    lik["f1"][-1] = 0.0  # the last case: a likelihood of zero on every state of a finding
    lik["f1"][-1, dec.order[-1]] = 0.0
    targets = ["hub", "c1"]
    post = InferenceEngine(net).posterior(lik, targets, 7)
    log_z, marginals = _brute_force(net, lik, targets)
    assert (post.log_evidence[:6] < -1300).all()
    assert_allclose(post.log_evidence[:6], log_z[:6], rtol=1e-12, atol=0)
    for t in targets:
        assert_allclose(post.marginals[t][:6], marginals[t][:6], atol=ATOL, rtol=0)
    assert post.impossible.tolist() == [False] * 6 + [True]


def test_a_group_of_cases_past_double_precision_is_swept_instead_of_redone_in_extended_precision(monkeypatch):
    """Defaults: twenty copies of cases whose signed terms cancel past double precision's budget but within
    extended precision's (two or three positives of rare causes). Swept, as a group, where the sweep costs
    less than the terms in extended precision (``RESCUE_RATIO``); with that ratio at zero, extended precision."""
    monkeypatch.setattr(quickscore, "TELESCOPE_PARENTS", -1)  # signed terms for every finding
    net, pg = _rare_causes_network()
    base = [e for e in _evidence_sets() if sum(s == "yes" for s in e.values()) in (2, 3)]
    sets = base * 20
    lik = {
        f"f{i}": np.array([[1.0, 0.0] if e.get(f"f{i}") == "yes" else [0.0, 1.0] if f"f{i}" in e else [1.0, 1.0] for e in sets])
        for i in range(5)
    }
    targets = [f"c{i}" for i in range(5)]
    post = InferenceEngine(net).posterior(lik, targets, len(sets))
    assert not post.extended.any()
    assert not post.own_contraction.any()
    assert_allclose(_present(post), np.tile(_reference(pg, base), (20, 1)), atol=ATOL, rtol=0)
    monkeypatch.setattr(sweep, "RESCUE_RATIO", 0.0)
    assert InferenceEngine(net).posterior(lik, targets, len(sets)).extended.any()


# ------------------------------------------------------------------------- from the review of the change
def _network(variables, states, parents, priors, leaves):
    """A network of roots (``priors``) and noisy leaves ``(order, leak CDF, parent CDFs (states, levels))``."""
    tables: list[np.ndarray] = [np.asarray(p, dtype=float) for p in priors]
    decs: list[Decomposition | None] = [None] * len(priors)
    for order, leak, cdfs in leaves:
        dec = Decomposition.from_cdfs(order, np.asarray(leak), [np.asarray(c) for c in cdfs])
        v = len(tables)
        tables.append(_noisy_table(dec, len(states[v]), [len(states[p]) for p in parents[v]]))
        decs.append(dec)
    return CompiledNetwork(tuple(variables), tuple(states), tuple(parents), tuple(tables), tuple(decs))


@pytest.mark.parametrize("small", [1e-64, 1e-70])
def test_tiny_factors_of_observed_parents_do_not_underflow_the_slots_start(small):
    """Six observed parents, each making its finding's observed middle level about ``small`` likely: their
    factors enter the slots' start; multiplied across slots in one step they underflowed (five of 1e-70: flagged
    impossible; five of 1e-64: three digits). Defaults: 20 cases go to the sweep."""
    k, n = sweep.SWEEP_SLOTS, 20  # as many findings as the default sweeps straight away
    cdfs_c = [[0.3, 0.6, 1.0], [1.0, 1.0, 1.0]]
    cdfs_d = [[0.2, 0.5, 1.0], [1.0, 1.0, 1.0]]
    leaves = [((0, 1, 2), [0.9, 0.99, 1.0], [[[0.8, 0.95, 1.0], [small * 1e-5, small, 1.0]], cdfs_c, cdfs_d])] * k
    net = _network(
        [f"h{j}" for j in range(k)] + ["c", "d"] + [f"f{j}" for j in range(k)],
        [("off", "on")] * k + [("present", "absent")] * 2 + [("l0", "l1", "l2")] * k,
        [()] * (k + 2) + [(j, k, k + 1) for j in range(k)],
        [[0.5, 0.5]] * k + [[0.3, 0.7], [0.4, 0.6]],
        leaves,
    )
    lik = {f"f{j}": np.tile([0.0, 1.0, 0.0], (n, 1)) for j in range(k)} | {f"h{j}": np.tile([0.0, 1.0], (n, 1)) for j in range(k)}
    for targets in (["c"], []):
        post = InferenceEngine(net).posterior(lik, targets, n)
        assert post.route == "sweep"
        log_z, marginals = _brute_force(net, lik, targets)
        assert not post.impossible.any()
        assert_allclose(post.log_evidence, log_z, rtol=1e-13, atol=0)
        for t in targets:
            assert_allclose(post.marginals[t], marginals[t], atol=ATOL, rtol=0)


@pytest.mark.parametrize("prior", [1e-100, 1e-160, 1e-170])
def test_causes_rarer_than_the_range_of_a_table_are_computed_in_a_contraction(prior, always):
    """Two positive findings, each of its own cause of prior ``prior`` and no leak: the end state the case needs
    is up to 1e-340 of the sweep's largest (every slot still in state 0). Below 1e-250 of it the case is
    computed again with its findings inside a contraction (before: flagged impossible at 1e-170)."""
    cdfs_cause, cdfs_hub = [[0.2, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]
    net = _network(
        ["h", "c0", "c1", "f0", "f1"],
        [("a", "b"), ("present", "absent"), ("present", "absent"), ("yes", "no"), ("yes", "no")],
        [(), (), (), (1, 0), (2, 0)],
        [[0.5, 0.5], [prior, 1 - prior], [prior, 1 - prior]],
        [((1, 0), [1.0, 1.0], [cdfs_cause, cdfs_hub])] * 2,
    )
    lik = {"f0": np.tile([1.0, 0.0], (3, 1)), "f1": np.tile([1.0, 0.0], (3, 1))}
    for targets in (["c0", "h"], []):
        post = InferenceEngine(net).posterior(lik, targets, 3)
        log_z, marginals = _brute_force(net, lik, targets)
        assert not post.impossible.any()
        assert_allclose(post.log_evidence, log_z, rtol=1e-13, atol=0)
        for t in targets:
            assert_allclose(post.marginals[t], marginals[t], atol=ATOL, rtol=0)


def test_leaves_without_cdfs_stay_with_quickscore_and_lowered_keys_do_not_depend_on_the_route(always):
    """A decomposition built from its weights and factors alone (no CDFs: no sweep) is still answered, and
    ``lower`` gives the same findings whichever route took the cases (a leak of L(0) = 0 has no lowered case)."""
    ref = Decomposition.from_cdfs((1, 0), np.array([0.95, 1.0]), [np.array([[0.3, 1.0], [1.0, 1.0]]), np.array([[0.6, 1.0], [1.0, 1.0]])])
    bare = CompiledNetwork(
        ("c0", "c1", "f0", "f1"),
        (("present", "absent"),) * 2 + (("yes", "no"),) * 2,
        ((), (), (0, 1), (0, 1)),
        (np.array([0.1, 0.9]), np.array([0.2, 0.8]), *[_noisy_table(ref, 2, [2, 2])] * 2),
        (None, None, Decomposition(ref.weights, ref.factors), Decomposition(ref.weights, ref.factors)),
    )
    lik = {"f0": np.tile([1.0, 0.0], (20, 1)), "f1": np.tile([1.0, 0.0], (20, 1))}
    post = InferenceEngine(bare).posterior(lik, ["c0", "c1"], 20)
    log_z, marginals = _brute_force(bare, lik, ["c0", "c1"])
    assert_allclose(post.log_evidence, log_z, rtol=1e-12, atol=0)
    assert_allclose(post.marginals["c0"], marginals["c0"], atol=ATOL, rtol=0)
    no_leak = _network(
        ["c0", "c1", "f0", "f1"],
        [("present", "absent")] * 2 + [("yes", "no")] * 2,
        [(), (), (0, 1), (0, 1)],
        [[0.1, 0.9], [0.2, 0.8]],
        [
            ((1, 0), [0.0, 1.0], [[[0.3, 1.0], [1.0, 1.0]], [[0.6, 1.0], [1.0, 1.0]]]),
            ((1, 0), [0.9, 1.0], [[[0.3, 1.0], [1.0, 1.0]], [[0.6, 1.0], [1.0, 1.0]]]),
        ],
    )
    lik = {"f0": np.array([[1.0, 0.0], [1.0, 0.0]]), "f1": np.array([[1.0, 0.0], [0.0, 1.0]])}  # two positives, one
    swept = InferenceEngine(no_leak).posterior(lik, ["c0"], 2, lower=["f0", "f1"])
    assert swept.route == "quickscore"  # the first case swept, the second by Quickscore
    sweep_off = InferenceEngine(no_leak)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep, "SWEEP", False)
        alone = sweep_off.posterior(lik, ["c0"], 2, lower=["f0", "f1"])
    assert sorted(swept.lowered) == sorted(alone.lowered) == ["f1"]
    assert InferenceEngine(no_leak).posterior(lik, [], 2, lower=["f0", "f1"]).lowered.keys() == {"f1"}  # no targets


@pytest.mark.parametrize("hub_target", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_a_slot_held_in_state_zero_is_the_case_with_that_finding_at_its_lowest_level(seed, hub_target, always, monkeypatch):
    """The lowered cases the counterfactual scores need come from the sweep itself: a slot whose range starts
    just above the lowest level, held in state 0 to the end, is the probability that every cause and the
    leak produced the lowest level, so its end state is ``P(e without v, v lowest)`` and one backward sweep
    from it gives the marginals. Against a brute-force sum with the finding's likelihood replaced by one at
    its lowest level (the slot's own likelihood value, such as 0.7 on a range, left out); a slot above a middle
    level (``[2, 2]``) has no such case."""
    monkeypatch.setattr(sweep, "HELD_UNITS", 1)
    net = _random_network(seed)
    rng = np.random.default_rng(300 + seed)
    n = 40
    lik = _random_evidence(net, rng, n)
    targets = ["hub"] * hub_target + [f"c{i}" for i in range(5)]
    leaves = [net.variables[v] for v, d in enumerate(net.decompositions or ()) if d is not None]
    post = InferenceEngine(net).posterior(lik, targets, n, lower=leaves)
    assert post.route == "sweep"
    checked = 0
    for name in leaves:
        dec = net.decompositions[net.index()[name]]  # type: ignore[index]
        by_level = lik[name][:, list(dec.order)]
        starts_at_one = (by_level[:, 0] == 0) & (by_level[:, 1] > 0)
        low = post.lowered[name]
        assert (low.available == starts_at_one).all(), name  # every such slot, and only those
        if not starts_at_one.any():
            continue
        cases = np.flatnonzero(starts_at_one)
        moved = {v: a[cases] for v, a in lik.items()}
        moved[name] = np.zeros((cases.size, len(dec.order)))
        moved[name][:, dec.order[0]] = 1.0
        log_z, marginals = _brute_force(net, moved, targets)
        assert_allclose(low.log_evidence[cases], log_z, rtol=0, atol=1e-9, err_msg=name)
        for t in targets:
            assert_allclose(low.marginals[t][cases], marginals[t], atol=ATOL, rtol=0, err_msg=f"{name}, {t}")
        checked += cases.size
    assert checked >= n  # about three such findings a case


def test_a_held_slot_that_is_impossible_gives_no_lowered_case(always, monkeypatch):
    """A cause observed present that always produces finding ``f0`` (its link probability one) makes ``f0`` at
    its lowest level impossible: that lowered case is not available (there is no posterior to give), while
    ``f1``'s is, and equals the brute force."""
    monkeypatch.setattr(sweep, "HELD_UNITS", 1)
    always_yes = [[[0.0, 1.0], [1.0, 1.0]], [[0.4, 1.0], [1.0, 1.0]]]
    sometimes = [[[0.3, 1.0], [1.0, 1.0]], [[0.6, 1.0], [1.0, 1.0]]]
    net = _network(
        ["c0", "c1", "f0", "f1", "f2"],
        [("present", "absent")] * 2 + [("yes", "no")] * 3,
        [(), (), (0, 1), (0, 1), (0, 1)],
        [[0.3, 0.7], [0.2, 0.8]],
        [((1, 0), [0.9, 1.0], always_yes), ((1, 0), [0.9, 1.0], sometimes), ((1, 0), [0.9, 1.0], sometimes)],
    )
    yes = np.tile([1.0, 0.0], (3, 1))
    lik = {"c0": np.tile([1.0, 0.0], (3, 1)), "f0": yes, "f1": yes, "f2": yes}
    post = InferenceEngine(net).posterior(lik, ["c1"], 3, lower=["f0", "f1"])
    assert post.route == "sweep"
    assert not post.lowered["f0"].available.any()
    assert post.lowered["f1"].available.all()
    moved = {**lik, "f1": np.tile([0.0, 1.0], (3, 1))}
    log_z, marginals = _brute_force(net, moved, ["c1"])
    assert_allclose(post.lowered["f1"].log_evidence, log_z, rtol=0, atol=1e-9)
    assert_allclose(post.lowered["f1"].marginals["c1"], marginals["c1"], atol=ATOL, rtol=0)


def test_an_impossible_case_gives_no_lowered_cases(always, monkeypatch):
    """An observed cause that always raises ``f0``, with ``f0`` observed at its lowest level: the case is
    impossible, and so is every case lowered from it (its single product is zero, its log scale -inf). None
    is available, as in Quickscore (a review found them available, with made-up marginals)."""
    monkeypatch.setattr(sweep, "HELD_UNITS", 1)
    always_yes = [[0.0, 1.0], [1.0, 1.0]]
    some = [[0.4, 1.0], [1.0, 1.0]]
    net = _network(
        ["c0", "c1", "f0", "f1", "f2"],
        [("present", "absent")] * 2 + [("yes", "no")] * 3,
        [(), (), (0,), (0, 1), (0, 1)],
        [[0.3, 0.7], [0.2, 0.8]],
        [((1, 0), [0.9, 1.0], [always_yes]), ((1, 0), [0.9, 1.0], [some, some]), ((1, 0), [0.9, 1.0], [some, some])],
    )
    yes, no = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    lik = {"c0": np.array([[1.0, 0.0]]), "f0": no, "f1": yes, "f2": yes}
    post = InferenceEngine(net).posterior(lik, ["c1"], 1, lower=["f1", "f2"])
    assert post.impossible.all()
    assert not post.lowered["f1"].available.any()
    assert not post.lowered["f2"].available.any()


def test_a_rare_observed_state_does_not_push_the_held_slot_into_subnormal_numbers(always, monkeypatch):
    """A cause observed present whose CPD given its free parent is about 1e-121, and a finding it raises unless
    a 1e-200 chance: the held slot's state sits 1e-200 below the running table, and the cause's table would
    take the whole table to about 1e-321 in one step, where that state loses its digits (a review found the
    lowered ``P(e)`` off by 0.16%). Each case's own tables are scaled to a largest entry of one first."""
    monkeypatch.setattr(sweep, "HELD_UNITS", 1)
    rare = 1e-121
    net = _network(
        ["h", "c", "f0", "f1"],
        [("h0", "h1"), ("present", "absent"), ("yes", "no"), ("yes", "no")],
        [(), (0,), (1, 0), (0,)],
        [[0.5, 0.5], [0.5, 0.5]],  # c's table replaced below
        [((1, 0), [0.9, 1.0], [[[1e-200, 1.0], [1.0, 1.0]], [[0.5, 1.0], [1.0, 1.0]]]), ((1, 0), [0.5, 1.0], [[[0.3, 1.0], [1.0, 1.0]]])],
    )
    tables = list(net.tables)
    tables[1] = np.array([[rare, 2 * rare], [1 - rare, 1 - 2 * rare]])
    net = CompiledNetwork(net.variables, net.states, net.parents, tuple(tables), net.decompositions)
    lik = {"c": np.array([[1.0, 0.0]]), "f0": np.array([[1.0, 0.0]]), "f1": np.array([[1.0, 0.0]])}
    post = InferenceEngine(net).posterior(lik, ["h"], 1, lower=["f0", "f1"])
    assert post.route == "sweep"
    low = post.lowered["f0"]
    assert low.available.all()
    log_z, marginals = _brute_force(net, {**lik, "f0": np.array([[0.0, 1.0]])}, ["h"])
    assert_allclose(low.log_evidence, log_z, rtol=0, atol=1e-9)
    assert_allclose(low.marginals["h"], marginals["h"], atol=ATOL, rtol=0)
