"""Does a latency table travel? Issue 33's evidence, between every pair of conditions reachable here.

A pair is a parent table (conditions A) carried to conditions B, measured on this machine:

    cpu       the committed table benchmarks/results/latency_tables/resnet20-onnxruntime.json (a
              2-core AMD EPYC with AVX-512, signature 87d4276f54) -> this machine, ONNX Runtime,
              batch 1, 1 thread (degenerate, and said so, when this machine has that signature)
    threads   a table built here at 1 thread -> 2 threads
    batch     batch 1 -> batch 8
    runtime   ONNX Runtime -> eager PyTorch (adapting allowed across runtimes for the evidence)

For each pair, on cifar_resnet 20/16 at 32 px with the default space (the committed table's):
- untouched: the parent's predictions against `--check` random architectures measured under B
  (`nas.latency.adapt.check_transfer`, what `nas latency-table --check` prints);
- adapted with 6, 12 and 24 measurements (`adapt_table`, what `--adapt --archs K` does): its
  scale, its error on `--check` other architectures, the parent's on the same ones, and the
  seconds its measurements took (the refit's apart from the validation's);
- per-kind scales fitted on the same K measurements (one factor per block kind, as deviations
  from the one scale, least-norm), judged on the same architectures: is one scale enough?
- a full rebuild under B (`build_table`, 2 passes, as a study builds one): its own validation, its
  error on each adapted table's validation architectures, and its build time; `--no-rebuild PAIR`
  skips it (about an hour each at 2 threads or batch 8 here), and the pair is then judged on the
  adapted tables' own validation, its verdict saying no rebuild was measured.
Bar (the issue's): after adapting with <= 12 measurements, median |error| <= 2 % and Spearman >=
0.95, where the full rebuild reaches that.

Needs an idle machine (no training, test run or other benchmark beside it): a loaded one is
refused by the measurements themselves (`MachineBusy`), and nothing is stored for that run.
Resumable: rebuilt tables resume from their .partial files and are reused once written
(benchmarks/results/latency_transfer/<signature id>/); every finished check or adaptation is
saved at once in benchmarks/results/latency_transfer_runs.json (a `RunCache`) and skipped on
restart. Writes benchmarks/results/latency_transfer.json.

    .venv/bin/python benchmarks/latency_transfer.py                       # idle machine, ~1 h
    .venv/bin/python benchmarks/latency_transfer.py --pairs cpu threads   # some pairs
    .venv/bin/python benchmarks/latency_transfer.py --pairs threads batch runtime \
        --no-rebuild threads batch runtime                                 # ~30 min: no full rebuilds
    .venv/bin/python benchmarks/latency_transfer.py --quick               # ~3 min: checks the script, proves nothing

`--quick` uses a 2-choice sub-space of the default one, 3 architectures and loose intervals, and
writes under /tmp/latency_transfer_quick (`--out`), never into benchmarks/results.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, RunCache, describe, finite, read_json, write_json  # noqa: E402

from nas import ArchConfig, BlockSpec  # noqa: E402
from nas.errors import MachineBusy  # noqa: E402
from nas.latency.adapt import Here, adapt_table, check_transfer  # noqa: E402
from nas.latency.builder import LatencyTarget, build_table, check_conditions  # noqa: E402
from nas.latency.conditions import LatencyConditions, device_signature  # noqa: E402
from nas.latency.table import LatencyTable, accuracy_of, load_table  # noqa: E402
from nas.space import SearchSpace, load_space  # noqa: E402

BACKBONE, ARGS, SIZE = "cifar_resnet", {"depth": 20, "width": 16}, 32
COMMITTED = RESULTS / "latency_tables" / "resnet20-onnxruntime.json"
BASE = LatencyConditions()  # onnxruntime, batch 1, 1 thread, cpu
PAIRS: dict[str, tuple[LatencyConditions | None, LatencyConditions]] = {  # parent (None: the committed table), child
    "cpu": (None, BASE),
    "threads": (BASE, dataclasses.replace(BASE, threads=2)),
    "batch": (BASE, dataclasses.replace(BASE, batch_size=8)),
    "runtime": (BASE, dataclasses.replace(BASE, runtime="eager")),
}
KINDS = ("se", "eca", "cbam", "ge")
BAR = {"median_abs_error": 0.02, "spearman": 0.95, "max_archs": 12}
# --quick: a sub-space of the default one (so the committed table covers it), 6 stage choices
QUICK_SPACE = {"kinds": ["none", "se", "eca"],
               "se": {"reduction": [16], "divisor": [1], "pool": ["avg"], "gate": ["sigmoid"]},
               "eca": {"kernel_size": [None], "pool": ["avg"], "gate": ["sigmoid"]}, "placement": ["block"]}


@dataclasses.dataclass(frozen=True)
class Settings:
    check: int = 30  # random architectures every table is validated on
    archs: tuple[int, ...] = (6, 12, 24)  # measurements an adaptation refits on
    passes: int = 2  # a rebuild's passes (a study's default)
    target_ci: float = 0.02
    max_seconds: float = 20.0
    quick: bool = False

    def key(self) -> str:
        return f"check{self.check}-passes{self.passes}-ci{self.target_ci:g}{'-quick' if self.quick else ''}"


def target_for(conditions: LatencyConditions, quick: bool) -> LatencyTarget:
    """The committed table's target (default space, the four uniform baselines' blocks) under
    `conditions`; with `quick`, a 2-choice sub-space and no extra blocks."""
    if quick:
        return LatencyTarget(BACKBONE, ARGS, SearchSpace.from_dict(QUICK_SPACE), (SIZE, SIZE), 3, 10, conditions)
    extra = tuple(ArchConfig.uniform(BACKBONE, BlockSpec.paper_default(k, "block"), ARGS).stages[0] for k in KINDS)
    return LatencyTarget(BACKBONE, ARGS, load_space(ROOT / "search_spaces" / "default.yaml"), (SIZE, SIZE), 3, 10,
                         conditions, extra=extra)


def name_of(conditions: LatencyConditions) -> str:
    return f"resnet20-{conditions.runtime}-b{conditions.batch_size}-t{conditions.threads}"


def table_here(conditions: LatencyConditions, folder: Path, s: Settings) -> LatencyTable:
    """The full table under `conditions` on this machine: built (resumably) unless written before."""
    path = folder / f"{name_of(conditions)}.json"
    if path.exists():
        print(f"  reusing {path}")
        return load_table(path)
    start, last = time.perf_counter(), [0.0]

    def progress(done: int, total: int, what: str) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            print(f"  {name_of(conditions)}: {done}/{total} {what} ({time.perf_counter() - start:.0f} s)", flush=True)

    return build_table(target_for(conditions, s.quick), path, check=s.check, target_ci=s.target_ci,
                       max_seconds=s.max_seconds, progress=progress, passes=s.passes)


@dataclasses.dataclass
class Timed(Here):
    """`Here` that also keeps the seconds each kind of measurement took."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def ratios(self, archs, what):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return super().ratios(archs, what)
        finally:
            self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - start

    def none_ms(self):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return super().none_ms()
        finally:
            self.seconds["none"] = self.seconds.get("none", 0.0) + time.perf_counter() - start


