"""Gather-Excite.

Paper: Hu, Shen, Albanie, Sun, Vedaldi, "Gather-Excite: Exploiting Feature Context in
Convolutional Neural Networks", NeurIPS 2018, https://arxiv.org/abs/1810.12348

Gather context over an extent (global, or a (2e-1)×(2e-1) window with stride e), excite it with an
optional MLP, gate, resize the gate back to the input (nearest), and rescale the input.
`reduction: null` is the parameter-free GE-θ⁻, which with `pool: avg` is timm's
`GatherExcite(use_mlp=False)` (tested). `gather: conv` is the parameterised gather of GE-θ/GE-θ+:
log2(e) depthwise 3×3 stride-2 convs, each with batch norm, ReLU between (as timm's
`extra_params=True`); it needs a power-of-two extent, and its global form (a conv as large as the
feature map) is not offered because a block does not know its input size. `pool: mix` averages the
avg- and max-gathered maps before the excitation (timm's `add_maxpool`); `avgmax` sums after it.
timm 1.0.21–1.0.31 cannot build its MLP variant (TypeError), so ours is the one to use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import (
    ExcitationMLP,
    check_choice,
    global_descriptors,
    make_gate,
    reduced_width,
    sum_descriptors,
)
from nas.errors import ConfigError

GATHERS = ("pool", "conv")


class GatherExcite(nn.Module):
    def __init__(
        self,
        channels: int,
        extent: int = 0,
        gather: str = "pool",
        reduction: float | None = 16,
        divisor: int = 1,
        pool: str = "avg",
        gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_choice("gather", gather, GATHERS)
        check_choice("pool", pool, s.POOLS)
        _check_extent({"extent": extent, "gather": gather})
        self.extent = extent
        self.pool = pool if gather == "pool" else "avg"
        self.convs = _conv_gather(channels, extent) if gather == "conv" else None
        self.mlp = (
            nn.Identity()
            if reduction is None
            else ExcitationMLP(channels, reduced_width(channels, reduction, divisor), bias=bias)
        )
        self.gate = make_gate(gate)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        if self.convs is not None:
            return self.convs(x)
        if self.extent == 0:
            return global_descriptors(x, self.pool)
        k, stride = 2 * self.extent - 1, self.extent
        avg = F.avg_pool2d(x, k, stride, padding=k // 2, count_include_pad=False) if self.pool != "max" else None
        mx = F.max_pool2d(x, k, stride, padding=k // 2) if self.pool != "avg" else None
        if avg is None or mx is None:
            return avg if mx is None else mx
        return 0.5 * (avg + mx) if self.pool == "mix" else torch.cat((avg, mx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum_descriptors(self.mlp(self.gather(x)), self.pool)
        if y.shape[-2:] != x.shape[-2:] and y.shape[-2:] != (1, 1):
            y = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        return x * self.gate(y)


def _conv_gather(channels: int, extent: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    steps = int(math.log2(extent))
    for i in range(steps):
        layers += [nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]
        if i < steps - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _check_extent(values: Mapping[str, Any]) -> None:
    e = values["extent"]
    if values["gather"] == "conv" and not (s.is_int(e) and e >= 2 and e & (e - 1) == 0):
        raise ConfigError(
            f"extent = {e!r} is invalid for ge with gather: conv; allowed: a power of two >= 2 "
            "(one stride-2 depthwise conv per factor of 2), or gather: pool for any even extent or 0 (global)"
        )


def _has_mlp(values: Mapping[str, Any]) -> bool:
    return values["reduction"] is not None


KIND = s.Kind(
    "ge",
    GatherExcite,
    (
        s.Setting("extent", 0, "0 (global) or an even integer >= 2 (window 2e-1, stride e)",
                  lambda e: s.is_int(e) and (e == 0 or (e >= 2 and e % 2 == 0)),
                  lambda e: "xg" if e == 0 else f"x{e}"),
        s.choice("gather", GATHERS),
        s.reduction(nullable=True),
        s.divisor().when(_has_mlp),
        s.pool().when(lambda v: v["gather"] == "pool"),
        s.gate(),
        s.flag("bias", True, "biases in the MLP").when(_has_mlp),
    ),
    paper={"extent": 0, "reduction": None, "pool": "avg"},
    check=_check_extent,
)
