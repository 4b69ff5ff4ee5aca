"""Spatial attention: CBAM's spatial half on its own.

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521 (section 3, spatial attention module)

Channel-wise mean and max maps (2×H×W) → k×k conv → optional batch norm → gate, multiplied into
the input at every position. The authors' code has batch norm and no conv bias (our default, and
timm's); some re-implementations use a biased conv and no norm (`bias: true, norm: false`).
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import make_gate


class SpatialAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        gate: str = "sigmoid",
        bias: bool = False,
        norm: bool = True,
    ) -> None:
        super().__init__()
        del channels  # the gate is shared by all channels; kept for the uniform constructor
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(1) if norm else nn.Identity()
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
        return x * self.gate(self.bn(self.conv(maps)))


def spatial_settings() -> tuple[s.Setting, ...]:
    """The spatial half's settings, shared with CBAM."""
    return (s.kernel_size(7), s.gate(), s.flag("bias", False, "biases in the convs"),
            s.flag("norm", True, "batch norm after the spatial conv"))


KIND = s.Kind("sa", SpatialAttention, spatial_settings(), paper={"kernel_size": 7})
