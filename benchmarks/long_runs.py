"""Cached training results shared by the issue-8 evidence benchmarks (rung_fidelity.py,
equal_compute.py): the long-run truth and the proxy runs.

Long: attention_signal.py's setting (10 epochs, 4-pixel crops, TEST accuracy on the task's
held-out split), so the hand placements' runs there (3 seeds each) are reused as they are and
every other architecture is trained the same way. Proxy: an architecture trained exactly as a
study trains it (`nas.study.objective.train_architecture`), validation accuracy; `ProxyRuns.trainer`
is the `trainer=` hook of `nas.study.run_search`, so a search whose candidate was trained before
(by another search, another method or rung_fidelity.py) reuses that result: training is
deterministic per seed (common random numbers), so the result is the one it would get.

Both caches are JSON files under the results folder, keyed by everything that changes a result,
each entry naming the machine that trained it (CPU, kernels, layout: results from another machine
differ by float summation order, as another seed would, so a report says which machines it mixes),
saved after every run; several processes may fill one at once (each re-reads it before writing),
and a killed benchmark resumes. A study file that wants this truth must load exactly the task's
data: `check_study` says what differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path
from typing import Any

import torch
from attention_signal import BASELINES, EPOCHS, PAD, SUBSET, TASKS, Task, train_once
from harness import RunCache, describe, search_only

from nas import ArchConfig, BlockSpec, Dataset, ProxyConfig, load_dataset
from nas.study.objective import train_architecture
from nas.studyfile import StudyConfig, load_study_config
from nas.train import ProxyResult

TASK = TASKS["tin100"]


def check_study(config: StudyConfig, task: Task = TASK, subset: int | None = SUBSET,
                backbone: tuple[str, dict[str, Any]] | None = None) -> None:
    """Refuse a study whose data or backbone differ from the task's long runs (the truth would be
    of another problem). `backbone`: (name, arguments) of runs on the task's data with another
    backbone than its own (designer_front.DesignerRuns' MobileNetV3-Small)."""
    name, args = backbone or ("cifar_resnet", dict(task.backbone_args))
    want = {"name": task.dataset, "classes": task.classes, "image_size": task.image_size, "subset": subset,
            "val_fraction": 0.1, "seed": 0}
    defaults = {"seed": 0, "val_fraction": 0.1}
    got = {key: config.dataset.get(key, defaults.get(key)) for key in want}
    if got != want or config.backbone != name or dict(config.backbone_args) != args:
        raise SystemExit(f"{config.path}: dataset {got}, backbone {config.backbone} {dict(config.backbone_args)} "
                         f"differ from the long runs' task {task.name} ({want}, {name} {args})")


def add_study_arguments(parser: argparse.ArgumentParser, studies: Path) -> None:
    """--study and --data, as every benchmark on the long runs' task takes them."""
    parser.add_argument("--study", type=Path, default=studies / "tiny_imagenet.yaml",
                        help="a multi-fidelity study file on the long runs' task (default studies/tiny_imagenet.yaml)")
    parser.add_argument("--data", type=Path, default=Path("/work/data"),
                        help="the folder shared/data/stage-datasets.sh filled (tiny-imagenet-200/)")


def load_task_study(parser: argparse.ArgumentParser, path: Path) -> StudyConfig:
    """The study file at `path`, refused (one line, exit 2) unless it has rungs and the task's data."""
    config = search_only(load_study_config(path))
    if config.fidelity is None:
        parser.error(f"--study {path}: no `fidelity:` section; this benchmark measures a study's rungs")
    check_study(config)
    return config


class LongRuns:
    """Long-run test accuracy per (architecture, seed) on `task`, trained on demand, cached."""

    def __init__(self, data_root: Path | None, results: Path, threads: int | None, task: Task = TASK,
                 epochs: int = EPOCHS, subset: int | None = SUBSET) -> None:
        self.task, self.data_root, self.threads, self.epochs, self.subset = task, data_root, threads, epochs, subset
        self.path = results / "long_runs.json"
        self.signal_path = results / "signal_runs.json"
        self.prefix = task.key(subset, epochs)
        self._data: Dataset | None = None

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.task.dataset,
                                      **self.task.load_args(self.data_root or Path("."), self.subset, None))
        return self._data

    def _runs(self) -> dict[str, dict[str, Any]]:
        """This file's runs, plus attention_signal.py's runs of the hand placements under their arch_id."""
        runs = RunCache(self.path).all()
        if self.signal_path.exists():
            ids = {kind: self.baseline(kind).arch_id for kind in BASELINES}
            for key, entry in RunCache(self.signal_path).all().items():
                head, kind, seed = key.rsplit("|", 2)
                if head == self.prefix and kind in ids:
                    runs.setdefault(f"{self.prefix}|{ids[kind]}|{seed}", entry)
        return runs

    def baseline(self, kind: str) -> ArchConfig:
        """A hand placement as attention_signal.py builds it (the data are loaded only where the task
        does not say its classes)."""
        classes, chans = (self.task.classes, 3) if self.task.classes else (self.data.num_classes, self.data.in_chans)
        return ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), dict(self.task.backbone_args),
                                  classes, chans)

    def key(self, arch: ArchConfig, seed: int) -> str:
        return f"{self.prefix}|{arch.arch_id}|seed{seed}"

    def get(self, arch: ArchConfig, seed: int) -> dict[str, Any] | None:
        return self._runs().get(self.key(arch, seed))

    def train(self, arch: ArchConfig, seed: int) -> dict[str, Any]:
        """The run of `arch` at `seed`, trained now if no process has saved it yet."""
        found = self.get(arch, seed)
        if found is not None:
            return found
        config = ProxyConfig(epochs=self.epochs, pad=PAD, seed=seed, threads=self.threads)
        entry = {"task": self.task.name, "arch_id": arch.arch_id, "seed": seed,
                 **train_once(arch, self.data, config, "cpu")}
        RunCache(self.path).save(self.key(arch, seed), entry)
        return entry

    def runs_of(self, arch: ArchConfig | str) -> list[dict[str, Any]]:
        """Every seed's run of `arch` saved so far, in key order."""
        arch_id = arch if isinstance(arch, str) else arch.arch_id
        head = f"{self.prefix}|{arch_id}|seed"
        return [entry for key, entry in sorted(self._runs().items()) if key.startswith(head)]

    def truth(self, arch: ArchConfig | str) -> dict[str, Any] | None:
        """Mean test accuracy over the seeds trained so far, with their std and count."""
        values = [entry["test_accuracy"] for entry in self.runs_of(arch)]
        if not values:
            return None
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
                "n": len(values), "values": values}


