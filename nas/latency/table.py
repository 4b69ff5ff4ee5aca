"""A latency table: per stage x block choice, the ratio of the network's latency to `none`'s,
measured once under named conditions on one machine; it predicts an architecture's latency
without running it (FBNet's and ChamNet's look-up tables, per stage choice rather than per op).

Prediction is additive in the stages' excess over `none`, scaled by one fitted factor:
ratio(arch) = 1 + scale x sum over stages of (ratio(stage choice) - 1), latency = none's latency x
ratio. The excesses of several stages overlap when combined (on MobileNetV2 at 64 px under ONNX
Runtime, six stages cost 11 % less than the sum of each alone), so `scale` is fitted by least
squares on random architectures with 1..n attention stages measured directly (`calibration`);
a scale of 1 is the plain additive table. The table then proves itself on other random
architectures (`validation`), and a prediction's ± is the larger of the entries' intervals in
quadrature and the table's 95th-percentile error on those architectures.

Torch-free: `nas front` and `nas export` read tables without loading torch. Files are written
whole (a temporary file renamed), so a reader never sees half a table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.latency.conditions import LatencyConditions, describe_signature

FORMAT = 1
KEY_FIELDS = ("backbone", "backbone_args", "image_size", "in_chans", "num_classes", "conditions")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """An architecture's predicted latency and ratio to `none`, each with its 95 % half-width."""

    ms: float
    ms_ci: float
    ratio: float
    ratio_ci: float

    def text(self) -> str:
        return f"{self.ms:.3f} ± {self.ms_ci:.3f} ms (x{self.ratio:.3f} ± {self.ratio_ci:.3f} vs none)"


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` whole: a temporary file in the same folder, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a table is meant to be read and shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stage_key(stage: int, block_id: str) -> str:
    """An entry's key, as the stage appears in an `arch_id`: `s2:se-r16-avg`."""
    return f"s{stage}:{block_id}"


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties). Written here because scipy is not a
    run-time dependency and this is ten lines."""
    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fit_scale(excesses: Sequence[float], measured_excesses: Sequence[float]) -> float:
    """Least squares through the origin: the factor on the summed excess that best predicts the
    measured excess (1.0 when there is nothing to fit)."""
    num = sum(x * y for x, y in zip(excesses, measured_excesses, strict=True))
    den = sum(x * x for x in excesses)
    return num / den if den > 0 and num > 0 else 1.0


def accuracy_of(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """How well predictions match measurements: median and 95th-percentile |relative error|, Spearman."""
    errors = [abs(p / m - 1) for p, m in zip(predicted, measured, strict=True)]
    return {"n": len(errors), "median_abs_error": percentile(errors, 50), "p95_abs_error": percentile(errors, 95),
            "max_abs_error": max(errors), "spearman": spearman(predicted, measured)}


@dataclasses.dataclass
class LatencyTable:
    """A table as its file holds it (see the module docstring); `path` is where it was read from."""

    key: dict[str, Any]
    signature: dict[str, Any]
    none_ms: float
    none_ms_ci: float
    entries: dict[str, dict[str, Any]]
    validation: dict[str, Any] | None = None
    built: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None
    scale: float = 1.0  # the fitted factor on the summed excess (see the module docstring)
    calibration: dict[str, Any] | None = None  # what `scale` was fitted on
    parent: dict[str, Any] | None = None  # the table this one was adapted from (`nas.latency.adapt`), if any

    @property
    def conditions(self) -> LatencyConditions:
        return LatencyConditions.from_dict(self.key["conditions"])

    def to_dict(self) -> dict[str, Any]:
        adapted = {} if self.parent is None else {"parent": self.parent}
        return {"format": FORMAT, "key": self.key, "signature": self.signature,
                "none": {"ms": self.none_ms, "ms_ci": self.none_ms_ci},
                "model": {"kind": "scaled additive", "scale": self.scale}, "calibration": self.calibration,
                "validation": self.validation, "built": self.built, **adapted, "entries": self.entries}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LatencyTable:
        try:
            if data.get("format") != FORMAT:
                raise ConfigError(f"{where}: format = {data.get('format')!r} is not a latency table's; "
                                  f"allowed: {FORMAT} (build it again with nas latency-table)")
            entries = data["entries"]
            for name, entry in entries.items():
                if not (isinstance(entry, Mapping) and entry.get("ratio", 0) > 0 and entry.get("ratio_ci", -1) >= 0):
                    raise ConfigError(f"{where}: entries.{name} = {entry!r} is invalid; allowed: a mapping with "
                                      "ratio > 0 and ratio_ci >= 0")
            table = cls(key=dict(data["key"]), signature=dict(data["signature"]), none_ms=float(data["none"]["ms"]),
                        none_ms_ci=float(data["none"]["ms_ci"]), entries=dict(entries),
                        validation=data.get("validation"), built=dict(data.get("built") or {}),
                        scale=float((data.get("model") or {}).get("scale", 1.0)), calibration=data.get("calibration"),
                        parent=data.get("parent"))
            if not table.scale > 0:
                raise ConfigError(f"{where}: model.scale = {table.scale} is invalid; allowed: a number > 0")
            if table.parent is not None and not isinstance(table.parent.get("signature"), Mapping):
                raise ConfigError(f"{where}: parent = {table.parent!r} is invalid; allowed: the record of the table "
                                  "this one was adapted from (nas latency-table --adapt), with its signature")
            missing = [k for k in KEY_FIELDS if k not in table.key]
        except ConfigError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{where}: not a latency table ({type(error).__name__}: {error}); build one with "
                              "nas latency-table STUDY.yaml -o FILE.json") from None
        if missing:
            raise ConfigError(f"{where}: key.{missing[0]} is missing; a latency table's key has "
                              f"{', '.join(KEY_FIELDS)}")
        return table

    def describe(self) -> str:
        """`onnxruntime, batch 1, 1 thread, cpu on AMD EPYC (AVX2, 2 cores), ...`."""
        return f"{self.conditions.describe()} on {describe_signature(self.signature)}"

    def excess(self, arch_id: str) -> float:
        """The summed excess over `none` of the architecture's stage choices, before scaling."""
        return self._sums(arch_id)[0]

    def predict(self, arch_id: str) -> Prediction:
        """The latency of the architecture with this `arch_id` (`s1:se-r16-avg|s2:none|...`)."""
        excess, variance = self._sums(arch_id)
        ratio = 1 + self.scale * excess
        ratio_ci = self.scale * math.sqrt(variance)
        if self.validation:
            ratio_ci = max(ratio_ci, ratio * self.validation["p95_abs_error"])
        ms = self.none_ms * ratio
        ms_ci = math.hypot(self.none_ms_ci * ratio, self.none_ms * ratio_ci)
        return Prediction(ms, ms_ci, ratio, ratio_ci)

    def _sums(self, arch_id: str) -> tuple[float, float]:
        excess, variance = 0.0, 0.0
        for part in arch_id.split("|"):
            if part.split(":", 1)[-1] == "none":
                continue
            entry = self.entries.get(part)
            if entry is None:
                where = self.path or "the latency table"
                raise ConfigError(f"{where} has no entry {part!r} (of {arch_id}); it was built for another search "
                                  "space: build it again with nas latency-table")
            excess += entry["ratio"] - 1
            variance += entry["ratio_ci"] ** 2
        return excess, variance

    def mismatch(self, key: Mapping[str, Any], needed: Sequence[str]) -> str | None:
        """Why this table cannot predict for a study with `key` that needs the entries `needed`, or None."""
        for field in KEY_FIELDS:
            if _canonical(self.key.get(field)) != _canonical(key.get(field)):
                return (f"was built for {field} = {_canonical(self.key.get(field))}, but this study has "
                        f"{_canonical(key.get(field))}")
        lacking = [k for k in needed if k not in self.entries]
        if lacking:
            more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
            return f"lacks the stage choice {lacking[0]}{more}: it was built for another search space"
        return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def load_table(path: str | Path, where: str | None = None) -> LatencyTable:
    """Read a table file; a missing, unreadable or malformed one is refused with one line."""
    path = Path(path)  # `nas.load_table("x.json")` is public API: a string is what users pass
    where = where or str(path)
    if not path.is_file():
        partial = partial_path(path)
        hint = (f" (a build stopped at {partial.name}: run the same nas latency-table command again to finish it)"
                if partial.exists() else " (build one with nas latency-table STUDY.yaml -o FILE.json)")
        raise ConfigError(f"{where}: no such latency table{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{where}: not a readable latency table ({error}); build it again with "
                          "nas latency-table") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: not a latency table (a JSON object is expected)")
    table = LatencyTable.from_dict(data, where)
    table.path = path
    return table


def partial_path(path: Path) -> Path:
    """Where a build in progress keeps what it has measured (resumed by the next build)."""
    return path.with_name(path.name + ".partial")
