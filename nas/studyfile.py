"""Study files: one YAML naming the study, backbone, dataset, search space, proxy, objectives,
sampler, trial target, baselines, constraints and storage.

Everything is validated here, before anything is written: a bad study file gets one message
naming the file, the field, the value and what is allowed. Relative paths (search space, image
folder, SQLite file) resolve against the study file's folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.backbones.weights import Pretrained
from nas.blocks import BlockSpec
from nas.data import DATASETS, Dataset, load_dataset
from nas.errors import ConfigError, with_source
from nas.fidelity import Fidelity
from nas.files import read_document
from nas.latency.conditions import LatencyConditions
from nas.space import DEFAULT_KINDS, SearchSpace, load_space
from nas.studyref import StudyRef, study_ref
from nas.train import ProxyConfig
from nas.validation import (
    ConfirmSettings,
    DatasetSettings,
    EvaluationSettings,
    LatencySettings,
    StudyFile,
    WeightsSettings,
    validate,
)

DESIGNER = "designer"  # the baseline that keeps a backbone's own attention (`own` on every stage)
BASELINE_NAMES = (*DEFAULT_KINDS, DESIGNER)


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
    noise_seeds: int = 3  # the `none` baseline trained at this many seeds measures the study's noise
    fidelity: Fidelity | None = None  # None: one fidelity, the proxy's
    latency: LatencySettings = dataclasses.field(default_factory=LatencySettings)
    latency_table: Path | None = None  # resolved `latency.table`; None: the default, see `latency_table_path`
    evaluation: EvaluationSettings = dataclasses.field(default_factory=EvaluationSettings)
    supernet_file: Path | None = None  # resolved `evaluation.file`; None: the default, see `supernet_path`
    confirm: ConfirmSettings = dataclasses.field(default_factory=ConfirmSettings)
    weights: Pretrained | None = None  # the pretrained file every candidate starts from (hashed); None: fresh init

    @property
    def latency_conditions(self) -> LatencyConditions:
        s = self.latency
        return LatencyConditions(s.runtime, s.batch_size, s.threads, s.device)

    @property
    def latency_table_path(self) -> Path:
        """The table given in the study file, else `<name>.latency.json` beside the study file."""
        return self.latency_table if self.latency_table is not None else self.path.parent / f"{self.name}.latency.json"

    @property
    def supernet_path(self) -> Path:
        """The supernet named in the study file, else `<name>.supernet.pt` beside the study file."""
        return self.supernet_file if self.supernet_file is not None else self.path.parent / f"{self.name}.supernet.pt"

    def latency_target(self, data: Dataset):  # type: ignore[no-untyped-def]
        """What the study's latency table is for (`nas.latency.builder.LatencyTarget`)."""
        from nas.latency.builder import LatencyTarget

        return LatencyTarget(self.backbone, dict(self.backbone_args), self.space, tuple(data.image_size),
                             data.in_chans, data.num_classes, self.latency_conditions,
                             extra=tuple(spec for _, spec in self.baselines))

    @property
    def ref(self) -> StudyRef:
        """Where the study lives and what it optimises (what opening an existing study needs)."""
        return StudyRef(self.path, self.name, self.storage, self.objectives, self.fidelity)

    @property
    def directions(self) -> list[str]:
        return self.ref.directions

    @property
    def metric_names(self) -> list[str]:
        return self.ref.metric_names

    def template(self, num_classes: int, in_chans: int) -> ArchConfig:
        """The backbone with `none` on every stage; the search fills in the stages."""
        return ArchConfig.uniform(self.backbone, BlockSpec("none"), self.backbone_args, num_classes, in_chans,
                                  self.weights)

    def baseline_arch(self, spec: BlockSpec, num_classes: int, in_chans: int) -> ArchConfig:
        return ArchConfig.uniform(self.backbone, spec, self.backbone_args, num_classes, in_chans, self.weights)

    def check_weights(self, data: Dataset) -> None:
        """Load the pretrained weights into the study's network once (on the CPU), so that a file of
        another backbone, width or input is refused naming this file before anything is written."""
        if self.weights is None:
            return
        from nas.build import build_model

        try:
            build_model(self.template(data.num_classes, data.in_chans))
        except ConfigError as error:
            raise with_source(error, str(self.path)) from None

    def own_attention(self) -> str:
        """What attention the backbone brings before the search adds any, and what each spec does with it."""
        from nas.backbones.own import describe

        counts = get_backbone(self.backbone).own_counts(self.backbone_args)
        if not any(counts):
            return "none (the `none` baseline is the backbone as built)"
        return (f"{describe(counts)}: `none` on a stage strips it, `own` keeps it, any block replaces it; "
                f"the `{DESIGNER}` baseline keeps it all")

    def space_size(self) -> int:
        """Distinct architectures the search can reach: the space's choices at the placements
        each of the backbone's stages has."""
        backbone = get_backbone(self.backbone)
        per_stage = backbone.placements_per_stage(self.backbone_args)
        owned = tuple(bool(c) for c in backbone.own_counts(self.backbone_args))
        return self.space.size(len(per_stage), per_stage, owned)

    def stage_choices(self) -> list[int]:
        """Distinct blocks per searched stage, at the placements that stage has."""
        backbone = get_backbone(self.backbone)
        per_stage = backbone.placements_per_stage(self.backbone_args)
        owned = backbone.own_counts(self.backbone_args)
        return [self.space.stage_choices(per_stage[s - 1], bool(owned[s - 1]))
                for s in self.space.searched_stages(len(per_stage))]

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
    """Shape and types by the study-file model (nas.validation); then what needs the backbone,
    the search space, the storage and the file system."""
    base = path.resolve().parent
    study = validate(StudyFile, data)
    ref = study_ref(study, path, storage_override)

    backbone = study.backbone
    backbone_args = get_backbone(backbone).resolve_args(study.backbone_args)
    num_stages = get_backbone(backbone).num_stages(backbone_args)

    dataset = _dataset(study.dataset, data["dataset"], base)
    source = study.search_space
    space = load_space(source, base)
    space.check_stages(num_stages, backbone, "search_space" if isinstance(source, Mapping) else str(source),
                       backbone_args)

    baselines = _baselines(_default_baselines(backbone, backbone_args) if study.baselines is None
                           else study.baselines, backbone, backbone_args)
    for label, spec in baselines:
        try:
            ArchConfig.uniform(backbone, spec, backbone_args)
        except ConfigError as error:
            raise ConfigError(f"baselines: {label}: {error}") from None

    proxy = study.proxy.model_dump()
    fidelity = ref.fidelity
    if fidelity is not None:
        written = data.get("proxy") or {}
        if "epochs" in written and written["epochs"] != fidelity.epochs[0]:
            raise ConfigError(f"proxy.epochs = {written['epochs']} differs from fidelity.epochs[0] = "
                              f"{fidelity.epochs[0]}; allowed: leave proxy.epochs out, or equal to fidelity.epochs[0] "
                              "(rung 0 trains at fidelity.epochs[0])")
        proxy["epochs"] = fidelity.epochs[0]

    return StudyConfig(
        path=ref.path, name=ref.name, storage=ref.storage, backbone=backbone, backbone_args=backbone_args,
        dataset=dataset, space=space, proxy=ProxyConfig(**proxy),
        objectives=tuple(study.objectives), sampler=study.sampler.options(), trials=study.trials,
        baselines=baselines, max_mflops=study.constraints.max_mflops, max_params=study.constraints.max_params,
        noise_seeds=study.noise_seeds, description=study.description, fidelity=fidelity,
        latency=study.latency, latency_table=ref.latency_table, evaluation=study.evaluation,
        supernet_file=None if study.evaluation.file is None else (base / study.evaluation.file),
        confirm=study.confirm,
        weights=None if study.weights is None else _weights(study.weights, backbone, base),
    )


