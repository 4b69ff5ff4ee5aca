"""MkDocs hook: the pages' reference tables, generated from the code at every build.

- `<!-- generated: study-file -->` becomes the study-file reference: every field of
  `nas.validation.StudyFile` and of the sections nested in it (dataset, proxy, sampler, ...), with
  its type, default and what is allowed (the field's description, the same text an error prints).
  A field added to a model appears here without editing a page (tests/test_docs.py checks it).
- The plots in `benchmarks/results/*.png` are served as `benchmarks/<name>.png`, not copied.
- `<!-- generated: block-settings KIND -->` becomes KIND's settings table from the block registry
  (`nas.blocks.registry`): setting, default, the paper's setting, what is allowed. A registered kind
  with settings and no such marker on its page is a warning, so `mkdocs build --strict` fails.

The functions are plain (`study_file_reference()`, `block_settings(kind)`), so tests call them.
"""

from __future__ import annotations

import logging
import re
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("mkdocs.plugins.nas")
MARKER = re.compile(r"<!-- generated: (?P<what>[\w-]+)(?: (?P<arg>[\w-]+))? -->")

_SCALARS = {int: "integer", float: "number", bool: "true/false", str: "text", type(None): "null"}


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _anchor(model: type) -> str:
    return model.__name__.lower()


def type_name(annotation: Any) -> str:
    """A field's type in words: `integer`, `number or null`, `list of integer`, `one of a, b`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(dict.fromkeys(type_name(a) for a in args))
    if origin in (list, tuple):
        inner = dict.fromkeys(type_name(a) for a in args if a is not Ellipsis)
        return f"list of {' or '.join(inner)}" if origin is list else f"[{', '.join(type_name(a) for a in args)}]"
    if origin is dict or annotation is dict:
        return "mapping"
    if _is_model(annotation):
        return f"[{annotation.__name__} section](#{_anchor(annotation)})"
    if annotation is Any:
        return "any"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        if _is_model(type(value)):
            return "its defaults"
    else:
        value = field.default
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _nested(annotation: Any) -> list[type]:
    """The models a field's annotation holds (`X`, `X | None`)."""
    if _is_model(annotation):
        return [annotation]
    return [a for a in typing.get_args(annotation) if _is_model(a)]


def model_table(model: type) -> str:
    rows = ["| key | type | default | allowed |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        rows.append(f"| `{name}` | {_cell(type_name(field.annotation))} | {_cell(_default(field))} | "
                    f"{_cell(field.description or '')} |")
    return "\n".join(rows)


def study_file_reference(root: type | None = None) -> str:
    """Markdown for the study file's model and every section model nested in it, in field order."""
    if root is None:
        from nas.validation import StudyFile as root  # noqa: N813 - the model is the root
    seen: list[type] = []
    todo = [root]
    while todo:
        model = todo.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(_nested(field.annotation))
    parts = []
    for i, model in enumerate(seen):
        keys = [k for m in seen for k, f in m.model_fields.items() if model in _nested(f.annotation)]
        title = "The study file" if i == 0 else f"{', '.join(f'`{k}:`' for k in keys)} ({model.__name__})"
        doc = " ".join((model.__doc__ or "").split())
        parts.append(f"## {title} {{#{_anchor(model)}}}\n\n{doc}\n\n{model_table(model)}\n")
    return "\n".join(parts)


def block_settings(kind_name: str) -> str:
    """Markdown: the kind's paper (from its module's docstring) and its settings table."""
    from nas.blocks.registry import REGISTRY

    kind = REGISTRY[kind_name]
    module = sys.modules[kind.module.__module__]
    doc = (module.__doc__ or "").split("\n\n")
    paper = " ".join(next((p for p in doc if p.startswith("Paper:")), "").split())
    rows = [f"`{kind.module.__name__}` in `{kind.module.__module__}`. {paper}", "",
            "| setting | default | paper's | allowed |", "|---|---|---|---|"]
    for setting in kind.settings:
        paper_value = kind.paper.get(setting.name, setting.default)
        rows.append(f"| `{setting.name}` | {_value(setting.default)} | {_value(paper_value)} | "
                    f"{_cell(setting.allowed)} |")
    return "\n".join(rows)


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def kinds_with_settings() -> list[str]:
    from nas.blocks.registry import REGISTRY

    return [name for name, kind in REGISTRY.items() if kind.settings]


def render(markdown: str, page: str = "") -> str:
    """The page with every marker replaced."""
    def one(match: re.Match) -> str:
        what, arg = match["what"], match["arg"]
        if what == "study-file":
            return study_file_reference()
        if what == "block-settings" and arg:
            return block_settings(arg)
        log.warning("%s: unknown marker %r", page, match.group(0))
        return match.group(0)

    return MARKER.sub(one, markdown)


def on_files(files: Any, config: Any) -> Any:
    """The benchmarks' plots, served from benchmarks/results/ as benchmarks/<name>.png (one copy)."""
    from mkdocs.structure.files import File

    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    path = page.file.src_uri
    if "<!-- generated: block-settings" in markdown:
        documented = {m["arg"] for m in MARKER.finditer(markdown) if m["what"] == "block-settings"}
        for kind in kinds_with_settings():
            if kind not in documented:
                log.warning("%s: block kind %r is registered but has no '<!-- generated: block-settings %s -->'",
                            path, kind, kind)
    return render(markdown, path)
