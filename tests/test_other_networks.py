"""Networks other than model files: BIF, XMLBIF and pgmpy objects, with roles given as arguments."""

from __future__ import annotations

import re

import pytest
from numpy.testing import assert_allclose

import bayesdx

ATOL = 1e-9


def _safe(state):
    return re.sub(r"[^A-Za-z0-9_]", "_", str(state).replace(">=", "ge").replace("<", "lt").replace(">", "gt"))


def _xml_safe(network):
    """child with its state names ``<7.5``/``>=7.5`` renamed: pgmpy 1.1's XMLBIF writer and reader do not
    round-trip ``<`` and ``>`` in state names ("Repeated state names for variable: CO2Report")."""
    from pgmpy.factors.discrete import TabularCPD

    copy = network.copy()
    cpds = []
    for cpd in network.get_cpds():
        names = {v: [_safe(s) for s in cpd.state_names[v]] for v in cpd.variables}
        parents = list(cpd.variables[1:])
        cpds.append(
            TabularCPD(
                cpd.variable,
                len(names[cpd.variable]),
                cpd.get_values(),
                evidence=parents or None,
                evidence_card=[len(names[p]) for p in parents] or None,
                state_names=names,
            )
        )
    copy.remove_cpds(*copy.get_cpds())
    copy.add_cpds(*cpds)
    return copy


def _write(writer, path):
    (writer.write if hasattr(writer, "write") else getattr(writer, f"write_{path.suffix[1:]}"))(str(path))


@pytest.fixture(scope="module")
def child_files(child_network, tmp_path_factory):
    """child written with pgmpy's own BIF and XMLBIF writers."""
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    folder = tmp_path_factory.mktemp("child")
    bif, xml = folder / "child.bif", folder / "child.xml"
    _write(BIFWriter(child_network), bif)
    _write(XMLBIFWriter(_xml_safe(child_network)), xml)
    return {"bif": bif, "xml": xml}


@pytest.mark.parametrize("fmt", ["bif", "xml"])
def test_child_from_file_has_roles_from_arguments(child_files, child_network, fmt):
    path = child_files[fmt]
    model = bayesdx.load_model(path, causes=["Disease"], tests=["XrayReport", "CO2Report"])
    nodes = {str(n) for n in child_network.nodes()}
    assert model.causes == ("Disease",)
    assert model.tests == ("XrayReport", "CO2Report")
    assert set(model.findings) == nodes - {"Disease", "XrayReport", "CO2Report"}  # every other node is a finding
    assert len(model.findings) == len(nodes) - 3
    assert model.role("Age") == "finding"
    assert model.role("XrayReport") == "test"
    assert model.id == "child"
    assert model.priors == "network"
    assert model.source == str(path)


@pytest.mark.parametrize("fmt", ["bif", "xml"])
def test_child_from_file_matches_pgmpy_variable_elimination_on_the_original(
    child_files, child_network, ve_reference, evidence_sampler, rng, fmt
):
    model = bayesdx.load_model(child_files[fmt], causes=["Disease"])
    # Disease has no state named absent/normal/no/false: each of its six states is a hypothesis
    assert [h.id for h in model.hypotheses] == [f"Disease={s}" for s in model.states["Disease"]]
    assert len(model.hypotheses) == 6
    for case in evidence_sampler(child_network, 6, rng, observe=0.3, exclude=["Disease"]):
        if fmt == "xml":  # the renamed states of _xml_safe
            case = {v: _safe(s) for v, s in case.items()}
        dx = bayesdx.rank_causes(case, model=model)
        reference = child_network if fmt == "bif" else _xml_safe(child_network)
        expected = ve_reference(reference, model, case)
        assert_allclose([dx.probability(i) for i in expected], list(expected.values()), atol=ATOL, rtol=0)


def test_hepar2_hypotheses_leave_out_the_absent_state(hepar2_model):
    ids = [h.id for h in hepar2_model.hypotheses]
    # binary causes with an "absent" state are named by their node
    for binary in ("PBC", "hepatotoxic", "THepatitis", "fibrosis", "Steatosis", "Hyperbilirubinemia"):
        assert binary in ids
        assert hepar2_model.normal_states[binary] == "absent"
    # multi-state causes rank every state but "absent"
    assert [i for i in ids if i.startswith("Cirrhosis")] == ["Cirrhosis=decompensate", "Cirrhosis=compensate"]
    assert [i for i in ids if i.startswith("ChHepatitis")] == ["ChHepatitis=active", "ChHepatitis=persistent"]
    assert len(ids) == 6 + 2 + 2


