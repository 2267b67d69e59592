"""The package's imports run one way: no cycle between subpackages, nor between modules (docs/architecture.md).

The graph is read from the source with ast, every import statement counted, those inside functions too: a
lazy import that closes a circle still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import circuitdrift

ROOT = Path(circuitdrift.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """circuitdrift module -> the circuitdrift modules it imports (``from pkg import submodule`` names the
    submodule, not the package)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def subpackage(module: str) -> str:
    """``circuitdrift.steer.vectors`` -> ``steer``; a top-level module (``circuitdrift.cli``) is its own node."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, imported in graph.items():
        for other in imported:
            if subpackage(module) != subpackage(other):
                out.setdefault(subpackage(module), set()).add(subpackage(other))
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_submodule_imports():
    graph = import_graph()
    assert "circuitdrift.judge.local" in graph["circuitdrift.judge.factory"]  # imported inside make_judge
    assert "circuitdrift.report.figures" in graph["circuitdrift.report.build"]  # from circuitdrift.report import
    assert "circuitdrift.report" not in graph["circuitdrift.report.build"]


def test_no_subpackage_imports_another_that_imports_it_back():
    assert cycles(subpackage_graph(import_graph())) == []


def test_no_module_cycle():
    assert cycles(import_graph()) == []


def test_judge_uses_models_only_and_steer_uses_judge():
    layers = subpackage_graph(import_graph())
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert layers["judge"] & packages == {"models"}
    assert {"models", "judge"} <= layers["steer"] and "steer" not in layers["judge"]
