"""Squeeze-and-Excitation.

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507

Pool the channel descriptor, excite it with a C→C/r→C MLP, gate, and rescale the input. With
`pool: avg` this is timm's `SEModule(rd_divisor=1)` parameter for parameter (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.common import ExcitationMLP, global_descriptors, make_gate, reduced_width, sum_descriptors
from nas.blocks.spec import BlockSpec


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, spec: BlockSpec) -> None:
        super().__init__()
        self.pool = spec.pool
        self.fc = ExcitationMLP(channels, reduced_width(channels, spec.reduction))
        self.gate = make_gate(spec.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum_descriptors(self.fc(global_descriptors(x, self.pool)), self.pool)
        return x * self.gate(y)
