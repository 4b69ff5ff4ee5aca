"""`build_model`: an ArchConfig (or a file holding one) to a plain `torch.nn.Module`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from nas.arch import ArchConfig, load_arch
from nas.backbones import get_backbone


def build_model(
    arch_or_path: ArchConfig | str | Path,
    num_classes: int | None = None,
    in_chans: int | None = None,
) -> nn.Module:
    """Build the model an architecture describes; `num_classes`/`in_chans` override the config.

    The result is an ordinary module (no `nas` code runs at inference besides the blocks), in
    training mode, on the CPU, freshly initialised.
    """
    arch = arch_or_path if isinstance(arch_or_path, ArchConfig) else load_arch(arch_or_path)
    overrides = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
    if overrides:
        arch = dataclasses.replace(arch, **overrides)
    return get_backbone(arch.backbone).build(
        dict(arch.backbone_args), arch.stages, arch.num_classes, arch.in_chans
    )
