"""Gather-Excite.

Paper: Hu, Shen, Albanie, Sun, Vedaldi, "Gather-Excite: Exploiting Feature Context in
Convolutional Neural Networks", NeurIPS 2018, https://arxiv.org/abs/1810.12348

Gather context over an extent (global, or a (2e-1)×(2e-1) window with stride e), excite it with an
optional MLP, gate, resize the gate back to the input (nearest), and rescale the input. The
parameterised gather of GE-θ (depthwise convs) is not implemented. `reduction: null` is the
parameter-free GE-θ⁻, which with `pool: avg` is timm's `GatherExcite(use_mlp=False)` (tested);
timm 1.0.21–1.0.31 cannot build its MLP variant (TypeError), so ours is the one to use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.common import ExcitationMLP, global_descriptors, make_gate, reduced_width, sum_descriptors
from nas.blocks.spec import BlockSpec


class GatherExcite(nn.Module):
    def __init__(self, channels: int, spec: BlockSpec) -> None:
        super().__init__()
        self.pool = spec.pool
        self.extent = spec.extent
        self.mlp = (
            nn.Identity()
            if spec.reduction is None
            else ExcitationMLP(channels, reduced_width(channels, spec.reduction))
        )
        self.gate = make_gate(spec.gate)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        if self.extent == 0:
            return global_descriptors(x, self.pool)
        k, s = 2 * self.extent - 1, self.extent
        maps = []
        if self.pool in ("avg", "avgmax"):
            maps.append(F.avg_pool2d(x, k, s, padding=k // 2, count_include_pad=False))
        if self.pool in ("max", "avgmax"):
            maps.append(F.max_pool2d(x, k, s, padding=k // 2))
        return torch.cat(maps) if len(maps) > 1 else maps[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum_descriptors(self.mlp(self.gather(x)), self.pool)
        if y.shape[-2:] != x.shape[-2:] and y.shape[-2:] != (1, 1):
            y = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        return x * self.gate(y)
