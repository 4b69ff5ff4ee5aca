"""Does a weight-sharing supernet rank attention placements like long training does? (issue 31, item 3)

Truth: the 10-epoch test accuracy of every architecture with long runs on tin100 (long_runs.json
and attention_signal.py's hand placements, mean over the seeds run). Each evaluator scores the same
architectures; we report Kendall tau (with a bootstrap 95% interval over architectures), Spearman,
the overlap of the top 10, how many of the 10 pairs of hand placements it orders as the truth does,
and its compute to score the whole set in core-seconds (every run here uses one torch thread):
- supernet variants (`--variants`, SHARING:EPOCHS): one supernet over the default search space
  (nas/supernet.py) trained EPOCHS epochs with the proxy's settings, then every architecture
  scored with inherited weights, batch-norm statistics recalibrated on `--recal` training images;
  compute = training + scoring the set;
- the standalone proxies at 1, 2 and 4 epochs from proxy_runs.json (seed 0), compute = their
  training seconds summed over the architectures they cover.
The ceiling: the tau a perfect evaluator would reach against truth this noisy (each long-run mean
perturbed by its seed noise, pooled std over the architectures with >= 2 seeds, 2,000 draws).

    python benchmarks/oneshot_ranking.py --data /work/data --variants kind:10 choice:10
    python benchmarks/oneshot_ranking.py --report        # the table again from the saved runs

Resumable: a trained supernet is saved under --cache (outside the repo; a few MB each), each
architecture's score in benchmarks/results/oneshot_scores.json as soon as it is measured. Needs an
otherwise idle core per variant; two variants run side by side with `--variants` split over two
processes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from harness import RESULTS, RunCache, describe, write_json
from long_runs import TASK, LongRuns
from scipy.stats import kendalltau, spearmanr

from nas import ArchConfig, BlockSpec, ProxyConfig
from nas.backbones import get_backbone
from nas.space import load_space
from nas.supernet import Supernet, load_supernet, save_supernet, score_architecture, train_supernet

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml"
SCORES = RESULTS / "oneshot_scores.json"
PROXY_EPOCHS = (1, 2, 4)
BASELINES = ("none", "se", "eca", "cbam", "ge")


def template(classes: int) -> ArchConfig:
    return ArchConfig.uniform("cifar_resnet", BlockSpec("none"), dict(TASK.backbone_args), classes, 3)


def arch_of(arch_id: str, lookup: list[dict[str, BlockSpec]], base: ArchConfig) -> ArchConfig | None:
    """The architecture an arch_id names, when every stage's block is in the space."""
    parts = [p.split(":", 1)[1] for p in arch_id.split("|")]
    specs = [table.get(p) for table, p in zip(lookup, parts, strict=True)]
    if any(s is None for s in specs):
        return None
    return ArchConfig(base.backbone, tuple(specs), dict(base.backbone_args), base.num_classes, base.in_chans)


def truth_set(runs: LongRuns, base: ArchConfig) -> dict[str, dict[str, Any]]:
    """arch_id -> {arch, mean, n, values}: every architecture with long runs that the space holds."""
    space = load_space(SPACE)
    per_stage = get_backbone(base.backbone).placements_per_stage(base.backbone_args)
    lookup = [{s.block_id: s for s in space.stage_specs(offered)} for offered in per_stage]
    head = runs.prefix + "|"
    ids = sorted({key[len(head):].rsplit("|", 1)[0] for key in runs._runs() if key.startswith(head)})
    out = {}
    for arch_id in ids:
        arch = arch_of(arch_id, lookup, base)
        truth = runs.truth(arch_id)
        if arch is not None and truth is not None:
            out[arch_id] = {"arch": arch, **truth}
    return out


def variant_key(sharing: str, epochs: int, recal: int) -> str:
    return f"{TASK.key(14_000, 10)}|supernet:{sharing}|{epochs}ep|recal{recal}|seed0"


def run_variant(spec: str, truth: dict[str, dict[str, Any]], runs: LongRuns, cache: Path, recal: int) -> None:
    sharing, epochs = spec.split(":")[0], int(spec.split(":")[1])
    key = variant_key(sharing, epochs, recal)
    base = template(TASK.classes)
    path = cache / f"supernet-{sharing}-{epochs}ep.pt"
    store = RunCache(SCORES)
    entry = store.get(key) or {}
    if path.exists():
        net = load_supernet(path, load_space(SPACE), base)
    else:
        net = Supernet(base, load_space(SPACE), sharing=sharing, seed=0)
        config = ProxyConfig(epochs=epochs, threads=1, bn_recal=0)
        tick = time.perf_counter()
        train_supernet(net, runs.data, config, "cpu", progress=True)
        seconds = time.perf_counter() - tick
        save_supernet(net, path, {"train_seconds": seconds, "epochs": epochs})
        entry = {"train_seconds": seconds, "scores": {}, "machine": describe("cpu")}
        store.save(key, entry)
    entry.setdefault("train_seconds", net.meta.get("train_seconds"))
    entry.setdefault("scores", {})
    config = ProxyConfig(bn_recal=recal, threads=1)
    for arch_id, row in truth.items():
        if arch_id in entry["scores"]:
            continue
        tick = time.perf_counter()
        accuracy, loss = score_architecture(net, row["arch"], runs.data, config, "cpu")
        entry["scores"][arch_id] = {"accuracy": accuracy, "loss": loss, "seconds": time.perf_counter() - tick}
        store.save(key, entry)
        print(f"{spec} {arch_id}: {accuracy:.4f} ({entry['scores'][arch_id]['seconds']:.1f} s)", flush=True)


