"""torchvision backbones: resnet18/34/50 (4 stages) and mobilenet_v2 (6 stages).

Built from torchvision's own classes without weights (nothing is downloaded). Each residual unit
gets an `attn` child, so torchvision's state-dict keys are unchanged and pretrained weights load
with `strict=False`; the same holds for MobileNetV2, whose blocks are appended inside existing
Sequentials. `small_input: true` swaps the stem for a 3×3 stride-1 convolution without max-pool
(ResNet) or a stride-1 stem (MobileNetV2), for 28–32 px inputs.

MobileNetV2's stages: its inverted residuals grouped by output resolution (5), then the 1×1 head
conv to 1280 channels (× width_mult when above 1) as stage 6, where `stage` puts a block on the
head's output (the features the classifier pools) and `block` after its norm, before its ReLU6.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from nas.backbones.base import (
    INVERTED,
    RESIDUAL,
    Backbone,
    ResidualAttention,
    attach_after,
    check_positive_number,
    check_small_input,
    unit_block,
)
from nas.blocks import BlockSpec, make_block
from nas.blocks.registry import PLACELESS


# torchvision offers no hook between a unit's last norm and the residual sum, so these two
# subclasses split its forward into branch and shortcut (ResidualAttention puts `attn` between),
# keeping its parameters and names.
class AttnBasicBlock(ResidualAttention, BasicBlock):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attn: nn.Module = nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


class AttnBottleneck(ResidualAttention, Bottleneck):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attn: nn.Module = nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


_RESNETS = {
    "resnet18": (AttnBasicBlock, [2, 2, 2, 2]),
    "resnet34": (AttnBasicBlock, [3, 4, 6, 3]),
    "resnet50": (AttnBottleneck, [3, 4, 6, 3]),
}


def _build_resnet(
    name: str, args: dict[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
) -> nn.Module:
    block, layers = _RESNETS[name]
    model = ResNet(block, layers, num_classes=num_classes)
    if args["small_input"]:
        model.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    for i, spec in enumerate(stages, 1):
        layer = model.get_submodule(f"layer{i}")
        if spec.placement == "stage":
            attach_after(model, f"layer{i}", spec, _out_channels(layer[-1]))
            continue
        for unit in layer:
            unit.attn = unit_block(spec, unit.conv1.in_channels, _out_channels(unit))
            unit.placement = spec.placement
    return model


def _out_channels(unit: nn.Module) -> int:
    return (unit.bn3 if isinstance(unit, Bottleneck) else unit.bn2).num_features


def _resnet(name: str) -> Backbone:
    return Backbone(
        name=name,
        defaults={"small_input": False},
        stage_placements=lambda args: (RESIDUAL,) * 4,
        placements=RESIDUAL,
        builder=lambda args, stages, nc, ic: _build_resnet(name, args, stages, nc, ic),
        check=lambda args: check_small_input(args, name),
    )


def mobilenet_v2_stages(features: nn.Sequential) -> list[list[int]]:
    """Indices into `features` of the inverted-residual units, grouped by output resolution.

    A new stage starts at every stride-2 unit; the stem joins nothing and the final 1×1
    convolution (the head) stays outside, giving 5 groups for the standard network.
    """
    groups: list[list[int]] = []
    for index, unit in enumerate(features):
        if not isinstance(unit, InvertedResidual):
            continue
        if not groups or unit.stride == 2:
            groups.append([])
        groups[-1].append(index)
    return groups


def _build_mobilenet_v2(
    args: dict[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
) -> nn.Module:
    model = mobilenet_v2(num_classes=num_classes, width_mult=args["width_mult"])
    features = model.features
    stem = features[0][0]
    if in_chans != 3 or args["small_input"]:
        features[0][0] = nn.Conv2d(in_chans, stem.out_channels, 3, 1 if args["small_input"] else 2, 1, bias=False)
    head = len(features) - 1
    for spec, group in zip(stages, [*mobilenet_v2_stages(features), [head]], strict=True):
        if spec.kind in PLACELESS:
            continue
        if spec.placement == "stage":
            width = features[group[-1]].out_channels
            attach_after(features, str(group[-1]), spec, width)
        elif group == [head]:  # block: after the head conv's norm, before its ReLU6
            features[head].insert(2, make_block(spec, features[head][1].num_features))
        else:
            for index in group:
                unit = features[index]
                if spec.placement == "block":  # after the projection's norm, before the residual sum
                    unit.conv.append(make_block(spec, unit.out_channels))
                else:  # expand: after the depthwise conv and its activation
                    depthwise = unit.conv[-3]
                    depthwise.append(make_block(spec, depthwise[0].out_channels))
    return model


def _check_mobilenet(args: dict[str, Any]) -> None:
    check_small_input(args, "mobilenet_v2")
    check_positive_number(args, "width_mult", "mobilenet_v2")


BACKBONES = {name: _resnet(name) for name in _RESNETS}
BACKBONES["mobilenet_v2"] = Backbone(
    name="mobilenet_v2",
    defaults={"width_mult": 1.0, "small_input": False},
    # torchvision's fixed inverted-residual setting gives 5 groups (tested), then the head
    stage_placements=lambda args: (INVERTED,) * 5 + (("block", "stage"),),
    placements=INVERTED,
    builder=_build_mobilenet_v2,
    check=_check_mobilenet,
)
