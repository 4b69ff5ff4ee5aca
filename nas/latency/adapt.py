"""A latency table carried to another machine: how far it holds here, and a refit in seconds.

Between two CPUs that both say "AVX-512" (issue 33: the committed table from an AMD EPYC, used on
an Intel Xeon) the order of architectures by latency transferred (Spearman 0.98) but magnitudes
did not: attention's excess over `none` was about 20 % larger on the second machine, so nearly
every prediction was low, by a median 3 %. One device's ranking serving another is what "latency
monotonicity" (Lu et al., 2021) and HELP (Lee et al., 2021, about 10 measurements per new device)
build on. So adapting keeps the parent's entries (its ranking of the stage choices) and measures
here only what magnitudes need: `none` itself and a few architectures with 1..n attention stages,
on which the one scale on the summed excess is refitted, as a build fits it (`fit_scale`). Per-kind
scales are not fitted: `benchmarks/latency_transfer.py` measures whether they would beat one
scale. The adapted table is then validated on other architectures measured here, as a build is,
carries this machine's signature and records its parent.

`check_transfer` measures the untouched table here instead, so a user learns how far it holds
before any training. Both refuse a table of another network or space, or of another runtime
unless allowed, before anything is measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from nas.arch import ArchConfig
from nas.errors import ConfigError
from nas.latency.builder import (
    CALIBRATION_SEED,
    CHECK_SEED,
    LatencyTarget,
    Progress,
    _gpu_name,
    measure_once,
)
from nas.latency.conditions import LatencyConditions, device_signature
from nas.latency.measure import TARGET, measure_reference
from nas.latency.runtime import Runner
from nas.latency.table import KEY_FIELDS, LatencyTable, accuracy_of, fit_scale, write_json


class Measurer(Protocol):
    """This machine, timing: architectures' ratios to `none` (interleaved) and `none`'s own latency.
    Tests inject one with a known answer."""

    def ratios(self, archs: Mapping[str, ArchConfig], what: str) -> dict[str, dict[str, Any]]: ...

    def none_ms(self) -> tuple[float, float]: ...


@dataclasses.dataclass
class Here:
    """The real `Measurer`: the target's networks timed on this machine under its conditions."""

    target: LatencyTarget
    target_ci: float = TARGET
    max_seconds: float = 20.0
    progress: Progress | None = None
    _reference: Runner | None = None

    @property
    def reference(self) -> Runner:
        if self._reference is None:
            self._reference = self.target.runner(self.target.template(), "the none reference")
        return self._reference

    def ratios(self, archs: Mapping[str, ArchConfig], what: str) -> dict[str, dict[str, Any]]:
        return measure_once(self.target, self.reference, archs, self.progress, what, self.target_ci, self.max_seconds)

    def none_ms(self) -> tuple[float, float]:
        return measure_reference(self.reference)


def refuse_mismatch(parent: LatencyTable, target: LatencyTarget, where: str,
                    allow_runtime_change: bool = False) -> None:
    """Refuse, with one line naming the field and both values, a table that cannot be carried to
    this study: another network (backbone, its arguments, input, classes), a space it does not
    cover, or another runtime unless `allow_runtime_change` (eager and ONNX Runtime rank the kinds
    differently, which one scale cannot fix). Batch, threads and device may differ: that is what
    adapting is for, and the validation says how far it got."""
    key = target.key()
    for field in KEY_FIELDS:
        if field == "conditions":
            continue
        table_value, study_value = _canonical(parent.key.get(field)), _canonical(key.get(field))
        if table_value != study_value:
            raise ConfigError(f"{where}: {field} = {table_value}, but the study has {field} = {study_value}; "
                              "allowed: a table of this study's network (or a table built here: nas latency-table "
                              "STUDY.yaml)")
    runtime, here = parent.conditions.runtime, target.conditions.runtime
    if runtime != here and not allow_runtime_change:
        raise ConfigError(f"{where}: conditions.runtime = {runtime!r}, but the study measures under {here!r} (eager "
                          "and ONNX Runtime rank the kinds differently, which one refitted scale cannot fix); "
                          "allowed: a table of the same runtime, or --allow-runtime-change")
    lacking = [k for k in target.choices() if k not in parent.entries]
    if lacking:
        more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
        raise ConfigError(f"{where}: entries = {len(parent.entries)} stage choices without {lacking[0]}{more}, but "
                          "the study's search space has them; allowed: a table built for a space that covers this "
                          "study's")


