"""What every benchmark shares, so that each script holds only its question:

- where results go (`RESULTS`, committed beside the code that produced them);
- the machine a figure was measured on (`describe`, `cpu_name`, `device_name` from `machine`);
- a resumable run cache (`RunCache`): one JSON file of finished runs keyed by everything that
  changes a result, saved after every run under a lock (several processes may fill one at once,
  none drops another's run), written whole or not at all, so a killed benchmark resumes;
- result writing (`write_json`: the same bytes as `json.dumps(value, indent=...) + "\\n"`,
  written whole or not at all; `finite`: NaN as null, as JSON has no NaN);
- plots (`new_figure`, `save_figure`: matplotlib without a display, the figure closed once saved);
- `hypervolume`: the 2-D area a front of (accuracy, cost) points dominates, every front's one score,
  and `bootstrap_hv`: how far a difference of two fronts' hypervolumes holds over seed noise;
- `search_only`: a study without the confirmation `nas search` ends with (a benchmark that
  measures the search itself, and trains its own long runs where it has them).

Importing this does not import torch or matplotlib (benchmarks/cli_startup.py times start-ups).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from machine import cpu_name, describe, device_name

from nas.files import atomic_write, exclusive_lock

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["RESULTS", "ROOT", "RunCache", "cpu_name", "describe", "device_name", "finite", "hypervolume", "new_figure",
           "read_json", "save_figure", "save_run", "search_only", "write_json"]


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value in `path`, or `default` when the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, value: Any, indent: int | None = 1, end: str = "\n") -> Path:
    """Write `json.dumps(value, indent=indent) + end` to `path` (folders made), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as handle:
        handle.write(json.dumps(value, indent=indent) + end)
    return path


def finite(value: Any) -> Any:
    """NaN and infinities (a statistic of fewer than two seeds) as null, in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


class RunCache:
    """Finished runs in one JSON file, `{key: entry}`, shared by benchmark processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> dict[str, Any]:
        return read_json(self.path, {})

    def get(self, key: str) -> Any:
        return self.all().get(key)

    def save(self, key: str, entry: Any) -> None:
        """Add one finished run: read, add and rewrite under a lock (no process drops another's
        run), written whole or not at all."""
        with exclusive_lock(self.path.with_name(f".{self.path.name}.lock")):
            runs = self.all()
            runs[key] = entry
            write_json(self.path, runs)


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Try to claim one piece of work for this process: True while an exclusive `flock` on the file
    `path` is ours, False at once when another process holds it. The kernel drops a dead holder's
    claim, so a killed worker's run is free again. (nas.files.exclusive_lock waits; a worker with
    other runs to train should not.)"""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def save_run(path: Path, key: str, entry: Any) -> None:
    """`RunCache(path).save(key, entry)`."""
    RunCache(path).save(key, entry)


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by (accuracy to maximise, cost to minimise) points inside the box from
    `reference` (worst accuracy, largest cost). Written out because Optuna's hypervolume is
    private API; in two dimensions it is a sort and a sum."""
    inside = sorted((cost, accuracy) for accuracy, cost in points if accuracy > reference[0] and cost < reference[1])
    volume, best = 0.0, reference[0]
    for i, (cost, accuracy) in enumerate(inside):
        best = max(best, accuracy)
        right = inside[i + 1][0] if i + 1 < len(inside) else reference[1]
        volume += (right - cost) * (best - reference[0])
    return volume


def bootstrap_hv(front: list[dict[str, Any]], hand: list[dict[str, Any]], reference: tuple[float, float],
                 n: int = 2000, seed_std: float | None = None) -> dict[str, float]:
    """The hypervolume difference (confirmed front - hand placements) over seed resamples, paired: an
    architecture in both (a hand placement the confirmation kept) is one set of runs, so each
    replicate resamples its seeds once for both sides (drawn apart, identical fronts would differ
    by +-0.003; see docs/results.md). A row with fewer seeds than its twin reads the same uniform
    draws scaled to its own count.

    With `seed_std` the replicates are parametric: each architecture's mean moves by a normal draw
    of std seed_std / sqrt(its seeds), one draw per architecture and replicate (paired the same way).
    Resampling 3 seeds is too narrow: confirm_rules.py measured the 95 % interval holding the true
    gain in only 81-85 % of simulated studies (the resampled mean has 2/3 of the variance of the
    mean, in 10 distinct values)."""
    rng = random.Random(0)
    seeds: dict[str, int] = {}
    for r in front + hand:
        seeds[r["arch_id"]] = max(seeds.get(r["arch_id"], 0), len(r["values"]))

    def points(rows: list[dict[str, Any]], draws: dict[str, list[float]]) -> list[tuple[float, float]]:
        def mean(values: list[float], uniform: list[float]) -> float:
            if seed_std is not None:
                return statistics.fmean(values) + uniform[0] * seed_std / math.sqrt(len(values))
            return statistics.fmean(values[int(u * len(values))] for u in uniform[:len(values)])

        return [(mean(r["values"], draws[r["arch_id"]]), r["ratio"]) for r in rows]

    diffs = []
    for _ in range(n):
        if seed_std is not None:
            draws = {arch_id: [rng.gauss(0.0, 1.0)] for arch_id in seeds}
        else:
            draws = {arch_id: [rng.random() for _ in range(k)] for arch_id, k in seeds.items()}
        diffs.append(hypervolume(points(front, draws), reference) - hypervolume(points(hand, draws), reference))
    diffs.sort()
    # summed in another order, identical fronts differ by rounding: that is no gain
    return {"low": diffs[int(0.025 * n)], "high": diffs[int(0.975 * n) - 1],
            "p_better": sum(d > 1e-12 for d in diffs) / n}


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """`plt.subplots(*args, **kwargs)` on matplotlib's file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write and close `fig`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def default_space(choose_stages: bool) -> dict[str, Any]:
    """search_spaces/default.yaml with `choose_stages` pinned: a benchmark whose figures came from
    one setting keeps drawing the same architectures whatever the file's default becomes."""
    import yaml

    document = yaml.safe_load((ROOT / "search_spaces" / "default.yaml").read_text())
    return {**document, "choose_stages": choose_stages}


def search_only(config: Any) -> Any:
    """The StudyConfig with `confirm.after_search` off: the search ends with its trials."""
    return dataclasses.replace(config, confirm=config.confirm.model_copy(update={"after_search": False}))
