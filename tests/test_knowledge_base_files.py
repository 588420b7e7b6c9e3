"""Checks on the knowledge-base data files (models/*.toml, priors/*.toml).

These tests read the files with ``tomllib`` and ``csv`` only, not through the bayesdx package,
so they check the data independently of the loader. Every failure names the file and the key.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models"
PRIOR_DIR = REPO / "priors"
MODEL_FILE = MODEL_DIR / "leg_twitch.toml"
SHARED = Path(__file__).resolve().parents[2] / "shared"

MAX_PARENTS = 7
PROVENANCE_KEYS = ("quote", "assumption", "source")
CPD_KINDS = ("table", "noisy_or", "noisy_max", "cause_prior")


def _locate(default: Path, env_var: str) -> Path | None:
    if default.is_file():
        return default
    override = os.environ.get(env_var)
    if override and Path(override).is_file():
        return Path(override)
    return None


@pytest.fixture(scope="module")
def article() -> str:
    path = _locate(SHARED / "article" / "twitching-in-the-leg.txt", "BAYESDX_ARTICLE")
    if path is None:
        pytest.skip("article not found; set BAYESDX_ARTICLE to its path")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def vocabulary() -> list[dict[str, str]]:
    path = _locate(SHARED / "spec" / "vocabulary.csv", "BAYESDX_VOCABULARY")
    if path is None:
        pytest.skip("vocabulary.csv not found; set BAYESDX_VOCABULARY to its path")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["kind"] in ("cause", "finding", "test")]


@pytest.fixture(scope="module")
def model() -> dict:
    with MODEL_FILE.open("rb") as handle:
        return tomllib.load(handle)


def _prior_files() -> list[Path]:
    return sorted(PRIOR_DIR.glob("*.toml"))


def _load(path: Path) -> dict:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --------------------------------------------------------------------------------------
# Walking the TOML tree
# --------------------------------------------------------------------------------------


def _walk(value, key: str = ""):
    """Yield (dotted key, value) for every leaf and every table in a TOML document."""
    yield key, value
    if isinstance(value, dict):
        for child_key, child in value.items():
            yield from _walk(child, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{key}[{index}]")


_TAG = re.compile(r"\b(article|clinical|assumption|source)\s*:", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]+)"')


def article_quotes_in(text: str) -> list[str]:
    """Double-quoted passages that follow an ``article:`` tag, up to the next tag.

    An ellipsis inside a quote separates fragments; each fragment is checked on its own.
    """
    quotes: list[str] = []
    tags = list(_TAG.finditer(text))
    for index, tag in enumerate(tags):
        if tag.group(1).lower() != "article":
            continue
        end = tags[index + 1].start() if index + 1 < len(tags) else len(text)
        for quoted in _QUOTED.findall(text[tag.end() : end]):
            quotes.extend(part.strip() for part in quoted.split("...") if part.strip())
    return quotes


def _all_quotes() -> list[tuple[str, str, str]]:
    """(file, key, quote) for every quote in models/ and priors/."""
    found = []
    for path in [MODEL_FILE, *_prior_files()]:
        for key, value in _walk(_load(path)):
            if not isinstance(value, str):
                continue
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "quote":
                found.append((_rel(path), key, value))
            else:
                found.extend((_rel(path), key, quote) for quote in article_quotes_in(value))
    return found


def test_article_quote_extraction_follows_the_tags():
    text = 'article: "A b." and "C d"; clinical: Smith "not a quote"; article: "E ... F"'
    assert article_quotes_in(text) == ["A b.", "C d", "E", "F"]


# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------


def test_every_vocabulary_id_is_a_node_with_its_states_and_role(model, vocabulary):
    nodes = model["nodes"]
    problems = []
    for row in vocabulary:
        node_id, states = row["id"], row["states"].split("|")
        if node_id not in nodes:
            problems.append(f"{_rel(MODEL_FILE)}: [nodes.{node_id}] is missing")
            continue
        node = nodes[node_id]
        # every spelling of the vocabulary is accepted: as a state, or as an alias standing for several
        # finer states (electromyography = "abnormal" means myopathic or neurogenic)
        answers = [*node.get("states", []), *node.get("aliases", {})]
        if not set(states) <= set(answers) or (node.get("states") != states and not node.get("aliases")):
            problems.append(f"{_rel(MODEL_FILE)}: nodes.{node_id} accepts {answers!r}, the vocabulary says {states!r}")
        if node.get("role") != row["kind"]:
            problems.append(f"{_rel(MODEL_FILE)}: nodes.{node_id}.role is {node.get('role')!r}, the vocabulary says {row['kind']!r}")
    assert not problems, "\n".join(problems)


def test_nodes_outside_the_vocabulary_are_the_presenting_complaint_or_hidden(model, vocabulary):
    # The brief allows added nodes but never renamed ones: an added node must be the presenting complaint
    # (declared in [model.presenting], always observed) or a hidden modelling device, and carry a basis.
    known = {row["id"] for row in vocabulary}
    presenting = set(model["model"].get("presenting", {}))
    extra = sorted(set(model["nodes"]) - known)
    unexplained = [n for n in extra if n not in presenting and model["nodes"][n]["role"] != "hidden"]
    assert not unexplained, f"{_rel(MODEL_FILE)}: nodes not in the vocabulary: {unexplained}"
    assert all(model["nodes"][n].get("basis") or model["nodes"][n]["role"] == "hidden" for n in extra)


def test_every_node_has_label_description_and_one_cpd(model):
    problems = []
    for node_id, node in model["nodes"].items():
        for field in ("label", "description"):
            if not node.get(field):
                problems.append(f"{_rel(MODEL_FILE)}: nodes.{node_id}.{field} is missing")
        if node_id not in model["cpds"]:
            problems.append(f"{_rel(MODEL_FILE)}: [cpds.{node_id}] is missing")
    for cpd_id, cpd in model["cpds"].items():
        if cpd_id not in model["nodes"]:
            problems.append(f"{_rel(MODEL_FILE)}: cpds.{cpd_id} has no node")
        if cpd.get("kind") not in CPD_KINDS:
            problems.append(f"{_rel(MODEL_FILE)}: cpds.{cpd_id}.kind is {cpd.get('kind')!r}")
    assert not problems, "\n".join(problems)


def test_tests_have_a_cost_and_causes_use_cause_priors(model):
    problems = []
    for node_id, node in model["nodes"].items():
        kind = model["cpds"].get(node_id, {}).get("kind")
        if node["role"] == "test":
            cost = node.get("cost")
            if not isinstance(cost, (int, float)) or cost <= 0:
                problems.append(f"{_rel(MODEL_FILE)}: nodes.{node_id}.cost must be positive, got {cost!r}")
        if node["role"] == "cause" and kind != "cause_prior":
            problems.append(f"{_rel(MODEL_FILE)}: cpds.{node_id}.kind is {kind!r}, expected 'cause_prior'")
    assert not problems, "\n".join(problems)


def test_model_header(model):
    header = model["model"]
    assert model.get("format_version") == 1, f"{_rel(MODEL_FILE)}: format_version must be 1"
    for key, expected in (("id", "leg_twitch"), ("version", "1.0.0"), ("default_priors", "article")):
        assert header.get(key) == expected, f"{_rel(MODEL_FILE)}: model.{key} is {header.get(key)!r}"
    assert header.get("cost_scale"), f"{_rel(MODEL_FILE)}: model.cost_scale is missing"
    assert (PRIOR_DIR / f"{header['default_priors']}.toml").is_file(), (
        f"{_rel(MODEL_FILE)}: model.default_priors names a missing file priors/{header['default_priors']}.toml"
    )


# --------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------


def _parents(cpd: dict) -> list[str]:
    if cpd["kind"] in ("noisy_or", "noisy_max"):
        return list(cpd.get("links", {}))
    if cpd["kind"] == "cause_prior":
        return list(cpd.get("odds_ratios", {}))
    return list(cpd.get("parents", []))


def test_no_table_or_cause_cpd_has_more_than_seven_parents(model):
    # Full tables grow as 2^parents. Noisy-OR / noisy-MAX nodes are exempt: the engine contracts their
    # decomposition and build_network divorces them into parts of at most five parents for pgmpy.
    too_many = {
        node_id: len(_parents(cpd))
        for node_id, cpd in model["cpds"].items()
        if len(_parents(cpd)) > MAX_PARENTS and cpd["kind"] not in ("noisy_or", "noisy_max")
    }
    assert not too_many, f"{_rel(MODEL_FILE)}: more than {MAX_PARENTS} parents: {too_many}"


def test_parents_exist_and_graph_is_acyclic(model):
    parents = {node_id: _parents(cpd) for node_id, cpd in model["cpds"].items()}
    unknown = [f"cpds.{child} -> {parent}" for child, ps in parents.items() for parent in ps if parent not in model["nodes"]]
    assert not unknown, f"{_rel(MODEL_FILE)}: unknown parents: {unknown}"

    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise AssertionError(f"{_rel(MODEL_FILE)}: cycle {' -> '.join([*path, node])}")
        state[node] = 1
        for parent in parents.get(node, []):
            visit(parent, [*path, node])
        state[node] = 2

    for node in parents:
        visit(node, [])


# --------------------------------------------------------------------------------------
# Probabilities and provenance in the model
# --------------------------------------------------------------------------------------


def _is_probability(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def test_every_link_leak_and_odds_ratio_has_a_basis(model):
    problems = []
    for node_id, cpd in model["cpds"].items():
        where = f"{_rel(MODEL_FILE)}: cpds.{node_id}"
        if not cpd.get("basis") and not cpd.get("leak_basis"):
            problems.append(f"{where} has neither basis nor leak_basis")
        if "leak" in cpd and not cpd.get("leak_basis"):
            problems.append(f"{where}.leak_basis is missing")
        for parent, link in cpd.get("links", {}).items():
            if not link.get("basis"):
                problems.append(f"{where}.links.{parent}.basis is missing")
        for parent, ratios in cpd.get("odds_ratios", {}).items():
            if not ratios.get("basis"):
                problems.append(f"{where}.odds_ratios.{parent}.basis is missing")
    assert not problems, "\n".join(problems)


def test_probabilities_are_in_range_and_tables_sum_to_one(model):
    problems = []
    nodes = model["nodes"]
    for node_id, cpd in model["cpds"].items():
        where = f"{_rel(MODEL_FILE)}: cpds.{node_id}"
        states = nodes[node_id]["states"]
        kind = cpd["kind"]
        if kind == "table":
            rows = [("probabilities", cpd.get("probabilities"))]
            if "default" in cpd:
                rows.append(("default", cpd["default"]))
            rows += [(f"rows[{i}].probabilities", row["probabilities"]) for i, row in enumerate(cpd.get("rows", []))]
            for key, dist in rows:
                if dist is None:
                    continue
                if len(dist) != len(states) or not all(map(_is_probability, dist)):
                    problems.append(f"{where}.{key} = {dist!r} is not a distribution over {states}")
                elif not math.isclose(sum(dist), 1.0, abs_tol=1e-9):
                    problems.append(f"{where}.{key} sums to {sum(dist)!r}, not 1")
        elif kind == "noisy_or":
            if not _is_probability(cpd.get("leak")):
                problems.append(f"{where}.leak = {cpd.get('leak')!r} is not in [0, 1]")
            positive = cpd.get("positive")
            if positive is not None and positive not in states:
                problems.append(f"{where}.positive = {positive!r} is not a state of {node_id}")
            if positive is None and not {"yes", "abnormal", "present", "true"} & set(states):
                problems.append(f"{where}.positive is needed: {states} has no default positive state")
            for parent, link in cpd.get("links", {}).items():
                p = link.get("probability")
                values = p.values() if isinstance(p, dict) else [p]
                if isinstance(p, dict):
                    bad_states = set(p) - set(nodes[parent]["states"])
                    if bad_states:
                        problems.append(f"{where}.links.{parent}.probability names unknown states {sorted(bad_states)}")
                if not all(map(_is_probability, values)):
                    problems.append(f"{where}.links.{parent}.probability = {p!r} is not in [0, 1]")
        elif kind == "noisy_max":
            dists = [("leak", cpd.get("leak"))]
            dists += [(f"links.{parent}.probabilities", link.get("probabilities")) for parent, link in cpd.get("links", {}).items()]
            for key, dist in dists:
                if not isinstance(dist, list) or len(dist) != len(states) or not all(map(_is_probability, dist)):
                    problems.append(f"{where}.{key} = {dist!r} is not a distribution over {states}")
                elif not math.isclose(sum(dist), 1.0, abs_tol=1e-9):
                    problems.append(f"{where}.{key} sums to {sum(dist)!r}, not 1")
        elif kind == "cause_prior":
            if states != ["present", "absent"]:
                problems.append(f"{where}: a cause_prior node must have states ['present', 'absent']")
            for parent, ratios in cpd.get("odds_ratios", {}).items():
                for state, ratio in ratios.items():
                    if state == "basis":
                        continue
                    if state not in nodes[parent]["states"]:
                        problems.append(f"{where}.odds_ratios.{parent}.{state}: {state!r} is not a state of {parent}")
                    if not isinstance(ratio, (int, float)) or ratio <= 0:
                        problems.append(f"{where}.odds_ratios.{parent}.{state} = {ratio!r} must be positive")
    assert not problems, "\n".join(problems)


def test_every_cause_cause_edge_is_between_causes(model):
    roles = {node_id: node["role"] for node_id, node in model["nodes"].items()}
    problems = []
    for node_id, cpd in model["cpds"].items():
        if cpd["kind"] != "cause_prior":
            continue
        for parent in cpd.get("odds_ratios", {}):
            if roles.get(parent) != "cause" and parent not in ("age_group", "sex"):
                problems.append(f"{_rel(MODEL_FILE)}: cpds.{node_id}.odds_ratios.{parent} is not a cause, age or sex")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# Quotes
# --------------------------------------------------------------------------------------


def test_every_quote_is_verbatim_in_the_article(article):
    quotes = _all_quotes()
    assert quotes, "no quotes found in models/ or priors/"
    missing = [f"{file}: {key}: {quote!r}" for file, key, quote in quotes if quote not in article]
    assert not missing, "quotes not found verbatim in the article:\n" + "\n".join(missing)


# --------------------------------------------------------------------------------------
# Prior files
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cause_ids(model) -> set[str]:
    return {node_id for node_id, cpd in model["cpds"].items() if cpd["kind"] == "cause_prior"}


def test_there_are_prior_files():
    names = {path.stem for path in _prior_files()}
    expected = {"article", "uniform", "epidemiology"}
    assert expected <= names, f"priors/: missing {sorted(expected - names)}"
    assert len(names) >= 4, f"priors/: expected a second verbal-scale setting, found {sorted(names)}"


@pytest.mark.parametrize("path", _prior_files(), ids=lambda p: p.name)
def test_prior_file_covers_every_cause_with_one_provenance(path, cause_ids):
    data = _load(path)
    where = _rel(path)
    problems = []
    if data.get("format_version") != 1:
        problems.append(f"{where}: format_version must be 1")
    setting = data.get("setting", {})
    for key in ("id", "title", "description", "scale"):
        if not setting.get(key):
            problems.append(f"{where}: setting.{key} is missing")
    if setting.get("id") != path.stem:
        problems.append(f"{where}: setting.id is {setting.get('id')!r}, expected {path.stem!r}")
    terms = data.get("scale", {}).get("terms", {})
    for term, value in terms.items():
        if not _is_probability(value) or value in (0, 1):
            problems.append(f"{where}: scale.terms.{term!r} = {value!r} is not in (0, 1)")
    causes = data.get("causes", {})
    for missing in sorted(cause_ids - set(causes)):
        problems.append(f"{where}: [causes.{missing}] is missing")
    for unknown in sorted(set(causes) - cause_ids):
        problems.append(f"{where}: causes.{unknown} is not a cause of the model")
    for cause, entry in causes.items():
        key = f"{where}: causes.{cause}"
        provenance = [name for name in PROVENANCE_KEYS if entry.get(name)]
        if not provenance:
            problems.append(f"{key} needs at least one of {PROVENANCE_KEYS}")
        if path.stem.startswith("article") and "quote" not in entry:
            # issue 11: the article names all twenty causes, so each carries the sentence that names it
            problems.append(f"{key} needs the quote of the article sentence that names it")
        if "quote" in entry and "qualifier" not in entry and not (entry.get("assumption") or entry.get("source")):
            problems.append(f"{key}: a quote without a qualifier says nothing about the number; add the assumption")
        qualifier, probability = entry.get("qualifier"), entry.get("probability")
        if qualifier is None and probability is None:
            problems.append(f"{key} needs a probability or a qualifier")
        if qualifier is not None:
            if qualifier not in terms:
                problems.append(f"{key}.qualifier {qualifier!r} is not in scale.terms {sorted(terms)}")
            elif probability is not None and not math.isclose(probability, terms[qualifier]):
                problems.append(f"{key}: probability {probability} disagrees with qualifier {qualifier!r} = {terms[qualifier]}")
            if "quote" not in entry:
                problems.append(f"{key}: a qualifier must come with the quote it was read from")
        if probability is not None and (not _is_probability(probability) or probability in (0, 1)):
            problems.append(f"{key}.probability = {probability!r} is not in (0, 1)")
    assert not problems, "\n".join(problems)


def test_article_settings_share_quotes_and_assumptions():
    """The second verbal scale changes only the term values, not the reading of the article."""
    article_causes = _load(PRIOR_DIR / "article.toml")["causes"]
    for path in _prior_files():
        if path.stem == "article" or not path.stem.startswith("article"):
            continue
        assert _load(path)["causes"] == article_causes, f"{_rel(path)}: causes differ from priors/article.toml"