def kind_of(part: str) -> str:
    return part.split(":", 1)[1].split("-")[0]


def per_kind_prediction(table: LatencyTable, fit_rows: list[dict], check_rows: list[dict]) -> dict[str, Any]:
    """One scale per block kind on its summed excess, fitted on the adaptation's measurements as
    deviations from the one scale (least-norm: with fewer measurements than kinds it stays near the
    one scale), judged on its validation architectures."""
    import numpy as np

    kinds = sorted({kind_of(p) for r in fit_rows + check_rows for p in r["arch_id"].split("|")
                    if not p.endswith(":none")})

    def features(arch_id: str) -> list[float]:
        sums = dict.fromkeys(kinds, 0.0)
        for p in arch_id.split("|"):
            if not p.endswith(":none"):
                sums[kind_of(p)] += table.entries[p]["ratio"] - 1
        return [sums[k] for k in kinds]

    x = np.array([features(r["arch_id"]) for r in fit_rows])
    y = np.array([r["measured_ratio"] - 1 for r in fit_rows]) - x.sum(axis=1) * table.scale
    scales = table.scale + np.linalg.lstsq(x, y, rcond=None)[0]
    predicted = [1 + float(np.dot(features(r["arch_id"]), scales)) for r in check_rows]
    return {"scales": dict(zip(kinds, map(float, scales), strict=True)),
            **accuracy_of(predicted, [r["measured_ratio"] for r in check_rows])}


def summary(acc: dict[str, Any]) -> dict[str, Any]:
    return {k: acc[k] for k in ("n", "median_abs_error", "p95_abs_error", "max_abs_error", "spearman")}


