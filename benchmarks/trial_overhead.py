"""Per-trial overhead outside training: sampling, building, FLOP counting and storage writes.

Runs the demo study's search (same backbone, space, image size, SQLite storage) with the proxy
training replaced by an instant stand-in, so every millisecond left is overhead a real trial
pays on top of its training. FLOP counting is timed separately (it builds the model and traces it
with fvcore). Compare with a demo trial's training time (about 3 s on 2 CPU cores at the demo's 1-epoch, 5k proxy).

    .venv/bin/python benchmarks/trial_overhead.py [--trials 40]

Writes benchmarks/results/trial_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import optuna
import yaml
from harness import RESULTS, ROOT, describe, search_only, write_json
from optuna.trial import TrialState

import nas.study.objective
from nas.data import load_dataset
from nas.study import run_search
from nas.studyfile import load_study_config
from nas.train import ProxyResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    demo = yaml.safe_load((ROOT / "studies" / "demo.yaml").read_text())
    flop_times: list[float] = []
    real_cost = nas.study.objective.arch_cost

    def timed_cost(arch, size):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return real_cost(arch, size)
        finally:
            flop_times.append(time.perf_counter() - start)

    def instant(arch, data, proxy, device):  # type: ignore[no-untyped-def]
        return ProxyResult(accuracy=0.5 + 0.01 * (hash(arch.arch_id) % 10), loss=1.0, train_loss=1.0, seconds=0.0,
                           train_seconds=0.0, images_per_second=0.0, epochs_done=proxy.epochs,
                           stopped_early=False, device=str(device))

    nas.study.objective.arch_cost = timed_cost
    with tempfile.TemporaryDirectory() as tmp:
        demo.update(name="overhead", trials=args.trials, baselines=[],
                    search_space=str(ROOT / "search_spaces" / "default.yaml"))
        demo["dataset"] = {**demo["dataset"], "subset": 1000}  # data loading is not per-trial; keep it short
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(demo))
        config = search_only(load_study_config(path))
        data = load_dataset(**config.dataset)
        start = time.perf_counter()
        study = run_search(config, data, device="cpu", log=lambda line: None, progress=False, trainer=instant)
        wall = time.perf_counter() - start
    nas.study.objective.arch_cost = real_cost
    durations = [t.duration.total_seconds() for t in study.get_trials(states=(TrialState.COMPLETE,))]
    per_trial = wall / len(durations)
    report = {
        "benchmark": "trial_overhead",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe("cpu"),
        "study": "studies/demo.yaml shape (cifar_resnet 8/16, 28 px, default space, SQLite), training stubbed",
        "trials": len(durations),
        "ms_per_trial_total": 1e3 * per_trial,
        "ms_per_trial_inside_optuna_trial_median": 1e3 * statistics.median(durations),
        "ms_flop_count_median": 1e3 * statistics.median(flop_times),
        "ms_other_median": 1e3 * (per_trial - statistics.median(flop_times)),
        "what_other_is": "sampling (TPE), queue/ask/tell, user attrs and heartbeat writes to SQLite, duplicate lookup, "
                         "progress line",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "trial_overhead.json", report)
    print(f"{len(durations)} trials, {1e3 * per_trial:.0f} ms per trial outside training: "
          f"FLOP count (build + fvcore trace) {report['ms_flop_count_median']:.0f} ms median, "
          f"sampling + storage + the rest {report['ms_other_median']:.0f} ms")


if __name__ == "__main__":
    main()
