"""What every backbone provides: its arguments, its stage count, and a builder.

A backbone builds a plain `nn.Module` with one attention block per stage (`placement: block` puts
one in every residual unit of the stage, `placement: stage` one on the stage output). It never
sees an Optuna trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from nas.blocks import BlockSpec, make_block
from nas.errors import ConfigError

# build(args, stages, num_classes, in_chans) -> model
Builder = Callable[[dict[str, Any], tuple[BlockSpec, ...], int, int], nn.Module]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registered backbone.

    `defaults` lists every accepted argument with its default (None: arguments are passed through
    unchecked, as for timm models). `check` validates a complete argument dict.
    """

    name: str
    defaults: Mapping[str, Any] | None
    stage_count: Callable[[dict[str, Any]], int]
    builder: Builder
    placements: tuple[str, ...] = ("block", "stage")
    check: Callable[[dict[str, Any]], None] = lambda args: None

    def resolve_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The complete, validated arguments: defaults filled in, unknown names refused."""
        if not isinstance(args, Mapping):
            raise ConfigError(f"backbone_args = {args!r} is invalid; expected a mapping")
        if self.defaults is None:
            return dict(args)
        unknown = sorted(set(args) - set(self.defaults), key=str)
        if unknown:
            allowed = ", ".join(self.defaults) or "(none)"
            raise ConfigError(
                f"backbone_args.{unknown[0]} is not an argument of {self.name}; allowed: {allowed}"
            )
        full = {**self.defaults, **args}
        self.check(full)
        return full

    def num_stages(self, args: Mapping[str, Any]) -> int:
        return self.stage_count(self.resolve_args(args))

    def build(
        self, args: Mapping[str, Any], stages: tuple[BlockSpec, ...], num_classes: int, in_chans: int
    ) -> nn.Module:
        full = self.resolve_args(args)
        expected = self.stage_count(full)
        if len(stages) != expected:
            raise ConfigError(
                f"stages has {len(stages)} entries but {self.name} has {expected} stages"
            )
        for i, spec in enumerate(stages, 1):
            if spec.kind != "none" and spec.placement not in self.placements:
                raise ConfigError(
                    f"stages[{i}].placement = {spec.placement!r} is not supported by {self.name}; "
                    f"allowed: {', '.join(self.placements)}"
                )
        return self.builder(full, stages, num_classes, in_chans)


def attach_after(parent: nn.Module, name: str, spec: BlockSpec, channels: int) -> None:
    """Replace `parent.<name>` by `Sequential(<name>, block)`: a block on a module's output."""
    if spec.kind == "none":
        return
    module = parent.get_submodule(name)
    holder_name, _, leaf = name.rpartition(".")
    holder = parent.get_submodule(holder_name) if holder_name else parent
    setattr(holder, leaf, nn.Sequential(module, make_block(spec, channels)))


def check_positive_int(args: Mapping[str, Any], name: str, backbone: str) -> None:
    value = args[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"backbone_args.{name} = {value!r} is invalid for {backbone}; allowed: an integer >= 1"
        )
