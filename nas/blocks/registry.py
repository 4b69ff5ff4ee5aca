"""Every block kind, one line each: `KINDS`, validation, search spaces and baselines read this."""

from __future__ import annotations

from torch import nn

from nas.blocks import cbam, coord, eca, gather_excite, sa, se
from nas.blocks.settings import Kind


def _identity(channels: int) -> nn.Module:
    return nn.Identity()


NONE = Kind("none", _identity, (), paper={})

REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (
    NONE,
    se.KIND,
    eca.KIND,
    cbam.KIND,
    gather_excite.KIND,
    sa.KIND,
    coord.KIND,
)}
KINDS = tuple(REGISTRY)
