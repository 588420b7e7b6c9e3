"""The interactive path starts lean (issue 16): ``import bayesdx``, loading the bundled model and one
``rank_causes`` call import neither pgmpy nor pandas, which cost most of a cold start; the pgmpy network is
built on first use and is the same network."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_rank_causes_from_a_cold_start_imports_neither_pgmpy_nor_pandas():
    loaded = _modules_after("import bayesdx\ndx = bayesdx.rank_causes({'painful_cramps': 'yes', 'age_group': 'adult'})\nassert dx.causes\n")
    assert "pgmpy" not in loaded
    assert "pandas" not in loaded


def test_the_command_line_rank_imports_neither_pgmpy_nor_pandas():
    loaded = _modules_after(
        "import sys\nfrom bayesdx.cli import main\n"
        "sys.argv = ['bayesdx', 'rank', 'painful_cramps=yes', '-q']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
    )
    assert "pgmpy" not in loaded
    assert "pandas" not in loaded


def test_the_lazily_built_network_matches_the_engine(bundled_model):
    """The pgmpy network built on demand holds the tables the engine computes with (the engine's tables
    are the model file's CPDs; the network's are the same CPDs, big noisy ones divorced into parts)."""
    from pgmpy.inference import VariableElimination

    model = bundled_model
    network = model.network
    assert network is model.network  # built once
    network.check_model()
    ve = VariableElimination(network)
    evidence = {"painful_cramps": "yes", "age_group": "older_adult", "leg_twitching": "yes"}
    post = model.engine.posterior(
        {v: np.eye(len(model.states[v]))[[model.states[v].index(s)]] for v, s in evidence.items()}, ["polyneuropathy"], 1
    )
    ref = ve.query(["polyneuropathy"], evidence=evidence, show_progress=False)
    assert np.allclose(post.marginals["polyneuropathy"][0], ref.values, atol=1e-12)
