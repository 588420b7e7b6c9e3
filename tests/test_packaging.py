"""The wheel carries the bundled models and priors; the package finds them; the examples run."""

from __future__ import annotations

import doctest
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bayesdx
from bayesdx import _resources

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(out), "-q"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("bayesdx-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.mark.parametrize(
    "member",
    [
        "bayesdx/_data/models/leg_twitch.toml",
        "bayesdx/_data/priors/article.toml",
        "bayesdx/py.typed",
        "bayesdx/__init__.py",
        "bayesdx/inference.py",
    ],
)
def test_wheel_contains(wheel_names, member):
    assert member in wheel_names, f"{member} is missing from the wheel; it holds {sorted(wheel_names)}"


def test_wheel_carries_every_model_and_prior_file_of_the_checkout(wheel_names):
    for kind in ("models", "priors"):
        for path in (ROOT / kind).glob("*.toml"):
            assert f"bayesdx/_data/{kind}/{path.name}" in wheel_names


def test_wheel_bundled_files_are_identical_to_the_checkout(wheel):
    with zipfile.ZipFile(wheel) as zf:
        for kind, name in (("models", "leg_twitch.toml"), ("priors", "article.toml")):
            assert zf.read(f"bayesdx/_data/{kind}/{name}") == (ROOT / kind / name).read_bytes()


def test_installed_wheel_loads_the_bundled_model_outside_the_checkout(wheel, tmp_path):
    """Unpack the wheel alone on sys.path (no checkout nearby) and load the bundled model from it."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = (
        "import bayesdx, bayesdx._resources as r; "
        f"assert bayesdx.__file__.startswith({str(site)!r}), bayesdx.__file__; "
        "print(r.data_dir('models')); m = bayesdx.load_model(); print(m.id, m.priors)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == str(site / "bayesdx" / "_data" / "models")
    assert lines[1] == "leg_twitch article"


def test_data_dir_finds_the_bundled_model_and_priors():
    assert (_resources.data_dir("models") / "leg_twitch.toml").is_file()
    assert (_resources.data_dir("priors") / "article.toml").is_file()
    assert "leg_twitch" in _resources.available("models")
    assert "article" in _resources.available("priors")


def test_py_typed_is_shipped_in_the_source():
    assert (Path(bayesdx.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("module_name", ["bayesdx.model", "bayesdx.ranking"])
def test_doctests_of_public_modules_pass(module_name):
    import importlib

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module_name} has no doctest examples"
    assert result.failed == 0
