"""How a block kind registers itself: its settings (allowed values, default, `arch_id` token) and
its module.

Each block module declares one `Kind`; `nas.blocks.registry` lists them. Everything else that
knows about kinds (`BlockSpec` validation, `to_dict`, `arch_id`, search spaces, baselines) reads
the registration, so adding a kind touches its own file and one registry line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from nas.errors import ConfigError

POOLS = ("avg", "max", "avgmax", "mix")
GATES = ("sigmoid", "hard_sigmoid")
PLACEMENTS = ("block", "stage", "pre", "post", "identity", "expand")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of one kind.

    `nullable`: `None` is a value of its own (ECA's adaptive kernel, GE without MLP). `applies`
    says, from the kind's other (earlier) settings, whether this one is used at all: CBAM's
    `reduction` only with `channel: se`. `token` is this setting's piece of the `arch_id`, or None
    to leave it out (settings at their default are left out, so old ids stay stable).
    """

    name: str
    default: Any
    allowed: str
    valid: Callable[[Any], bool]
    token: Callable[[Any], str | None] = lambda value: None
    nullable: bool = False
    applies: Callable[[Mapping[str, Any]], bool] | None = None

    def when(self, applies: Callable[[Mapping[str, Any]], bool]) -> Setting:
        return dataclasses.replace(self, applies=applies)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A block kind: its module, its settings in order, and the paper's default settings.

    `module(channels, **settings)` builds the block. Settings are listed so that a setting's
    `applies` only looks at earlier ones (the search space samples them in this order). `check`
    refuses combinations no single setting can judge (GE's conv gather needs a power-of-two extent).
    """

    name: str
    module: Callable[..., nn.Module]
    settings: tuple[Setting, ...]
    paper: Mapping[str, Any]
    check: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def setting(self, name: str) -> Setting:
        return next(s for s in self.settings if s.name == name)

    def applies(self, setting: Setting, values: Mapping[str, Any]) -> bool:
        """Whether `setting` is used, given `values` (missing ones at their defaults)."""
        if setting.applies is None:
            return True
        return setting.applies({s.name: values.get(s.name, s.default) for s in self.settings})

    def resolve(self, values: Mapping[str, Any], unset: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The settings that apply, validated, in order. A name in `unset` that is None takes its default."""
        out: dict[str, Any] = {}
        for setting in self.settings:
            if not self.applies(setting, out):
                continue
            value = values.get(setting.name, setting.default)
            if value is None and setting.name in unset and not setting.nullable:
                value = setting.default
            if not ((value is None and setting.nullable) or (value is not None and setting.valid(value))):
                raise ConfigError(
                    f"{setting.name} = {value!r} is invalid for {self.name}; allowed: {setting.allowed}"
                )
            out[setting.name] = _canonical_number(value)
        if self.check is not None:
            self.check(out)
        return out


def _canonical_number(value: Any) -> Any:
    """3.0 -> 3, so `reduction: 3.0` and `reduction: 3` are one architecture with one id."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _odd(value: Any) -> bool:
    return is_int(value) and value >= 1 and value % 2 == 1


# --- the settings kinds share; a kind picks them and may narrow `applies` ----------------------

def reduction(nullable: bool = False) -> Setting:
    """r of an excitation MLP: hidden width `reduced_width(C, r, divisor)`; a fraction is allowed
    (r = 1/ratio for posts that write a ratio). For GE, None = no MLP (GE-θ⁻)."""
    return Setting(
        "reduction", 16,
        "a number >= 1 (an integer >= 1 such as 16, or a fraction such as 3.33)"
        + (" or null (no MLP)" if nullable else ""),
        lambda v: _is_number(v) and v >= 1,
        lambda v: "nomlp" if v is None else f"r{v:g}",
        nullable=nullable,
    )


def divisor() -> Setting:
    return Setting("divisor", 1, "an integer >= 1 (the hidden width is rounded to a multiple of it)",
                   lambda v: is_int(v) and v >= 1, lambda v: None if v == 1 else f"d{v}")


def kernel_size(default: int | None, name: str = "kernel_size", prefix: str = "k") -> Setting:
    """An odd kernel; `default=None` makes None the ECA paper's adaptive rule."""
    adaptive = default is None
    return Setting(
        name, default,
        "an odd integer >= 1" + (" or null (the ECA paper's adaptive rule)" if adaptive else ""),
        _odd,
        lambda v: f"{prefix}auto" if v is None else f"{prefix}{v}",
        nullable=adaptive,
    )


def pool() -> Setting:
    return Setting("pool", "avg", ", ".join(POOLS), lambda v: v in POOLS, lambda v: v)


def gate() -> Setting:
    return Setting("gate", "sigmoid", ", ".join(GATES), lambda v: v in GATES,
                   lambda v: "hs" if v == "hard_sigmoid" else None)


def flag(name: str, default: bool, what: str) -> Setting:
    """A boolean such as `bias` or `norm`; its token shows only when it differs from the kind's default."""
    return Setting(name, default, f"true or false ({what})", lambda v: isinstance(v, bool),
                   lambda v: None if v == default else (name if v else f"no{name}"))


def choice(name: str, choices: tuple[str, ...]) -> Setting:
    """One of `choices`, the first being the default (left out of the id)."""
    return Setting(name, choices[0], ", ".join(choices), lambda v: v in choices,
                   lambda v: None if v == choices[0] else v)
