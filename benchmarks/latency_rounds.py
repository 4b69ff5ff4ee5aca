"""Which estimator of a latency ratio reaches its interval sooner, and stays true to a second run?

`nas` times a candidate in rounds interleaved with the `none` reference (nas.latency.measure)
and stops once the 95 % interval of its ratio is within ±2 %. The interval was Student's t on
the mean log ratio; it is now the distribution-free interval of the median. This records every
round's log ratio for `--candidates` random architectures of a study's space (the build's
calibration draws: 1..n attention stages) over `--rounds` rounds, in two runs, and then replays
each estimator on those rounds as the build would. With several `--round-seconds`, the round
lengths alternate run by run, so that each meets the same machine:

- rounds to ±2 %: the first round count (>= 6) at which the interval is within the target;
  "never" when the recorded rounds do not get there;
- true to the other run: whether the other run's estimate from all its rounds lies inside the
  interval the estimator stopped with (a ratio re-measured minutes later should fall inside it),
  and how far apart the two are.

Needs an idle machine (it times). Writes benchmarks/results/latency_rounds.json.

    .venv/bin/python benchmarks/latency_rounds.py                 # the demo study, ~2 minutes
    .venv/bin/python benchmarks/latency_rounds.py --runs 4 --round-seconds 0.02 0.01 0.005   # ~6 minutes
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, describe, write_json  # noqa: E402

from nas.latency.builder import CALIBRATION_SEED  # noqa: E402
from nas.latency.measure import MIN_ROUNDS, TARGET, mean_ci, measure_ratios, median_ci  # noqa: E402
from nas.studyfile import load_study_config  # noqa: E402

ESTIMATORS = {"mean (t interval)": mean_ci, "median (order statistics)": median_ci}


def record(study: Path, candidates: int, rounds: int, runs: int,
           lengths: list[float]) -> tuple[dict[float, dict[str, list[list[float]]]], dict[float, float], str]:
    """Every round's log ratio per round length, candidate and run (the lengths alternate run by
    run, so each meets the same machine); the seconds one round took per length; the conditions."""
    config = load_study_config(study)
    target = config.latency_target(config.load_data())
    archs = target.random_architectures(candidates, seed=CALIBRATION_SEED, spread=True)
    reference = target.runner(target.template(), "none")
    logs: dict[float, dict[str, list[list[float]]]] = {length: {a.arch_id: [] for a in archs} for length in lengths}
    spent = dict.fromkeys(lengths, 0.0)
    for run in range(runs):
        for length in lengths:
            runners = {a.arch_id: target.runner(a) for a in archs}  # fresh sessions per run, as a second build
            got: dict[str, list[float]] = {}
            start = time.perf_counter()
            # a target no interval misses: exactly `rounds` rounds, every candidate in every round
            measure_ratios(reference, runners, target=math.inf, max_seconds=math.inf, round_seconds=length,
                           min_rounds=rounds, seed=run, log_ratios=got)
            spent[length] += time.perf_counter() - start
            for key, values in got.items():
                logs[length][key].append(values)
    return logs, {length: spent[length] / (runs * rounds) for length in lengths}, target.conditions.describe()


def replay(values: list[float], other: list[float], estimate: Callable[[list[float]], tuple[float, float]],
           target: float) -> dict[str, object]:
    """The estimator run on `values` round by round as measure_ratios stops: rounds to the target,
    the ratio and interval it stops with (all rounds when never), and the other run's all-round
    estimate against that interval."""
    stop = next((n for n in range(MIN_ROUNDS, len(values) + 1) if math.expm1(estimate(values[:n])[1]) <= target),
                None)
    centre, half = estimate(values[:stop or len(values)])
    again, _ = estimate(other)
    return {"rounds": stop, "ratio": math.exp(centre), "ratio_ci": math.exp(centre) * math.expm1(half),
            "other_run_ratio": math.exp(again), "other_run_inside": abs(again - centre) <= half,
            "other_run_difference": math.expm1(abs(again - centre))}


def robust_sd(values: list[float]) -> float:
    median = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - median) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("studies/demo.yaml"))
    parser.add_argument("--candidates", type=int, default=8, help="as many as a build times in one group")
    parser.add_argument("--rounds", type=int, default=120, help="rounds recorded per run")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--round-seconds", type=float, nargs="+", default=[0.02],
                        help="seconds each architecture is timed per round (nas: 0.02); several alternate run by run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latency_rounds.json")
    args = parser.parse_args()

    logs, round_seconds, conditions = record(args.study, args.candidates, args.rounds, args.runs,
                                             args.round_seconds)
    print(f"{args.study}: {args.candidates} candidates x {args.rounds} rounds x {args.runs} runs per round length; "
          f"{conditions}; {describe('cpu')}")
    rows, summary = [], {}
    for length, by_arch in logs.items():
        for key, runs in by_arch.items():
            row: dict[str, object] = {"round_seconds_target": length, "arch_id": key,
                                      "sd_log_ratio": [statistics.stdev(r) for r in runs],
                                      "robust_sd_log_ratio": [robust_sd(r) for r in runs]}
            for name, estimate in ESTIMATORS.items():
                row[name] = [replay(runs[i], runs[(i + 1) % len(runs)], estimate, args.target)
                             for i in range(len(runs))]
            rows.append(row)
        mine = [r for r in rows if r["round_seconds_target"] == length]
        sds = [s for r in mine for s in r["sd_log_ratio"]]  # type: ignore[union-attr]
        robust = [s for r in mine for s in r["robust_sd_log_ratio"]]  # type: ignore[union-attr]
        print(f"rounds of {1e3 * length:g} ms per timed architecture (one round {round_seconds[length]:.3f} s): "
              f"log ratio sd median {statistics.median(sds):.4f}, robust (MAD) sd median "
              f"{statistics.median(robust):.4f}")
        for name in ESTIMATORS:
            replays = [x for r in mine for x in r[name]]  # type: ignore[union-attr]
            reached = [x["rounds"] for x in replays if x["rounds"] is not None]
            s = {"replays": len(replays), "reached_target": len(reached),
                 "rounds_median": statistics.median(reached) if reached else None,
                 "seconds_median": statistics.median(reached) * round_seconds[length] if reached else None,
                 "other_run_inside": sum(x["other_run_inside"] for x in replays),
                 "other_run_difference_median": statistics.median(x["other_run_difference"] for x in replays),
                 "other_run_difference_max": max(x["other_run_difference"] for x in replays)}
            summary[f"{name}, {1e3 * length:g} ms"] = s
            print(f"  {name:26s}: reached ±{100 * args.target:g} % in {s['reached_target']}/{s['replays']} "
                  f"(median {s['rounds_median']} rounds, {s['seconds_median'] or math.nan:.1f} s); the other run's "
                  f"ratio inside the interval in {s['other_run_inside']}/{s['replays']}, apart by a median "
                  f"{100 * s['other_run_difference_median']:.2f} % (max {100 * s['other_run_difference_max']:.2f} %)")
    write_json(args.out, {"benchmark": "latency_rounds", "machine": describe("cpu"), "study": str(args.study),
                          "conditions": conditions, "candidates": args.candidates, "rounds": args.rounds,
                          "runs": args.runs, "target": args.target,
                          "round_seconds": {str(k): v for k, v in round_seconds.items()},
                          "summary": summary, "rows": rows,
                          "command": f"python benchmarks/latency_rounds.py --study {args.study} "
                                     f"--rounds {args.rounds} --runs {args.runs} --round-seconds "
                                     + " ".join(map(str, args.round_seconds))})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
