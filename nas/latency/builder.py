"""Building a latency table on the machine it is for, and measuring architectures directly.

`build_table` times every stage x block choice a search space allows (that stage changed, every
other stage `none`) against `none`, in groups, saving what it has after each group to
`<table>.partial` (resumed by the next build with the same key on the same machine); then
measures `calibrate` random architectures with 1..n attention stages directly and fits the
table's scale on them (`nas.latency.table`); then measures `check` other random architectures of
the space and records how well the table predicts them. The table file appears, whole, only
when all of that is done.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.blocks import BlockSpec
from nas.blocks.registry import PLACELESS
from nas.build import build_model
from nas.errors import ConfigError, MachineBusy
from nas.latency.conditions import LatencyConditions, device_signature
from nas.latency.measure import TARGET, Measurement, mean_ci, measure_ratios, measure_reference
from nas.latency.runtime import Runner, make_runner
from nas.latency.table import (
    FORMAT,
    LatencyTable,
    accuracy_of,
    fit_scale,
    partial_path,
    stage_key,
    write_json,
)
from nas.space import SearchSpace

GROUP = 8  # candidates timed together against one reference (each round: reference + GROUP)
PARTS = ("entries", "calibration_rows", "validation_rows")  # what a build measures, in its order
CALIBRATION_SEED, CHECK_SEED = 1, 0  # random_architectures' seeds: spread ones to fit the scale on, uniform to check


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
        backbone = get_backbone(self.backbone)
        per_stage = backbone.placements_per_stage(template.backbone_args)
        owned = backbone.own_counts(template.backbone_args)
        out: dict[str, ArchConfig] = {}

        def add(s: int, spec: BlockSpec) -> None:
            stages = list(template.stages)
            stages[s - 1] = spec
            arch = dataclasses.replace(template, stages=tuple(stages))
            if arch.stages[s - 1].kind != "none":  # `own` where the stage has none of its own is `none`
                out.setdefault(stage_key(s, spec.block_id), arch)

        for s in range(1, len(template.stages) + 1):
            for spec in self.extra:
                if spec.kind != "none":
                    add(s, spec)
        if self.space is None:
            return out
        for s in self.space.searched_stages(len(template.stages)):
            for kind in self.space.stage_kinds(bool(owned[s - 1])):
                if kind in PLACELESS:
                    if kind == "own":
                        add(s, BlockSpec(kind))
                    continue
                for spec in sorted(self.space.blocks(kind), key=lambda b: b.block_id):
                    for placement in self.space.stage_placements(per_stage[s - 1]):
                        add(s, dataclasses.replace(spec, placement=placement))
        return dict(sorted(out.items(), key=lambda item: int(item[0][1:].split(":")[0])))

    def input_shape(self) -> tuple[int, ...]:
        return (self.conditions.batch_size, self.in_chans, *self.image_size)

    def runner(self, arch: ArchConfig, what: str | None = None) -> Runner:
        return make_runner(build_model(arch), self.input_shape(), self.conditions, what or arch.arch_id)

    def random_architectures(self, n: int, seed: int = 0, spread: bool = False) -> list[ArchConfig]:
        """`n` distinct architectures of the space: each searched stage drawn uniformly among its
        choices (none included), or with `spread`, first a number of attention stages k (cycling
        through 1..n) and then k stages, each a uniform choice among its blocks."""
        template = self.template()
        per_stage: dict[int, list[BlockSpec]] = {}
        for arch in dataclasses.replace(self, extra=()).choices().values():
            for s, spec in enumerate(arch.stages, 1):
                if spec.kind != "none":
                    per_stage.setdefault(s, []).append(spec)
        rng = random.Random(seed)
        seen: dict[str, ArchConfig] = {}
        for i in range(50 * n):
            stages = list(template.stages)
            if spread:
                chosen = rng.sample(sorted(per_stage), i % len(per_stage) + 1) if per_stage else []
                for s in chosen:
                    stages[s - 1] = rng.choice(per_stage[s])
            else:
                for s, specs in per_stage.items():
                    options = [BlockSpec("none"), *specs]
                    stages[s - 1] = options[rng.randrange(len(options))]
            arch = dataclasses.replace(template, stages=tuple(stages))
            seen.setdefault(arch.arch_id, arch)
            if len(seen) == n:
                break
        return list(seen.values())


Progress = Callable[[int, int, str], None]  # (done, total, what)


def _measure_groups(target: LatencyTarget, reference: Runner, archs: Mapping[str, ArchConfig],
                    passes: list[dict[str, Any]], save: Callable[[], None], progress: Progress | None, what: str,
                    target_ci: float, max_seconds: float, kept: bool = True) -> dict[str, dict[str, Any]]:
    """Measure `archs` against `reference` once per pass (`len(passes)`), each pass in its own
    order and groups, so an architecture's passes are minutes apart among other neighbours: a
    ratio drifts between runs by more than one run's interval says (issue 27's recheck), and the
    passes' spread measures that. What a pass has measured to `target_ci` is recorded in its dict
    and `save`d after each group. Those still short of the interval are measured once more, for
    twice as long; if any is still short, the machine is too busy and `MachineBusy` says so (what
    did converge stays saved for the next build, where `kept`). Returns the passes combined (`_combine`)."""
    total = len(passes) * len(archs)
    for number, done in enumerate(passes):
        order = sorted(archs)
        random.Random(number).shuffle(order)
        for attempt, seconds in enumerate((max_seconds, 2 * max_seconds)):
            todo = [k for k in order if not done.get(k, {}).get("converged")]
            for i in range(0, len(todo), GROUP):
                group = todo[i:i + GROUP]
                runners = {k: target.runner(archs[k]) for k in group}
                results = measure_ratios(reference, runners, target=target_ci, max_seconds=seconds, seed=len(done))
                for k, result in results.items():
                    done[k] = _entry(result)
                save()
                if progress is not None and attempt == 0:
                    progress(number * len(archs) + len(archs) - len(todo) + i + len(group), total, what)
        short = [k for k in archs if not done[k]["converged"]]
        if short:
            raise MachineBusy(
                f"{len(short)} of {len(archs)} {what} (e.g. {short[0]}) did not reach a ±{100 * target_ci:g} % "
                f"interval in {2 * max_seconds:g} s: this machine is too loaded for latencies to be trusted; nothing "
                f"was written{' but the measurements kept for the next build' if kept else ''}: run it again on an "
                "idle machine (or raise latency.max_seconds)")
    return {k: _combine([done[k] for done in passes]) for k in archs}


def measure_once(target: LatencyTarget, reference: Runner, archs: Mapping[str, ArchConfig],
                 progress: Progress | None = None, what: str = "architectures", target_ci: float = TARGET,
                 max_seconds: float = 20.0) -> dict[str, dict[str, Any]]:
    """`archs` measured directly against `reference`, one pass in groups, as a build measures its
    calibration architectures, but nothing saved on the way: for work of seconds (adapting or
    checking a table) that a killed run simply repeats. A machine too busy for the interval raises
    `MachineBusy`, before anything is written."""
    return _measure_groups(target, reference, archs, [{}], lambda: None, progress, what, target_ci, max_seconds,
                           kept=False)


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One architecture's passes as one entry: the mean ratio; its 95 % half-width the larger of the
    runs' own intervals combined and the spread between the runs (t interval of their mean)."""
    ratios = [r["ratio"] for r in runs]
    ratio, between = mean_ci(ratios)
    within = math.sqrt(sum(r["ratio_ci"] ** 2 for r in runs)) / len(runs)
    ms, _ = mean_ci([r["ms"] for r in runs])
    ms_within = math.sqrt(sum(r["ms_ci"] ** 2 for r in runs)) / len(runs)
    spread = between if len(runs) > 2 else abs(ratios[0] - ratios[-1]) if len(runs) == 2 else 0.0
    return {"ratio": ratio, "ratio_ci": max(within, spread), "ms": ms,
            "ms_ci": max(ms_within, spread * ms / ratio), "passes": ratios,
            "rounds": sum(r["rounds"] for r in runs), "converged": all(r["converged"] for r in runs)}


