"""Coordinate attention.

Paper: Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
https://arxiv.org/abs/2103.02907

Average-pool along each spatial axis (C×H×1 and C×1×W), encode both strips with one shared 1×1
conv C→hidden + batch norm + hard-swish, split them again, and turn each into a gate with its own
1×1 conv hidden→C; the input is multiplied by both gates, so attention keeps the position along
each axis. The paper's default is r = 32 with at least 8 hidden units; here the hidden width follows
the same rule as every block (`reduced_width(C, r, divisor)`), and `divisor: 8` gives at least 8.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import make_gate, reduced_width


class CoordinateAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        divisor: int = 1,
        gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden = reduced_width(channels, reduction, divisor)
        self.encode = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias), nn.BatchNorm2d(hidden), nn.Hardswish()
        )
        self.conv_h = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.conv_w = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        strips = torch.cat((x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)), dim=2)
        y_h, y_w = self.encode(strips).split((h, w), dim=2)
        return x * self.gate(self.conv_h(y_h)) * self.gate(self.conv_w(y_w.transpose(2, 3)))


KIND = s.Kind(
    "coord",
    CoordinateAttention,
    (s.reduction(), s.divisor(), s.gate(), s.flag("bias", True, "biases in the 1×1 convs")),
    paper={"reduction": 32, "divisor": 8},
)
