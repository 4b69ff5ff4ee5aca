"""The study a study file names — its name, storage and objectives — read without building anything.

`nas front`, `nas export` and `nas dashboard` only open a study that exists; building the
backbone, the search space and the proxy (`nas.studyfile`) would import torch and timm for
nothing, 5-7 s before the first line. The whole file is still validated against the study-file
model (`nas.validation.StudyFile`, torch-free), so a malformed file is refused the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nas.errors import ConfigError, with_source
from nas.files import read_document
from nas.objectives import OBJECTIVES
from nas.validation import StudyFile, validate


@dataclasses.dataclass(frozen=True)
class StudyRef:
    """Where a study lives and what it optimises: enough to open it and check that it is ours."""

    path: Path
    name: str
    storage: str
    objectives: tuple[str, ...]

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o].direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [OBJECTIVES[o].metric_name for o in self.objectives]


def read_study_ref(path: str | Path, storage: str | None = None) -> StudyRef:
    """Read and validate a study file's shape; `storage` (from `--storage`) overrides the file's."""
    path = Path(path)
    data = read_document(path, "the study file")
    try:
        return study_ref(validate(StudyFile, data), path, storage)
    except ConfigError as error:
        raise with_source(error, str(path)) from None


def study_ref(study: StudyFile, path: Path, storage_override: str | None) -> StudyRef:
    """The validated file's study: the storage resolved (a relative SQLite path against the study
    file's folder, `--storage` against the working directory) and checked without connecting."""
    from nas.storage import check_url, resolve_url  # optuna + sqlalchemy: after the file is known good

    storage = storage_override if storage_override is not None else study.storage
    where = "--storage" if storage_override is not None else "storage"
    base = path.resolve().parent
    if storage is None:
        storage = f"sqlite:///{base / study.name}.db"
    storage = resolve_url(storage, Path.cwd() if storage_override is not None else base)
    check_url(storage, where)
    return StudyRef(path=path.resolve(), name=study.name, storage=storage, objectives=tuple(study.objectives))
