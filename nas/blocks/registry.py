"""Every block kind, one line each: `KINDS`, validation, search spaces and baselines read this."""

from __future__ import annotations

from torch import nn

from nas.blocks import cbam, coord, eca, gather_excite, sa, se
from nas.blocks.settings import Kind
from nas.errors import ConfigError


def _identity(channels: int) -> nn.Module:
    return nn.Identity()


def _backbones_own(channels: int) -> nn.Module:
    raise ConfigError("kind = 'own' keeps the attention a backbone brings (MobileNetV3's SE); only a backbone "
                      "with attention of its own builds it, not make_block")


NONE = Kind("none", _identity, (), paper={})
# A stage's `own`: the backbone's built-in attention kept where its designer put it (`none` strips
# it). Only backbones that bring attention accept it (`nas.backbones.own`); it has no settings.
OWN = Kind("own", _backbones_own, (), paper={})

REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (
    NONE,
    se.KIND,
    eca.KIND,
    cbam.KIND,
    gather_excite.KIND,
    sa.KIND,
    coord.KIND,
    OWN,
)}
KINDS = tuple(REGISTRY)
# Kinds that are not a block of their own: no placement, no settings; `none` strips a stage's
# attention (the backbone's own included), `own` keeps the backbone's.
PLACELESS = ("none", "own")
BLOCK_KINDS = tuple(k for k in KINDS if k not in PLACELESS)  # the kinds with a module, settings and a placement
