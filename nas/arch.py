"""`ArchConfig`: a backbone plus one `BlockSpec` per stage, as plain validated data.

It round-trips through dicts, YAML and JSON, and is what the search samples, the study stores
and `nas export` writes. Building it into a model is `nas.build`'s job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from nas.backbones import get_backbone
from nas.backbones.weights import Pretrained
from nas.blocks import BlockSpec
from nas.errors import ConfigError, with_source
from nas.files import read_document

ARCH_KEYS = ("backbone", "backbone_args", "num_classes", "in_chans", "stages", "weights")


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """One architecture. Frozen, hashable, and equal when it builds the same model.

    `backbone_args` is completed with the backbone's defaults, so `{depth: 8}` and
    `{depth: 8, width: 16}` are the same architecture. `weights`: the pretrained file the network
    starts from (None: a fresh initialisation); it is no part of `arch_id`.
    """

    backbone: str
    stages: tuple[BlockSpec, ...]
    backbone_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_classes: int = 10
    in_chans: int = 3
    weights: Pretrained | None = None

    def __post_init__(self) -> None:
        backbone = get_backbone(self.backbone)
        args = backbone.resolve_args(self.backbone_args or {})
        object.__setattr__(self, "backbone_args", MappingProxyType(args))
        stages = tuple(self.stages)
        for i, spec in enumerate(stages, 1):
            if not isinstance(spec, BlockSpec):
                raise ConfigError(f"stages[{i}] = {spec!r} is invalid; expected a BlockSpec")
        object.__setattr__(self, "stages", backbone.normalise_stages(args, stages))
        stages = self.stages
        for field in ("num_classes", "in_chans"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{field} = {value!r} is invalid; allowed: an integer >= 1")
        backbone.check_stages(args, stages)
        if self.weights is not None and not isinstance(self.weights, Pretrained):
            raise ConfigError(f"weights = {self.weights!r} is invalid; expected a Pretrained (Pretrained.of(file))")

    def __hash__(self) -> int:
        return hash((self.backbone, self.stages, _canonical(self.backbone_args),
                     self.num_classes, self.in_chans, self.weights))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArchConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    @classmethod
    def uniform(
        cls,
        backbone: str,
        spec: BlockSpec,
        backbone_args: Mapping[str, Any] | None = None,
        num_classes: int = 10,
        in_chans: int = 3,
        weights: Pretrained | None = None,
    ) -> ArchConfig:
        """The same block on every stage: the hand-placed baselines (SE everywhere, ...)."""
        stages = (spec,) * get_backbone(backbone).num_stages(backbone_args or {})
        return cls(backbone, stages, dict(backbone_args or {}), num_classes, in_chans, weights)

    @property
    def arch_id(self) -> str:
        """A stable one-line id of the stage blocks, e.g. `s1:se-r16-avg|s2:none|s3:cbam-r8-k7-avgmax`."""
        return "|".join(f"s{i}:{spec.block_id}" for i, spec in enumerate(self.stages, 1))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "backbone": self.backbone,
            "backbone_args": dict(self.backbone_args),
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "stages": [spec.to_dict() for spec in self.stages],
        }
        if self.weights is not None:  # left out otherwise: the stored form of every earlier architecture
            out["weights"] = self.weights.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path | None = None) -> ArchConfig:
        """Build from a mapping; unknown keys and a wrong stage count are errors. A relative
        `weights.file` resolves against `base` (the architecture file's folder)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"architecture = {data!r} is invalid; expected a mapping")
        unknown = [k for k in data if k not in ARCH_KEYS]
        if unknown:
            raise ConfigError(
                f"{unknown[0]} is not an architecture key; allowed: {', '.join(ARCH_KEYS)}"
            )
        for key in ("backbone", "stages"):
            if key not in data:
                raise ConfigError(f"{key} is missing; an architecture needs backbone and stages")
        stages = data["stages"]
        if not isinstance(stages, list):
            raise ConfigError(f"stages = {stages!r} is invalid; expected a list, one entry per stage")
        specs = tuple(BlockSpec.from_dict(s, where=f"stages[{i}]") for i, s in enumerate(stages, 1))
        return cls(
            backbone=data["backbone"],
            stages=specs,
            backbone_args=data.get("backbone_args") or {},
            num_classes=data.get("num_classes", 10),
            in_chans=data.get("in_chans", 3),
            weights=None if data.get("weights") is None else Pretrained.from_dict(data["weights"], base),
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _canonical(value: Any) -> str:
    return json.dumps(dict(value), sort_keys=True, default=str)


def load_arch(path: str | Path) -> ArchConfig:
    """Read an ArchConfig from a YAML or JSON file (an export's `provenance` section is ignored)."""
    path = Path(path)
    data = read_document(path, "the architecture file")
    if isinstance(data, Mapping):  # an export adds a provenance section
        data = {key: value for key, value in data.items() if key != "provenance"}
    try:
        return ArchConfig.from_dict(data, base=path.resolve().parent)
    except ConfigError as error:
        raise with_source(error, str(path)) from None
