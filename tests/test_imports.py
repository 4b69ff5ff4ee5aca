"""The house's imports go one way: no module of `nas` imports, directly or through others, a
module that imports it back (issue 24: `nas.study.asha` <-> `nas.study.loop` was such a circle).

Every import counts, including those inside functions (a lazy import hides a circle from Python,
not from a reader). `from nas.x import name` counts as an import of `nas.x.name` when that is a
module, else of `nas.x`; a package's `__init__` is its own node, so a package that re-exports its
modules is not a circle with them."""

from __future__ import annotations

import ast
from pathlib import Path

NAS = Path(__file__).resolve().parents[1] / "nas"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(NAS.rglob("*.py")):
        parts = path.relative_to(NAS.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of `nas` it imports."""
    mods = modules()

    def owner(name: str) -> str | None:  # the module that defines `name` (a module or a name in one)
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {owner(alias.name) for alias in node.names if alias.name.split(".")[0] == "nas"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                if base.split(".")[0] == "nas":
                    targets |= {owner(f"{base}.{alias.name}") for alias in node.names}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert {"nas", "nas.study.loop", "nas.study.asha", "nas.study.counts", "nas.cli"} <= set(graph)
    assert "nas.study.asha" in graph["nas.study.loop"]  # a single-fidelity loop hands rungs to asha
    assert "nas.study.counts" in graph["nas.study.asha"]


def test_no_import_cycles_inside_nas() -> None:
    assert cycles(import_graph()) == []


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
