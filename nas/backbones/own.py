"""Attention a backbone brings of its own: found, counted per stage, kept or stripped.

MobileNetV3 and EfficientNet carry SE in their units (timm's `SqueezeExcite`, torchvision's
`SqueezeExcitation`), timm's SE-/ECA-/CBAM-ResNets likewise. A stage's spec decides what stays:
`own` keeps the stage's modules where the designer put them, with the designer's settings; any
other spec strips them first (`none`: the stage has no attention at all), so `none` on every stage
is the attention-free network and `own` on every stage the designer's placement.

Found by module type, because neither timm nor torchvision marks attention modules; the types are
those timm's and torchvision's model families use. A found module's children (CBAM's channel
gate) are not counted again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from torch import nn


@functools.cache
def attention_types() -> tuple[type[nn.Module], ...]:
    """The attention module classes of timm and torchvision (imported on first use: timm costs a second)."""
    import timm.layers as layers
    from timm.models import _efficientnet_blocks as efficientnet_blocks
    from torchvision.ops import SqueezeExcitation

    names = ("SEModule", "EffectiveSEModule", "SqueezeExcite", "EcaModule", "CecaModule", "CbamModule",
             "LightCbamModule", "GatherExcite", "GlobalContext")
    found = [getattr(layers, name) for name in names if hasattr(layers, name)]
    return (*found, efficientnet_blocks.SqueezeExcite, SqueezeExcitation)


def find_attention(model: nn.Module) -> list[tuple[str, str]]:
    """`(module name, class name)` of every outermost attention module, in module order."""
    types = attention_types()
    found: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, types) and not any(name.startswith(outer + ".") for outer, _ in found):
            found.append((name, type(module).__name__))
    return found


def by_stage(model: nn.Module, stage_modules: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """Per stage, the names of the attention modules inside it; a stage is the list of module
    names (units) it holds. Modules outside every stage (a head) belong to none."""
    found = [name for name, _ in find_attention(model)]
    return tuple(
        tuple(name for name in found if any(name == unit or name.startswith(unit + ".") for unit in units))
        for units in stage_modules
    )


def count(model: nn.Module, names: Sequence[str]) -> dict[str, int]:
    """How many modules of each class `names` holds: `{"SqueezeExcitation": 3}`."""
    out: dict[str, int] = {}
    for name in names:
        kind = type(model.get_submodule(name)).__name__
        out[kind] = out.get(kind, 0) + 1
    return out


def strip(model: nn.Module, names: Sequence[str]) -> None:
    """Replace each named module by the identity: the unit computes as if it never had one.

    Every kind found is a gate `x * g(x)`, so the identity is the unit without it (timm builds
    its units with `se_layer=None` the same way). Parameter names elsewhere are unchanged.
    """
    for name in names:
        holder_name, _, leaf = name.rpartition(".")
        holder = model.get_submodule(holder_name) if holder_name else model
        setattr(holder, leaf, nn.Identity())


def describe(counts: Sequence[Mapping[str, int]]) -> str:
    """`9 SqueezeExcite (stage 1: 1, stage 2: 0, stage 3: 5, stage 4: 3)`, or `none`."""
    totals: dict[str, int] = {}
    for stage in counts:
        for kind, n in stage.items():
            totals[kind] = totals.get(kind, 0) + n
    if not totals:
        return "none"
    what = ", ".join(f"{n} {kind}" for kind, n in totals.items())
    per_stage = ", ".join(f"stage {s}: {sum(stage.values())}" for s, stage in enumerate(counts, 1))
    return f"{what} ({per_stage})"
