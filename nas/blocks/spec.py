"""`BlockSpec`: one attention block as plain, validated data.

A spec is checked when it is constructed, so a bad setting is reported where the user wrote it,
not deep inside a forward pass. Settings that do not apply to a kind are normalised away (an ECA
block has no reduction), so two specs that build the same block compare equal and share an id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nas.errors import ConfigError

KINDS = ("none", "se", "eca", "cbam", "ge")
POOLS = ("avg", "max", "avgmax")
GATES = ("sigmoid", "hard_sigmoid")
PLACEMENTS = ("block", "stage")

# Which optional settings each kind reads; the rest are normalised to their neutral value.
SETTINGS: dict[str, tuple[str, ...]] = {
    "none": (),
    "se": ("reduction", "pool", "gate"),
    "eca": ("kernel_size", "pool", "gate"),
    "cbam": ("reduction", "kernel_size", "pool", "gate"),
    "ge": ("extent", "reduction", "pool", "gate"),
}
_NEUTRAL = {"reduction": None, "kernel_size": None, "pool": "avg", "extent": 0, "gate": "sigmoid"}
CBAM_DEFAULT_KERNEL = 7


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """An attention block kind and its settings, plus where it goes in a stage.

    - `reduction`: r of the excitation MLP (se, cbam, ge); hidden width = `reduced_width(C, r)`.
      For ge, `None` means no MLP (the paper's parameter-free GE-θ⁻).
    - `kernel_size`: eca's 1-D kernel (odd; `None` = the ECA paper's adaptive rule) or cbam's
      spatial k×k kernel (odd; default 7).
    - `pool`: how the channel descriptor is pooled: `avg`, `max`, or `avgmax` (the excitation is
      applied to both descriptors and the results summed before the gate, as CBAM does).
    - `extent`: ge's gather extent: 0 = global, else a power of two (window 2e-1, stride e).
    - `gate`: `sigmoid` or `hard_sigmoid`.
    - `placement`: `block` (on the residual branch of every unit, before the sum) or `stage`
      (once, on the stage output).
    """

    kind: str
    reduction: int | None = 16
    kernel_size: int | None = None
    pool: str = "avg"
    extent: int = 0
    gate: str = "sigmoid"
    placement: str = "block"

    def __post_init__(self) -> None:
        _check_choice("kind", self.kind, KINDS)
        _check_choice("placement", self.placement, PLACEMENTS)
        used = SETTINGS[self.kind]
        for name, neutral in _NEUTRAL.items():
            if name not in used:
                object.__setattr__(self, name, neutral)
        if self.kind == "none":
            object.__setattr__(self, "placement", "block")
            return
        _check_choice("pool", self.pool, POOLS)
        _check_choice("gate", self.gate, GATES)
        if "reduction" in used:
            allow_none = self.kind == "ge"
            if not (self.reduction is None and allow_none) and not (
                _is_int(self.reduction) and self.reduction >= 1
            ):
                allowed = "an integer >= 1" + (" or null (no MLP)" if allow_none else "")
                raise ConfigError(
                    f"reduction = {self.reduction!r} is invalid for {self.kind}; allowed: {allowed}"
                )
        if self.kind == "cbam" and self.kernel_size is None:
            object.__setattr__(self, "kernel_size", CBAM_DEFAULT_KERNEL)
        if "kernel_size" in used and self.kernel_size is not None:
            if not (_is_int(self.kernel_size) and self.kernel_size >= 1 and self.kernel_size % 2):
                allowed = "an odd integer >= 1" + (
                    " or null (the ECA paper's adaptive rule)" if self.kind == "eca" else ""
                )
                raise ConfigError(
                    f"kernel_size = {self.kernel_size!r} is invalid for {self.kind}; "
                    f"allowed: {allowed}"
                )
        if "extent" in used:
            e = self.extent
            if not (_is_int(e) and (e == 0 or (e >= 2 and e & (e - 1) == 0))):
                raise ConfigError(
                    f"extent = {e!r} is invalid for ge; allowed: 0 (global) or a power of two >= 2"
                )

    @property
    def block_id(self) -> str:
        """A short readable id, e.g. `se-r16-avg`, `cbam-r8-k7-avgmax@stage`, `none`."""
        if self.kind == "none":
            return "none"
        parts = [self.kind]
        if self.kind == "ge":
            parts.append("xg" if self.extent == 0 else f"x{self.extent}")
            parts.append("nomlp" if self.reduction is None else f"r{self.reduction}")
        elif "reduction" in SETTINGS[self.kind]:
            parts.append(f"r{self.reduction}")
        if "kernel_size" in SETTINGS[self.kind]:
            parts.append("kauto" if self.kernel_size is None else f"k{self.kernel_size}")
        parts.append(self.pool)
        if self.gate == "hard_sigmoid":
            parts.append("hs")
        text = "-".join(parts)
        return text + "@stage" if self.placement == "stage" else text

    def to_dict(self) -> dict[str, Any]:
        """The settings that apply to this kind, in a stable order (YAML/JSON friendly)."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in SETTINGS[self.kind]:
            out[name] = getattr(self, name)
        if self.kind != "none":
            out["placement"] = self.placement
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str, where: str = "block") -> BlockSpec:
        """Build from a mapping (or a bare kind string); unknown or inapplicable keys are errors.

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
            allowed = {"kind", *SETTINGS[kind]} | ({"placement"} if kind != "none" else set())
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
        parameter-free (GE-θ⁻), which is what distinguishes it from SE.
        """
        _check_choice("kind", kind, KINDS)
        settings: dict[str, dict[str, Any]] = {
            "none": {},
            "se": {"reduction": 16, "pool": "avg"},
            "eca": {"kernel_size": None, "pool": "avg"},
            "cbam": {"reduction": 16, "kernel_size": 7, "pool": "avgmax"},
            "ge": {"extent": 0, "reduction": None, "pool": "avg"},
        }
        return cls(kind, placement=placement, **settings[kind])


def _check_choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{field} = {value!r} is invalid; allowed: {', '.join(allowed)}")
