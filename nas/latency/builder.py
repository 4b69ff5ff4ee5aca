"""Building a latency table on the machine it is for, and measuring architectures directly.

`build_table` times every stage x block choice a search space allows (that stage changed, every
other stage `none`) against `none`, in groups, saving what it has after each group to
`<table>.partial` (resumed by the next build with the same key on the same machine), then
measures `check` random architectures of the space directly and records how well the table
predicts them. The table file appears, whole, only when all of that is done.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.blocks import BlockSpec
from nas.build import build_model
from nas.errors import ConfigError
from nas.latency.conditions import LatencyConditions, device_signature
from nas.latency.measure import TARGET, Measurement, measure_ratios, measure_reference
from nas.latency.runtime import Runner, make_runner
from nas.latency.table import (
    FORMAT,
    LatencyTable,
    accuracy_of,
    partial_path,
    stage_key,
    write_json,
)
from nas.space import SearchSpace

GROUP = 8  # candidates timed together against one reference (each round: reference + GROUP)


@dataclasses.dataclass(frozen=True)
class LatencyTarget:
    """What a table is for: the network around the searched stages, its input, and the conditions."""

    backbone: str
    backbone_args: Mapping[str, Any]
    space: SearchSpace | None
    image_size: tuple[int, int]
    in_chans: int
    num_classes: int
    conditions: LatencyConditions
    extra: tuple[BlockSpec, ...] = ()  # blocks to measure on every stage too: the study's uniform baselines

    def key(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "backbone_args": dict(self.backbone_args),
                "image_size": list(self.image_size), "in_chans": self.in_chans, "num_classes": self.num_classes,
                "conditions": self.conditions.to_dict()}

    def template(self) -> ArchConfig:
        return ArchConfig.uniform(self.backbone, BlockSpec("none"), self.backbone_args, self.num_classes,
                                  self.in_chans)

    def choices(self) -> dict[str, ArchConfig]:
        """Every stage x block choice the space allows, as the architecture with only that stage
        changed, by entry key (`s2:se-r16-avg`), in stage order."""
        template = self.template()
        per_stage = get_backbone(self.backbone).placements_per_stage(template.backbone_args)
        out: dict[str, ArchConfig] = {}

        def add(s: int, spec: BlockSpec) -> None:
            stages = list(template.stages)
            stages[s - 1] = spec
            out.setdefault(stage_key(s, spec.block_id), dataclasses.replace(template, stages=tuple(stages)))

        for s in range(1, len(template.stages) + 1):
            for spec in self.extra:
                if spec.kind != "none":
                    add(s, spec)
        if self.space is None:
            return out
        for s in self.space.searched_stages(len(template.stages)):
            for kind in self.space.kinds:
                if kind == "none":
                    continue
                for spec in sorted(self.space.blocks(kind), key=lambda b: b.block_id):
                    for placement in self.space.stage_placements(per_stage[s - 1]):
                        add(s, dataclasses.replace(spec, placement=placement))
        return dict(sorted(out.items(), key=lambda item: int(item[0][1:].split(":")[0])))

    def input_shape(self) -> tuple[int, ...]:
        return (self.conditions.batch_size, self.in_chans, *self.image_size)

    def runner(self, arch: ArchConfig, what: str | None = None) -> Runner:
        return make_runner(build_model(arch), self.input_shape(), self.conditions, what or arch.arch_id)

    def random_architectures(self, n: int, seed: int = 0) -> list[ArchConfig]:
        """`n` distinct architectures drawn uniformly per searched stage among its choices (none included)."""
        template = self.template()
        per_stage: dict[int, list[BlockSpec]] = {}
        for arch in dataclasses.replace(self, extra=()).choices().values():
            for s, spec in enumerate(arch.stages, 1):
                if spec.kind != "none":
                    per_stage.setdefault(s, []).append(spec)
        rng = random.Random(seed)
        seen: dict[str, ArchConfig] = {}
        for _ in range(50 * n):
            stages = list(template.stages)
            for s, specs in per_stage.items():
                options = [BlockSpec("none"), *specs]
                stages[s - 1] = options[rng.randrange(len(options))]
            arch = dataclasses.replace(template, stages=tuple(stages))
            seen.setdefault(arch.arch_id, arch)
            if len(seen) == n:
                break
        return list(seen.values())


Progress = Callable[[int, int, str], None]  # (done, total, what)


def _measure_groups(target: LatencyTarget, reference: Runner, archs: Mapping[str, ArchConfig], done: dict[str, Any],
                    save: Callable[[], None], progress: Progress | None, total: int, what: str,
                    target_ci: float, max_seconds: float) -> None:
    """Measure `archs` not yet in `done` in groups against `reference`, recording into `done` and
    calling `save` after each group."""
    todo = [k for k in archs if k not in done]
    for i in range(0, len(todo), GROUP):
        group = todo[i:i + GROUP]
        runners = {k: target.runner(archs[k]) for k in group}
        results = measure_ratios(reference, runners, target=target_ci, max_seconds=max_seconds, seed=len(done))
        for k, result in results.items():
            done[k] = _entry(result)
        save()
        if progress is not None:
            progress(total - len(todo) + i + len(group), total, what)


def _entry(m: Measurement) -> dict[str, Any]:
    return {"ratio": m.ratio, "ratio_ci": m.ratio_ci, "ms": m.ms, "ms_ci": m.ms_ci, "rounds": m.rounds,
            "converged": m.converged}


def build_table(target: LatencyTarget, path: Path, check: int = 30, target_ci: float = TARGET,
                max_seconds: float = 20.0, progress: Progress | None = None,
                log: Callable[[str], None] = print) -> LatencyTable:
    """Measure the table for `target`, save it to `path` and return it (see the module docstring)."""
    start = time.perf_counter()
    key = target.key()
    signature = device_signature(target.conditions, _gpu_name(target.conditions))
    partial = partial_path(path)
    state: dict[str, Any] = {"format": FORMAT, "key": key, "signature": signature, "entries": {}, "validation_rows": {},
                             "seconds": 0.0}
    if partial.exists():
        import json

        try:
            earlier = json.loads(partial.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None
        if isinstance(earlier, dict) and earlier.get("key") == key and earlier.get("signature", {}).get(
                "id") == signature["id"]:
            state.update(entries=earlier.get("entries", {}), validation_rows=earlier.get("validation_rows", {}),
                         seconds=earlier.get("seconds", 0.0))
            log(f"resuming {partial}: {len(state['entries'])} stage choices and "
                f"{len(state['validation_rows'])} validation architectures measured before")
        else:
            log(f"ignoring {partial}: it was measured for another study or on another machine")

    def save() -> None:
        state["seconds"] = state.get("seconds_before", state["seconds"]) + time.perf_counter() - start
        write_json(partial, state)

    state["seconds_before"] = state["seconds"]
    choices = target.choices()
    reference = target.runner(target.template(), "the none reference")
    _measure_groups(target, reference, choices, state["entries"], save, progress, len(choices), "stage choices",
                    target_ci, max_seconds)
    none_ms, none_ci = measure_reference(reference)
    table = LatencyTable(key=key, signature=signature, none_ms=none_ms, none_ms_ci=none_ci,
                         entries={k: state["entries"][k] for k in choices})
    validation = None
    if check:
        archs = {a.arch_id: a for a in target.random_architectures(check)}
        _measure_groups(target, reference, archs, state["validation_rows"], save, progress, len(archs),
                        "validation architectures", target_ci, max_seconds)
        rows = [{"arch_id": k, "measured_ratio": state["validation_rows"][k]["ratio"],
                 "measured_ratio_ci": state["validation_rows"][k]["ratio_ci"],
                 "predicted_ratio": table.predict(k).ratio} for k in archs]
        validation = {**accuracy_of([r["predicted_ratio"] for r in rows], [r["measured_ratio"] for r in rows]),
                      "on": "ratio to none, predicted vs measured directly, interleaved", "rows": rows}
    table.validation = validation
    unconverged = sum(not e["converged"] for e in table.entries.values())
    table.built = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": round(state["seconds_before"] + time.perf_counter() - start, 1),
                   "target_ci": target_ci, "unconverged": unconverged}
    write_json(path, table.to_dict())
    partial.unlink(missing_ok=True)
    table.path = path
    return table


def measure_architectures(target: LatencyTarget, archs: Sequence[ArchConfig], target_ci: float = TARGET,
                          max_seconds: float = 60.0) -> dict[str, Measurement]:
    """Each architecture timed interleaved with `none` (`nas latency`, `nas front --measure`)."""
    reference = target.runner(target.template(), "the none reference")
    out: dict[str, Measurement] = {}
    for i in range(0, len(archs), GROUP):
        group = {a.arch_id: target.runner(a) for a in archs[i:i + GROUP]}
        out.update(measure_ratios(reference, group, target=target_ci, max_seconds=max_seconds))
    return out


def measure_latency(archs: Sequence[ArchConfig], image_size: int | Sequence[int],
                    conditions: LatencyConditions | None = None, target: float = TARGET,
                    max_seconds: float = 60.0) -> dict[str, Measurement]:
    """Each architecture's latency and ratio to `none` (the same backbone without attention),
    timed interleaved under `conditions` (default: ONNX Runtime, batch 1, 1 thread, CPU), by
    `arch_id`. All must share one backbone, its arguments, classes and input channels."""
    if not archs:
        return {}
    first = archs[0]
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    conditions = conditions or LatencyConditions()
    check_conditions(conditions, "conditions")
    for arch in archs:
        if (arch.backbone, dict(arch.backbone_args), arch.num_classes, arch.in_chans) != (
                first.backbone, dict(first.backbone_args), first.num_classes, first.in_chans):
            raise ConfigError(f"{arch.arch_id}: another network than {first.arch_id}'s; allowed: architectures of "
                              "one backbone, its arguments, classes and input channels")
    target_ = LatencyTarget(first.backbone, dict(first.backbone_args), None, size, first.in_chans, first.num_classes,
                            conditions)
    return measure_architectures(target_, archs, target, max_seconds)


def _gpu_name(conditions: LatencyConditions) -> str | None:
    if conditions.device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def check_conditions(conditions: LatencyConditions, where: str = "latency") -> None:
    """Refuse conditions this machine cannot measure under (one line, before anything is built)."""
    import os

    cores = os.cpu_count() or 1
    if conditions.device == "cpu" and conditions.threads > cores:
        raise ConfigError(f"{where}.threads = {conditions.threads} is more than this machine's {cores} cores; "
                          f"allowed: 1..{cores}")
    if conditions.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{where}.device = 'cuda' but this machine has no CUDA device; allowed: cpu here")
        if conditions.runtime == "onnxruntime":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ConfigError(f"{where}.runtime = 'onnxruntime' on device cuda needs onnxruntime-gpu, which is "
                                  "not installed; allowed: runtime eager on cuda, or device cpu")
