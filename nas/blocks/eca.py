"""Efficient Channel Attention.

Paper: Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020, https://arxiv.org/abs/1910.03151

Pool the channel descriptor and mix neighbouring channels with one 1-D convolution of size k (no
reduction, k parameters). With `kernel_size: null` k follows the paper's adaptive rule
k = |(log2 C + 1) / 2|_odd, floored at 3 as timm does. With `pool: avg` this is timm's
`EcaModule(channels=None, kernel_size=k)` (tested). The paper's conv has no bias; `bias: true`
adds one (as some re-implementations do).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.blocks import settings as s
from nas.blocks.common import check_choice, global_descriptors, make_gate, sum_descriptors


def adaptive_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """The ECA paper's k(C) (γ=2, b=1), rounded up to odd and at least 3, as timm computes it."""
    t = int(abs(math.log2(channels) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


class EfficientChannelAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        pool: str = "avg",
        gate: str = "sigmoid",
        bias: bool = False,
    ) -> None:
        super().__init__()
        check_choice("pool", pool, s.POOLS)
        self.pool = pool
        k = kernel_size if kernel_size is not None else adaptive_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=bias)
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = global_descriptors(x, self.pool)  # (N or 2N)×C×1×1
        y = self.conv(d.flatten(1).unsqueeze(1))  # channels as a 1-D sequence
        y = sum_descriptors(y, self.pool).view(x.shape[0], -1, 1, 1)
        return x * self.gate(y)


KIND = s.Kind(
    "eca",
    EfficientChannelAttention,
    (s.kernel_size(None), s.pool(), s.gate(), s.flag("bias", False, "a bias in the 1-D conv")),
    paper={"kernel_size": None, "pool": "avg"},
)