def fit_architectures(target: LatencyTarget, n: int) -> dict[str, ArchConfig]:
    """`n` architectures to refit on, spread over 1..n attention stages (as a build calibrates)."""
    return {a.arch_id: a for a in target.random_architectures(n, seed=CALIBRATION_SEED, spread=True)}


def check_architectures(target: LatencyTarget, n: int, exclude: Collection[str] = ()) -> dict[str, ArchConfig]:
    """`n` random architectures of the space (as a build validates on), none of them in `exclude`."""
    drawn = target.random_architectures(n + len(exclude), seed=CHECK_SEED)
    return {a.arch_id: a for a in [a for a in drawn if a.arch_id not in exclude][:n]}


@dataclasses.dataclass(frozen=True)
class TransferCheck:
    """How an untouched table predicts architectures measured here."""

    n: int
    ratio: dict[str, float]  # accuracy_of the ratio to none (what a table's validation states)
    ms: dict[str, float]  # accuracy_of the milliseconds (also off by none's own change)
    none_ms_here: float
    none_ms_table: float
    table_p95: float | None  # the table's own 95th-percentile |error|, on its machine
    rows: list[dict[str, Any]]

    @property
    def worst_median(self) -> float:
        return max(self.ratio["median_abs_error"], self.ms["median_abs_error"])

    def needs_adapting(self) -> bool:
        """Whether the typical error here exceeds the table's own 95th percentile: its ± no longer
        holds. (A median, not this check's own p95: of 12 architectures that is nearly the
        largest, and it would exceed the table's p95 half the time on the very machine it was
        built on.)"""
        return self.table_p95 is not None and self.worst_median > self.table_p95

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "needs_adapting": self.needs_adapting()}


def check_transfer(parent: LatencyTable, target: LatencyTarget, archs: int = 12,
                   measurer: Measurer | None = None) -> TransferCheck:
    """Measure `archs` random architectures here and compare the untouched table's predictions."""
    measurer = measurer or Here(target)
    chosen = check_architectures(target, archs)
    measured = measurer.ratios(chosen, "architectures to check")
    none_ms, _ = measurer.none_ms()
    rows = []
    for k in chosen:
        p = parent.predict(k)
        rows.append({"arch_id": k, "measured_ratio": measured[k]["ratio"], "predicted_ratio": p.ratio,
                     "measured_ms": measured[k]["ms"], "predicted_ms": p.ms})
    return TransferCheck(
        n=len(rows), ratio=accuracy_of([r["predicted_ratio"] for r in rows], [r["measured_ratio"] for r in rows]),
        ms=accuracy_of([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows]),
        none_ms_here=none_ms, none_ms_table=parent.none_ms,
        table_p95=(parent.validation or {}).get("p95_abs_error"), rows=rows)


def adapt_table(parent: LatencyTable, target: LatencyTarget, path: Path, archs: int = 12, check: int = 30,
                measurer: Measurer | None = None, target_ci: float = TARGET) -> LatencyTable:
    """Refit `parent` to this machine on `archs` architectures measured here, validate it on
    `check` others, and write it to `path` whole (see the module docstring). Nothing is written
    unless every measurement converged."""
    start = time.perf_counter()
    measurer = measurer or Here(target, target_ci)
    fit = fit_architectures(target, archs)
    measured = measurer.ratios(fit, "architectures to refit on")
    rows = [{"arch_id": k, "attention_stages": sum(not p.endswith(":none") for p in k.split("|")),
             "measured_ratio": measured[k]["ratio"], "summed_excess": parent.excess(k)} for k in fit]
    scale = fit_scale([r["summed_excess"] for r in rows], [r["measured_ratio"] - 1 for r in rows])
    none_ms, none_ci = measurer.none_ms()
    table = LatencyTable(
        key=target.key(), signature=device_signature(target.conditions, _gpu_name(target.conditions)), none_ms=none_ms,
        none_ms_ci=none_ci, entries=dict(parent.entries), scale=scale, parent=parent_record(parent),
        calibration={"n": len(rows), "scale": scale, "parent_scale": parent.scale,
                     "rule": "least squares through the origin of the excess measured here on the parent's summed "
                             "excess", "rows": rows})
    if check:
        chosen = check_architectures(target, check, exclude=fit)
        direct = measurer.ratios(chosen, "validation architectures")
        vrows = [{"arch_id": k, "measured_ratio": direct[k]["ratio"], "measured_ratio_ci": direct[k]["ratio_ci"],
                  "predicted_ratio": table.predict(k).ratio, "untouched_ratio": parent.predict(k).ratio}
                 for k in chosen]
        measured_ratios = [r["measured_ratio"] for r in vrows]
        table.validation = {**accuracy_of([r["predicted_ratio"] for r in vrows], measured_ratios),
                            "untouched": accuracy_of([r["untouched_ratio"] for r in vrows], measured_ratios),
                            "on": "ratio to none, predicted vs measured directly here, interleaved", "rows": vrows}
    table.built = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": round(time.perf_counter() - start, 1), "target_ci": target_ci, "passes": 1,
                   "adapted": True}
    write_json(path, table.to_dict())
    table.path = path
    return table


