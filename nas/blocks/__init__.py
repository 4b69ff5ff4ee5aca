"""Attention blocks: `BlockSpec` (what) and `make_block` (the module).

Every block is an `nn.Module` built from plain arguments, first the channel count
(`SqueezeExcite(64, reduction=8)`), and returns a tensor of the input's shape; `none` is the
identity with no parameters. Each kind registers itself next to its module (`KIND`) and
`registry.REGISTRY` lists them. Two kinds are no block of their own (`PLACELESS`): `none` and
`own`, the attention a backbone brings, kept (only backbones that bring some take it).
"""

from __future__ import annotations

from torch import nn

from nas.blocks.cbam import CBAM
from nas.blocks.common import reduced_width
from nas.blocks.coord import CoordinateAttention
from nas.blocks.eca import EfficientChannelAttention, adaptive_kernel_size
from nas.blocks.gather_excite import GatherExcite
from nas.blocks.registry import BLOCK_KINDS, KINDS, PLACELESS, REGISTRY
from nas.blocks.sa import SpatialAttention
from nas.blocks.se import SqueezeExcite
from nas.blocks.settings import GATES, PLACEMENTS, POOLS, Kind, Setting
from nas.blocks.spec import BlockSpec


def make_block(spec: BlockSpec, channels: int) -> nn.Module:
    """The attention module for `spec` on a `channels`-wide feature map."""
    return spec.build(channels)


__all__ = [
    "BLOCK_KINDS",
    "CBAM",
    "GATES",
    "KINDS",
    "PLACEMENTS",
    "PLACELESS",
    "POOLS",
    "REGISTRY",
    "BlockSpec",
    "CoordinateAttention",
    "EfficientChannelAttention",
    "GatherExcite",
    "Kind",
    "Setting",
    "SpatialAttention",
    "SqueezeExcite",
    "adaptive_kernel_size",
    "make_block",
    "reduced_width",
]