def run_pair(pair: str, folder: Path, cache: RunCache, s: Settings, here_id: str, rebuild_it: bool = True
             ) -> dict[str, Any]:
    parent_conditions, child = PAIRS[pair]
    check_conditions(child, f"pair {pair}")
    print(f"{pair}: {'the committed table' if parent_conditions is None else parent_conditions.describe()} -> "
          f"{child.describe()} on this machine")
    parent = load_table(COMMITTED) if parent_conditions is None else table_here(parent_conditions, folder, s)
    rebuild = table_here(child, folder, s) if rebuild_it else None
    target = target_for(child, s.quick)
    result: dict[str, Any] = {
        "pair": pair, "parent": {"conditions": parent.key["conditions"], "signature": parent.signature,
                                 "file": str(parent.path.relative_to(ROOT) if parent.path.is_relative_to(ROOT)
                                             else parent.path), "validation": summary(parent.validation)},
        "child": {"conditions": child.to_dict(), "signature": device_signature(child)},
        "same_device": parent.signature.get("id") == device_signature(child)["id"],
        "rebuild": None if rebuild is None else {
            "validation": summary(rebuild.validation), "seconds": rebuild.built.get("seconds"),
            "passes": rebuild.built.get("passes"), "scale": rebuild.scale, "none_ms": rebuild.none_ms},
    }
    key = f"{here_id}|{s.key()}|{pair}"
    untouched = cache.get(f"{key}|untouched")
    if untouched is None:
        measurer = Timed(target, s.target_ci, s.max_seconds)
        check = check_transfer(parent, target, s.check, measurer)
        untouched = {**check.to_dict(), "seconds": round(sum(measurer.seconds.values()), 1)}
        cache.save(f"{key}|untouched", untouched)
    result["untouched"] = {"ratio": summary(untouched["ratio"]), "ms": summary(untouched["ms"]),
                           "none_ms_here": untouched["none_ms_here"], "none_ms_table": untouched["none_ms_table"],
                           "needs_adapting": untouched["needs_adapting"], "seconds": untouched["seconds"]}
    print(f"  untouched: {line(untouched['ratio'])}")
    result["adapted"] = {}
    for k in s.archs:
        run = cache.get(f"{key}|adapt{k}")
        if run is None:
            measurer = Timed(target, s.target_ci, s.max_seconds)
            table = adapt_table(parent, target, folder / f"{pair}-adapted{k}.json", archs=k, check=s.check,
                                measurer=measurer, target_ci=s.target_ci)
            v = table.validation
            rows = v["rows"]
            run = {"archs": k, "scale": table.scale, "parent_scale": parent.scale, "none_ms": table.none_ms,
                   "validation": summary(v), "untouched_same_archs": summary(v["untouched"]),
                   "per_kind": per_kind_prediction(table, table.calibration["rows"], rows),
                   "seconds": {"refit": round(measurer.seconds.get("architectures to refit on", 0.0)
                                              + measurer.seconds.get("none", 0.0), 1),
                               "validation": round(measurer.seconds.get("validation architectures", 0.0), 1),
                               "total": table.built["seconds"]}}
            cache.save(f"{key}|adapt{k}", run)
        rows = load_table(folder / f"{pair}-adapted{k}.json").validation["rows"]
        run = {**run, "measurement_repeat": repeat(untouched["rows"], rows)}
        if rebuild is not None:  # the rebuild's error on the adapted table's validation architectures
            run["rebuild_same_archs"] = summary(accuracy_of([rebuild.predict(r["arch_id"]).ratio for r in rows],
                                                            [r["measured_ratio"] for r in rows]))
        result["adapted"][str(k)] = run
        print(f"  adapted with {k:>2}: {line(run['validation'])} (scale {run['parent_scale']:.3f} -> "
              f"{run['scale']:.3f}; refit {run['seconds']['refit']:.0f} s); per kind: {line(run['per_kind'])}"
              + (f"; rebuild on the same: {line(run['rebuild_same_archs'])}" if rebuild is not None else "")
              + (f"; two measurements agree at Spearman {run['measurement_repeat']['spearman']:.3f}"
                 if run["measurement_repeat"] else ""))
    small = [r for r in result["adapted"].values() if r["archs"] <= BAR["max_archs"]]
    adapted_meets = any(meets(r["validation"]) for r in small)
    if rebuild is None:
        # No table can order architectures better than two measurements of them agree with each other.
        rep = result["adapted"][str(max(r["archs"] for r in small))]["measurement_repeat"] if small else None
        error_met = any(r["validation"]["median_abs_error"] <= BAR["median_abs_error"] for r in small)
        if adapted_meets:
            verdict = "met (no rebuild measured for this pair)"
        elif rep is not None and rep["spearman"] < BAR["spearman"]:
            best = max(r["validation"]["spearman"] for r in small)
            how = ("as far as the measurements themselves" if best >= rep["spearman"] - 0.03 else
                   "less: adapting is not enough to rank here")
            verdict = (f"Spearman bar beyond the measurements' own repeatability (two measurements of the same "
                       f"{rep['n']} architectures here agree at {rep['spearman']:.3f}); adapted tables reach "
                       f"{best:.3f}, {how}; median |error| bar {'met' if error_met else 'missed'}")
        else:
            verdict = "missed (no rebuild measured for this pair)"
        result["bar"] = {**BAR, "rebuild_meets": None, "adapted_meets": adapted_meets, "verdict": verdict}
        print(f"  no rebuild; bar: {verdict}")
        return result
    reached = meets(result["rebuild"]["validation"])
    result["bar"] = {**BAR, "rebuild_meets": reached, "adapted_meets": adapted_meets,
                     "verdict": "met" if adapted_meets else "missed" if reached else
                     "not applicable: the full rebuild does not reach it either"}
    print(f"  rebuild: {line(result['rebuild']['validation'])} in {result['rebuild']['seconds']} s; bar: "
          f"{result['bar']['verdict']}")
    return result


