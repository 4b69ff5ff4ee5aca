"""torchvision's MobileNetV3 (small, large) and EfficientNet-B0: the networks whose designers
placed SE themselves.

Built from torchvision's own constructors without weights (nothing is downloaded). Stages are the
inverted residuals grouped by output resolution (a new stage at every stride-2 unit), as for
`mobilenet_v2`; the stem and the 1×1 head stay outside (no designer puts attention there):
MobileNetV3-Small has 4 stages, -Large 5, EfficientNet-B0 5.

Placements in a stage: `expand` is the SE slot after the depthwise conv, on the expanded width,
in every unit of the stage (where the designer's SE sits, or would); `block` after the
projection's norm, before the residual sum; `stage` once on the stage's output. The designer's SE
(torchvision's `SqueezeExcitation`: MobileNetV3 with a hard-sigmoid gate and width rounded to a
multiple of 8, EfficientNet in every unit with SiLU) is kept by `own` and stripped by every other
spec, so `own` on every stage is torchvision's model, parameter for parameter. `small_input: true`
makes the stem stride 1, for 32 px inputs, as `mobilenet_v2` does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models import efficientnet_b0, mobilenet_v3_large, mobilenet_v3_small
from torchvision.models.efficientnet import MBConv
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.ops import SqueezeExcitation

from nas.backbones import own
from nas.backbones.base import INVERTED, Backbone, attach_after, check_positive_number, check_small_input
from nas.blocks import BlockSpec, make_block

UNITS = (InvertedResidual, MBConv)

_CONSTRUCTORS: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {
    "mobilenet_v3_small": (mobilenet_v3_small, {"width_mult": 1.0, "small_input": False}),
    "mobilenet_v3_large": (mobilenet_v3_large, {"width_mult": 1.0, "small_input": False}),
    "efficientnet_b0": (efficientnet_b0, {"small_input": False}),
}


def _depthwise(unit: nn.Module) -> int:
    """Index in `unit.block` of the depthwise conv (with its norm and activation)."""
    for index, layer in enumerate(unit.block):
        conv = layer[0] if isinstance(layer, nn.Sequential) else None
        if isinstance(conv, nn.Conv2d) and conv.groups > 1 and conv.groups == conv.out_channels:
            return index
    raise AssertionError(f"no depthwise conv in {type(unit).__name__}")  # torchvision's units all have one


def unit_stages(model: nn.Module) -> list[list[str]]:
    """Names of the inverted residuals, grouped by output resolution: a new group at every
    stride-2 unit (the first unit opens the first group whatever its stride)."""
    groups: list[list[str]] = []
    for name, unit in model.named_modules():
        if not isinstance(unit, UNITS):
            continue
        if not groups or unit.block[_depthwise(unit)][0].stride[0] == 2:
            groups.append([])
        groups[-1].append(name)
    return groups


def _create(name: str, args: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    constructor, _ = _CONSTRUCTORS[name]
    extra = {"width_mult": args["width_mult"]} if "width_mult" in args else {}
    model = constructor(num_classes=num_classes, **extra)
    stem = model.features[0][0]
    if in_chans != 3 or args["small_input"]:
        model.features[0][0] = nn.Conv2d(in_chans, stem.out_channels, 3, 1 if args["small_input"] else 2, 1,
                                         bias=False)
    return model


@functools.lru_cache(maxsize=16)
def _own(name: str, args_json: str) -> tuple[tuple[str, ...], ...]:
    """Per stage, the names of the designer's SE modules (the same for any class count). The
    model built to find them leaves the global RNG as it was: a seeded build stays reproducible."""
    with torch.random.fork_rng(devices=[]):
        model = _create(name, json.loads(args_json), 10, 3)
    return own.by_stage(model, unit_stages(model))


def _own_attention(name: str, args: dict[str, Any]) -> tuple[dict[str, int], ...]:
    names = _own(name, json.dumps(args, sort_keys=True))
    return tuple({SqueezeExcitation.__name__: len(stage)} if stage else {} for stage in names)


def _build(name: str, args: dict[str, Any], stages: tuple[BlockSpec, ...], num_classes: int,
           in_chans: int) -> nn.Module:
    model = _create(name, args, num_classes, in_chans)
    owned = _own(name, json.dumps(args, sort_keys=True))  # the same module names whatever the class count
    for spec, units, designers in zip(stages, unit_stages(model), owned, strict=True):
        if spec.kind == "own":
            continue
        if spec.placement == "expand" and spec.kind != "none":
            for unit_name in units:  # into the SE slot: the designer's if it has one, else after the depthwise
                unit = model.get_submodule(unit_name)
                depthwise = _depthwise(unit)
                block = make_block(spec, unit.block[depthwise][0].out_channels)
                slot = next((i for i, m in enumerate(unit.block) if isinstance(m, SqueezeExcitation)), None)
                if slot is None:
                    unit.block.insert(depthwise + 1, block)
                else:
                    unit.block[slot] = block
            continue
        own.strip(model, designers)
        if spec.placement == "stage":
            attach_after(model, units[-1], spec, model.get_submodule(units[-1]).out_channels)
        elif spec.kind != "none":  # block: after the projection's norm, before the residual sum
            for unit_name in units:
                unit = model.get_submodule(unit_name)
                unit.block.append(make_block(spec, unit.out_channels))
    return model


def _num_stages(name: str, args: dict[str, Any]) -> int:
    return len(_own(name, json.dumps(args, sort_keys=True)))


def _check(name: str, args: dict[str, Any]) -> None:
    check_small_input(args, name)
    if "width_mult" in args:
        check_positive_number(args, "width_mult", name)


def _backbone(name: str) -> Backbone:
    return Backbone(
        name=name,
        defaults=_CONSTRUCTORS[name][1],
        stage_placements=lambda args: (INVERTED,) * _num_stages(name, args),
        placements=INVERTED,
        builder=lambda args, stages, nc, ic: _build(name, args, stages, nc, ic),
        check=lambda args: _check(name, args),
        own_attention=lambda args: _own_attention(name, args),
        baseline_placement="expand",  # SE everywhere means in every unit's SE slot, as EfficientNet does
    )


BACKBONES = {name: _backbone(name) for name in _CONSTRUCTORS}
