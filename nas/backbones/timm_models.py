"""Any timm model as `timm:<name>`, with stages taken from timm's `feature_info`.

Every entry of `feature_info` is a stage (for timm's ResNets that includes the stem, so 5);
`placement: stage` puts the block on that module's output. In timm's EfficientNet / MobileNetV3 /
MnasNet family the inverted residuals and depthwise-separable units have an `se` slot after the
depthwise conv: `placement: expand` puts the block there, in every such unit from the previous
stage's output up to this stage's output, in place of the model's own SE (a stage with no such
unit, like a stem, offers `stage` only). Attention the model brings (MobileNetV3's SE, an
SE-ResNet's) is counted per stage the same way: `own` keeps a stage's, any other spec strips it.
`placement: block` and the residual-unit positions are refused: timm models do not share one
residual-unit layout to find the spot before the sum. Models are built untrained: arguments
that would load weights or files are refused.
"""

from __future__ import annotations

import difflib
import functools
import json
from typing import Any, NamedTuple

import torch
from torch import nn

from nas.backbones import own
from nas.backbones.base import Backbone, attach_after
from nas.blocks import BlockSpec, make_block
from nas.errors import ConfigError

PREFIX = "timm:"
PLACEMENTS = ("stage", "expand")


def _check_args(name: str, args: dict[str, Any]) -> None:
    for key in args:
        if key == "checkpoint_path" or str(key).startswith("pretrained"):
            raise ConfigError(
                f"backbone_args.{key} is refused for timm:{name}: nas builds untrained candidates to "
                "train and score, and never loads weights or files; remove it"
            )


def _create(name: str, args: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    import timm  # imported on first use: it costs about a second at start-up

    _check_args(name, args)
    try:
        model = timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **args
        )
    except TypeError as error:
        raise ConfigError(
            f"backbone_args = {args!r} is invalid for timm:{name}: {error}"
        ) from None
    if not isinstance(getattr(model, "feature_info", None), list) or not model.feature_info:
        raise ConfigError(
            f"backbone = timm:{name} has no feature_info, so its stages are unknown; "
            "allowed: timm models that support features_only"
        )
    return model


def _expandable(module: nn.Module) -> bool:
    """A timm inverted residual or depthwise-separable unit: an `se` slot after `conv_dw`."""
    return isinstance(getattr(module, "se", None), nn.Module) and isinstance(
        getattr(module, "conv_dw", None), nn.Conv2d
    )


def _by_stage(model: nn.Module, stage_modules: list[str], names: set[str]) -> list[list[str]]:
    """Per stage, which of the modules `names` it holds: those after the previous stage's output,
    up to and inside this stage's output module, in module order."""
    all_names = [name for name, _ in model.named_modules()]
    ends = [max(i for i, n in enumerate(all_names) if n == m or n.startswith(m + ".")) for m in stage_modules]
    out: list[list[str]] = [[] for _ in stage_modules]
    for index, name in enumerate(all_names):
        if name in names:
            stage = next((i for i, end in enumerate(ends) if index <= end), None)
            if stage is not None:
                out[stage].append(name)
    return out


class _Stage(NamedTuple):
    module: str  # the feature_info module whose output is the stage's
    channels: int
    units: tuple[str, ...]  # its expandable units
    own: tuple[str, ...]  # the attention modules the model brings inside it
    own_counts: tuple[tuple[str, int], ...]


@functools.lru_cache(maxsize=64)
def _feature_info(name: str, args_json: str) -> tuple[_Stage, ...]:
    with torch.random.fork_rng(devices=[]):  # a seeded build stays reproducible on a cache miss
        model = _create(name, json.loads(args_json), 10, 3)
    modules = [f["module"] for f in model.feature_info]
    units = _by_stage(model, modules, {n for n, m in model.named_modules() if _expandable(m)})
    owned = _by_stage(model, modules, {n for n, _ in own.find_attention(model)})
    return tuple(
        _Stage(f["module"], f["num_chs"], tuple(u), tuple(o), tuple(own.count(model, o).items()))
        for f, u, o in zip(model.feature_info, units, owned, strict=True)
    )


def _stages(name: str, args: dict[str, Any]) -> tuple[_Stage, ...]:
    _check_args(name, args)
    return _feature_info(name, json.dumps(args, sort_keys=True))


def _own_attention(name: str, args: dict[str, Any]) -> tuple[dict[str, int], ...]:
    return tuple(dict(stage.own_counts) for stage in _stages(name, args))


def _stage_placements(name: str, args: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    return tuple(("stage", "expand") if stage.units else ("stage",) for stage in _stages(name, args))


def _build(
    name: str, args: dict[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
) -> nn.Module:
    model = _create(name, args, num_classes, in_chans)
    for spec, stage in zip(stages, _stages(name, args), strict=True):
        if spec.kind == "own":
            continue
        own.strip(model, stage.own)
        if spec.placement == "expand":
            for unit_name in stage.units:
                unit = model.get_submodule(unit_name)
                unit.se = make_block(spec, unit.conv_dw.out_channels)
        else:
            attach_after(model, stage.module, spec, stage.channels)
    return model


def timm_backbone(backbone: str) -> Backbone:
    """The Backbone for `timm:<name>`; an unknown name lists close matches."""
    import timm

    name = backbone[len(PREFIX):]
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"did you mean {', '.join('timm:' + c for c in close)}?" if close else (
            "see timm.list_models()"
        )
        raise ConfigError(f"backbone = {backbone!r} is not a timm model; {hint}")
    return Backbone(
        name=backbone,
        defaults=None,
        stage_placements=lambda args: _stage_placements(name, args),
        placements=PLACEMENTS,
        builder=lambda args, stages, nc, ic: _build(name, args, stages, nc, ic),
        check=lambda args: _check_args(name, args),
        own_attention=lambda args: _own_attention(name, args),
    )