def _tau(x: list[float], y: list[float]) -> float:
    return float(kendalltau(x, y).statistic)


def compare(scores: dict[str, float], truth: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    ids = [i for i in truth if i in scores]
    x, y = [scores[i] for i in ids], [truth[i]["mean"] for i in ids]
    rng = random.Random(0)
    boot = []
    for _ in range(1000):
        pick = [rng.randrange(len(ids)) for _ in ids]
        boot.append(_tau([x[k] for k in pick], [y[k] for k in pick]))
    boot = sorted(b for b in boot if not math.isnan(b))
    top = lambda v: set(sorted(ids, key=lambda i: -v[i])[:10])  # noqa: E731
    base_ids = [i for i in ids if truth[i].get("baseline")]
    pairs = [(a, b) for k, a in enumerate(base_ids) for b in base_ids[k + 1:]]
    right = sum((scores[a] - scores[b]) * (truth[a]["mean"] - truth[b]["mean"]) > 0 for a, b in pairs)
    return {"n": len(ids), "kendall_tau": _tau(x, y),
            "tau_95": [boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]],
            "spearman": float(spearmanr(x, y).statistic),
            "top10_overlap": len(top(scores) & top({i: truth[i]["mean"] for i in ids})),
            "baseline_pairs_right": f"{right}/{len(pairs)}", "core_seconds": seconds,
            "score_range": [min(x), max(x)]}


def ceiling(truth: dict[str, dict[str, Any]]) -> dict[str, float]:
    multi = [t["values"] for t in truth.values() if t["n"] >= 2]
    pooled = math.sqrt(statistics.fmean(statistics.variance(v) for v in multi))
    rng = random.Random(0)
    ids = list(truth)
    y = [truth[i]["mean"] for i in ids]
    taus = [_tau(y, [v + rng.gauss(0, pooled / math.sqrt(truth[i]["n"])) for v, i in zip(y, ids, strict=True)])
            for _ in range(2000)]
    return {"pooled_seed_std": pooled, "tau_mean": statistics.fmean(taus)}


def report(truth: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, entry in sorted(RunCache(SCORES).all().items()):
        scores = {i: s["accuracy"] for i, s in entry["scores"].items()}
        if len([i for i in truth if i in scores]) < len(truth):
            continue  # still scoring
        seconds = entry["train_seconds"] + sum(s["seconds"] for i, s in entry["scores"].items() if i in truth)
        rows["supernet " + key.split("|supernet:")[1]] = {
            **compare(scores, truth, seconds), "train_seconds": entry["train_seconds"],
            "score_seconds_per_arch": statistics.fmean(s["seconds"] for s in entry["scores"].values())}
    proxies = RunCache(RESULTS / "proxy_runs.json").all()
    for epochs in PROXY_EPOCHS:
        got = {}
        for arch_id in truth:
            run = proxies.get(f"{prefix}|{arch_id}|{epochs}ep|bs256|pad0|seed0")
            if run is not None:
                got[arch_id] = run["result"]
        scores = {i: r["accuracy"] for i, r in got.items()}
        rows[f"proxy {epochs}ep"] = compare(scores, truth, sum(r["seconds"] for r in got.values()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data"))
    parser.add_argument("--cache", type=Path, default=Path("/work/cache/oneshot"),
                        help="where trained supernets are kept (outside the repository)")
    parser.add_argument("--variants", nargs="*", default=[], help="SHARING:EPOCHS, e.g. kind:10 choice:10")
    parser.add_argument("--recal", type=int, default=2048, help="training images for batch-norm recalibration")
    parser.add_argument("--report", action="store_true", help="only print and write the report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    runs = LongRuns(args.data, RESULTS, threads=1)
    base = template(TASK.classes)
    truth = truth_set(runs, base)
    for kind in BASELINES:
        arch_id = runs.baseline(kind).arch_id
        if arch_id in truth:
            truth[arch_id]["baseline"] = kind
    if not args.report:
        for spec in args.variants:
            run_variant(spec, truth, runs, args.cache, args.recal)
    rows = report(truth, runs.prefix)
    result = {"task": TASK.name, "truth": {"architectures": len(truth),
                                           "seeds": sum(t["n"] for t in truth.values())},
              "ceiling": ceiling(truth), "evaluators": rows, "machine": describe("cpu")}
    write_json(RESULTS / "oneshot_ranking.json", result)
    print(f"truth: {len(truth)} architectures, ceiling tau {result['ceiling']['tau_mean']:.3f} "
          f"(pooled seed std {result['ceiling']['pooled_seed_std']:.4f})")
    print(f"{'evaluator':<28} {'n':>3} {'tau':>6} {'95%':>15} {'rho':>6} {'top10':>5} {'hand':>5} {'core-s':>8}")
    for name, r in rows.items():
        print(f"{name:<28} {r['n']:>3} {r['kendall_tau']:6.3f} [{r['tau_95'][0]:5.2f}, {r['tau_95'][1]:5.2f}] "
              f"{r['spearman']:6.3f} {r['top10_overlap']:>5} {r['baseline_pairs_right']:>5} {r['core_seconds']:8.0f}")


if __name__ == "__main__":
    main()
