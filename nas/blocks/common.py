"""Pieces the four blocks share: the reduced width rule, gates, and pooled descriptors."""

from __future__ import annotations

import torch
from torch import nn


def reduced_width(channels: int, reduction: int) -> int:
    """Hidden width of an excitation MLP: `round(channels / reduction)`, never below 1.

    The same rule as timm's `make_divisible(channels / r, divisor=1, round_limit=0)`, so our
    blocks match timm's `SEModule(rd_divisor=1)` and `CbamModule` width for width. On narrow
    layers (16 channels, r=16) the hidden layer keeps one unit instead of vanishing.
    """
    return max(1, int(channels / reduction + 0.5))


def make_gate(gate: str) -> nn.Module:
    """`sigmoid` or `hard_sigmoid` (relu6(x + 3) / 6, as timm and MobileNetV3 define it)."""
    return nn.Hardsigmoid() if gate == "hard_sigmoid" else nn.Sigmoid()


def global_descriptors(x: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool N×C×H×W to the channel descriptor(s), N×C×1×1, or 2N×C×1×1 for `avgmax`.

    For `avgmax` the average and max descriptors are stacked along the batch so one pass of the
    excitation serves both; `sum_descriptors` folds them back, as CBAM sums its two branches.
    """
    if pool == "avg":
        return x.mean((2, 3), keepdim=True)
    if pool == "max":
        return x.amax((2, 3), keepdim=True)
    return torch.cat((x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)))


def sum_descriptors(y: torch.Tensor, pool: str) -> torch.Tensor:
    """Undo the `avgmax` stacking of `global_descriptors` by summing the two halves."""
    if pool != "avgmax":
        return y
    avg, mx = y.chunk(2)
    return avg + mx


class ExcitationMLP(nn.Sequential):
    """1×1 conv C→hidden, ReLU, 1×1 conv hidden→C: the excitation of SE, CBAM and GE."""

    def __init__(self, channels: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
