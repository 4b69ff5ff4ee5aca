"""Pieces the blocks share: the hidden-width rule, gates, pooled channel descriptors, the MLP."""

from __future__ import annotations

import torch
from timm.layers import make_divisible
from torch import nn

from nas.blocks.settings import GATES
from nas.errors import ConfigError


def reduced_width(channels: int, reduction: float, divisor: int = 1) -> int:
    """Hidden width of an excitation MLP: timm's `make_divisible(channels / reduction, divisor)`.

    The nearest multiple of `divisor`, at least `divisor`; with `divisor > 1` also never below 90 %
    of C / r (MobileNetV3's and torchvision's rule: C = 72, r = 4, divisor 8 gives 24, not 16).
    With `divisor = 1` it is plain rounding, never below 1 — timm's `SEModule(rd_divisor=1)` width,
    and the rule every earlier `nas` architecture was built with.
    """
    return make_divisible(channels / reduction, divisor, round_limit=0.9 if divisor > 1 else 0.0)


def make_gate(gate: str) -> nn.Module:
    """`sigmoid` or `hard_sigmoid` (relu6(x + 3) / 6, as timm and MobileNetV3 define it)."""
    check_choice("gate", gate, GATES)
    return nn.Hardsigmoid() if gate == "hard_sigmoid" else nn.Sigmoid()


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """For blocks built directly from plain arguments: refuse an unknown choice, naming it."""
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r} is invalid; allowed: {', '.join(allowed)}")


def global_descriptors(x: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool N×C×H×W to the channel descriptor(s): N×C×1×1, or 2N×C×1×1 for `avgmax`.

    `avgmax` stacks the average and max descriptors along the batch, so one pass of the
    excitation serves both; `sum_descriptors` then sums them, as CBAM sums its two branches.
    `mix` averages them *before* the excitation (timm's GatherExcite `add_maxpool`).
    """
    if pool == "avg":
        return x.mean((2, 3), keepdim=True)
    if pool == "max":
        return x.amax((2, 3), keepdim=True)
    avg, mx = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    return 0.5 * (avg + mx) if pool == "mix" else torch.cat((avg, mx))


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

