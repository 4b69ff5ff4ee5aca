"""Pretrained weights into a built candidate: every tensor the backbone has, from the file, by
position; the classifier new when the class count differs; the blocks new (as the identity).

The file holds the *source* network: for a plain state dict, the backbone as torchvision or timm
defines it (with its own attention, if it brings some); for a `nas train --save` checkpoint, the
architecture the checkpoint names, which must be this backbone with these arguments and no block
(`none` or `own` on every stage). The file is checked against the source's state dict: a key the
source lacks, a key the file lacks or a tensor of another shape is refused, naming the key and
both shapes; only the classifier (the tensors whose shape follows the class count) may differ.

A candidate's keys are not the source's: a block on a stage wraps the stage's module
(`Sequential(stage, block)`), one inserted into a unit's `Sequential` shifts the indices after it.
So tensors are matched by position: the candidate's state dict without its blocks lists, in
order, the same tensors as the source built with the candidate's `own` stages kept and every
other stage `none` (`own` keeps the pretrained attention with its weights, `none` strips it, a
block replaces it). Those reference networks are built on the meta device: shapes, no memory.

Why not timm's `create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))`: when the
class count differs it drops the classifier and loads with `strict=False`, so any other missing
key passes silently, and it adapts the input convolution to other channel counts without saying
so; torchvision's weights API only downloads. timm's `load_state_dict` still reads the files
(`nas.backbones.weights`), and timm's and torchvision's weight registries name the hub address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nas.backbones.base import Backbone
from nas.backbones.weights import Pretrained, WeightsFile, read_weights
from nas.blocks import BlockSpec
from nas.blocks.identity import IdentityStart, start_as_identity
from nas.blocks.registry import REGISTRY
from nas.errors import ConfigError

PRETRAINED_ATTR = "nas_pretrained"  # on a loaded model: the names of the parameters the file gave


def block_types() -> tuple[type[nn.Module], ...]:
    """The module classes of the registered block kinds (what a candidate inserts)."""
    return (IdentityStart, *(k.module for k in REGISTRY.values() if isinstance(k.module, type)))


def load_pretrained(backbone: Backbone, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int,
                    in_chans: int, model: nn.Module, weights: Pretrained) -> nn.Module:
    """Load `weights` into `model` (built from `stages`), then wrap its blocks as the identity when
    `weights.identity`; records the loaded parameters' names as `model.nas_pretrained`."""
    found = read_weights(weights.check_file())
    source = _source_stages(backbone, args, stages, found)
    where = f"weights.file = {str(found.path)!r}"
    expected = _shapes(backbone, args, source, num_classes, in_chans)
    head = _head_keys(backbone, args, source, num_classes, in_chans, expected)
    _check_keys(found, expected, head, where, backbone.name, dict(args))

    kept = tuple(BlockSpec("own") if s.kind == "own" else BlockSpec("none") for s in stages)
    source_keys = list(_shapes(backbone, args, backbone.normalise_stages(args, kept), num_classes, in_chans))
    blocks = [name for name, m in model.named_modules() if isinstance(m, block_types())]
    target_keys = [k for k in model.state_dict() if not any(k.startswith(b + ".") for b in blocks)]
    if len(source_keys) != len(target_keys):  # the builders only insert blocks: a bug if this fails
        raise AssertionError(f"{backbone.name}: {len(target_keys)} tensors outside blocks, {len(source_keys)} in the "
                             "source network")
    loaded = {}
    for src, dst in zip(source_keys, target_keys, strict=True):
        if src in head and (src not in found.state or found.state[src].shape != expected[src]):
            continue  # a new classifier for the task's classes, at its fresh initialisation
        loaded[dst] = found.state[src]
    model.load_state_dict(loaded, strict=False)
    if weights.identity:
        start_as_identity(model, block_types())
    params = {id(p) for n, p in model.named_parameters() if n in loaded}
    setattr(model, PRETRAINED_ATTR, frozenset(n for n, p in model.named_parameters() if id(p) in params))
    return model