def parent_record(parent: LatencyTable) -> dict[str, Any]:
    """What an adapted table keeps of its parent: where it came from (file, hash), the machine and
    conditions its entries were measured under, its scale, `none` and its own validation."""
    if parent.path is not None and parent.path.is_file():
        blob = parent.path.read_bytes()
    else:
        blob = json.dumps(parent.to_dict(), sort_keys=True).encode()
    own = {k: v for k, v in (parent.validation or {}).items()
           if k in ("n", "median_abs_error", "p95_abs_error", "max_abs_error", "spearman")} or None
    grandparent = parent.parent or {}
    return {"path": None if parent.path is None else str(parent.path), "sha256": hashlib.sha256(blob).hexdigest(),
            "signature": parent.signature, "conditions": parent.key.get("conditions"), "scale": parent.scale,
            "none_ms": parent.none_ms, "validation": own,
            "entries_measured_on": grandparent.get("entries_measured_on", parent.signature)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# What benchmarks/latency_transfer.py measured when only this condition changed (2-core AMD EPYC,
# AVX2; ResNet-20/16 at 32 px; docs/latency.md): the Spearman of the table adapted with 12
# measurements on 30 other architectures measured here, and of two measurements of those same
# architectures (what any table could reach). A refitted scale fixes magnitudes; it cannot reorder
# architectures whose blocks' relative costs change with the batch or the runtime.
ORDER_AFTER_ADAPTING = {"batch_size": (0.838, 0.911), "runtime": (0.483, 0.890)}


def order_warning(parent: LatencyConditions, here: LatencyConditions, build: str) -> str | None:
    """A line when the table was measured under a batch size or runtime other than this study's:
    adapting then keeps magnitudes but not the order of architectures (`build`: the command that
    would build a table here)."""
    changed = [f for f in ORDER_AFTER_ADAPTING if getattr(parent, f) != getattr(here, f)]
    if not changed:
        return None
    what = ", ".join(f"{f} {getattr(parent, f)} there, {getattr(here, f)} here" for f in changed)
    measured = "; ".join(f"a {f} change: Spearman {a:.2f} after adapting, {r:.2f} between two measurements of the "
                         "same architectures" for f, (a, r) in ORDER_AFTER_ADAPTING.items() if f in changed)
    return (f"  {what}: adapting fixes magnitudes, not the order of architectures (measured for {measured}; "
            f"docs/latency.md); to rank by latency under these conditions, build a table here: {build}")


def describe_check(check: TransferCheck, adapt: str, build: str) -> list[str]:
    """The check's lines: its errors beside the table's own, and what to do about them (`adapt`
    and `build`: the commands that would)."""
    r, m = check.ratio, check.ms
    change = check.none_ms_here / check.none_ms_table - 1
    lines = [f"  {check.n} random architectures measured here against the table's predictions:",
             f"    ratio to none: median |error| {100 * r['median_abs_error']:.1f} %, 95th percentile "
             f"{100 * r['p95_abs_error']:.1f} %, max {100 * r['max_abs_error']:.1f} %, Spearman {r['spearman']:.3f}",
             f"    milliseconds:  median |error| {100 * m['median_abs_error']:.1f} %, 95th percentile "
             f"{100 * m['p95_abs_error']:.1f} % (none: {check.none_ms_table:.3f} ms in the table, "
             f"{check.none_ms_here:.3f} ms here, {100 * change:+.1f} %)"]
    if check.table_p95 is None:
        lines.append("  the table states no error of its own (built with latency.check: 0) to compare with; to refit "
                     f"it here: {adapt}")
    elif check.needs_adapting():
        own = 100 * check.table_p95
        lines.append(f"  the median error here exceeds the table's own 95th percentile ({own:.1f} %): its ± does not "
                     f"hold on this machine; refit it here in seconds: {adapt}")
    else:
        lines.append(f"  within the table's own 95th percentile ({100 * check.table_p95:.1f} %): it holds here")
    if r["spearman"] < 0.95:
        lines.append(f"  ranks do not transfer either (Spearman {r['spearman']:.3f} < 0.95): one refitted scale cannot "
                     f"reorder architectures; a table built here can: {build}")
    return lines
