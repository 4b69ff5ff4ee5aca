"""Search space: which block kinds and settings each stage may take, and sampling from it.

This is the only module that calls `trial.suggest_*`. Parameter names are stable for a given
space, so TPE's conditional (group) handling sees the same tree every trial:

    stage2.attend               only with `choose_stages: true`: does the stage take attention
    stage2.kind                 one of the space's kinds (with `choose_stages`, not `none`, and
                                only when stage2.attend)
    stage2.se.reduction         only when stage2.kind == se, and only if the space offers > 1 choice
    stage2.placement            only when the kind is not none and the stage offers > 1 of the
                                space's placements

Settings are suggested in their kind's registration order and only where they apply (CBAM's
`reduction` only when `stage2.cbam.channel` is `se`), so the tree stays conditional all the way down.

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
from nas.blocks import BLOCK_KINDS, KINDS, PLACELESS, PLACEMENTS, REGISTRY, BlockSpec
from nas.errors import ConfigError, with_source
from nas.files import read_document

DEFAULT_KINDS = tuple(k for k in KINDS if k != "own")  # `own` only where asked: it needs a backbone that has some
SPACE_KEYS = ("kinds", *BLOCK_KINDS, "placement", "stages", "choose_stages")


class _NotInSpace(Exception):
    """A setting of an architecture is not among the space's choices (internal to `params_for`)."""


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Choices per kind (`settings[kind][setting] = (choice, ...)`), placements and stages.

    A kind may instead list whole `variants` (`variants[kind] = (BlockSpec, ...)`): its settings are
    then chosen together, one variant per trial (`stage2.se.variant`, the variant's block id), so a
    space can offer exactly the blocks some source uses without mixing their settings.
    `placements` are the positions to consider; each stage offers those of them its backbone has
    there (a ResNet stage has no `expand`, MobileNetV2's head no `pre`). `stages` is `None` for
    every stage, else a tuple of 1-based stage indices; the other stages stay `none`.

    `choose_stages`: each searched stage first chooses whether it takes attention at all
    (`stageN.attend`, even odds), then which kind. The architectures are the same; the draws are
    not: with k kinds a stage is `none` 1 time in k, so attention on one stage alone (cheap, and
    on tin100 as accurate as ECA everywhere) is 1 draw in hundreds, against 3 in 8 with it on.
    """

    kinds: tuple[str, ...]
    settings: Mapping[str, Mapping[str, tuple[Any, ...]]]
    placements: tuple[str, ...] = ("block",)
    stages: tuple[int, ...] | None = None
    variants: Mapping[str, tuple[BlockSpec, ...]] = dataclasses.field(default_factory=dict)
    choose_stages: bool = False

    @classmethod
    def from_dict(cls, data: Any, where: str = "search_space") -> SearchSpace:
        """A space from its YAML mapping, every choice checked; messages name `where`."""
        return _parse(data, where)

    def searched_stages(self, num_stages: int) -> tuple[int, ...]:
        return tuple(range(1, num_stages + 1)) if self.stages is None else self.stages

    def stage_placements(self, offered: tuple[str, ...]) -> tuple[str, ...]:
        """The space's placements that a stage offering `offered` has, in the space's order."""
        return tuple(p for p in self.placements if p in offered)

    def stage_kinds(self, has_own: bool) -> tuple[str, ...]:
        """The kinds one stage offers: `own` only where the backbone brings attention there."""
        return tuple(k for k in self.kinds if k != "own" or has_own)

    def _kind_choices(self, has_own: bool) -> tuple[str, ...]:
        """What `stageN.kind` chooses from: with `choose_stages`, `none` is `stageN.attend` = False."""
        kinds = self.stage_kinds(has_own)
        return tuple(k for k in kinds if k != "none") if self.choose_stages else kinds

    def check_stages(
        self, num_stages: int, backbone: str, where: str = "search_space",
        backbone_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse stage indices the backbone does not have, searched stages where none of the
        space's placements exist, and `own` where no searched stage brings attention of its own."""
        for s in self.stages or ():
            if s > num_stages:
                raise ConfigError(
                    f"{where}.stages: stage {s} is out of range; {backbone} has stages 1..{num_stages}"
                )
        if "own" in self.kinds:
            counts = get_backbone(backbone).own_counts(backbone_args or {})
            if not any(counts[s - 1] for s in self.searched_stages(num_stages)):
                raise ConfigError(
                    f"{where}.kinds: own keeps the attention a backbone brings, but {backbone} has none"
                    f"{' in the searched stages' if any(counts) else ''}; allowed: remove own from {where}.kinds"
                )
        if all(k in PLACELESS for k in self.kinds):
            return
        per_stage = get_backbone(backbone).placements_per_stage(backbone_args or {})
        for s in self.searched_stages(num_stages):
            if not self.stage_placements(per_stage[s - 1]):
                raise ConfigError(
                    f"{where}.placement: {', '.join(self.placements)} "
                    f"{'is' if len(self.placements) == 1 else 'are'} not supported by {backbone} at stage {s}; "
                    f"allowed there: {', '.join(per_stage[s - 1])} (or leave stage {s} out of {where}.stages)"
                )

    def _walk(self, kind: str, choose: Any) -> dict[str, Any]:
        """The kind's settings in registration order: a fixed choice, `choose(name, choices)` where
        there are several, nothing for a setting the space leaves at its default or that does not
        apply given the earlier ones (CBAM's reduction with an ECA channel half)."""
        if kind in self.variants:
            ids = [v.block_id for v in self.variants[kind]]
            chosen = ids[0] if len(ids) == 1 else choose("variant", tuple(ids))
            return self.variants[kind][ids.index(chosen)].settings()
        info = REGISTRY[kind]
        options = self.settings.get(kind, {})
        values: dict[str, Any] = {}
        for setting in info.settings:
            choices = options.get(setting.name)
            if choices is None or not info.applies(setting, values):
                continue
            values[setting.name] = choices[0] if len(choices) == 1 else choose(setting.name, choices)
        return values

    def _combinations(self, kind: str) -> list[dict[str, Any]]:
        """Every assignment `_walk` can produce for `kind`."""
        if kind in self.variants:
            return [v.settings() for v in self.variants[kind]]
        info = REGISTRY[kind]
        options = self.settings.get(kind, {})
        results: list[dict[str, Any]] = [{}]
        for setting in info.settings:
            choices = options.get(setting.name)
            if choices is None:
                continue
            grown: list[dict[str, Any]] = []
            for values in results:
                if info.applies(setting, values):
                    grown.extend({**values, setting.name: choice} for choice in choices)
                else:
                    grown.append(values)
            results = grown
        return results

    def blocks(self, kind: str) -> set[BlockSpec]:
        """The distinct blocks (at placement `block`) the space offers for `kind`."""
        return {BlockSpec(kind, **values) for values in self._combinations(kind)}

    def stage_specs(self, offered: tuple[str, ...], has_own: bool = False) -> tuple[BlockSpec, ...]:
        """Every distinct block (settings and placement) one searched stage can take, where the
        stage offers the placements `offered` (a one-shot supernet holds weights for each)."""
        placements = self.stage_placements(offered)
        specs: list[BlockSpec] = []
        for kind in self.stage_kinds(has_own):
            if kind in PLACELESS:
                specs.append(BlockSpec(kind))
                continue
            for values in self._combinations(kind):
                specs.extend(BlockSpec(kind, placement=p, **values) for p in placements)
        return tuple(dict.fromkeys(specs))

    def stage_choices(self, offered: tuple[str, ...] | None = None, has_own: bool = False) -> int:
        """How many distinct blocks one searched stage can take (where the stage offers `offered`,
        and brings attention of its own when `has_own`)."""
        placements = len(self.placements if offered is None else self.stage_placements(offered))
        return sum(1 if kind in PLACELESS else len(self.blocks(kind)) * placements
                   for kind in self.stage_kinds(has_own))

    def size(self, num_stages: int, per_stage: tuple[tuple[str, ...], ...] | None = None,
             owned: tuple[bool, ...] | None = None) -> int:
        """Number of distinct architectures in the space (`per_stage`: the backbone's placements;
        `owned`: which stages bring attention of their own)."""
        return math.prod(
            self.stage_choices(None if per_stage is None else per_stage[s - 1], bool(owned and owned[s - 1]))
            for s in self.searched_stages(num_stages)
        )

    def sample(self, trial: optuna.trial.BaseTrial, template: ArchConfig) -> ArchConfig:
        """Suggest one block per searched stage; the rest of `template` (backbone, ...) is kept."""
        return _sample(self, trial, template)

    def params_for(self, arch: ArchConfig) -> dict[str, Any] | None:
        """The trial parameters that sample `arch`, or None when the space cannot produce it."""
        return _params_for(self, arch)


# --- reading a space: kinds, each kind's choices, placements, stages, then what only whole blocks show

def _parse(data: Any, where: str) -> SearchSpace:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} = {data!r} is invalid; expected a mapping with 'kinds'")
    for key in data:
        if key not in SPACE_KEYS:
            raise ConfigError(f"{where}.{key} is not a search-space key; allowed: {', '.join(SPACE_KEYS)}")
    kinds = _choices(data.get("kinds", list(DEFAULT_KINDS)), f"{where}.kinds")
    for kind in kinds:
        if kind not in KINDS:
            raise ConfigError(f"{where}.kinds: {kind!r} is not a block kind; allowed: {', '.join(KINDS)}")
    settings, variants = _kinds_choices(data, kinds, where)
    choose = data.get("choose_stages", False)
    if not isinstance(choose, bool):
        raise ConfigError(f"{where}.choose_stages = {choose!r} is invalid; expected true or false")
    if choose and ("none" not in kinds or len(kinds) < 2):
        raise ConfigError(f"{where}.choose_stages: true needs none and at least one other kind in {where}.kinds; "
                          f"got kinds [{', '.join(kinds)}]")
    space = SearchSpace(kinds, settings, _placements(data, where), _stages(data, where), variants, choose)
    for kind in kinds:  # combinations no single choice can judge (GE's conv gather and extent 0)
        for values in space._combinations(kind):
            try:
                BlockSpec(kind, **values)
            except ConfigError as error:
                raise ConfigError(f"{where}.{kind}: {error}") from None
    return space


def _kinds_choices(data: Mapping[str, Any], kinds: tuple[str, ...], where: str) -> tuple[
        dict[str, dict[str, tuple[Any, ...]]], dict[str, tuple[BlockSpec, ...]]]:
    """Each offered kind's `{setting: choices}`, or its list of whole variants."""
    settings: dict[str, dict[str, tuple[Any, ...]]] = {}
    variants: dict[str, tuple[BlockSpec, ...]] = {}
    for kind in BLOCK_KINDS:
        given = data.get(kind)
        if given is not None and kind not in kinds:
            raise ConfigError(f"{where}.{kind} has settings but {kind} is not in {where}.kinds")
        if kind not in kinds:
            continue
        if isinstance(given, list):
            variants[kind] = _variants(kind, given, f"{where}.{kind}")
        else:
            settings[kind] = _kind_choices(kind, given or {}, f"{where}.{kind}")
    return settings, variants


def _placements(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    placements = _choices(data.get("placement", ["block"]), f"{where}.placement")
    for placement in placements:
        if placement not in PLACEMENTS:
            raise ConfigError(
                f"{where}.placement: {placement!r} is not a placement; allowed: {', '.join(PLACEMENTS)}"
            )
    return placements


def _stages(data: Mapping[str, Any], where: str) -> tuple[int, ...] | None:
    stages = data.get("stages", "all")
    if stages == "all" or stages is None:
        return None
    stage_list = _choices(stages, f"{where}.stages")
    for s in stage_list:
        if not isinstance(s, int) or isinstance(s, bool) or s < 1:
            raise ConfigError(f"{where}.stages: {s!r} is not a stage index; allowed: 'all' or stage numbers from 1")
    return tuple(sorted(stage_list))


# --- sampling an architecture, and the parameters that would sample a given one

def _sample(space: SearchSpace, trial: optuna.trial.BaseTrial, template: ArchConfig) -> ArchConfig:
    stages = list(template.stages)
    backbone = get_backbone(template.backbone)
    per_stage = backbone.placements_per_stage(template.backbone_args)
    owned = backbone.own_counts(template.backbone_args)
    for s in space.searched_stages(len(stages)):
        if space.choose_stages and not trial.suggest_categorical(f"stage{s}.attend", [False, True]):
            stages[s - 1] = BlockSpec("none")
            continue
        kind = trial.suggest_categorical(f"stage{s}.kind", list(space._kind_choices(bool(owned[s - 1]))))
        prefix = f"stage{s}.{kind}."
        values = space._walk(
            kind, lambda name, choices, prefix=prefix: trial.suggest_categorical(prefix + name, list(choices))
        )
        if kind not in PLACELESS:
            placements = space.stage_placements(per_stage[s - 1])
            if not placements:
                raise ConfigError(
                    f"search_space.placement: none of {', '.join(space.placements)} is supported by "
                    f"{template.backbone} at stage {s}; allowed there: {', '.join(per_stage[s - 1])}"
                )
            values["placement"] = (
                trial.suggest_categorical(f"stage{s}.placement", list(placements))
                if len(placements) > 1 else placements[0]
            )
        stages[s - 1] = BlockSpec(kind, **values)
    return dataclasses.replace(template, stages=tuple(stages))


def _params_for(space: SearchSpace, arch: ArchConfig) -> dict[str, Any] | None:
    searched = space.searched_stages(len(arch.stages))
    per_stage = get_backbone(arch.backbone).placements_per_stage(arch.backbone_args)
    params: dict[str, Any] = {}
    for s, spec in enumerate(arch.stages, 1):
        if s not in searched:
            if spec.kind != "none":
                return None
            continue
        if spec.kind not in space.kinds:
            return None
        if space.choose_stages:
            params[f"stage{s}.attend"] = spec.kind != "none"
            if spec.kind == "none":
                continue
        params[f"stage{s}.kind"] = spec.kind

        def pick(name: str, choices: tuple[Any, ...], s: int = s, spec: BlockSpec = spec) -> Any:
            if name == "variant":
                value = dataclasses.replace(spec, placement="block").block_id
            else:
                value = getattr(spec, name)
            if value not in choices:
                raise _NotInSpace
            params[f"stage{s}.{spec.kind}.{name}"] = value
            return value

        try:
            values = space._walk(spec.kind, pick)
        except _NotInSpace:
            return None
        if spec.kind not in PLACELESS:
            placements = space.stage_placements(per_stage[s - 1])
            if spec.placement not in placements:
                return None
            if len(placements) > 1:
                params[f"stage{s}.placement"] = spec.placement
            values["placement"] = spec.placement
        if BlockSpec(spec.kind, **values) != spec:
            return None
    return params


# --- one kind's choices

def _variants(kind: str, given: list[Any], where: str) -> tuple[BlockSpec, ...]:
    """A kind's list of whole variants, each a mapping of its settings (placement comes from the space)."""
    if not given:
        raise ConfigError(f"{where} = [] is invalid; expected a mapping of setting: [choices] or a list of variants")
    variants = []
    for i, entry in enumerate(given):
        if not isinstance(entry, Mapping) or "kind" in entry or "placement" in entry:
            raise ConfigError(
                f"{where}[{i}] = {entry!r} is invalid; expected a mapping of {kind}'s settings to single values "
                "(the kind is the key above it, the placement comes from the space's placement list)"
            )
        variants.append(BlockSpec.from_dict({"kind": kind, **entry}, where=f"{where}[{i}]"))
    ids = [v.block_id for v in variants]
    duplicate = next((i for i, v in enumerate(ids) if v in ids[:i]), None)
    if duplicate is not None:
        raise ConfigError(f"{where}[{duplicate}] is the same block as an earlier variant ({ids[duplicate]})")
    return tuple(variants)


def _kind_choices(kind: str, given: Any, where: str) -> dict[str, tuple[Any, ...]]:
    """A kind's `{setting: [choices]}`, each choice checked against the setting's allowed values."""
    if not isinstance(given, Mapping):
        raise ConfigError(
            f"{where} = {given!r} is invalid; expected a mapping of setting: [choices] or a list of variants"
        )
    info = REGISTRY[kind]
    out: dict[str, tuple[Any, ...]] = {}
    for name, choices in given.items():
        if name not in info.names:
            raise ConfigError(f"{where}.{name} is not a setting of {kind}; allowed: {', '.join(info.names)}")
        out[name] = _choices(choices, f"{where}.{name}")
        setting = info.setting(name)
        for i, choice in enumerate(out[name]):
            if not ((choice is None and setting.nullable) or (choice is not None and setting.valid(choice))):
                raise ConfigError(
                    f"{where}.{name}[{i}]: {name} = {choice!r} is invalid for {kind}; allowed: {setting.allowed}"
                )
    return out


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
