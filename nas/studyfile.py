"""Study files: one YAML naming the study, backbone, dataset, search space, proxy, objectives,
sampler, trial target, baselines, constraints and storage.

Everything is validated here, before anything is written: a bad study file gets one message
naming the file, the field, the value and what is allowed. Relative paths (search space, image
folder, SQLite file) resolve against the study file's folder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.blocks import KINDS, BlockSpec
from nas.data import DATASETS, Dataset, check_settings, load_dataset
from nas.errors import ConfigError, with_source
from nas.files import read_document
from nas.space import SearchSpace, load_space
from nas.storage import check_url, resolve_url
from nas.train import ProxyConfig

STUDY_KEYS = (
    "name", "description", "storage", "backbone", "backbone_args", "dataset", "search_space", "proxy",
    "objectives", "sampler", "trials", "baselines", "constraints",
)
REQUIRED = ("name", "backbone", "dataset", "search_space")
DATASET_KEYS = ("name", "path", "subset", "val_fraction", "image_size", "in_chans", "seed", "root")
# objective: (direction, metric name shown in the dashboard and tables)
OBJECTIVES = {
    "accuracy": ("maximize", "accuracy"),
    "flops": ("minimize", "MFLOPs"),
    "params": ("minimize", "params (M)"),
    "latency": ("minimize", "latency (ms)"),
}
SAMPLERS = {"tpe": ("seed", "n_startup_trials"), "nsga2": ("seed", "population_size"), "random": ("seed",)}
CONSTRAINT_KEYS = ("max_mflops", "max_params")
DEFAULT_BASELINES = list(KINDS)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A validated study file. `dataset` holds `load_dataset` keyword arguments (paths resolved)."""

    path: Path
    name: str
    storage: str
    backbone: str
    backbone_args: Mapping[str, Any]
    dataset: Mapping[str, Any]
    space: SearchSpace
    proxy: ProxyConfig
    objectives: tuple[str, ...]
    sampler: Mapping[str, Any]
    trials: int
    baselines: tuple[tuple[str, BlockSpec], ...]
    max_mflops: float | None = None
    max_params: int | None = None
    description: str = ""

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o][0] for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [OBJECTIVES[o][1] for o in self.objectives]

    def template(self, num_classes: int, in_chans: int) -> ArchConfig:
        """The backbone with `none` on every stage; the search fills in the stages."""
        return ArchConfig.uniform(self.backbone, BlockSpec("none"), self.backbone_args, num_classes, in_chans)

    def baseline_arch(self, spec: BlockSpec, num_classes: int, in_chans: int) -> ArchConfig:
        return ArchConfig.uniform(self.backbone, spec, self.backbone_args, num_classes, in_chans)

    def load_data(self) -> Dataset:
        """The study's dataset; a setting refused only now (an image size too large for this
        machine's memory) names this file and the `dataset.` field like every other error."""
        try:
            return load_dataset(**self.dataset)
        except ConfigError as error:
            raise ConfigError(f"{self.path}: dataset.{error}") from None


def load_study_config(path: str | Path, storage: str | None = None) -> StudyConfig:
    """Read and validate a study file; `storage` (from `--storage`) overrides the file's."""
    path = Path(path)
    data = read_document(path, "the study file")
    try:
        return _parse(data, path, storage)
    except ConfigError as error:
        raise with_source(error, str(path)) from None


