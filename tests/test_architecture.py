"""docs/architecture.md's claims, checked: the floors table (imports go down only) and where a
new block kind, backbone, objective and storage go (the dataset's is in tests/test_data.py)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from test_imports import NAS, import_graph

PAGE = NAS.parent / "docs" / "architecture.md"


def floors() -> dict[str, int]:
    """The page's floors table: top-level unit (`nas.data`, `nas.study`, ...) -> floor."""
    table = {}
    for line in PAGE.read_text().splitlines():
        row = re.fullmatch(r"\|\s*(\d+)\s*\|(.*)\|", line.strip())
        if row:
            for name in re.findall(r"`([\w.]+)`", row.group(2)):
                table[name] = int(row.group(1))
    return table


def unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_imports_go_down_the_floors() -> None:
    table = floors()
    graph = import_graph()
    assert {unit(m) for m in graph} == set(table), "every unit of nas on exactly one floor of the page"
    upward = [f"{m} (floor {table[unit(m)]}) imports {d} (floor {table[unit(d)]})"
              for m, deps in sorted(graph.items()) for d in sorted(deps)
              if unit(d) != unit(m) and table[unit(d)] >= table[unit(m)]]
    assert upward == []


def test_every_block_file_is_registered() -> None:
    from nas.blocks.registry import KINDS, REGISTRY

    files = [p.stem for p in sorted((NAS / "blocks").glob("*.py"))
             if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "KIND" for t in n.targets)
                    for n in ast.parse(p.read_text()).body)]
    assert files, "block files define KIND"
    for stem in files:
        kind = importlib.import_module(f"nas.blocks.{stem}").KIND
        assert REGISTRY.get(kind.name) is kind, f"nas/blocks/{stem}.py's KIND is not in REGISTRY"
    assert KINDS == tuple(REGISTRY)


def test_every_backbone_is_registered_and_looked_up_there() -> None:
    from nas import ConfigError
    from nas.backbones import BACKBONES, Backbone, get_backbone

    assert BACKBONES and all(isinstance(b, Backbone) for b in BACKBONES.values())
    assert all(get_backbone(name) is backbone for name, backbone in BACKBONES.items())
    with pytest.raises(ConfigError, match="allowed: " + re.escape(", ".join(BACKBONES))):
        get_backbone("no_such_backbone")


def test_every_objective_is_measured() -> None:
    """`Objective._values` measures each name `nas.objectives.OBJECTIVES` lists, no more."""
    from nas.objectives import OBJECTIVES

    source = (NAS / "study" / "objective.py").read_text()
    values = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "_values")
    measure = next(n.value for n in ast.walk(values) if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", None) == "measure" for t in n.targets))
    assert isinstance(measure, ast.Dict)
    names = {importlib.import_module("nas.objectives").__dict__[k.value.id].name for k in measure.keys
             if isinstance(k, ast.Attribute) and isinstance(k.value, ast.Name)}
    assert names == set(OBJECTIVES)


def test_storage_schemes_are_one_tuple(tmp_path: Path) -> None:
    from nas import ConfigError
    from nas.storage import SCHEMES, check_url

    assert "sqlite" in SCHEMES and "postgresql" in SCHEMES
    check_url(f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(ConfigError, match="the scheme 'oracle' is not supported"):
        check_url("oracle://u:p@host/db")
