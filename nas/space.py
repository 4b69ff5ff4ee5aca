"""Search space: which block kinds and settings each stage may take, and sampling from it.

This is the only module that calls `trial.suggest_*`. Parameter names are stable for a given
space, so TPE's conditional (group) handling sees the same tree every trial:

    stage2.kind                 one of the space's kinds
    stage2.se.reduction         only when stage2.kind == se, and only if the space offers > 1 choice
    stage2.placement            only when the kind is not none and > 1 placement is offered

Stages are numbered from 1, as in `arch_id` (`s2:...`). A setting with a single choice is fixed,
not a parameter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.blocks import KINDS, PLACEMENTS, BlockSpec
from nas.blocks.spec import SETTINGS
from nas.errors import ConfigError, with_source
from nas.files import read_document

SPACE_KEYS = ("kinds", *KINDS[1:], "placement", "stages")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Choices per kind (`settings[kind][setting] = (choice, ...)`), placements and stages.

    `stages` is `None` for every stage, else a tuple of 1-based stage indices; the other stages
    stay `none`.
    """

    kinds: tuple[str, ...]
    settings: Mapping[str, Mapping[str, tuple[Any, ...]]]
    placements: tuple[str, ...] = ("block",)
    stages: tuple[int, ...] | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "search_space") -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} = {data!r} is invalid; expected a mapping with 'kinds'")
        for key in data:
            if key not in SPACE_KEYS:
                raise ConfigError(f"{where}.{key} is not a search-space key; allowed: {', '.join(SPACE_KEYS)}")
        kinds = _choices(data.get("kinds", list(KINDS)), f"{where}.kinds")
        for kind in kinds:
            if kind not in KINDS:
                raise ConfigError(f"{where}.kinds: {kind!r} is not a block kind; allowed: {', '.join(KINDS)}")
        settings: dict[str, dict[str, tuple[Any, ...]]] = {}
        for kind in KINDS[1:]:
            given = data.get(kind)
            if given is not None and kind not in kinds:
                raise ConfigError(f"{where}.{kind} has settings but {kind} is not in {where}.kinds")
            if kind not in kinds:
                continue
            given = given or {}
            if not isinstance(given, Mapping):
                raise ConfigError(f"{where}.{kind} = {given!r} is invalid; expected a mapping of setting: [choices]")
            settings[kind] = {}
            for name, choices in given.items():
                if name not in SETTINGS[kind]:
                    raise ConfigError(
                        f"{where}.{kind}.{name} is not a setting of {kind}; allowed: {', '.join(SETTINGS[kind])}"
                    )
                settings[kind][name] = _choices(choices, f"{where}.{kind}.{name}")
                for i, choice in enumerate(settings[kind][name]):
                    try:
                        BlockSpec(kind, **{name: choice})
                    except ConfigError as error:
                        raise ConfigError(f"{where}.{kind}.{name}[{i}]: {error}") from None
        placements = _choices(data.get("placement", ["block"]), f"{where}.placement")
        for placement in placements:
            if placement not in PLACEMENTS:
                raise ConfigError(
                    f"{where}.placement: {placement!r} is not a placement; allowed: {', '.join(PLACEMENTS)}"
                )
        stages = data.get("stages", "all")
        if stages == "all" or stages is None:
            stage_list = None
        else:
            stage_list = _choices(stages, f"{where}.stages")
            for s in stage_list:
                if not isinstance(s, int) or isinstance(s, bool) or s < 1:
                    raise ConfigError(
                        f"{where}.stages: {s!r} is not a stage index; allowed: 'all' or stage numbers from 1"
                    )
            stage_list = tuple(sorted(stage_list))
        return cls(kinds, settings, placements, stage_list)

    def searched_stages(self, num_stages: int) -> tuple[int, ...]:
        return tuple(range(1, num_stages + 1)) if self.stages is None else self.stages

    def check_stages(self, num_stages: int, backbone: str, where: str = "search_space") -> None:
        """Refuse stage indices the backbone does not have."""
        for s in self.stages or ():
            if s > num_stages:
                raise ConfigError(
                    f"{where}.stages: stage {s} is out of range; {backbone} has stages 1..{num_stages}"
                )
        unsupported = set(self.placements) - set(get_backbone(backbone).placements)
        if unsupported:
            raise ConfigError(
                f"{where}.placement: {sorted(unsupported)[0]!r} is not supported by {backbone}; "
                f"allowed: {', '.join(get_backbone(backbone).placements)}"
            )

    def _options(self, kind: str) -> dict[str, tuple[Any, ...]]:
        """Every setting of `kind` with its choices; unlisted settings keep the spec default."""
        return dict(self.settings.get(kind, {}))

    def stage_choices(self) -> int:
        """How many distinct blocks one searched stage can take."""
        total = 0
        for kind in self.kinds:
            if kind == "none":
                total += 1
            else:
                total += math.prod(len(c) for c in self._options(kind).values()) * len(self.placements)
        return total

    def size(self, num_stages: int) -> int:
        """Number of distinct architectures in the space."""
        return self.stage_choices() ** len(self.searched_stages(num_stages))

    def sample(self, trial: optuna.trial.BaseTrial, template: ArchConfig) -> ArchConfig:
        """Suggest one block per searched stage; the rest of `template` (backbone, ...) is kept."""
        stages = list(template.stages)
        for s in self.searched_stages(len(stages)):
            kind = trial.suggest_categorical(f"stage{s}.kind", list(self.kinds))
            values: dict[str, Any] = {}
            for name, choices in self._options(kind).items():
                if len(choices) > 1:
                    values[name] = trial.suggest_categorical(f"stage{s}.{kind}.{name}", list(choices))
                else:
                    values[name] = choices[0]
            if kind != "none":
                if len(self.placements) > 1:
                    values["placement"] = trial.suggest_categorical(f"stage{s}.placement", list(self.placements))
                else:
                    values["placement"] = self.placements[0]
            stages[s - 1] = BlockSpec(kind, **values)
        return dataclasses.replace(template, stages=tuple(stages))

    def params_for(self, arch: ArchConfig) -> dict[str, Any] | None:
        """The trial parameters that sample `arch`, or None when the space cannot produce it."""
        searched = self.searched_stages(len(arch.stages))
        params: dict[str, Any] = {}
        for s, spec in enumerate(arch.stages, 1):
            if s not in searched:
                if spec.kind != "none":
                    return None
                continue
            if spec.kind not in self.kinds:
                return None
            params[f"stage{s}.kind"] = spec.kind
            for name, choices in self._options(spec.kind).items():
                value = getattr(spec, name)
                if value not in choices:
                    return None
                if len(choices) > 1:
                    params[f"stage{s}.{spec.kind}.{name}"] = value
            for name in SETTINGS[spec.kind]:
                if name not in self._options(spec.kind) and getattr(spec, name) != getattr(BlockSpec(spec.kind), name):
                    return None
            if spec.kind != "none":
                if spec.placement not in self.placements:
                    return None
                if len(self.placements) > 1:
                    params[f"stage{s}.placement"] = spec.placement
        return params


def _choices(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} = {value!r} is invalid; expected a non-empty list of choices")
    if len(set(map(repr, value))) != len(value):
        raise ConfigError(f"{where} = {value!r} lists a choice twice")
    return tuple(value)


def load_space(source: str | Path | Mapping[str, Any], base: Path | None = None) -> SearchSpace:
    """A search space from a YAML file (relative to `base`) or an inline mapping."""
    if isinstance(source, Mapping):
        return SearchSpace.from_dict(source)
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        data = read_document(path, "the search space")
    except ConfigError as error:  # name the study field that pointed here
        raise ConfigError(f"search_space = {str(source)!r}: {error}") from None
    try:
        return SearchSpace.from_dict(data)
    except ConfigError as error:
        raise with_source(error, str(path)) from None