def _source_stages(backbone: Backbone, args: Mapping[str, Any], stages: tuple[BlockSpec, ...],
                   found: WeightsFile) -> tuple[BlockSpec, ...]:
    """The stages of the network the file holds; a nas checkpoint of another network is refused."""
    designer = backbone.normalise_stages(args, (BlockSpec("own"),) * len(stages)) if backbone.has_own(args) \
        else (BlockSpec("none"),) * len(stages)
    if found.arch is None:
        source = designer
    else:
        where = f"weights.file = {str(found.path)!r} (a nas checkpoint)"
        theirs = found.arch
        if theirs.get("backbone") != backbone.name:
            raise ConfigError(f"{where}: backbone = {theirs.get('backbone')!r}, but this network's is "
                              f"{backbone.name!r}; allowed: a checkpoint of {backbone.name}")
        their_args = backbone.resolve_args(theirs.get("backbone_args") or {})
        for key in sorted(set(their_args) | set(args)):
            if their_args.get(key) != args.get(key):
                raise ConfigError(f"{where}: backbone_args.{key} = {their_args.get(key)!r}, but this network's is "
                                  f"{args.get(key)!r}; allowed: a checkpoint of the same backbone_args")
        specs = theirs.get("stages") or []
        source = tuple(BlockSpec.from_dict(s, where=f"stages[{i}]") for i, s in enumerate(specs, 1))
        bad = next((i for i, s in enumerate(source, 1) if s.kind not in ("none", "own")), None)
        if bad is not None or len(source) != len(stages):
            what = f"stages[{bad}].kind = {source[bad - 1].kind!r}" if bad else f"{len(source)} stages"
            raise ConfigError(f"{where}: {what}; allowed: the checkpoint of a network without blocks (`none` or "
                              f"`own` on each of its {len(stages)} stages), e.g. from nas train --save")
        source = backbone.normalise_stages(args, source)
    for i, (mine, theirs_spec) in enumerate(zip(stages, source, strict=True), 1):
        if mine.kind == "own" and theirs_spec.kind != "own":
            raise ConfigError(f"stages[{i}].kind = 'own' keeps the backbone's pretrained attention, but "
                              f"weights.file = {str(found.path)!r} has none at stage {i}; allowed: none or a block "
                              "kind")
    return source


def _build_meta(backbone: Backbone, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int,
                in_chans: int) -> nn.Module:
    """The network built for its shapes only: on the meta device (no memory, no initialisation
    cost), or on the CPU for a model whose constructor needs real tensors; the RNG left as it was."""
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                return backbone.build(dict(args), stages, num_classes, in_chans)
        except (RuntimeError, NotImplementedError):
            return backbone.build(dict(args), stages, num_classes, in_chans)


def _shapes(backbone: Backbone, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int,
            in_chans: int) -> dict[str, torch.Size]:
    model = _build_meta(backbone, args, stages, num_classes, in_chans)
    return {k: v.shape for k, v in model.state_dict().items()}


def _head_keys(backbone: Backbone, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int,
               in_chans: int, expected: Mapping[str, torch.Size]) -> set[str]:
    """The classifier: the tensors whose shape changes with the class count."""
    other = _shapes(backbone, args, stages, num_classes + 1, in_chans)
    return {k for k, shape in expected.items() if other.get(k) != shape}


def _check_keys(found: WeightsFile, expected: Mapping[str, torch.Size], head: set[str], where: str,
                backbone: str, args: dict[str, Any]) -> None:
    network = f"{backbone} {args}" if args else backbone
    unexpected = [k for k in found.state if k not in expected]
    if unexpected:
        raise ConfigError(f"{where}: key {unexpected[0]!r} ({_shape(found.state[unexpected[0]].shape)}) is not in "
                          f"{network} ({len(unexpected)} such of {len(found.state)} keys; e.g. expected "
                          f"{next(iter(expected))!r}); allowed: weights of this backbone and backbone_args")
    missing = [k for k in expected if k not in found.state and k not in head]
    if missing:
        raise ConfigError(f"{where}: key {missing[0]!r} ({_shape(expected[missing[0]])} in {network}) is missing "
                          f"from the file ({len(missing)} missing); allowed: weights of this backbone and "
                          "backbone_args")
    for key, shape in expected.items():
        if key in found.state and key not in head and found.state[key].shape != shape:
            channels = len(shape) == 4 and shape[0] == found.state[key].shape[0] and shape[1] != found.state[
                key].shape[1]
            hint = (f" (input channels: dataset.in_chans: {found.state[key].shape[1]} converts the images)"
                    if channels else " (width, depth or another backbone)")
            raise ConfigError(f"{where}: key {key!r} has shape {_shape(found.state[key].shape)} in the file but "
                              f"{_shape(shape)} in {network}; allowed: weights of this backbone and backbone_args"
                              f"{hint}")


def _shape(shape: torch.Size) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
