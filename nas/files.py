"""Reading the user's YAML/JSON files, in one place, with errors that name the file and where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nas.errors import ConfigError


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
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