def repeat(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How well two measurements of the same architectures here agree (the untouched check's and an
    adaptation's validation draw the same random architectures): the most any table could reach."""
    from scipy.stats import spearmanr

    before = {r["arch_id"]: r["measured_ratio"] for r in first}
    pairs = [(before[r["arch_id"]], r["measured_ratio"]) for r in second if r["arch_id"] in before]
    if len(pairs) < 4:
        return None
    a, b = zip(*pairs, strict=True)
    return {"n": len(pairs), "spearman": float(spearmanr(a, b).statistic),
            "median_abs_difference": sorted(abs(x - y) / y for x, y in pairs)[len(pairs) // 2]}


def meets(v: dict[str, Any]) -> bool:
    return v["median_abs_error"] <= BAR["median_abs_error"] and v["spearman"] >= BAR["spearman"]


def line(v: dict[str, Any]) -> str:
    return (f"median |error| {100 * v['median_abs_error']:.2f} %, 95th pct {100 * v['p95_abs_error']:.2f} %, "
            f"Spearman {v['spearman']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--check", type=int, default=30, help="random architectures every table is validated on")
    parser.add_argument("--archs", type=int, nargs="+", default=[6, 12, 24], help="measurements an adaptation uses")
    parser.add_argument("--target-ci", type=float, default=0.02,
                        help="every measurement's 95 %% half-width, relative (2 threads on 2 cores may need 0.04)")
    parser.add_argument("--no-rebuild", nargs="*", default=[], choices=list(PAIRS), metavar="PAIR",
                        help="pairs judged without a full rebuild under their child conditions")
    parser.add_argument("--quick", action="store_true",
                        help="a 2-choice sub-space, 3 architectures, loose intervals, under --out: checks the script")
    parser.add_argument("--out", type=Path, help="results folder (default: benchmarks/results; "
                                                 "--quick: /tmp/latency_transfer_quick)")
    args = parser.parse_args()
    if args.quick:
        s = Settings(check=3, archs=(2, 3), passes=1, target_ci=0.25, max_seconds=5.0, quick=True)
        out = args.out or Path("/tmp/latency_transfer_quick")
    else:
        s = Settings(check=args.check, archs=tuple(args.archs), target_ci=args.target_ci)
        out = args.out or RESULTS
    here_id = device_signature(BASE)["id"]
    folder = out / "latency_transfer" / here_id
    folder.mkdir(parents=True, exist_ok=True)
    cache = RunCache(out / f"latency_transfer{'_quick' if s.quick else ''}_runs.json")
    print(f"machine: {describe('cpu')}; signature {here_id}")
    path = out / f"latency_transfer{'_quick' if s.quick else ''}.json"
    before = read_json(path, {})  # pairs not run now keep their figures
    settings = {**dataclasses.asdict(s), "archs": list(s.archs)}
    results = {p["pair"]: {"settings": before.get("settings"), **p} for p in before.get("pairs", [])}
    for pair in args.pairs:
        try:
            results[pair] = {"settings": settings,
                             **run_pair(pair, folder, cache, s, here_id, pair not in args.no_rebuild)}
        except MachineBusy as e:  # e.g. 2 threads on 2 cores: no interval converges, so no figure is kept
            results[pair] = {"settings": settings, "pair": pair, "not_measured": str(e)}
            print(f"  {pair}: not measured: {e}")
        write_json(path, finite({"benchmark": "latency_transfer", "machine": describe("cpu"),
                                 "signature": device_signature(BASE),
                                 "bar": BAR, "pairs": [results[p] for p in PAIRS if p in results]}))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
