"""Every Python example of README.md runs as written (the blocks share one namespace, in order)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_has_python_examples():
    assert len(_python_blocks()) >= 3


@pytest.mark.slow
def test_every_python_example_of_the_readme_runs(tmp_path, monkeypatch):
    (tmp_path / "evaluation").symlink_to(REPO / "evaluation")  # the examples read evaluation/vignettes/dev.csv
    monkeypatch.chdir(tmp_path)  # and write asia.bif here, not in the checkout
    namespace: dict = {}
    for k, block in enumerate(_python_blocks()):
        exec(compile(block, f"README.md python block {k + 1}", "exec"), namespace)
    assert namespace["dx"].causes
    assert namespace["asia"].causes == ("tub", "lung")
