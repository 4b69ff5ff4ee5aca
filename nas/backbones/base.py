"""What every backbone provides: its arguments, its stages and the placements each supports, a builder.

Placements (DESIGN.md's vocabulary), by where a block can go:
- in a residual unit (`RESIDUAL`): `block` on the residual branch after its last norm, before the
  sum (SE-ResNet); the SENet paper's ablation positions `pre` (on the branch, before the unit's
  first conv), `post` (after the sum and its ReLU) and `identity` (on the shortcut, in parallel
  with the branch);
- in an inverted residual (`INVERTED`): `block` after the projection and its norm, `expand` after
  the depthwise conv on the expanded width (MobileNetV3 / EfficientNet SE);
- `stage`: once, on the stage's output.
A backbone that brings attention of its own (MobileNetV3's SE) also takes `own` on a stage, which
keeps it; every other spec strips it (`nas.backbones.own`).
A backbone builds a plain `nn.Module` from one `BlockSpec` per stage. It never sees an Optuna trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from nas.blocks import BlockSpec, make_block
from nas.blocks.registry import PLACELESS
from nas.errors import ConfigError

RESIDUAL = ("block", "pre", "post", "identity", "stage")
INVERTED = ("block", "expand", "stage")
UNIT_PLACEMENTS = ("block", "pre", "post", "identity")

# build(args, stages, num_classes, in_chans) -> model
Builder = Callable[[dict[str, Any], tuple[BlockSpec, ...], int, int], nn.Module]
# own_attention(args) -> per stage, the backbone's own attention modules by class: ({"SqueezeExcite": 1}, {}, ...)
OwnAttention = Callable[[dict[str, Any]], tuple[Mapping[str, int], ...]]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registered backbone.

    `defaults` lists every accepted argument with its default (None: arguments are passed through,
    as for timm models). `check` validates a complete argument dict. `stage_placements(args)` gives,
    per stage, the placements that stage supports; `placements` is every placement some stage of
    this backbone may support (the search space and baselines use it before arguments are known).
    """

    name: str
    defaults: Mapping[str, Any] | None
    stage_placements: Callable[[dict[str, Any]], tuple[tuple[str, ...], ...]]
    builder: Builder
    placements: tuple[str, ...]
    check: Callable[[dict[str, Any]], None] = lambda args: None
    own_attention: OwnAttention | None = None  # None: the backbone brings no attention
    baseline_placement: str | None = None  # where uniform baselines go; None: `block`, else `stage`

    def resolve_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The complete, validated arguments: defaults filled in, unknown names refused."""
        if not isinstance(args, Mapping):
            raise ConfigError(f"backbone_args = {args!r} is invalid; expected a mapping")
        if self.defaults is None:
            full = dict(args)
        else:
            unknown = sorted(set(args) - set(self.defaults), key=str)
            if unknown:
                allowed = ", ".join(self.defaults) or "(none)"
                raise ConfigError(
                    f"backbone_args.{unknown[0]} is not an argument of {self.name}; allowed: {allowed}"
                )
            full = {**self.defaults, **args}
        self.check(full)
        return full

    def placements_per_stage(self, args: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
        return self.stage_placements(self.resolve_args(args))

    def num_stages(self, args: Mapping[str, Any]) -> int:
        return len(self.placements_per_stage(args))

    def own_counts(self, args: Mapping[str, Any]) -> tuple[Mapping[str, int], ...]:
        """Per stage, the attention modules the backbone brings, by class (all empty for most)."""
        if self.own_attention is None:
            return ({},) * self.num_stages(args)
        return self.own_attention(self.resolve_args(args))

    def has_own(self, args: Mapping[str, Any]) -> bool:
        return any(self.own_counts(args))

    def default_placement(self) -> str:
        """Where a uniform baseline (`se` everywhere) goes on this backbone."""
        if self.baseline_placement is not None:
            return self.baseline_placement
        return "block" if "block" in self.placements else "stage"

    def normalise_stages(self, args: Mapping[str, Any], stages: tuple[BlockSpec, ...]) -> tuple[BlockSpec, ...]:
        """`own` on a stage with no attention of its own is `none` there: one architecture, one id
        (so `own` everywhere is the designer's placement on any backbone that has one)."""
        if not any(spec.kind == "own" for spec in stages):
            return stages
        counts = self.own_counts(args)
        if not any(counts) or len(counts) != len(stages):
            return stages  # check_stages names the wrong count
        return tuple(BlockSpec("none") if spec.kind == "own" and not n else spec
                     for spec, n in zip(stages, counts, strict=True))

    def check_stages(self, args: Mapping[str, Any], stages: tuple[BlockSpec, ...]) -> None:
        """Refuse a wrong stage count, a placement a stage does not have, or `own` on a backbone
        that brings no attention, naming the stage."""
        per_stage = self.placements_per_stage(args)
        if len(stages) != len(per_stage):
            raise ConfigError(
                f"stages has {len(stages)} entries but backbone {self.name} has {len(per_stage)} stages"
            )
        own = next((i for i, spec in enumerate(stages, 1) if spec.kind == "own"), None)
        if own is not None and not self.has_own(args):
            raise ConfigError(
                f"stages[{own}].kind = 'own' keeps a backbone's own attention, but {self.name} brings none; "
                "allowed: none or a block kind"
            )
        for i, (spec, allowed) in enumerate(zip(stages, per_stage, strict=True), 1):
            if spec.kind not in PLACELESS and spec.placement not in allowed:
                raise ConfigError(
                    f"stages[{i}].placement = {spec.placement!r} is not supported by {self.name} at stage {i}; "
                    f"allowed there: {', '.join(allowed)}"
                )

    def build(
        self, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
    ) -> nn.Module:
        self.check_stages(args, stages)
        return self.builder(self.resolve_args(args), stages, num_classes, in_chans)


def attach_after(parent: nn.Module, name: str, spec: BlockSpec, channels: int) -> None:
    """Replace `parent.<name>` by `Sequential(<name>, block)`: a block on a module's output."""
    if spec.kind in PLACELESS:
        return
    module = parent.get_submodule(name)
    holder_name, _, leaf = name.rpartition(".")
    holder = parent.get_submodule(holder_name) if holder_name else parent
    setattr(holder, leaf, nn.Sequential(module, make_block(spec, channels)))


def unit_block(spec: BlockSpec, in_channels: int, out_channels: int) -> nn.Module:
    """The block a residual unit holds for `spec` (the identity unless it goes inside units).

    `pre` sits on the unit's input, so it is as wide as the input; the other positions see the output width.
    """
    if spec.kind in PLACELESS or spec.placement not in UNIT_PLACEMENTS:
        return nn.Identity()
    return make_block(spec, in_channels if spec.placement == "pre" else out_channels)


class ResidualAttention:
    """Mixin for residual units: one forward that puts `self.attn` at `self.placement`.

    The unit provides `branch(x)` (its convs and norms up to the last norm), `skip(x)` (the
    shortcut) and `relu`; `attn` and `placement` are set by the builder (`unit_block`).
    """

    attn: nn.Module
    placement: str = "block"
    relu: nn.Module

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        where = self.placement
        out = self.branch(self.attn(x) if where == "pre" else x)
        if where == "block":
            out = self.attn(out)
        identity = self.skip(x)
        if where == "identity":
            identity = self.attn(identity)
        out = self.relu(out + identity)
        return self.attn(out) if where == "post" else out


def check_positive_int(args: Mapping[str, Any], name: str, backbone: str) -> None:
    value = args[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"backbone_args.{name} = {value!r} is invalid for {backbone}; allowed: an integer >= 1"
        )


def check_small_input(args: Mapping[str, Any], backbone: str) -> None:
    if not isinstance(args["small_input"], bool):
        raise ConfigError(
            f"backbone_args.small_input = {args['small_input']!r} is invalid for {backbone}; allowed: true, false"
        )


def check_positive_number(args: Mapping[str, Any], name: str, backbone: str) -> None:
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"backbone_args.{name} = {value!r} is invalid for {backbone}; allowed: a number > 0")
