"""Backbone registry: a name (or `timm:<name>`) to a `Backbone` that knows its stages."""

from __future__ import annotations

from nas.backbones.base import Backbone
from nas.backbones.cifar_resnet import BACKBONE as _CIFAR_RESNET
from nas.backbones.timm_models import PREFIX as TIMM_PREFIX
from nas.backbones.timm_models import timm_backbone
from nas.backbones.tv import BACKBONES as _TORCHVISION
from nas.backbones.tv_mobile import BACKBONES as _TORCHVISION_MOBILE
from nas.errors import ConfigError

BACKBONES: dict[str, Backbone] = {"cifar_resnet": _CIFAR_RESNET, **_TORCHVISION, **_TORCHVISION_MOBILE}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; a miss lists the valid names."""
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        return timm_backbone(name)
    if not isinstance(name, str) or name not in BACKBONES:
        raise ConfigError(
            f"backbone = {name!r} is unknown; allowed: {', '.join(BACKBONES)}, or timm:<model name>"
        )
    return BACKBONES[name]


__all__ = ["BACKBONES", "Backbone", "get_backbone"]
