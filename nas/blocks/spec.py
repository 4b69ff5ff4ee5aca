"""`BlockSpec`: one attention block as plain, validated data.

A spec is checked when it is constructed, so a bad setting is reported where the user wrote it,
not deep inside a forward pass. Which settings a kind has, their allowed values and defaults come
from the kind's registration (`nas.blocks.registry`). Settings that do not apply are normalised
away (an ECA block has no reduction; a CBAM with an ECA channel half has none either), so two
specs that build the same block compare equal and share an id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from nas.blocks.registry import KINDS, PLACELESS, REGISTRY
from nas.blocks.settings import PLACEMENTS
from nas.errors import ConfigError

# Fields whose default is None: left unset, they take the kind's default (CBAM's 7×7 kernel,
# SE's biased MLP); where None is a value of its own (ECA's adaptive kernel) it stays None.
_KIND_DEFAULTED = frozenset({"kernel_size", "bias", "norm"})


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """An attention block kind and its settings, plus where it goes in a stage.

    - `reduction`: r of the excitation MLP (se, cbam, ge, coord), a number >= 1; hidden width =
      `reduced_width(C, r, divisor)`. For ge, `None` means no MLP (the paper's parameter-free GE-θ⁻).
    - `divisor`: the hidden width is rounded to a multiple of it (MobileNetV3: 8).
    - `kernel_size`: eca's 1-D kernel (odd; `None` = the ECA paper's adaptive rule) or the spatial
      k×k kernel of sa and cbam (odd; default 7).
    - `pool`: how the channel descriptor is pooled: `avg`, `max`, `avgmax` (the excitation is
      applied to both descriptors and the results summed before the gate, as CBAM does) or `mix`
      (0.5·(avg + max) before the excitation).
    - `extent`: ge's gather extent: 0 = global, else an even window stride (window 2e-1).
    - `gate`: `sigmoid` or `hard_sigmoid`.
    - `placement`: where in the stage (see `PLACEMENTS` and the backbone's docstring).
    - `divisor`, `bias`, `norm` (sa/cbam: batch norm after the spatial conv), `channel` (cbam's
      channel half: `se` or `eca`), `channel_kernel_size` (its ECA kernel), `gather` (ge: `pool`,
      or `conv` for the parameterised GE-θ+ gather).
    """

    kind: str
    reduction: float | None = 16
    kernel_size: int | None = None
    pool: str | None = "avg"
    extent: int | None = 0
    gate: str | None = "sigmoid"
    placement: str = "block"
    divisor: int | None = 1
    bias: bool | None = None
    norm: bool | None = None
    channel: str | None = "se"
    channel_kernel_size: int | None = None
    gather: str | None = "pool"

    def __post_init__(self) -> None:
        _check_choice("kind", self.kind, KINDS)
        _check_choice("placement", self.placement, PLACEMENTS)
        kind = REGISTRY[self.kind]
        given = {name: getattr(self, name) for name in SETTING_FIELDS}
        resolved = kind.resolve(given, _KIND_DEFAULTED)
        for name in SETTING_FIELDS:
            object.__setattr__(self, name, resolved.get(name))
        if self.kind in PLACELESS:
            object.__setattr__(self, "placement", "block")

    def settings(self) -> dict[str, Any]:
        """The settings that apply to this block, in its kind's order: the module's keyword arguments."""
        kind = REGISTRY[self.kind]
        out: dict[str, Any] = {}
        for setting in kind.settings:
            if kind.applies(setting, out):
                out[setting.name] = getattr(self, setting.name)
        return out

    def build(self, channels: int) -> nn.Module:
        """The attention module on a `channels`-wide feature map (`none`: the identity)."""
        return REGISTRY[self.kind].module(channels, **self.settings())

    @property
    def block_id(self) -> str:
        """A short readable id, e.g. `se-r16-avg`, `cbam-r8-k7-avgmax@stage`, `none`."""
        kind = REGISTRY[self.kind]
        parts = [self.kind]
        for name, value in self.settings().items():
            token = kind.setting(name).token(value)
            if token is not None:
                parts.append(token)
        text = "-".join(parts)
        return text if self.placement == "block" else f"{text}@{self.placement}"

    def to_dict(self) -> dict[str, Any]:
        """The settings that apply to this kind, in a stable order (YAML/JSON friendly)."""
        out: dict[str, Any] = {"kind": self.kind, **self.settings()}
        if self.kind not in PLACELESS:
            out["placement"] = self.placement
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str, where: str = "block") -> BlockSpec:
        """Build from a mapping (or a bare kind string); keys that are not settings of the kind are errors.

        `where` prefixes messages so they name the field path (for example `stages[2]`).
        """
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where} = {data!r} is invalid; expected a kind name ({', '.join(KINDS)}) "
                "or a mapping with a 'kind' key"
            )
        try:
            if "kind" not in data:
                raise ConfigError(f"kind is missing; allowed: {', '.join(KINDS)}")
            kind = data["kind"]
            _check_choice("kind", kind, KINDS)
            allowed = {"kind", *REGISTRY[kind].names} | ({"placement"} if kind not in PLACELESS else set())
            for key in data:
                if key not in allowed:
                    raise ConfigError(
                        f"{key} is not a setting of {kind}; allowed: {', '.join(sorted(allowed))}"
                    )
            return cls(**dict(data))
        except ConfigError as error:
            raise ConfigError(f"{where}.{error}") from None

    @classmethod
    def paper_default(cls, kind: str, placement: str = "block") -> BlockSpec:
        """The setting each paper reports as its default, used for the hand-placed baselines.

        se: r=16, avg. eca: adaptive k, avg. cbam: r=16, 7×7, avg+max. ge: global extent,
        parameter-free (GE-θ⁻), which is what distinguishes it from SE. sa: 7×7. coord: r=32, at
        least 8 hidden units. (Each kind's registration holds its own.)
        """
        _check_choice("kind", kind, KINDS)
        return cls(kind, placement=placement, **REGISTRY[kind].paper)


SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(BlockSpec) if f.name not in ("kind", "placement"))


def _check_choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{field} = {value!r} is invalid; allowed: {', '.join(allowed)}")
