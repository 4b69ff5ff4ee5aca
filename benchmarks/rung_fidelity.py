r"""Does a study's every rung rank architectures like long training? (issue 8, part 5)

proxy_fidelity.py asks this of the demo's proxies on Fashion-MNIST; this script asks it of a
multi-fidelity study file's rungs, on the task where attention matters (attention_signal.py's
tin100: Tiny-ImageNet, 100 classes, 32 px, ResNet-20/16), against its ten-epoch runs.

Architectures: the study's five hand placements and `--random` (default 7) distinct samples of
its search space (Optuna's RandomSampler, seed 0). Each is trained
- long: 10 epochs, 4-pixel crops (long_runs.py; the hand placements' 3 seeds come from
  attention_signal.py), at `--long-seeds` seeds (default 1); the truth is the mean TEST accuracy
  over the seeds trained;
- at every rung exactly as the study trains it (`nas.study.objective.train_architecture` with the
  rung's proxy and seeds, e.g. 1 epoch, 2 epochs, 4 epochs x seeds 0 and 1): validation accuracy.
Reported per rung: Kendall's tau (with its p-value) and Spearman's rho between the rung's
accuracy (the mean over its seeds, as the study reports it; also seed 0 alone) and the truth,
plus the rung's seed noise (pooled std between the seeds where a rung has two). Bar (the issue's):
tau >= 0.6 with p < 0.01 at the rung the front is read from.

    B=.venv/bin/python\ benchmarks/rung_fidelity.py
    $B --data /work/data                              # everything, in order (~4 h on one AVX2 core)
    $B --data /work/data --part long &                # or two processes, one per core: the long runs
    $B --data /work/data --part proxy --reverse       #   ... and the rungs, from the other end
    $B --data /work/data --part report                # tables, JSON, PNG from what is there

Every run is saved at once (results/long_runs.json, results/proxy_runs.json, shared with
equal_compute.py), so a killed benchmark resumes; processes share the files safely (each
re-reads before it writes). Writes results/rung_fidelity.json and rung_fidelity.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import torch
from harness import RESULTS, ROOT, describe, new_figure, save_figure, write_json
from long_runs import LongRuns, ProxyRuns, add_study_arguments, load_task_study
from scipy.stats import kendalltau, spearmanr

from nas import ArchConfig, ProxyConfig
from nas.study.rungs import rung_config
from nas.studyfile import StudyConfig

BAR_TAU, BAR_P = 0.6, 0.01


def architectures(config: StudyConfig, long: LongRuns, n_random: int) -> list[ArchConfig]:
    """The study's hand placements (as the long runs build them), then distinct random samples."""
    archs = [long.baseline(kind) for kind, _ in config.baselines]
    template = archs[0]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    while len(archs) < len(config.baselines) + n_random:
        trial = sampler_study.ask()
        arch = config.space.sample(trial, template)
        sampler_study.tell(trial, 0.0)
        if arch not in archs:
            archs.append(arch)
    return archs


