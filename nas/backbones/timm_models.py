"""Any timm model as `timm:<name>`, with stages taken from timm's `feature_info`.

Every entry of `feature_info` is a stage (for timm's ResNets that includes the stem, so 5);
`placement: stage` puts the block on that module's output. `placement: block` is refused: timm
models do not share one residual-unit layout to find the spot before the sum. No weights are
downloaded (`pretrained=False`).
"""

from __future__ import annotations

import difflib
import functools
import json
from typing import Any

from torch import nn

from nas.backbones.base import Backbone, attach_after
from nas.blocks import BlockSpec
from nas.errors import ConfigError

PREFIX = "timm:"


def _create(name: str, args: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    import timm  # imported on first use: it costs about a second at start-up

    try:
        model = timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **args
        )
    except TypeError as error:
        raise ConfigError(
            f"backbone_args = {args!r} is invalid for timm:{name}: {error}"
        ) from None
    if not isinstance(getattr(model, "feature_info", None), list) or not model.feature_info:
        raise ConfigError(
            f"backbone = timm:{name} has no feature_info, so its stages are unknown; "
            "allowed: timm models that support features_only"
        )
    return model


@functools.lru_cache(maxsize=64)
def _feature_info(name: str, args_json: str) -> tuple[tuple[str, int], ...]:
    model = _create(name, json.loads(args_json), 10, 3)
    return tuple((f["module"], f["num_chs"]) for f in model.feature_info)


def _stages(name: str, args: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return _feature_info(name, json.dumps(args, sort_keys=True))


def _build(
    name: str, args: dict[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
) -> nn.Module:
    model = _create(name, args, num_classes, in_chans)
    for spec, (module, channels) in zip(stages, _stages(name, args), strict=True):
        attach_after(model, module, spec, channels)
    return model


def timm_backbone(backbone: str) -> Backbone:
    """The Backbone for `timm:<name>`; an unknown name lists close matches."""
    import timm

    name = backbone[len(PREFIX):]
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"did you mean {', '.join('timm:' + c for c in close)}?" if close else (
            "see timm.list_models()"
        )
        raise ConfigError(f"backbone = {backbone!r} is not a timm model; {hint}")
    return Backbone(
        name=backbone,
        defaults=None,
        stage_count=lambda args: len(_stages(name, args)),
        builder=lambda args, stages, nc, ic: _build(name, args, stages, nc, ic),
        placements=("stage",),
    )
