"""The study a study file names — its name, storage and objectives — read without building
anything, opened, and checked to be ours.

`nas front`, `nas export` and `nas dashboard` only open a study that exists; building the
backbone, the search space and the proxy (`nas.studyfile`) would import torch and timm for
nothing, 5-7 s before the first line. The whole file is still validated against the study-file
model (`nas.validation.StudyFile`, torch-free), so a malformed file is refused the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from nas.attrs import StudyAttr
from nas.errors import ConfigError, StudyError, with_source
from nas.fidelity import Fidelity, fidelity_mismatch
from nas.files import read_document
from nas.objectives import OBJECTIVES
from nas.validation import StudyFile, validate

if TYPE_CHECKING:
    import optuna


@dataclasses.dataclass(frozen=True)
class StudyRef:
    """Where a study lives and what it optimises: enough to open it and check that it is ours."""

    path: Path
    name: str
    storage: str
    objectives: tuple[str, ...]
    fidelity: Fidelity | None = None  # a multi-fidelity study's rungs (nas.fidelity); None: one fidelity
    latency_table: Path | None = None  # the study file's `latency.table`, resolved; None when it names none

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
    fidelity = None if study.fidelity is None else Fidelity.from_settings(**study.fidelity.model_dump())
    table = study.latency.table
    table_path = None if table is None else Path(table).expanduser()
    if table_path is not None and not table_path.is_absolute():
        table_path = base / table_path
    return StudyRef(path=path.resolve(), name=study.name, storage=storage, objectives=tuple(study.objectives),
                    fidelity=fidelity, latency_table=table_path)


def open_existing(ref: StudyRef) -> optuna.Study:
    """The study as it is, for reading (front, export, dashboard): refused when it does not exist,
    when nas did not make it, or when it has other objectives; nothing is written."""
    import optuna

    from nas.storage import open_storage, quiet_experimental

    storage = open_storage(ref.storage, create=False)
    with quiet_experimental():
        try:
            study = optuna.load_study(study_name=ref.name, storage=storage)
        except KeyError:
            raise missing(ref) from None
    check_ours(study, ref)
    return study


def missing(ref: StudyRef) -> StudyError:
    from nas.storage import masked

    return StudyError(f"no study named {ref.name!r} in {masked(ref.storage)}; run `nas search` first")


def check_ours(study: optuna.Study, ref: StudyRef) -> None:
    """Refuse a foreign study (same name, made by someone else) and one with other objectives.

    Ours: it carries the marker, or `study_file` (studies made before the marker existed). A
    study with no attribute and no trial at all is one whose creation was interrupted right
    after `create_study`: adopted when its directions match, since nothing in it can be lost."""
    from nas.storage import masked

    attrs = study.user_attrs
    where = f"study {ref.name!r} in {masked(ref.storage)}"
    ours = StudyAttr.MARKER in attrs or StudyAttr.STUDY_FILE in attrs
    if not ours and (attrs or study.get_trials(deepcopy=False)):
        raise StudyError(
            f"{where} was not created by nas (it has no {StudyAttr.MARKER!r} attribute); nas will not write to or read "
            "another tool's study: use another study name or storage"
        )
    directions = [d.name.lower() for d in study.directions]
    have = attrs.get(StudyAttr.OBJECTIVES) if ours else None
    if directions != list(ref.directions) or (have is not None and list(have) != list(ref.objectives)):
        shown = f"objectives {list(have)}" if have is not None else f"directions {directions}"
        raise StudyError(
            f"{where} has {shown}, but {ref.path.name} asks for objectives {list(ref.objectives)} "
            f"({', '.join(ref.directions)}); use another study name"
        )
    # a study described before fidelity existed has no such attribute: it is a single-fidelity one
    described = StudyAttr.STUDY_FILE in attrs
    mismatch = fidelity_mismatch(attrs.get(StudyAttr.FIDELITY), ref.fidelity) if described else None
    if mismatch:
        raise StudyError(f"{where} {mismatch}")


