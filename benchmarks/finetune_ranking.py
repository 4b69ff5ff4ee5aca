"""Does a short fine-tune rank attention placements like a long fine-tune does? (issue 32, item 4)

pretrained_finetune.py showed that identity insertion keeps a pretrained network usable and that,
after a 3-epoch fine-tune, the uniform placements tie `none`. This asks the question a search on a
pretrained backbone depends on: does the fine-tuning proxy a trial runs order architectures as a
long fine-tune does, and better than a from-scratch proxy of the same compute?

Same tasks and pretrained network as pretrained_finetune.py (ResNet-20/16 pretrained 6 epochs on
Tiny-ImageNet classes 0-99 at 32 px, fine-tuned on classes 100-119). Architectures: `none`, SE,
ECA, CBAM and GE at paper defaults on every unit, and 9 architectures of the default search space
(`LatencyTarget.random_architectures(9, seed=11, spread=True)`: one to three attention stages,
any kind, setting and placement), 14 in all, every block inserted as the identity. For each:

- short fine-tune: the fine-tuning proxy a trial runs (3 epochs, batch 64, lr 0.2), seed 0;
- scratch proxy: the same 3 epochs from random initialisation, seed 0 (the same compute);
- truth: a long fine-tune (12 epochs, same settings), seeds 10 and 11 (independent of the
  proxies' seed), validation accuracy on task B, mean over the two.

Reported as oneshot_ranking.py reports evaluators (`compare`): Kendall tau with a bootstrap 95 %
interval over architectures, Spearman, top-5 overlap, the hand-placement pairs ordered right, the
core-seconds to score the set; and the ceiling the truth's own noise allows (`ceiling`: each
truth mean perturbed by the pooled seed std, 2,000 draws) next to the agreement of the two truth
seeds with each other.

Every run is saved as it finishes (benchmarks/results/finetune_ranking_runs.json), so a killed run
resumes; `--shard I/N` splits the architectures over N processes (one core each) that share it.

    .venv/bin/python benchmarks/finetune_ranking.py --data /work/data --shard 0/2 &   # ~1 h each on
    .venv/bin/python benchmarks/finetune_ranking.py --data /work/data --shard 1/2     # one core
    .venv/bin/python benchmarks/finetune_ranking.py --report
    .venv/bin/python benchmarks/finetune_ranking.py --quick    # the generated set: checks the script

Writes benchmarks/results/finetune_ranking.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, RunCache, describe, write_json  # noqa: E402
from oneshot_ranking import _tau, ceiling, compare  # noqa: E402
from pretrained_finetune import ARGS, FINE_TUNE, KINDS, PRETRAIN, pretrain, tasks  # noqa: E402

from nas.arch import ArchConfig  # noqa: E402
from nas.backbones.weights import Pretrained  # noqa: E402
from nas.blocks import BlockSpec  # noqa: E402
from nas.build import build_model  # noqa: E402
from nas.data import Dataset  # noqa: E402
from nas.files import exclusive_lock  # noqa: E402
from nas.latency.builder import LatencyTarget  # noqa: E402
from nas.latency.conditions import LatencyConditions  # noqa: E402
from nas.space import load_space  # noqa: E402
from nas.train import ProxyConfig, train_proxy  # noqa: E402

LONG = {**FINE_TUNE, "epochs": 12}
TRUTH_SEEDS = (10, 11)
RANDOM = 9  # architectures of the space besides the five hand placements


def architectures(args: dict[str, int], classes: int, quick: bool) -> dict[str, ArchConfig]:
    """label -> architecture (no weights yet): the five hand placements, then RANDOM of the space."""
    out = {"none": ArchConfig.uniform("cifar_resnet", BlockSpec("none"), args, classes, 3)}
    for kind in KINDS:
        out[kind] = ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind, "block"), args, classes, 3)
    target = LatencyTarget("cifar_resnet", args, load_space(ROOT / "search_spaces" / "default.yaml"), (32, 32), 3,
                           classes, LatencyConditions())
    for arch in target.random_architectures(3 if quick else RANDOM, seed=11, spread=True):
        out.setdefault(arch.arch_id, arch)
    return out


def run(label: str, arch: ArchConfig, evaluator: str, seed: int, file: Path, task_b: Dataset,
        cache: RunCache, threads: int) -> dict[str, Any]:
    """One training of `arch` on task B: `short` (the fine-tuning proxy), `scratch` or `long`."""
    weights = None if evaluator == "scratch" else Pretrained.of(file)
    settings = LONG if evaluator == "long" else FINE_TUNE
    key = (f"{evaluator}|{arch.arch_id}|seed{seed}|{settings}|"
           f"{'scratch' if weights is None else weights.sha256[:12]}|{task_b.num_classes}x{len(task_b.train.labels)}")
    done = cache.get(key)
    if done is not None:
        return done
    arch = dataclasses.replace(arch, weights=weights)
    tick = time.perf_counter()
    result = train_proxy(lambda: build_model(arch), task_b, ProxyConfig(**settings, seed=seed, threads=threads),
                         "cpu", progress=False)
    entry = {"arch_id": arch.arch_id, "label": label, "evaluator": evaluator, "seed": seed,
             "val_accuracy": result.accuracy, "seconds": time.perf_counter() - tick}
    cache.save(key, entry)
    print(f"{evaluator:<7} seed {seed:>2} {result.accuracy:.4f} ({entry['seconds']:.0f} s)  {label}", flush=True)
    return entry


def report(cache: RunCache, archs: dict[str, ArchConfig], out: Path | None) -> dict[str, Any]:
    """Every evaluator against the long fine-tune, over the architectures finished so far."""
    runs = list(cache.all().values())
    by = {(r["evaluator"], r["arch_id"]): [] for r in runs if "evaluator" in r}
    for r in runs:
        if "evaluator" in r:
            by[(r["evaluator"], r["arch_id"])].append(r)
    ids = {a.arch_id: label for label, a in archs.items()}
    truth = {}
    for arch_id, label in ids.items():
        values = [r["val_accuracy"] for r in by.get(("long", arch_id), [])]
        if values:  # a stopped run: the truth is the seeds finished so far (the report says how many)
            truth[arch_id] = {"mean": statistics.fmean(values), "values": values, "n": len(values), "label": label,
                              **({"baseline": label} if label in ("none", *KINDS) else {})}
    result: dict[str, Any] = {"architectures": len(truth), "evaluators": {}, "truth": truth}
    if len(truth) < 4 or len({t["mean"] for t in truth.values()}) < 2:
        print(f"{len(truth)} architectures with their long fine-tunes, scoring "
              f"{sorted({round(t['mean'], 4) for t in truth.values()})}: nothing to rank")
        return result
    for evaluator in ("short", "scratch"):
        got = {i: by[(evaluator, i)][0] for i in truth if (evaluator, i) in by}
        row = compare({i: r["val_accuracy"] for i, r in got.items()}, truth,
                      sum(r["seconds"] for r in got.values()))
        row["top5_overlap"] = len(set(sorted(got, key=lambda i: -got[i]["val_accuracy"])[:5])
                                  & set(sorted(truth, key=lambda i: -truth[i]["mean"])[:5]))
        row["seconds_per_trial"] = statistics.fmean(r["seconds"] for r in got.values())
        result["evaluators"][evaluator] = row
    both = [i for i in truth if truth[i]["n"] >= 2]
    result["truth_seeds"] = {"architectures_with_2": len(both), "runs": sum(t["n"] for t in truth.values())}
    result["ceiling"] = {**(ceiling(truth) if len(both) >= 2 else {}),
                         "seed_vs_seed_tau": _tau(*[[truth[i]["values"][k] for i in both] for k in range(2)])
                         if len(both) >= 4 else None, "seed_vs_seed_n": len(both),
                         "long_seconds_per_run": statistics.fmean(r["seconds"] for i in truth
                                                                  for r in by[("long", i)])}
    spread = [t["mean"] for t in truth.values()]
    result["truth_range"] = [min(spread), max(spread)]
    c = result["ceiling"]
    print(f"truth: {len(truth)} architectures, long fine-tune {LONG['epochs']} epochs, {len(both)} of them at 2 seeds"
          f"{'' if len(both) == len(truth) else ', the others at 1'}; "
          f"range {min(spread):.4f}-{max(spread):.4f}; pooled seed std "
          f"{c.get('pooled_seed_std', float('nan')):.4f}; ceiling tau {c.get('tau_mean', float('nan')):.3f}; "
          f"seed vs seed tau {c['seed_vs_seed_tau'] if c['seed_vs_seed_tau'] is not None else float('nan'):.3f} "
          f"on {len(both)}")
    for name, row in result["evaluators"].items():
        print(f"{name:<8} tau {row['kendall_tau']:+.3f} [{row['tau_95'][0]:+.3f}, {row['tau_95'][1]:+.3f}]  "
              f"Spearman {row['spearman']:+.3f}  top-5 {row['top5_overlap']}/5  hand pairs "
              f"{row['baseline_pairs_right']}  {row['seconds_per_trial']:.0f} s/trial")
    if out is not None:
        write_json(out, {"question": "short fine-tune vs same-compute scratch proxy, ranked against a long "
                                     "fine-tune of a pretrained ResNet-20",
                         "setup": {"backbone_args": ARGS, "pretrain": PRETRAIN, "short": FINE_TUNE, "long": LONG,
                                   "truth_seeds": TRUTH_SEEDS, "proxy_seed": 0,
                                   "identity_insertion": True}, **result, "machine": describe("cpu")})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"), help="the folder holding tiny-imagenet-200")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="I/N: this process trains every N-th architecture from I")
    parser.add_argument("--quick", action="store_true", help="the generated set and ResNet-8/4: checks the script")
    parser.add_argument("--report", action="store_true", help="train nothing: report the runs finished so far")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    args = {"depth": 8, "width": 4} if opts.quick else ARGS
    stem = "finetune_ranking-quick" if opts.quick else "finetune_ranking"
    cache = RunCache((Path("/tmp") if opts.quick else RESULTS) / f"{stem}_runs.json")  # --quick: never the repo
    task_a, task_b = tasks(opts.quick, opts.data)
    archs = architectures(args, task_b.num_classes, opts.quick)
    out = None if opts.quick else RESULTS / f"{stem}.json"
    if opts.report:
        report(cache, archs, out)
        return
    # pretrained_finetune.py's network (not committed; pretrained again, seeded, when missing)
    home = Path("/tmp") if opts.quick else RESULTS
    file = home / "pretrained_finetune" / "resnet-none-task-a.pt"
    file.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(file.with_name(f".{file.name}.lock")):  # one shard pretrains, the others wait for it
        pretrain(task_a, file, args, RunCache(home / "pretrained_finetune_runs.json"), opts.threads)
    index, count = map(int, opts.shard.split("/"))
    mine = list(archs.items())[index::count]
    for label, arch in mine:  # the cheap proxies and one truth seed of every architecture first
        for evaluator, seed in (("short", 0), ("scratch", 0), ("long", TRUTH_SEEDS[0])):
            run(label, arch, evaluator, seed, file, task_b, cache, opts.threads)
    for label, arch in mine:
        for seed in TRUTH_SEEDS[1:]:
            run(label, arch, "long", seed, file, task_b, cache, opts.threads)
    report(cache, archs, out)


if __name__ == "__main__":
    main()
