"""Convolutional Block Attention Module.

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521

A channel gate (shared bias-free MLP over the pooled descriptors, summed) followed by a spatial
gate (channel-wise mean and max maps → k×k conv → batch norm → gate). The spatial gate varies over
H×W; the channel gate does not. With `pool: avgmax` this is timm's `CbamModule` (tested). Like
timm, the MLP has no bias and the spatial conv is followed by batch norm, as in the authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.common import ExcitationMLP, global_descriptors, make_gate, reduced_width, sum_descriptors
from nas.blocks.spec import BlockSpec


class ChannelGate(nn.Module):
    def __init__(self, channels: int, spec: BlockSpec) -> None:
        super().__init__()
        self.pool = spec.pool
        self.fc = ExcitationMLP(channels, reduced_width(channels, spec.reduction), bias=False)
        self.gate = make_gate(spec.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum_descriptors(self.fc(global_descriptors(x, self.pool)), self.pool)
        return x * self.gate(y)


class SpatialGate(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        k = spec.kernel_size
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.gate = make_gate(spec.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
        return x * self.gate(self.bn(self.conv(maps)))


class CBAM(nn.Module):
    def __init__(self, channels: int, spec: BlockSpec) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, spec)
        self.spatial = SpatialGate(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