class RungRuns:
    """A study's rungs as `ProxyRuns` sees them: (architecture, rung, seed) -> its cached run."""

    def __init__(self, config: StudyConfig, long: LongRuns, proxy_runs: ProxyRuns) -> None:
        self.config, self.long, self.proxy_runs = config, long, proxy_runs

    def proxy(self, rung: int, seed: int) -> ProxyConfig:
        return dataclasses.replace(rung_config(self.config, rung).proxy, seed=seed)

    def get(self, arch: ArchConfig, rung: int, seed: int) -> dict[str, Any] | None:
        found = self.proxy_runs.get(arch, self.proxy(rung, seed))
        return None if found is None else found["result"]

    def train(self, arch: ArchConfig, rung: int, seed: int) -> dict[str, Any]:
        return self.proxy_runs.train(arch, self.long.data, self.proxy(rung, seed))["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser, ROOT / "studies")
    parser.add_argument("--random", type=int, default=7, help="random architectures besides the hand placements")
    parser.add_argument("--long-seeds", type=int, default=1, help="long-run seeds per architecture (default 1)")
    parser.add_argument("--part", choices=["all", "long", "proxy", "report"], default="all",
                        help="long runs only, rung runs only, the report only, or all in order (default)")
    parser.add_argument("--reverse", action="store_true",
                        help="work from the last architecture to the first (a second process meets the first)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_task_study(parser, args.study)
    args.out.mkdir(parents=True, exist_ok=True)
    long = LongRuns(args.data, args.out, args.threads)
    rungs = RungRuns(config, long, ProxyRuns(args.out / "proxy_runs.json", long.prefix, args.threads))
    archs = architectures(config, long, args.random)
    fidelity = config.fidelity
    order = archs[::-1] if args.reverse else archs
    print(f"{describe('cpu')}; load average {os.getloadavg()[0]:.1f}; {len(archs)} architectures, "
          f"{fidelity.top + 1} rungs ({', '.join(fidelity.describe(k) for k in range(fidelity.top + 1))})", flush=True)

    if args.part in ("all", "long"):
        for arch in order:
            for seed in range(args.long_seeds):
                if long.get(arch, seed) is None:
                    entry = long.train(arch, seed)
                    print(f"long seed {seed}: test {entry['test_accuracy']:.4f}  val {entry['val_accuracy']:.4f}  "
                          f"{entry['seconds']:6.0f} s  {arch.arch_id}", flush=True)
    if args.part in ("all", "proxy"):
        for arch in order:
            for rung in range(fidelity.top + 1):
                for seed in fidelity.seeds_at(rung, config.proxy.seed):
                    if rungs.get(arch, rung, seed) is None:
                        entry = rungs.train(arch, rung, seed)
                        print(f"rung {rung} ({fidelity.epochs[rung]} ep) seed {seed}: val {entry['accuracy']:.4f}  "
                              f"{entry['seconds']:5.0f} s  {arch.arch_id}", flush=True)
    if args.part in ("all", "report"):
        report = build_report(config, archs, long, rungs)
        write_json(args.out / "rung_fidelity.json", report)
        print_report(report)
        plot(report, args.out / "rung_fidelity.png")


def build_report(config: StudyConfig, archs: list[ArchConfig], long: LongRuns, rungs: RungRuns) -> dict[str, Any]:
    """tau/p/rho per rung over the architectures that have both a long run and that rung's runs."""
    fidelity = config.fidelity
    assert fidelity is not None
    truth = {a.arch_id: long.truth(a) for a in archs}
    rows = []
    for rung in range(fidelity.top + 1):
        seeds = fidelity.seeds_at(rung, config.proxy.seed)
        per_arch = {}
        for arch in archs:
            got = [rungs.get(arch, rung, s) for s in seeds]
            if truth[arch.arch_id] is not None and all(got):
                per_arch[arch.arch_id] = [g["accuracy"] for g in got]  # type: ignore[index]
        ids = list(per_arch)
        row: dict[str, Any] = {"rung": rung, "epochs": fidelity.epochs[rung], "seeds": seeds, "n_archs": len(ids),
                               "accuracies": per_arch}
        if len(ids) >= 3:
            target = [truth[i]["mean"] for i in ids]  # type: ignore[index]
            for name, values in (("mean", [statistics.fmean(per_arch[i]) for i in ids]),
                                 ("seed0", [per_arch[i][0] for i in ids])):
                if name == "seed0" and len(seeds) == 1:
                    continue
                tau = kendalltau(values, target)
                row[name] = {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
                             "spearman_rho": float(spearmanr(values, target).statistic)}
            if len(seeds) > 1:  # pooled seed std: var of a seed pair's difference / 2, averaged
                row["seed_std"] = math.sqrt(statistics.fmean((statistics.variance(per_arch[i])) for i in ids))
            row["seconds_per_candidate"] = statistics.fmean(
                sum(rungs.get(a, rung, s)["seconds"] for s in seeds) for a in archs if a.arch_id in per_arch)  # type: ignore[index]
        rows.append(row)
    top = rows[-1].get("mean", {})
    long_stds = [t["std"] for t in truth.values() if t is not None and t["std"] is not None]
    return {
        "benchmark": "rung_fidelity", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe("cpu"), "torch": torch.__version__, "study": str(config.path),
        "task": long.task.name,
        "long": f"{long.epochs} epochs, 4-pixel crops, test accuracy (mean over the seeds trained)",
        "architectures": [a.arch_id for a in archs],
        "truth": truth,
        "truth_seed_std_pooled": math.sqrt(statistics.fmean(s**2 for s in long_stds)) if long_stds else None,
        "rungs": rows,
        "bar": f"top rung: Kendall tau >= {BAR_TAU} with p < {BAR_P}",
        "met": bool(top) and top["kendall_tau"] >= BAR_TAU and top["kendall_p"] < BAR_P
               and rows[-1]["n_archs"] >= 12,
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['task']}: truth = {report['long']}; pooled seed std of the truth "
          f"{report['truth_seed_std_pooled'] or float('nan'):.4f}")
    for arch_id, t in report["truth"].items():
        if t is not None:
            print(f"  {t['mean']:.4f} (n={t['n']})  {arch_id}")
    print(f"{'rung':>4} {'epochs':>6} {'seeds':>6} {'archs':>5} {'tau':>6} {'p':>7} {'rho':>6} "
          f"{'tau s0':>6} {'seed std':>8} {'s/cand':>6}")
    for row in report["rungs"]:
        m, s0 = row.get("mean"), row.get("seed0")
        print(f"{row['rung']:>4} {row['epochs']:>6} {len(row['seeds']):>6} {row['n_archs']:>5} "
              + (f"{m['kendall_tau']:6.3f} {m['kendall_p']:7.4f} {m['spearman_rho']:6.3f} " if m else f"{'-':>22} ")
              + (f"{s0['kendall_tau']:6.3f} " if s0 else f"{'-':>6} ")
              + (f"{row['seed_std']:8.4f} " if "seed_std" in row else f"{'-':>8} ")
              + (f"{row['seconds_per_candidate']:6.0f}" if "seconds_per_candidate" in row else ""))
    print(f"bar ({report['bar']}, >= 12 architectures): {'MET' if report['met'] else 'NOT met'}")


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per rung: its accuracy (mean over seeds) against the long runs' test accuracy."""
    rows = report["rungs"]
    fig, axes = new_figure(1, len(rows), figsize=(4 * len(rows), 3.6), dpi=110, squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        ids = list(row["accuracies"])
        x = [statistics.fmean(row["accuracies"][i]) for i in ids]
        y = [report["truth"][i]["mean"] for i in ids]
        ax.scatter(x, y, s=14)
        for i, xi, yi in zip(ids, x, y, strict=True):
            specs = {stage.split(":", 1)[1] for stage in i.split("|")}
            if len(specs) == 1:  # a hand placement: the same block on every stage
                ax.annotate(specs.pop().split("-")[0], (xi, yi), fontsize=6)
        m = row.get("mean")
        title = f"rung {row['rung']}: {row['epochs']} ep x {len(row['seeds'])} seed"
        if m:
            title += f"\ntau {m['kendall_tau']:.2f} (p {m['kendall_p']:.3f}), n={row['n_archs']}"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("rung validation accuracy", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("test accuracy after 10 epochs", fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