def _parse(data: Any, path: Path, storage_override: str | None) -> StudyConfig:
    base = path.resolve().parent
    if not isinstance(data, Mapping):
        raise ConfigError(f"the study file must be a mapping of {', '.join(REQUIRED)}, ...; got {data!r}")
    for key in data:
        if key not in STUDY_KEYS:
            raise ConfigError(f"{key} is not a study key; allowed: {', '.join(STUDY_KEYS)}")
    for key in REQUIRED:
        if data.get(key) is None:
            raise ConfigError(f"{key} is missing; a study needs {', '.join(REQUIRED)}")

    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"name = {name!r} is invalid; allowed: letters, digits, '_', '.', '-'")

    storage = storage_override if storage_override is not None else data.get("storage")
    where = "--storage" if storage_override is not None else "storage"
    if storage is None:
        storage = f"sqlite:///{base / name}.db"
    storage = resolve_url(storage, Path.cwd() if storage_override is not None else base)
    check_url(storage, where)

    backbone = data["backbone"]
    backbone_args = get_backbone(backbone).resolve_args(data.get("backbone_args") or {})
    num_stages = get_backbone(backbone).num_stages(backbone_args)

    dataset = _dataset(data["dataset"], base)
    source = data["search_space"]
    if not isinstance(source, (str, Mapping)):
        raise ConfigError(f"search_space = {source!r} is invalid; expected a file path or a mapping")
    space = load_space(source, base)
    space.check_stages(num_stages, backbone, "search_space" if isinstance(source, Mapping) else str(source))

    proxy = ProxyConfig.from_dict(data.get("proxy") or {})

    objectives = data.get("objectives", ["accuracy", "flops"])
    if not isinstance(objectives, list) or not objectives:
        raise ConfigError(f"objectives = {objectives!r} is invalid; expected a list from {', '.join(OBJECTIVES)}")
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise ConfigError(f"objectives: {objective!r} is not an objective; allowed: {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives) or "accuracy" not in objectives:
        raise ConfigError(f"objectives = {objectives} must include accuracy and list each objective once")

    sampler = dict(data.get("sampler") or {"name": "tpe"})
    sampler_name = sampler.get("name", "tpe")
    if sampler_name not in SAMPLERS:
        raise ConfigError(f"sampler.name = {sampler_name!r} is invalid; allowed: {', '.join(SAMPLERS)}")
    for key, value in sampler.items():
        if key != "name" and key not in SAMPLERS[sampler_name]:
            raise ConfigError(
                f"sampler.{key} is not a setting of {sampler_name}; allowed: {', '.join(SAMPLERS[sampler_name])}"
            )
        if key != "name" and not (_is_int(value) and value >= (0 if key == "seed" else 1)):
            raise ConfigError(f"sampler.{key} = {value!r} is invalid; allowed: an integer >= {int(key != 'seed')}")
    sampler["name"] = sampler_name

    trials = data.get("trials", 24)
    if not _is_int(trials) or trials < 1:
        raise ConfigError(f"trials = {trials!r} is invalid; allowed: an integer >= 1 (finished trials to reach)")

    baselines = _baselines(data.get("baselines", DEFAULT_BASELINES), backbone)
    for label, spec in baselines:
        try:
            ArchConfig.uniform(backbone, spec, backbone_args)
        except ConfigError as error:
            raise ConfigError(f"baselines: {label}: {error}") from None

    constraints = data.get("constraints") or {}
    if not isinstance(constraints, Mapping):
        raise ConfigError(f"constraints = {constraints!r} is invalid; expected a mapping like {{max_mflops: 20}}")
    for key, value in constraints.items():
        if key not in CONSTRAINT_KEYS:
            raise ConfigError(f"constraints.{key} is not a constraint; allowed: {', '.join(CONSTRAINT_KEYS)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"constraints.{key} = {value!r} is invalid; allowed: a number > 0 or null")

    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"description = {description!r} is invalid; expected text")

    return StudyConfig(
        path=path.resolve(), name=name, storage=storage, backbone=backbone, backbone_args=backbone_args,
        dataset=dataset, space=space, proxy=proxy, objectives=tuple(objectives), sampler=sampler,
        trials=trials, baselines=baselines, max_mflops=constraints.get("max_mflops"),
        max_params=constraints.get("max_params"), description=description,
    )


def _dataset(value: Any, base: Path) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"dataset = {value!r} is invalid; expected a mapping with a name ({', '.join(DATASETS)})")
    for key in value:
        if key not in DATASET_KEYS:
            raise ConfigError(f"dataset.{key} is not a dataset setting; allowed: {', '.join(DATASET_KEYS)}")
    name = value.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name = {name!r} is not a dataset; allowed: {', '.join(DATASETS)}")
    try:
        check_settings(**{k: value[k] for k in ("subset", "val_fraction", "image_size", "seed", "in_chans")
                          if k in value})
    except ConfigError as error:
        raise ConfigError(f"dataset.{error}") from None
    out = dict(value)
    for key in ("path", "root"):
        if out.get(key) is not None:
            resolved = Path(out[key]).expanduser()
            out[key] = resolved if resolved.is_absolute() else (base / resolved)
    if name == "imagefolder":
        if out.get("path") is None:
            raise ConfigError("dataset.path is missing; imagefolder needs the folder of class folders")
        if not out["path"].is_dir():
            raise ConfigError(f"dataset.path = {str(value['path'])!r}: no such folder ({out['path']})")
    elif out.get("path") is not None and not out["path"].exists():
        raise ConfigError(f"dataset.path = {str(value['path'])!r}: no such folder ({out['path']})")
    return out


def _baselines(value: Any, backbone: str) -> tuple[tuple[str, BlockSpec], ...]:
    """Baselines: kinds at their paper defaults, or block mappings (custom hand placements)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"baselines = {value!r} is invalid; expected a list of kinds ({', '.join(KINDS)})")
    placement = "block" if "block" in get_backbone(backbone).placements else "stage"
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            if entry not in KINDS:
                raise ConfigError(f"baselines[{i}] = {entry!r} is not a block kind; allowed: {', '.join(KINDS)}")
            spec = BlockSpec.paper_default(entry, placement)
        else:
            spec = BlockSpec.from_dict(entry, where=f"baselines[{i}]")
        label = spec.kind if isinstance(entry, str) else spec.block_id
        if label in {lbl for lbl, _ in out}:
            raise ConfigError(f"baselines[{i}] = {entry!r} is listed twice")
        out.append((label, spec))
    return tuple(out)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
