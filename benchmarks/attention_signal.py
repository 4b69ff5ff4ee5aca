r"""Is there a task where attention matters? Long runs of the uniform baselines (issue 8, part 2).

(The issue calls it benchmarks/signal.py; that name shadows the standard library's `signal`
module for every script run from this folder, so it is attention_signal.py.)

The five hand placements — none, and SE / ECA / CBAM / GE on every stage at the papers' defaults
(`BlockSpec.paper_default`, as `nas search` queues them) — are trained with `nas.train.train_proxy`
at long fidelity (10 epochs, crops from 4-pixel padding, flips), several seeds each, on
CPU-affordable candidate tasks. Scored: TEST accuracy (`nas.train.evaluate` on the dataset's
held-out split, which the search never sees) and validation accuracy. The data (subset,
validation split) are drawn once with dataset seed 0; the run seed changes initialisation, data
order and augmentation, so the seed std is training noise on a fixed test set. Seeds are shared
across baselines (common random numbers), so a paired comparison is also reported.

Bar, per task, on test accuracy (the issue's): the best attention baseline beats `none` by at
least 2 seed std, and the best and worst baselines differ by at least 3 seed std, where the seed
std is pooled over the five baselines (sqrt of the mean per-baseline variance). Reported met or
not for every task, never tuned until it is.

Tasks (`--tasks`, 32 px, `cifar_resnet` depth 20 width 16: 41.3 MFLOPs for `none`, 42.2 for
CBAM, fvcore, one multiply-add = one flop; images from shared/data/stage-datasets.sh):
    tin100    Tiny-ImageNet-200, the first 100 classes of wnids.txt, downsampled 64 -> 32 px
              (ImageNet32-style), a 14,000-image class-balanced subset of train (12,600 train +
              1,400 validation), test = the official labelled val of those classes (5,000)
    cifar10   CIFAR-10 (JPEG q75 copy), the same subset size, test = the official test set (10,000)
    tin200    all 200 classes, otherwise as tin100 (test 10,000); not in the default run

Budget arithmetic (the issue allows about 3 h of 2-core CPU in total). Default run: 2 tasks x 5
baselines x 3 seeds = 30 runs of 10 epochs x 12,600 images = 126,000 training images each.
- Quiet machine, 2 threads: ResNet-20/16 at 32 px trains at about 460 images/s (the demo's
  ResNet-8/16 at 28 px: 2,000/s in results/trainer_throughput.json, scaled by FLOPs 41.3 / 9.5).
  A run: 126,000 / 460 = 274 s + ~10 s of evaluation (4,096 recalibration + 1,400 validation +
  5,000 or 10,000 test images, forward only) = 285 s; CBAM ~1.4x = 395 s. Total 2 x 3 x
  (4 x 285 + 395) = 9,210 s = 2.6 h.
- Measured here with `--estimate` on the shared 2-core AMD EPYC at load average 2.6-4.5 (three
  other engineers' test suites running): 52 images/s (none) and 32/s (cbam) with 2 threads, one
  epoch 242 s, a run ~2,480 s (cbam ~4,000 s): about 23 h in all, which does not fit. On that
  busy machine 1 thread ran 3x faster than 2 (165 against 55 images/s, a bare training loop),
  which still gives about 7 h. So: run it on a quiet machine, check the projection that every
  start prints (or `--estimate`, which trains nothing), and where it is over budget cut
  `--tasks`, `--subset` or `--epochs` (or try `--threads 1`) before starting.

    B=.venv/bin/python\ benchmarks/attention_signal.py
    $B --data /work/data --estimate     # time it (~2 min), train nothing
    $B --data /work/data                # tin100 + cifar10, 3 seeds: 2.6 h quiet
    $B --data /work/data --tasks tin100 --seeds 5 --threads 2
    $B --quick --out /tmp/signal        # generated data, ~30 s: checks the script

Resumable: every finished run is appended to benchmarks/results/signal_runs.json at once, keyed
by task settings, baseline and seed, and skipped on restart. Writes benchmarks/results/signal.json
and signal_<task>.png (per-baseline means with one-std error bars). `--out` writes elsewhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from harness import ROOT, RunCache, describe, finite, new_figure, save_figure, save_run, write_json

from nas import (
    ArchConfig,
    BlockSpec,
    ConfigError,
    Dataset,
    ProxyConfig,
    build_model,
    count_flops,
    evaluate,
    load_dataset,
    resolve_device,
    train_proxy,
)
from nas.data import Split

BASELINES = ("none", "se", "eca", "cbam", "ge")
EPOCHS = 10  # long fidelity: 10x the demo proxy; crops need ten epochs or more to help
PAD = 4  # crop padding, pixels per side
SUBSET = 14_000  # training pool per task (train + validation), class-balanced
VAL_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class Task:
    """One candidate task: a dataset (as `load_dataset` arguments) and a backbone."""

    name: str
    dataset: str
    folder: str | None  # under --data; None for the generated set
    classes: int | None
    backbone_args: tuple[tuple[str, int], ...] = (("depth", 20), ("width", 16))
    image_size: int = 32

    def load_args(self, data_root: Path, subset: int | None, cache: Path | None) -> dict[str, Any]:
        path = data_root / self.folder if self.folder is not None else None
        return {"path": path, "classes": self.classes, "image_size": self.image_size,
                "subset": subset, "val_fraction": VAL_FRACTION, "seed": 0, "root": cache}

    def key(self, subset: int | None, epochs: int) -> str:
        """Everything that changes a run's result besides baseline and seed: a resumed benchmark
        reuses a run only when all of it matches."""
        args = ",".join(f"{k}{v}" for k, v in self.backbone_args)
        return (f"{self.name}|{self.dataset}:{self.folder}|classes{self.classes}|{self.image_size}px|"
                f"subset{subset}|val{VAL_FRACTION}|cifar_resnet:{args}|{epochs}ep|pad{PAD}")


TASKS = {
    "tin100": Task("tin100", "tiny-imagenet", "tiny-imagenet-200", 100),
    "cifar10": Task("cifar10", "imagefolder", "cifar10", None),
    "tin200": Task("tin200", "tiny-imagenet", "tiny-imagenet-200", None),
}
# --quick: the generated set and a narrow ResNet-8, seconds per run: checks the script, proves nothing
QUICK = Task("quick", "synthetic", None, None, (("depth", 8), ("width", 4)), image_size=16)


def arch_for(task: Task, kind: str, data: Dataset) -> ArchConfig:
    return ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), dict(task.backbone_args),
                              data.num_classes, data.in_chans)


def train_once(arch: ArchConfig, data: Dataset, config: ProxyConfig, device: str) -> dict[str, Any]:
    """One long run: validation accuracy from the trainer, then test accuracy of the same network."""
    built: list[torch.nn.Module] = []

    def builder() -> torch.nn.Module:  # called by train_proxy after seeding: initialisation is the seed's
        built.append(build_model(arch))
        return built[0]

    result = train_proxy(builder, data, config, device, progress=False)
    test_accuracy, test_loss = evaluate(built[0], data.test, data, device)
    return {"val_accuracy": result.accuracy, "test_accuracy": test_accuracy, "test_loss": test_loss,
            "val_loss": result.loss, "train_loss": result.train_loss, "seconds": result.seconds,
            "images_per_second": result.images_per_second, "device": result.device,
            "machine": describe(device)}  # runs from other CPUs differ by float summation order


def time_task(task: Task, data: Dataset, seconds: float, threads: int | None, device: str) -> dict[str, float]:
    """Training images per second of `none` and of `cbam` (the slowest baseline), from a short
    run under `seconds` of budget, and evaluation images per second."""
    rates = {}
    for kind in ("none", "cbam"):
        config = ProxyConfig(epochs=1, pad=PAD, bn_recal=0, max_seconds=seconds, threads=threads)
        result = train_proxy(lambda k=kind: build_model(arch_for(task, k, data)), data, config, device,
                             progress=False)
        rates[kind] = result.images_per_second
    model = build_model(arch_for(task, "none", data)).eval()
    n = min(len(data.val), 2048)
    tick = time.perf_counter()
    evaluate(model, Split(data.val.images[:n], data.val.labels[:n]), data, device)
    rates["eval"] = n / (time.perf_counter() - tick)
    return rates


def projected_seconds(rates: dict[str, float], kind: str, data: Dataset, epochs: int) -> float:
    """Training at the measured rate plus evaluation: batch-norm recalibration (4,096 images), the
    validation and the test split, each one forward pass."""
    train = epochs * len(data.train) / rates["cbam" if kind == "cbam" else "none"]
    test = len(data.test) if data.test is not None else 0
    return train + (min(4096, len(data.train)) + len(data.val) + test) / rates["eval"]


def summarise(task: Task, key: str, runs: dict[str, dict], seeds: list[int]) -> dict[str, Any]:
    """Per-baseline mean ± std over seeds, the pooled seed std and the bar, on test and on validation."""
    from scipy.stats import ttest_rel

    per: dict[str, dict[str, Any]] = {}
    for kind in BASELINES:
        got = [runs[f"{key}|{kind}|seed{s}"] for s in seeds if f"{key}|{kind}|seed{s}" in runs]
        per[kind] = {"n": len(got), "seeds": [s for s in seeds if f"{key}|{kind}|seed{s}" in runs]}
        for metric in ("test_accuracy", "val_accuracy"):
            values = [r[metric] for r in got]
            per[kind][metric] = values
            per[kind][f"{metric}_mean"] = statistics.fmean(values) if values else math.nan
            per[kind][f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        per[kind]["seconds_mean"] = statistics.fmean(r["seconds"] for r in got) if got else math.nan
    complete = all(per[k]["n"] == len(seeds) for k in BASELINES) and len(seeds) >= 2
    out: dict[str, Any] = {"task": task.name, "key": key, "seeds": seeds, "complete": complete, "baselines": per}
    for metric in ("test_accuracy", "val_accuracy"):
        if not complete:
            out[metric] = {"bar": "incomplete: not every baseline has every seed"}
            continue
        pooled = math.sqrt(statistics.fmean(per[k][f"{metric}_std"] ** 2 for k in BASELINES))
        means = {k: per[k][f"{metric}_mean"] for k in BASELINES}
        best_attention = max((k for k in BASELINES if k != "none"), key=means.__getitem__)
        best, worst = max(means, key=means.__getitem__), min(means, key=means.__getitem__)
        gain, spread = means[best_attention] - means["none"], means[best] - means[worst]
        paired = ttest_rel(per[best_attention][metric], per["none"][metric]) if len(seeds) > 1 else None
        out[metric] = {
            "seed_std_pooled": pooled,
            "best_attention": best_attention, "gain_over_none": gain, "gain_in_seed_std": gain / pooled,
            "best": best, "worst": worst, "best_minus_worst": spread, "spread_in_seed_std": spread / pooled,
            "beats_none_by_2_std": gain >= 2 * pooled, "spread_3_std": spread >= 3 * pooled,
            "met": gain >= 2 * pooled and spread >= 3 * pooled,
            "paired_t_p_best_attention_vs_none": None if paired is None else float(paired.pvalue),
        }
    return out


def plot(summary: dict[str, Any], task: Task, path: Path) -> None:
    """Per-baseline mean test and validation accuracy, error bars one seed std."""
    per = summary["baselines"]
    x = list(range(len(BASELINES)))
    fig, ax = new_figure(figsize=(6.4, 4), dpi=110)
    for offset, metric, label in ((-0.12, "test_accuracy", "test"), (0.12, "val_accuracy", "validation")):
        ax.errorbar([i + offset for i in x], [per[k][f"{metric}_mean"] for k in BASELINES],
                    yerr=[0 if math.isnan(per[k][f"{metric}_std"]) else per[k][f"{metric}_std"] for k in BASELINES],
                    fmt="o", capsize=4, label=f"{label} (mean ± std over seeds)")
    test = summary["test_accuracy"]
    if "seed_std_pooled" in test:
        none = per["none"]["test_accuracy_mean"]
        ax.axhspan(none - 2 * test["seed_std_pooled"], none + 2 * test["seed_std_pooled"], color="grey", alpha=0.15,
                   label="none ± 2 pooled seed std (test)")
        verdict = "met" if test["met"] else "not met"
        ax.set_title(f"{task.name}: bar {verdict} (best attention {test['best_attention']} "
                     f"{test['gain_in_seed_std']:+.1f} std vs none)", fontsize=9)
    else:
        ax.set_title(f"{task.name}: incomplete", fontsize=9)
    ax.set_xticks(x, [f"{k}\n(n={per[k]['n']})" for k in BASELINES])
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"),
                        help="the folder shared/data/stage-datasets.sh filled (tiny-imagenet-200/, cifar10/)")
    parser.add_argument("--tasks", nargs="+", default=["tin100", "cifar10"], choices=list(TASKS),
                        help="tasks, in the order they are trained (default: tin100 cifar10)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per baseline (default 3)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs per run (default {EPOCHS})")
    parser.add_argument("--subset", type=int, default=SUBSET,
                        help=f"training pool per task incl. 10%% validation (default {SUBSET}; 0 = all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, all cores; 1 can be faster on a busy machine)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: the issue's budget is CPU time), cuda, cuda:N or auto")
    parser.add_argument("--estimate", action="store_true", help="time every task, print the projection, train nothing")
    parser.add_argument("--timing-seconds", type=float, default=20.0,
                        help="training seconds per timed baseline (none and cbam) per task (default 20)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="decoded-image cache folder (default: nas's, $NAS_DATA or ~/.cache/nas/datasets)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where signal_runs.json, signal.json and signal_<task>.png go")
    parser.add_argument("--quick", action="store_true",
                        help="generated data, 1 epoch, 2 seeds, files named signal_quick*: checks the script in ~30 s")
    args = parser.parse_args()
    prefix = "signal_quick" if args.quick else "signal"
    if args.quick:
        args.tasks, args.epochs, args.seeds, args.subset, args.timing_seconds = ["quick"], 1, 2, 0, 1.0
    for name in ("seeds", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} = {getattr(args, name)} is invalid; allowed: an integer >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads = {args.threads} is invalid; allowed: an integer >= 1")
        torch.set_num_threads(args.threads)  # evaluation and timing; training gets it via ProxyConfig
    try:
        args.device = str(resolve_device(args.device))
    except ConfigError as error:
        parser.error(f"--{error}")
    subset = args.subset or None
    seeds = list(range(args.seeds))
    tasks = [QUICK] if args.quick else [TASKS[name] for name in dict.fromkeys(args.tasks)]
    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / f"{prefix}_runs.json"
    runs: dict[str, dict] = RunCache(runs_path).all()
    print(f"{describe(args.device)}; load average {os.getloadavg()[0]:.1f}; {args.epochs} epochs, pad {PAD}, "
          f"seeds {seeds}, subset {subset or 'all'}")

    datasets: dict[str, Dataset] = {}
    for task in tasks:
        tick = time.perf_counter()
        try:
            datasets[task.name] = load_dataset(task.dataset, **task.load_args(args.data, subset, args.cache))
        except Exception as error:  # missing data: one line saying how to get it
            raise SystemExit(f"attention_signal.py: {task.name}: {error} (shared/data/stage-datasets.sh "
                             f"{args.data} MIRRORS builds it)") from None
        data = datasets[task.name]
        if data.test is None:
            raise SystemExit(f"attention_signal.py: {task.name}: {task.dataset} has no test split")
        mflops = count_flops(build_model(arch_for(task, "none", data)), (1, data.in_chans, *data.image_size)) / 1e6
        print(f"{task.name}: {len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test, "
              f"{data.num_classes} classes, {data.image_size[0]} px, cifar_resnet {dict(task.backbone_args)} "
              f"({mflops:.1f} MFLOPs, fvcore: one multiply-add = one flop); loaded in "
              f"{time.perf_counter() - tick:.1f} s")

    todo = [(task, kind, seed) for seed in seeds for task in tasks for kind in BASELINES
            if f"{task.key(subset, args.epochs)}|{kind}|seed{seed}" not in runs]
    print(f"{len(todo)} of {len(seeds) * len(tasks) * len(BASELINES)} runs to do "
          f"({len(seeds) * len(tasks) * len(BASELINES) - len(todo)} found in {runs_path})")
    if todo or args.estimate:
        total = 0.0
        for task in tasks:
            data = datasets[task.name]
            rates = time_task(task, data, args.timing_seconds, args.threads, args.device)
            per_kind = {k: projected_seconds(rates, k, data, args.epochs) for k in BASELINES}
            left = sum(per_kind[k] for t, k, _ in todo if t is task)
            total += left
            print(f"{task.name}: timed {rates['none']:.0f} img/s (none), {rates['cbam']:.0f} img/s (cbam), "
                  f"eval {rates['eval']:.0f} img/s -> one epoch {len(data.train) / rates['none']:.0f} s; a run "
                  f"{per_kind['none']:.0f} s (cbam {per_kind['cbam']:.0f} s); {left / 60:.0f} min left for this task")
        print(f"projected total: {total / 3600:.2f} h for {len(todo)} runs (at the load measured now)", flush=True)
    if args.estimate:
        return

    for done, (task, kind, seed) in enumerate(todo, 1):
        data = datasets[task.name]
        key = f"{task.key(subset, args.epochs)}|{kind}|seed{seed}"
        config = ProxyConfig(epochs=args.epochs, pad=PAD, seed=seed, threads=args.threads)
        entry = {"task": task.name, "baseline": kind, "seed": seed,
                 **train_once(arch_for(task, kind, data), data, config, args.device)}
        save_run(runs_path, key, entry)  # saved at once: a killed benchmark resumes here
        print(f"[{done}/{len(todo)}] {task.name:8} {kind:5} seed {seed}: test {entry['test_accuracy']:.4f}  "
              f"val {entry['val_accuracy']:.4f}  {entry['seconds']:6.0f} s", flush=True)

    report: dict[str, Any] = {
        "benchmark": "signal", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe(args.device), "torch": torch.__version__, "epochs": args.epochs, "pad": PAD,
        "subset": subset, "val_fraction": VAL_FRACTION, "seeds": seeds,
        "bar": "best attention baseline - none >= 2 pooled seed std, and best - worst >= 3 pooled seed std "
               "(test accuracy; pooled std = sqrt(mean of per-baseline variances over seeds))",
        "tasks": {},
    }
    print(f"\n{'task':8} {'baseline':8} {'test mean ± std':>17} {'val mean ± std':>17}  n")
    for task in tasks:
        summary = summarise(task, task.key(subset, args.epochs), runs, seeds)
        report["tasks"][task.name] = summary
        for kind in BASELINES:
            row = summary["baselines"][kind]
            print(f"{task.name:8} {kind:8} {row['test_accuracy_mean']:.4f} ± {row['test_accuracy_std']:.4f}  "
                  f"{row['val_accuracy_mean']:.4f} ± {row['val_accuracy_std']:.4f}  {row['n']}")
        test = summary["test_accuracy"]
        if "seed_std_pooled" in test:
            print(f"{task.name}: pooled seed std {test['seed_std_pooled']:.4f}; best attention "
                  f"{test['best_attention']} vs none {test['gain_over_none']:+.4f} "
                  f"({test['gain_in_seed_std']:+.1f} std, need >= 2; paired t "
                  f"p = {test['paired_t_p_best_attention_vs_none']:.3f}); best {test['best']} - worst "
                  f"{test['worst']} {test['best_minus_worst']:.4f} ({test['spread_in_seed_std']:.1f} std, need >= 3)"
                  f": bar {'MET' if test['met'] else 'NOT met'}")
        else:
            print(f"{task.name}: {test['bar']}")
        plot(summary, task, args.out / f"{prefix}_{task.name}.png")
    write_json(args.out / f"{prefix}.json", finite(report))
    print(f"written: {args.out / f'{prefix}.json'}, {', '.join(f'{prefix}_{t.name}.png' for t in tasks)}")


if __name__ == "__main__":
    main()