def test_explicit_normal_states_choose_the_state_left_out(hepar2_network, child_network):
    model = bayesdx.load_model(child_network, causes=["Disease"], normal_states={"Disease": "Lung"})
    assert [h.state for h in model.hypotheses] == [s for s in model.states["Disease"] if s != "Lung"]
    assert model.normal_states["Disease"] == "Lung"
    every = bayesdx.load_model(hepar2_network, causes=["Cirrhosis", "PBC"], normal_states={"Cirrhosis": None})
    assert [h.id for h in every.hypotheses] == ["Cirrhosis=decompensate", "Cirrhosis=compensate", "Cirrhosis=absent", "PBC"]


def test_pathfinder_fault_without_a_normal_state_ranks_every_state(pathfinder_network):
    model = bayesdx.load_model(pathfinder_network, causes=["Fault"])
    fault_states = pathfinder_network.get_cpds("Fault").state_names["Fault"]
    assert len(model.hypotheses) == len(fault_states) == 63
    assert [h.state for h in model.hypotheses] == [str(s) for s in fault_states]
    dx = bayesdx.rank_causes({}, model=model)
    assert_allclose(sum(c.probability for c in dx.causes), 1.0, atol=ATOL, rtol=0)


def test_pgmpy_network_is_not_modified_by_loading(hepar2_network):
    before = {c.variable: c.get_values().copy() for c in hepar2_network.get_cpds()}
    bayesdx.load_model(hepar2_network, causes=["PBC"])
    for cpd in hepar2_network.get_cpds():
        assert (cpd.get_values() == before[cpd.variable]).all()


# ---------------------------------------------------------------------- errors
def test_bif_without_causes_raises_saying_causes_are_needed(child_files):
    path = child_files["bif"]
    message = f"Loading {str(path)!r} needs causes=[...] (on the command line --causes NODES): the nodes to rank"
    with pytest.raises(ValueError, match=re.escape(message)):
        bayesdx.load_model(path)


@pytest.mark.parametrize("causes", [[], "Disease"])
def test_empty_or_string_causes_are_rejected(child_network, causes):
    with pytest.raises(ValueError, match=r"Loading '<pgmpy model>' needs causes=\[\.\.\.\]"):
        bayesdx.load_model(child_network, causes=causes)


def test_priors_for_a_bif_are_rejected_naming_the_file(child_files):
    path = child_files["bif"]
    message = f"The network {str(path)!r} carries its own prior tables; priors= is only for model files."
    with pytest.raises(ValueError, match=re.escape(message)):
        bayesdx.load_model(path, causes=["Disease"], priors="article")


def test_unknown_cause_in_a_bif_is_named_with_a_suggestion(child_files):
    path = child_files["bif"]
    message = f"The causes of load_model name 'Diseas', which is not a node of {str(path)!r}. Did you mean 'Disease'?"
    with pytest.raises(ValueError, match=re.escape(message)):
        bayesdx.load_model(path, causes=["Diseas"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"causes": ["Diseas"]}, "The causes of load_model name 'Diseas', which is not a node of '<pgmpy model>'. Did you mean 'Disease'?"),
        (
            {"causes": ["Disease"], "tests": ["XrayReprt"]},
            "The tests of load_model name 'XrayReprt', which is not a node of '<pgmpy model>'. Did you mean 'XrayReport'?",
        ),
        (
            {"causes": ["Disease"], "priors": "article"},
            "The network '<pgmpy model>' carries its own prior tables; priors= is only for model files.",
        ),
        ({"causes": ["Disease"], "tests": ["Disease"]}, "['Disease'] cannot be both a cause and a test."),
        (
            {"causes": ["Disease"], "normal_states": {"Age": "0-3_days"}},
            "normal_states names 'Age', which is not among the causes ['Disease'].",
        ),
        (
            {"causes": ["Disease"], "normal_states": {"Disease": "Healthy"}},
            "normal_states gives 'Healthy' for 'Disease'; its states are ['PFC', 'TGA', 'Fallot', 'PAIVS', 'TAPVD', 'Lung'].",
        ),
    ],
)
def test_bad_roles_for_a_pgmpy_network_raise_naming_the_item(child_network, arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bayesdx.load_model(child_network, **arguments)


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (
            "leg_twich",
            ValueError,
            r"The 'source' parameter of load_model must be a bundled model name \(.*\), a path "
            r"to a \.toml, \.bif or \.xmlbif file, or a pgmpy network\. Got 'leg_twich' instead\.",
        ),
        ("network.csv", ValueError, r"Cannot load 'network\.csv': the file type '\.csv' is not supported\."),
        ("missing.bif", FileNotFoundError, r"No such network file: 'missing\.bif'"),
        (
            42,
            TypeError,
            r"The 'source' parameter of load_model must be None, a str or path-like, or a pgmpy "
            r"DiscreteBayesianNetwork\. Got int instead\.",
        ),
    ],
)
def test_bad_source_raises_naming_it(source, error, message):
    with pytest.raises(error, match=message):
        bayesdx.load_model(source, causes=["Disease"])