class ProxyRuns:
    """Proxy results of (architecture, proxy settings, seed), trained as a study trains, cached."""

    def __init__(self, path: Path, prefix: str, threads: int | None) -> None:
        self.path, self.prefix, self.threads = path, prefix, threads
        self.trained = {"runs": 0, "seconds": 0.0}  # this process's own training, not cache hits

    def key(self, arch: ArchConfig, proxy: ProxyConfig) -> str:
        return f"{self.prefix}|{arch.arch_id}|{proxy.epochs}ep|bs{proxy.batch_size}|pad{proxy.pad}|seed{proxy.seed}"

    def get(self, arch: ArchConfig, proxy: ProxyConfig) -> dict[str, Any] | None:
        return RunCache(self.path).get(self.key(arch, proxy))

    def train(self, arch: ArchConfig, data: Dataset, proxy: ProxyConfig) -> dict[str, Any]:
        found = self.get(arch, proxy)
        if found is not None:
            return found
        result = train_architecture(arch, data, dataclasses.replace(proxy, threads=self.threads), torch.device("cpu"))
        entry = {"arch_id": arch.arch_id, "epochs": proxy.epochs, "seed": proxy.seed, "machine": describe("cpu"),
                 "result": result.to_dict()}
        RunCache(self.path).save(self.key(arch, proxy), entry)
        self.trained["runs"] += 1
        self.trained["seconds"] += result.seconds
        return entry

    def trainer(self, arch: ArchConfig, data: Dataset, proxy: ProxyConfig, device: torch.device) -> ProxyResult:
        """`run_search`'s trainer hook: the cached result, or train it now (on the CPU)."""
        return ProxyResult(**self.train(arch, data, proxy)["result"])
