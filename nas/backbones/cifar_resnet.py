"""CIFAR-style ResNet (He et al. 2016, section 4.2): 3 stages of BasicBlocks, depth = 6n + 2.

Small enough to train a proxy on a CPU: depth 8, width 16 has 78k parameters. Each unit has one
`attn` slot, placed where its stage's spec says (`block`, `pre`, `post`, `identity`; see
`nas.backbones.base`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.backbones.base import RESIDUAL, Backbone, ResidualAttention, attach_after, check_positive_int, unit_block
from nas.blocks import BlockSpec
from nas.errors import ConfigError


class BasicBlock(ResidualAttention, nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, spec: BlockSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.attn = unit_block(spec, in_ch, out_ch)
        self.placement = spec.placement
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x)


class CifarResNet(nn.Module):
    def __init__(
        self, depth: int, width: int, stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
    ) -> None:
        super().__init__()
        units = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers = []
        in_ch = width
        for i, spec in enumerate(stages):
            out_ch = width * 2**i
            layers.append(
                nn.Sequential(
                    *(BasicBlock(in_ch if u == 0 else out_ch, out_ch, 2 if (i and u == 0) else 1, spec)
                      for u in range(units))
                )
            )
            in_ch = out_ch
        self.stages = nn.Sequential(*layers)
        for i, spec in enumerate(stages):
            if spec.placement == "stage":
                attach_after(self.stages, str(i), spec, width * 2**i)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def _check(args: dict[str, Any]) -> None:
    check_positive_int(args, "depth", "cifar_resnet")
    check_positive_int(args, "width", "cifar_resnet")
    depth = args["depth"]
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(
            f"backbone_args.depth = {depth!r} is invalid for cifar_resnet; "
            "allowed: 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110)"
        )


BACKBONE = Backbone(
    name="cifar_resnet",
    defaults={"depth": 20, "width": 16},
    stage_placements=lambda args: (RESIDUAL,) * 3,
    placements=RESIDUAL,
    builder=lambda args, stages, nc, ic: CifarResNet(args["depth"], args["width"], stages, nc, ic),
    check=_check,
)
