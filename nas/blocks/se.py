"""Squeeze-and-Excitation.

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507

Pool the channel descriptor, excite it with a C→C/r→C MLP, gate, and rescale the input. With
`pool: avg` this is timm's `SEModule(rd_divisor=1)` parameter for parameter (tested); with
`divisor: 8, gate: hard_sigmoid` it is MobileNetV3's SE (hidden width rounded to a multiple of 8).
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import ExcitationMLP, check_choice, global_descriptors, make_gate, reduced_width, sum_descriptors


class SqueezeExcite(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        divisor: int = 1,
        pool: str = "avg",
        gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_choice("pool", pool, s.POOLS)
        self.pool = pool
        self.fc = ExcitationMLP(channels, reduced_width(channels, reduction, divisor), bias=bias)
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum_descriptors(self.fc(global_descriptors(x, self.pool)), self.pool)
        return x * self.gate(y)


KIND = s.Kind(
    "se",
    SqueezeExcite,
    (s.reduction(), s.divisor(), s.pool(), s.gate(), s.flag("bias", True, "biases in the MLP")),
    paper={"reduction": 16, "pool": "avg"},
)