def _weights(settings: WeightsSettings, backbone: str, base: Path) -> Pretrained:
    """The weights file, resolved against the study file's folder and hashed; a missing file or a
    hub name is refused (`nas.backbones.weights.locate`)."""
    return Pretrained.of(settings.file, settings.identity, backbone, base=base)


def _dataset(settings: DatasetSettings, written: Any, base: Path) -> dict[str, Any]:
    """`load_dataset` arguments: the settings given (defaults left to `load_dataset`), paths
    resolved against the study file's folder and checked."""
    if settings.name not in DATASETS:
        raise ConfigError(f"dataset.name = {settings.name!r} is not a dataset; allowed: {', '.join(DATASETS)}")
    given = written if isinstance(written, Mapping) else {"name": written}
    out = {key: getattr(settings, key) for key in given}
    for key in ("path", "root"):
        if out.get(key) is not None:
            resolved = Path(out[key]).expanduser()
            out[key] = resolved if resolved.is_absolute() else (base / resolved)
    if settings.name == "imagefolder":
        if out.get("path") is None:
            raise ConfigError("dataset.path is missing; imagefolder needs the folder of class folders")
        if not out["path"].is_dir():
            raise ConfigError(f"dataset.path = {str(given['path'])!r}: no such folder ({out['path']})")
    elif out.get("path") is not None and not out["path"].exists():
        raise ConfigError(f"dataset.path = {str(given['path'])!r}: no such folder ({out['path']})")
    return out


def _default_baselines(backbone: str, args: Mapping[str, Any]) -> list[str]:
    """Every kind at its paper default, and the designer's placement where the backbone has one."""
    return [*DEFAULT_KINDS, *([DESIGNER] if get_backbone(backbone).has_own(args) else [])]


def _baselines(value: Any, backbone: str, args: Mapping[str, Any]) -> tuple[tuple[str, BlockSpec], ...]:
    """Baselines: kinds at their paper defaults, `designer` (the backbone's own attention kept
    where its designer put it), or block mappings (custom hand placements)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"baselines = {value!r} is invalid; expected a list of kinds ({', '.join(BASELINE_NAMES)})")
    placement = get_backbone(backbone).default_placement()
    out = []
    for i, entry in enumerate(value):
        if entry == DESIGNER:
            if not get_backbone(backbone).has_own(args):
                raise ConfigError(f"baselines[{i}] = {DESIGNER!r} keeps a backbone's own attention, but {backbone} "
                                  f"brings none; allowed: {', '.join(DEFAULT_KINDS)}")
            spec = BlockSpec("own")
        elif isinstance(entry, str):
            if entry not in DEFAULT_KINDS:
                raise ConfigError(f"baselines[{i}] = {entry!r} is not a block kind; "
                                  f"allowed: {', '.join(BASELINE_NAMES)}")
            spec = BlockSpec.paper_default(entry, placement)
        else:
            spec = BlockSpec.from_dict(entry, where=f"baselines[{i}]")
        label = entry if isinstance(entry, str) else spec.block_id
        if label in {lbl for lbl, _ in out}:
            raise ConfigError(f"baselines[{i}] = {entry!r} is listed twice")
        out.append((label, spec))
    return tuple(out)