def _entry(m: Measurement) -> dict[str, Any]:
    return {"ratio": m.ratio, "ratio_ci": m.ratio_ci, "ms": m.ms, "ms_ci": m.ms_ci, "rounds": m.rounds,
            "converged": m.converged}


def build_table(target: LatencyTarget, path: Path, check: int = 30, target_ci: float = TARGET,
                max_seconds: float = 20.0, progress: Progress | None = None,
                log: Callable[[str], None] = print, calibrate: int | None = None, passes: int = 2) -> LatencyTable:
    """Measure the table for `target`, save it to `path` and return it (see the module docstring)."""
    start = time.perf_counter()
    key = target.key()
    signature = device_signature(target.conditions, _gpu_name(target.conditions))
    partial = partial_path(path)
    state: dict[str, Any] = {"format": FORMAT, "key": key, "signature": signature, "passes": passes,
                             **{part: [{} for _ in range(passes)] for part in PARTS}, "seconds": 0.0}
    if partial.exists():
        import json

        try:
            earlier = json.loads(partial.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None
        if (isinstance(earlier, dict) and earlier.get("key") == key and earlier.get("passes") == passes
                and earlier.get("signature", {}).get("id") == signature["id"]):
            state.update({part: earlier[part] for part in PARTS}, seconds=earlier.get("seconds", 0.0))
            counts = ", ".join(f"{sum(map(len, state[part]))} {part.replace('_', ' ')}" for part in PARTS)
            log(f"resuming {partial}: measured before (over {passes} passes): {counts}")
        else:
            log(f"ignoring {partial}: it was measured for another study or on another machine")

    def save() -> None:
        state["seconds"] = state.get("seconds_before", state["seconds"]) + time.perf_counter() - start
        write_json(partial, state)

    state["seconds_before"] = state["seconds"]
    try:
        return _build(target, path, state, save, check, calibrate, target_ci, max_seconds, progress, start)
    except KeyboardInterrupt:
        log(f"latency table interrupted: {sum(map(len, state['entries']))} stage-choice measurements so far are "
            f"kept in {partial}")
        raise


def _build(target: LatencyTarget, path: Path, state: dict[str, Any], save: Callable[[], None], check: int,
           calibrate: int | None, target_ci: float, max_seconds: float, progress: Progress | None,
           start: float) -> LatencyTable:
    key, signature, partial = state["key"], state["signature"], partial_path(path)
    choices = target.choices()
    reference = target.runner(target.template(), "the none reference")
    entries = _measure_groups(target, reference, choices, state["entries"], save, progress, "stage choices",
                              target_ci, max_seconds)
    none_ms, none_ci = measure_reference(reference)
    table = LatencyTable(key=key, signature=signature, none_ms=none_ms, none_ms_ci=none_ci, entries=entries)
    calibrate = check if calibrate is None else calibrate
    if calibrate:
        archs = {a.arch_id: a for a in target.random_architectures(calibrate, seed=CALIBRATION_SEED, spread=True)}
        measured = _measure_groups(target, reference, archs, state["calibration_rows"], save, progress,
                                   "calibration architectures", target_ci, max_seconds)
        rows = [{"arch_id": k, "attention_stages": sum(not p.endswith(":none") for p in k.split("|")),
                 "measured_ratio": measured[k]["ratio"], "summed_excess": table.excess(k)} for k in archs]
        table.scale = fit_scale([r["summed_excess"] for r in rows], [r["measured_ratio"] - 1 for r in rows])
        table.calibration = {"n": len(rows), "scale": table.scale, "rule": "least squares through the origin of "
                             "measured excess on summed excess", "rows": rows}
    validation = None
    if check:
        archs = {a.arch_id: a for a in target.random_architectures(check, seed=CHECK_SEED)}
        direct = _measure_groups(target, reference, archs, state["validation_rows"], save, progress,
                                 "validation architectures", target_ci, max_seconds)
        rows = [{"arch_id": k, "measured_ratio": direct[k]["ratio"], "measured_ratio_ci": direct[k]["ratio_ci"],
                 "predicted_ratio": table.predict(k).ratio, "additive_ratio": 1 + table.excess(k)} for k in archs]
        measured = [r["measured_ratio"] for r in rows]
        validation = {**accuracy_of([r["predicted_ratio"] for r in rows], measured),
                      "additive": accuracy_of([r["additive_ratio"] for r in rows], measured),
                      "on": "ratio to none, predicted vs measured directly, interleaved", "rows": rows}
    table.validation = validation
    table.built = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": round(state["seconds_before"] + time.perf_counter() - start, 1),
                   "target_ci": target_ci, "passes": len(state["entries"])}
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
