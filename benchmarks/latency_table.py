"""Does a latency table predict latency? Issue 27's bar, measured on this machine.

For each case (cifar_resnet 20/16 at 32 px with the default space; mobilenet_v2 at 64 px with all
six stages searched, default space) and runtime (ONNX Runtime, eager PyTorch; batch 1, 1 thread,
CPU): build the table (`nas.latency.builder.build_table`, every stage x block choice timed
interleaved with `none`), then measure `--check` random architectures of the space directly and
compare: median and 95th-percentile |relative error| of the ratio to `none`, Spearman. Also
times the four uniform baselines directly, to show what attention costs in FLOPs against latency.

Needs an idle machine (no test run, training or helper beside it). Resumable: a killed run keeps
each table's measurements in benchmarks/results/latency_tables/*.partial and the same command
goes on from there; finished tables are reused (delete one to measure it again).

    .venv/bin/python benchmarks/latency_table.py                      # all cases, both runtimes
    .venv/bin/python benchmarks/latency_table.py --cases resnet20 --runtimes onnxruntime
    .venv/bin/python benchmarks/latency_table.py --cases resnet20 --runtimes onnxruntime --passes 1 --tag median
    .venv/bin/python benchmarks/latency_table.py --cases resnet20 --runtimes onnxruntime --passes 1 --tag mean \
        --estimator mean

Writes benchmarks/results/latency_table.json and the tables under benchmarks/results/latency_tables/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, describe, read_json, write_json  # noqa: E402

from nas import ArchConfig, BlockSpec, arch_cost  # noqa: E402
from nas.latency.builder import LatencyTarget, build_table, measure_architectures  # noqa: E402
from nas.latency.conditions import LatencyConditions  # noqa: E402
from nas.latency.table import accuracy_of, load_table  # noqa: E402
from nas.space import load_space  # noqa: E402

CASES = {
    "resnet20": ("cifar_resnet", {"depth": 20, "width": 16}, 32),
    "mbv2": ("mobilenet_v2", {}, 64),
}
KINDS = ("se", "eca", "cbam", "ge")
BAR = {"median_abs_error": 0.03, "p95_abs_error": 0.08, "spearman": 0.95}


def run_case(name: str, runtime: str, check: int, passes: int, tag: str = "") -> dict:
    backbone, args, size = CASES[name]
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    conditions = LatencyConditions(runtime=runtime, batch_size=1, threads=1, device="cpu")
    placement = "block"
    uniform = {k: ArchConfig.uniform(backbone, BlockSpec.paper_default(k, placement), args) for k in KINDS}
    target = LatencyTarget(backbone, args, space, (size, size), 3, 10, conditions,
                           extra=tuple(a.stages[0] for a in uniform.values()))
    folder = RESULTS / "latency_tables"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{runtime}{'' if passes == 2 else f'-passes{passes}'}{tag and f'-{tag}'}.json"
    built_now = not path.exists()
    if not built_now:
        table = load_table(path)
        print(f"{name} {runtime}: reusing {path.relative_to(ROOT)}")
    else:
        start = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int, what: str) -> None:
            if time.perf_counter() - last[0] > 30 or done == total:
                last[0] = time.perf_counter()
                print(f"  {name} {runtime}: {done}/{total} {what} ({time.perf_counter() - start:.0f} s)", flush=True)

        table = build_table(target, path, check=check, progress=progress, passes=passes)
    v = table.validation
    recheck = recheck_entries(target, table, reused=not built_now)
    measured = measure_architectures(target, list(uniform.values()))
    none_cost = arch_cost(target.template(), size)
    rows = []
    for kind, arch in uniform.items():
        m = measured[arch.arch_id]
        cost = arch_cost(arch, size)
        rows.append({"kind": kind, "arch_id": arch.arch_id, "flops_ratio": cost.flops / none_cost.flops,
                     "measured_ratio": m.ratio, "measured_ratio_ci": m.ratio_ci,
                     "predicted_ratio": table.predict(arch.arch_id).ratio})
    verdict = {k: (v[k] <= bar if k != "spearman" else v[k] >= bar) for k, bar in BAR.items()}
    choices = len(table.entries) + v["n"] + (table.calibration or {}).get("n", 0)
    predictors = compare_predictors(table)
    result = {"case": name, "passes": passes, "backbone": backbone, "backbone_args": args, "image_size": size,
              "conditions": conditions.to_dict(), "signature": table.signature, "entries": len(table.entries),
              "none_ms": table.none_ms, "none_ms_ci": table.none_ms_ci, "build_seconds": table.built.get("seconds"),
              "seconds_per_choice": table.built.get("seconds", 0) / choices,
              "validation": {k: v[k] for k in ("n", "median_abs_error", "p95_abs_error", "max_abs_error", "spearman")},
              "scale": table.scale, "predictors": predictors, "recheck": recheck,
              "bar": BAR, "meets_bar": all(verdict.values()), "uniform": rows,
              "table": str(path.relative_to(ROOT))}
    print(f"{name} @ {size} px, {conditions.describe()}: none {table.none_ms:.3f} ± {table.none_ms_ci:.3f} ms; "
          f"{len(table.entries)} stage choices in {table.built.get('seconds', 0):.0f} s")
    for name, p in predictors.items():
        print(f"  predictor {name:<20} median |error| {100 * p['median_abs_error']:.2f} %, 95th percentile "
              f"{100 * p['p95_abs_error']:.2f} %, Spearman {p['spearman']:.3f}")
    print(f"  scale {table.scale:.3f}, fitted on {(table.calibration or {}).get('n')} architectures with 1..n "
          "attention stages;")
    print(f"  {v['n']} random architectures: median |error| {100 * v['median_abs_error']:.2f} %, 95th percentile "
          f"{100 * v['p95_abs_error']:.2f} %, max {100 * v['max_abs_error']:.2f} %, Spearman {v['spearman']:.3f} "
          f"-> {'meets' if result['meets_bar'] else 'misses'} the bar (≤ 3 %, ≤ 8 %, ≥ 0.95)")
    print(f"  {recheck['n']} stage choices measured again ({recheck['when']}): median |change of the ratio| "
          f"{100 * recheck['median_abs_change']:.2f} %, max {100 * recheck['max_abs_change']:.2f} %, "
          f"{recheck['outside_intervals']} outside both 95% intervals")
    for r in rows:
        print(f"  all stages {r['kind']:<5} FLOPs x{r['flops_ratio']:.3f}   latency measured "
              f"x{r['measured_ratio']:.3f} ± {r['measured_ratio_ci']:.3f}, table predicts x{r['predicted_ratio']:.3f}")
    return result


def recheck_entries(target: LatencyTarget, table, reused: bool, n: int = 16) -> dict:
    """`n` random stage choices measured again, now: does an entry hold beyond its own run? A table
    reused from an earlier invocation is re-measured in another process, minutes or days later."""
    import random
    import statistics

    choices = target.choices()
    keys = random.Random(7).sample(sorted(table.entries), min(n, len(table.entries)))
    now = measure_architectures(target, [choices[k] for k in keys])
    changes, outside = [], 0
    for k in keys:
        entry, m = table.entries[k], now[choices[k].arch_id]
        changes.append(abs(m.ratio / entry["ratio"] - 1))
        outside += abs(m.ratio - entry["ratio"]) > (entry["ratio_ci"] ** 2 + m.ratio_ci ** 2) ** 0.5
    return {"n": len(keys), "when": "another process, later" if reused else "the same process, right after",
            "median_abs_change": statistics.median(changes), "max_abs_change": max(changes),
            "outside_intervals": outside}


def compare_predictors(table) -> dict:
    """The table's own predictor against two others, each fitted (where it has parameters) on the
    calibration architectures and judged on the check architectures: the plain additive table, the
    scaled one (what nas uses), and per-stage-pair constants (an interaction term for every pair of
    attended stages, fitted on the residuals of the plain sum)."""
    import itertools

    import numpy as np

    def per_stage(arch_id: str) -> dict[int, float]:
        return {int(p[1:].split(":")[0]): table.entries[p]["ratio"] - 1
                for p in arch_id.split("|") if not p.endswith(":none")}

    check = table.validation["rows"]
    measured = [r["measured_ratio"] for r in check]
    stages = sorted({s for r in table.calibration["rows"] for s in per_stage(r["arch_id"])})
    pairs = list(itertools.combinations(stages, 2))

    def pair_features(arch_id: str) -> list[float]:
        e = per_stage(arch_id)
        return [1.0 if i in e and j in e else 0.0 for i, j in pairs]

    cal = table.calibration["rows"]
    x = np.array([pair_features(r["arch_id"]) for r in cal]) if pairs else np.zeros((len(cal), 0))
    y = np.array([r["measured_ratio"] - 1 - r["summed_excess"] for r in cal])
    gamma = np.linalg.lstsq(x, y, rcond=None)[0] if pairs else np.zeros(0)
    pairwise = [1 + table.excess(r["arch_id"]) + float(np.dot(pair_features(r["arch_id"]), gamma)) for r in check]
    return {"additive": accuracy_of([r["additive_ratio"] for r in check], measured),
            "scaled additive": accuracy_of([r["predicted_ratio"] for r in check], measured),
            "additive + pair terms": accuracy_of(pairwise, measured)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "eager"], choices=["onnxruntime", "eager"])
    parser.add_argument("--check", type=int, default=30, help="random architectures each table is checked on")
    parser.add_argument("--passes", type=int, default=2, help="times each choice is measured, minutes apart")
    parser.add_argument("--tag", default="", help="a suffix for the tables and the results file: a new measurement "
                                                  "beside the committed ones (e.g. after a change to how nas times)")
    parser.add_argument("--estimator", choices=["median", "mean"], default="median",
                        help="mean: the t interval on the mean round nas used before 2026-12-07, for an A/B "
                             "on one machine (docs/latency.md)")
    args = parser.parse_args()
    if args.estimator == "mean":
        import nas.latency.measure as measure

        measure.median_ci = measure.mean_ci  # measure_ratios looks the name up at each call
    suffix = f"{'' if args.passes == 2 else f'-passes{args.passes}'}{args.tag and f'-{args.tag}'}"
    out = RESULTS / f"latency_table{suffix}.json"
    previous = read_json(out, {"results": []})["results"]
    results = {(r["case"], r["conditions"]["runtime"]): r for r in previous}
    print(f"machine: {describe('cpu')}")
    for name in args.cases:
        for runtime in args.runtimes:
            results[(name, runtime)] = run_case(name, runtime, args.check, args.passes, args.tag)
            write_json(out, {"benchmark": "latency_table", "machine": describe("cpu"), "estimator": args.estimator,
                             "results": list(results.values())})
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
