"""Convolutional Block Attention Module.

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521

A channel gate, then a spatial gate on the channel-refined map (`sa.SpatialAttention`). The
channel half is the paper's shared MLP over the pooled descriptors (`channel: se`, an SE block; the
paper pools `avgmax`) or an ECA 1-D conv (`channel: eca`, as some re-implementations do). With
`pool: avgmax` and the defaults this is timm's `CbamModule` (tested): like timm and the authors'
code, no biases and batch norm after the spatial conv. `bias` and `norm` switch both halves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import check_choice
from nas.blocks.eca import EfficientChannelAttention
from nas.blocks.sa import SpatialAttention, spatial_settings
from nas.blocks.se import SqueezeExcite

CHANNEL_HALVES = ("se", "eca")


class CBAM(nn.Module):
    def __init__(
        self,
        channels: int,
        channel: str = "se",
        reduction: float = 16,
        divisor: int = 1,
        channel_kernel_size: int | None = None,
        kernel_size: int = 7,
        pool: str = "avg",
        gate: str = "sigmoid",
        bias: bool = False,
        norm: bool = True,
    ) -> None:
        super().__init__()
        check_choice("channel", channel, CHANNEL_HALVES)
        self.channel: nn.Module = (
            SqueezeExcite(channels, reduction, divisor, pool, gate, bias)
            if channel == "se"
            else EfficientChannelAttention(channels, channel_kernel_size, pool, gate, bias)
        )
        self.spatial = SpatialAttention(channels, kernel_size, gate, bias, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def _se(values: Mapping[str, Any]) -> bool:
    return values["channel"] == "se"


_kernel, *_spatial_rest = spatial_settings()
KIND = s.Kind(
    "cbam",
    CBAM,
    (
        s.choice("channel", CHANNEL_HALVES),
        s.reduction().when(_se),
        s.divisor().when(_se),
        s.kernel_size(None, "channel_kernel_size", "ek").when(lambda v: not _se(v)),
        _kernel,
        s.pool(),
        *_spatial_rest,
    ),
    paper={"reduction": 16, "kernel_size": 7, "pool": "avgmax"},
)
