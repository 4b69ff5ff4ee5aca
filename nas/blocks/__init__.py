"""Attention blocks: `BlockSpec` (what) and `make_block` (the module).

Every block takes `(channels, spec)` and returns a tensor of the input's shape; `none` is the
identity with no parameters.
"""

from __future__ import annotations

from torch import nn

from nas.blocks.cbam import CBAM
from nas.blocks.common import reduced_width
from nas.blocks.eca import EfficientChannelAttention, adaptive_kernel_size
from nas.blocks.gather_excite import GatherExcite
from nas.blocks.se import SqueezeExcite
from nas.blocks.spec import GATES, KINDS, PLACEMENTS, POOLS, BlockSpec

BLOCKS: dict[str, type[nn.Module]] = {
    "se": SqueezeExcite,
    "eca": EfficientChannelAttention,
    "cbam": CBAM,
    "ge": GatherExcite,
}


def make_block(spec: BlockSpec, channels: int) -> nn.Module:
    """The attention module for `spec` on a `channels`-wide feature map."""
    if spec.kind == "none":
        return nn.Identity()
    return BLOCKS[spec.kind](channels, spec)


__all__ = [
    "BLOCKS",
    "CBAM",
    "GATES",
    "KINDS",
    "PLACEMENTS",
    "POOLS",
    "BlockSpec",
    "EfficientChannelAttention",
    "GatherExcite",
    "SqueezeExcite",
    "adaptive_kernel_size",
    "make_block",
    "reduced_width",
]
