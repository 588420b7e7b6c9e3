"""Counterfactual ranking: what would stop if a cause were cured (Richens, Lee and Johri 2020).

The posterior answers "which conditions are present?". A person who presents with twitching asks "what is
causing it?". Richens, Lee and Johri (Improving the accuracy of medical diagnosis with causal machine
learning, Nature Communications 2020;11:3923) rank a cause by its *expected disablement*: the expected number
of the patient's positive findings that would switch off if the cause alone were cured, computed on the twin
network (the factual world and the world where the cause is set to its normal state, sharing every noise
term). On noisy-OR networks this has a closed form.

Closed form
-----------
Write a noisy-OR finding ``S`` with leak ``l`` and links ``p_i`` as ``S = L or OR_i (X_i and A_i)`` with
independent activations ``L ~ Bern(l)``, ``A_i ~ Bern(p_i)``. Curing cause ``D`` (setting it to its normal
state) leaves every other cause and every activation as it was. ``S`` was on and would be off exactly when
``D`` was in the hypothesised state, its own activation fired, and nothing else did::

    P(S' = off, S = on, e) = sum_x P(x, e \\ S) [x_D = d] p_D (1 - l) prod_{i != D active in x} (1 - p_i)
                           = p_D / (1 - p_D) * P(S = off, D = d, e \\ S)

because ``P(S = off | x) = (1 - l) prod_{i active} (1 - p_i)`` holds the factor ``(1 - p_D)`` whenever
``x_D = d``. So each term is one exact evidence probability of the engine (the case's evidence with ``S``
observed off and ``D`` clamped to ``d``), divided by ``P(e)``. No sampling, no enumeration of configurations.

The same holds for a graded (noisy-MAX) finding whose lowest level is its normal state, such as a creatine
kinase that is normal, mildly or markedly raised: it is switched off when it would fall to the normal level.
Observed at level ``y`` (or with a likelihood ``lambda`` over the raised levels, as for the answer
``abnormal``), the odds ``p_D / (1 - p_D)`` become ``sum_y lambda(y) P(Z_D = y) / P(Z_D = 0)``, with
``Z_D`` the level cause ``D`` alone produces.

Scores
------
``disablement``
    For the presenting complaint alone (``[model.presenting]``): the probability that curing the cause would
    stop the twitching, ``P(complaint' = off | do(D = normal), e)``. For one cause these events are disjoint
    across causes (each says "this cause alone produced the complaint"), so the scores of all causes sum to
    at most one: the rest is the chance that several causes, or the leak, produce it.
``expected_disablement``
    The sum of that probability over every positive noisy-OR finding and test of the case (the complaint
    included): Richens' expected disablement.

Scope
-----
Curing ``D`` acts on ``D`` only: other causes keep their factual states even where ``D`` is their parent in
the network (curing diabetes does not undo an existing neuropathy), so the score is the cause's direct
effect on the findings. Findings counted are noisy-OR and noisy-MAX findings and tests observed away from their normal state (hard
or soft evidence that rules the normal level out); nodes without a normal lowest level (the time course)
and table nodes count nothing. Nor does a finding in a case that observes one of its descendants (the
closed form needs the rest of the evidence to be independent of the finding given its parents; the
bundled model's findings have no children). A link that always leaves the normal level (probability 1)
has no closed form: a case whose finding it would score raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .cpd_tables import noisy_parameters
from .engine.network import CompiledNetwork, Lowered
from .model import Model

__all__ = ["RANKINGS", "CounterfactualScores", "counterfactual_findings", "counterfactual_scores"]

#: The ranking scores :func:`bayesdx.rank_causes` accepts, and what each ranks by.
RANKINGS = {
    "posterior": "the posterior probability that the cause is present",
    "disablement": "the probability that curing the cause alone would stop the presenting complaint",
    "expected_disablement": "the expected number of positive findings that curing the cause alone would switch off",
}

#: Rows (case x finding) sent to the engine at once.
ROW_BLOCK = 20_000


@dataclass(frozen=True)
class _Link:
    finding: str
    negative: int  # state index of the finding's normal (lowest-level) state
    hypothesis: int  # index into model.hypotheses
    cause: str
    state: int  # the cause's state index for this hypothesis
    odds: np.ndarray | None  # per state of the finding: P(Z_D = level) / P(Z_D = lowest); None if P(Z_D = lowest) = 0
    descendants: tuple[str, ...]  # the finding's descendants: evidence on them voids the closed form


@dataclass(frozen=True)
class CounterfactualScores:
    """Counterfactual scores of every hypothesis for a batch of cases.

    Attributes
    ----------
    disablement : numpy.ndarray
        ``(n_cases, n_hypotheses)``: probability that curing the cause would stop the presenting complaint.
    expected_disablement : numpy.ndarray
        ``(n_cases, n_hypotheses)``: expected number of positive findings curing the cause would switch off.
    """

    disablement: np.ndarray
    expected_disablement: np.ndarray


def _links(model: Model) -> list[_Link]:
    """Every (noisy finding or test with a normal lowest level, cause hypothesis) link, with its odds."""
    return _link_table(model).links


def _read_links(model: Model) -> list[_Link]:
    spec = model.spec
    if spec is None:
        raise ValueError(
            f"Counterfactual ranking needs noisy-OR links declared in a model file; model {model.id!r} is a "
            "network of full tables. Use ranking='posterior'."
        )
    by_node: dict[str, list[int]] = {}
    for k, h in enumerate(model.hypotheses):
        by_node.setdefault(h.node, []).append(k)
    children: dict[str, list[str]] = {}
    for node in spec.nodes:
        for parent in spec.parents(node):
            children.setdefault(parent, []).append(node)

    def below(node: str) -> set[str]:
        found: set[str] = set()
        todo = list(children.get(node, ()))
        while todo:
            child = todo.pop()
            if child not in found:
                found.add(child)
                todo.extend(children.get(child, ()))
        return found

    descendants = {node: tuple(sorted(below(node))) for node in spec.nodes}
    links = []
    for node, cpd in spec.cpds.items():
        if cpd.get("kind") not in ("noisy_or", "noisy_max") or model.role(node) not in ("finding", "test"):
            continue
        params = noisy_parameters(spec, node)
        lowest = params.order[0]
        if model.states[node][lowest] != model.normal_states.get(node):
            continue  # no normal lowest level (the time course): nothing to switch off
        for parent, cdf in zip(spec.parents(node), params.parent_cdfs, strict=True):
            for k in by_node.get(parent, ()):
                state = model.states[parent].index(model.hypotheses[k].state)
                pmf = np.diff(cdf[state], prepend=0.0)  # by level
                if pmf[0] >= 1.0:
                    continue  # this state produces nothing
                odds = None
                if pmf[0] > 0.0:
                    odds = np.zeros(len(params.order))
                    for level, index in enumerate(params.order):
                        odds[index] = pmf[level] / pmf[0] if level else 0.0
                links.append(_Link(node, lowest, k, parent, state, odds, descendants[node]))
    return links


def counterfactual_findings(model: Model) -> list[str]:
    """The findings whose counterfactual rows the scores need: to ask the engine for them as ``lower``."""
    return sorted({link.finding for link in _links(model)}, key=list(model.states).index)


def counterfactual_scores(
    model: Model,
    likelihoods: Mapping[str, np.ndarray],
    log_evidence: np.ndarray,
    n_cases: int,
    lowered: Mapping[str, Lowered] | None = None,
    marginals: Mapping[str, np.ndarray] | None = None,
) -> CounterfactualScores:
    """Exact counterfactual scores for a batch of cases.

    Parameters
    ----------
    model : Model
        A model read from a model file (its noisy-OR links define the twin network).
    likelihoods : mapping of str to numpy.ndarray
        The cases' evidence as per-variable likelihood arrays of shape ``(n_cases, n_states)``, the
        presenting complaint included.
    log_evidence : numpy.ndarray
        ``log P(e)`` of each case (from the same engine).
    n_cases : int
    lowered : mapping of str to Lowered, optional
        The same engine call's cases with a finding observed at its lowest level (asked with ``lower`` =
        :func:`counterfactual_findings`): where available they are the rows below, computed already.
    marginals : mapping of str to numpy.ndarray, optional
        The same engine call's posterior marginals of the causes, ``(n_cases, n_states)`` each: a finding with at
        most one parent the case does not observe in one state gets its rows from them (see
        :func:`_from_the_marginals`) instead of from the engine.

    Returns
    -------
    CounterfactualScores
    """
    links = _links(model)
    n_hyp = len(model.hypotheses)
    disable = np.zeros((n_cases, n_hyp))
    expected = np.zeros((n_cases, n_hyp))
    # every (case, link) whose finding the case observed positive (hard evidence), link by link
    row_case: list[np.ndarray] = []
    row_link: list[np.ndarray] = []
    row_odds: list[np.ndarray] = []  # sum_y lambda(y) P(Z_D = y) / P(Z_D = 0), from the case's own likelihood
    for finding in _link_table(model).findings.values():
        lam = likelihoods.get(finding.name)
        if lam is None:
            continue
        hit = (lam[:, finding.negative] == 0) & (lam.max(axis=1) > 0)
        for below_node in finding.descendants:  # evidence below the finding: not counted (see Scope)
            other = likelihoods.get(below_node)
            if other is not None:
                hit &= (other == other[:, :1]).all(axis=1)
        hit = np.flatnonzero(hit)
        if not hit.size:
            continue
        if finding.odds is None:
            link = next(links[j] for j in finding.links if links[j].odds is None)
            raise ValueError(
                f"The link {link.cause}={model.states[link.cause][link.state]} -> {link.finding} always leaves the "
                f"normal level {model.states[link.finding][link.negative]!r} (probability 1), so its counterfactual "
                f"score has no closed form here; rank with ranking='posterior' or give the link a probability below 1."
            )
        row_case.append(np.tile(hit, finding.links.size))
        row_link.append(np.repeat(finding.links, hit.size))
        row_odds.append((lam[hit] @ finding.odds).T.ravel())
    if not row_case:
        return CounterfactualScores(disable, expected)
    cases = np.concatenate(row_case)
    link_ids = np.concatenate(row_link)
    # One engine row per (case, finding), not per (case, link): with the finding observed off, the posterior
    # marginal of each cause gives every P(S = off, D = d, e \ S) = P(D = d | e \ S, S = off) P(e \ S, S = off)
    # at once (the clamp D = d of the closed form is read off the marginal).
    names = list(model.states)
    table = _link_table(model)
    finding_of = table.finding[link_ids]
    # the distinct (case, finding) pairs, case by case (one integer key each: a sort of a 1-d array is about ten
    # times faster than numpy's unique over the columns of a 2-d one)
    keys, pair_of = np.unique(cases * len(names) + finding_of, return_inverse=True)
    pairs = np.stack(np.divmod(keys, len(names)))
    pair_of = pair_of.ravel()
    hyp = table.hypothesis[link_ids]
    causes = sorted({links[j].cause for j in np.unique(link_ids)}, key=names.index)
    n_pairs = pairs.shape[1]
    pair_log = np.full(n_pairs, -np.inf)  # log P(e \ S, S = off) of each (case, finding)
    pair_marg = np.full((n_pairs, n_hyp), np.nan)  # P(D = d | e \ S, S = off) of each (case, finding) and hypothesis
    todo = np.ones(n_pairs, dtype=bool)
    compiled_index = model.compiled.index()
    for f in np.unique(pairs[1]):
        done = (lowered or {}).get(names[f])
        if done is None or table.findings[names[f]].negative != _lowest(model.compiled, compiled_index[names[f]]):
            continue
        sel = np.flatnonzero((pairs[1] == f) & done.available[pairs[0]])
        pair_log[sel] = done.log_evidence[pairs[0, sel]]
        for k in table.findings[names[f]].hypotheses:  # the hypotheses linked to the finding: the ones read below
            h = model.hypotheses[k]
            pair_marg[sel, k] = done.marginals[h.node][pairs[0, sel], model.states[h.node].index(h.state)]
        todo[sel] = False
    if marginals is not None and todo.any():
        _from_the_marginals(model, likelihoods, marginals, log_evidence, pairs, todo, pair_log, pair_marg, compiled_index)
    todo_pairs = np.flatnonzero(todo)
    for start in range(0, todo_pairs.size, ROW_BLOCK):
        part = todo_pairs[start : start + ROW_BLOCK]
        rc, rf = pairs[0, part], pairs[1, part]
        rows = {v: a[rc].copy() for v, a in likelihoods.items()}
        for f in np.unique(rf):
            off = np.zeros(len(model.states[names[f]]))
            off[table.findings[names[f]].negative] = 1.0
            rows[names[f]][rf == f] = off
        post = model.engine.posterior(rows, causes, rc.size)
        pair_log[part] = np.where(post.impossible, -np.inf, post.log_evidence)
        for k, h in enumerate(model.hypotheses):
            if h.node in post.marginals:
                pair_marg[part, k] = post.marginals[h.node][:, model.states[h.node].index(h.state)]
    ratio = np.where(np.isfinite(pair_log), np.exp(pair_log - log_evidence[pairs[0]]), 0.0)
    joint = pair_marg[pair_of, hyp]
    value = np.concatenate(row_odds) * np.nan_to_num(joint) * ratio[pair_of]
    in_complaint = table.in_complaint[link_ids]
    np.add.at(expected, (cases, hyp), value)
    np.add.at(disable, (cases[in_complaint], hyp[in_complaint]), value[in_complaint])
    return CounterfactualScores(disable, expected)


def _from_the_marginals(
    model: Model,
    likelihoods: Mapping[str, np.ndarray],
    marginals: Mapping[str, np.ndarray],
    log_evidence: np.ndarray,
    pairs: np.ndarray,
    todo: np.ndarray,
    pair_log: np.ndarray,
    pair_marg: np.ndarray,
    index: Mapping[str, int],
) -> None:
    """The rows of the pairs ``todo`` (``pairs``: case, finding) whose finding has at most one parent the case
    does not observe in one state, a cause, from the ranking's marginals: in place, ``todo`` cleared there.

    With the other parents ``h`` observed, the finding ``S`` (no evidence below it) enters ``P(e)`` as the factor
    ``P(e_S | d, h) = sum_y lambda_S(y) P(S = y | d, h)`` on its free parent ``D``, and its normal state as
    ``P(S = off | d, h)``. So ``P(D = d, e \\ S, S = off) = P(D = d, e) P(S = off | d, h) / P(e_S | d, h)``: the
    ranking's marginal of ``D`` times a ratio of two entries of the finding's table, no subtraction. A pair where
    some ``P(e_S | d, h)`` is zero (``P(D = d, e)`` then says nothing of ``P(D = d, e \\ S)``) stays for the engine.
    With no free parent the ratio is one number and the marginals do not change. (``index``: each variable's
    position in the compiled network.)
    """
    net = model.compiled
    names = list(model.states)
    table = _link_table(model)
    for f in np.unique(pairs[1, todo]):
        name = names[f]
        finding = table.findings[name]
        v = index[name]
        sel = np.flatnonzero(todo & (pairs[1] == f))
        cases = pairs[0, sel]
        parents = [net.variables[p] for p in net.parents[v]]
        observed = np.full((len(parents), sel.size), -1)  # each parent's state where the case observes it in one
        for j, parent in enumerate(parents):
            lam = likelihoods.get(parent)
            if lam is not None:
                nonzero = lam[cases] != 0
                observed[j] = np.where(nonzero.sum(axis=1) == 1, np.argmax(nonzero, axis=1), -1)
        free = observed < 0
        n_free = free.sum(axis=0)
        for j in (None, *range(len(parents))):  # no free parent, or parent j alone
            if j is None:
                mine = np.flatnonzero(n_free == 0)
            elif parents[j] in marginals:
                mine = np.flatnonzero((n_free == 1) & free[j])
            else:
                continue  # not a cause: the ranking has no marginal of it
            if not mine.size:
                continue
            hard = [i for i in range(len(parents)) if i != j]
            # the finding's table at the observed parents: (pairs, finding states, states of the free parent)
            moved = np.moveaxis(net.tables[v], [0] if j is None else [0, 1 + j], [-1] if j is None else [-2, -1])
            cpd = moved[tuple(observed[i, mine] for i in hard)] if hard else np.broadcast_to(moved, (mine.size, *moved.shape))
            if j is None:
                cpd = cpd[:, :, None]
            at = cases[mine]
            evidence = np.einsum("ny,nyd->nd", likelihoods[name][at], cpd)  # P(e_S | d, h)
            fine = (evidence > 0).all(axis=1)
            mine, at, evidence, cpd = mine[fine], at[fine], evidence[fine], cpd[fine]
            weight = cpd[:, finding.negative, :] / evidence  # P(S = off | d, h) / P(e_S | d, h)
            if j is not None:
                weight = weight * marginals[parents[j]][at]
            total = weight.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                pair_log[sel[mine]] = log_evidence[at] + np.log(total)
                for k in finding.hypotheses:
                    h = model.hypotheses[k]
                    state = model.states[h.node].index(h.state)
                    if j is not None and h.node == parents[j]:
                        pair_marg[sel[mine], k] = weight[:, state] / total
                    else:  # a parent the case observes in one state: its marginal stays as it is
                        pair_marg[sel[mine], k] = marginals[h.node][at, state]
            todo[sel[mine]] = False


@dataclass(frozen=True)
class _Finding:
    """A finding's links (consecutive positions in :func:`_links`), their odds, ``(states, links)`` (None where
    a link has none), and the hypotheses they link it to."""

    name: str
    negative: int
    descendants: tuple[str, ...]
    links: np.ndarray
    odds: np.ndarray | None
    hypotheses: list[int]


@dataclass(frozen=True)
class _LinkTable:
    """The links; the same grouped by finding, in their order; per link its finding's position among the model's
    variables, its hypothesis, and whether its finding is the presenting complaint."""

    links: list[_Link]
    findings: dict[str, _Finding]
    finding: np.ndarray
    hypothesis: np.ndarray
    in_complaint: np.ndarray


def _link_table(model: Model) -> _LinkTable:
    """The links of the model and their arrays (worked out once per model: the model is immutable)."""
    cached = model.__dict__.get("_counterfactual_links")
    if cached is None:
        links = _read_links(model)
        findings = {}
        for name in dict.fromkeys(link.finding for link in links):
            at = np.array([j for j, link in enumerate(links) if link.finding == name])
            assert (np.diff(at) == 1).all()  # _read_links gives a finding's links one after the other
            odds = [links[j].odds for j in at]
            stacked = None if any(o is None for o in odds) else np.stack(odds, axis=1)  # type: ignore[arg-type]
            first = links[at[0]]
            hypotheses = list(dict.fromkeys(links[j].hypothesis for j in at))
            findings[name] = _Finding(name, first.negative, first.descendants, at, stacked, hypotheses)
        position = {name: k for k, name in enumerate(model.states)}
        complaint = set(model.presenting)
        cached = model.__dict__["_counterfactual_links"] = _LinkTable(
            links,
            findings,
            np.array([position[link.finding] for link in links], dtype=np.int64),
            np.array([link.hypothesis for link in links], dtype=np.int64),
            np.array([link.finding in complaint for link in links], dtype=bool),
        )
    return cached


def _lowest(net: CompiledNetwork, v: int) -> int:
    """The state of a noisy finding's lowest level (the engine's ``lower``), -1 for a finding not decomposed."""
    dec = net.decompositions[v] if net.decompositions is not None else None
    return dec.order[0] if dec is not None and dec.order else -1
