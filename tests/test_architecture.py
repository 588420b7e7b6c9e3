"""The package's structure (issue 17): no import cycle between bayesdx modules, counting imports inside
functions too (a cycle there is still a cycle at run time), but not those under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "bayesdx"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = SRC / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def import_graph() -> nx.DiGraph:
    """Edges from each bayesdx module to the bayesdx modules it imports."""
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        graph.add_node(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(sub)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for sub in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] == "bayesdx":
                    submodules = [f"{source}.{a.name}" for a in node.names if _is_module(f"{source}.{a.name}")]
                    targets = submodules or [source]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "bayesdx"]
            graph.add_edges_from((module, t) for t in targets if t != module)
    return graph


def test_the_import_graph_is_found():
    graph = import_graph()
    assert ("bayesdx.ranking", "bayesdx.pipeline") in graph.edges  # the reader works: a known import
    assert ("bayesdx.next_steps", "bayesdx.posteriors") in graph.edges  # ... including one inside a function


def test_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], f"import cycles: {cycles}"


def test_no_module_over_500_lines():
    """Small modules with one job each: a newcomer can point at where each idea lives."""
    long = {str(p.relative_to(SRC)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}
