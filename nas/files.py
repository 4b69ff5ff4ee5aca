"""Files, in one place: reading the user's YAML/JSON (errors name the file and where), writing a
file atomically, and an exclusive lock that workers on one machine share."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from nas.errors import ConfigError

# Nodes a document may hold once its aliases are expanded. A study file is a few hundred; the
# cap stops an alias bomb ("billion laughs": each level aliasing the one before nine times)
# before any object is built or walked — yaml.safe_load would build it shared, then every
# reader that walks or copies it expands it in memory.
MAX_EXPANDED_NODES = 100_000


def read_document(path: Path, what: str) -> Any:
    """Parse `path` (JSON when it ends in .json, else YAML with `yaml.safe_load`).

    `what` names the file's role in the message when it cannot be read ("the study file").
    A syntax error names the line and column.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror})") from None
    try:
        return json.loads(text) if path.suffix == ".json" else _safe_load(text, path)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def _safe_load(text: str, path: Path) -> Any:
    """`yaml.safe_load`, refusing a document whose expanded node count exceeds the cap."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node)
        if expanded > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"{path}: its aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} YAML nodes; "
                "allowed: a document that stays under that size once expanded (write the values out)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with every alias expanded, counted without expanding: an alias is
    the same node object as its anchor, so each node's size is computed once and reused."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: meeting one again is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: deep nesting cannot exhaust Python's recursion limit
        node, children_done = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_EXPANDED_NODES:
                return sizes[id(node)]
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            return MAX_EXPANDED_NODES + 1  # a node containing itself expands without end
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def temporary_name(path: Path) -> Path:
    """Where `atomic_write` writes before renaming: `.<stem>.<pid>.tmp` beside `path`, so a killed
    writer's leftovers can be found (`.<stem>.*.tmp`) and never look like the real file."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write `path` all or nothing: into `temporary_name(path)`, flushed to disk, then renamed over
    `path`; on any error the temporary file is removed and `path` is untouched."""
    tmp = temporary_name(path)
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory `flock` on `path` (a folder, or a lock file created if missing),
    released by the kernel if the holder dies. Without `fcntl` (Windows) there is no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
