"""`build_model`: an ArchConfig (or a file holding one) to a plain `torch.nn.Module`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from nas.arch import ArchConfig, load_arch
from nas.backbones import get_backbone
from nas.backbones.pretrained import block_types, load_pretrained
from nas.blocks.identity import start_as_identity


def build_model(
    arch_or_path: ArchConfig | str | Path,
    num_classes: int | None = None,
    in_chans: int | None = None,
    load_weights: bool = True,
) -> nn.Module:
    """Build the model an architecture describes; `num_classes`/`in_chans` override the config.

    The result is an ordinary module (no `nas` code runs at inference besides the blocks), in
    training mode, on the CPU, freshly initialised — or, when the architecture names pretrained
    `weights`, with the backbone's tensors from that file and its blocks starting as the identity
    (`weights.identity`). `load_weights=False` builds the same structure without reading the file
    (for counting FLOPs and parameters).
    """
    arch = arch_or_path if isinstance(arch_or_path, ArchConfig) else load_arch(arch_or_path)
    overrides = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
    if overrides:
        arch = dataclasses.replace(arch, **overrides)
    backbone = get_backbone(arch.backbone)
    args = dict(arch.backbone_args)
    model = backbone.build(args, arch.stages, arch.num_classes, arch.in_chans)
    weights = arch.weights
    if weights is None:
        return model
    if load_weights:
        return load_pretrained(backbone, args, arch.stages, arch.num_classes, arch.in_chans, model, weights)
    if weights.identity:
        start_as_identity(model, block_types())
    return model
