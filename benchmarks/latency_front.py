"""Does a search that sees latency find architectures that beat hand placement on accuracy AND latency?

Issue 27's evidence, on the task where attention measurably matters (tin100: Tiny-ImageNet, first
100 classes, 32 px, ResNet-20; studies/tiny_imagenet.yaml). One study with objectives [accuracy,
latency] (ONNX Runtime, batch 1, 1 thread, CPU; the latency table measured when the study is
created, before any training), single-fidelity TPE at 4 epochs (the equal-compute evidence: MO-ASHA
did not beat it), 40 trials, the five hand placements queued first. Then every searched
architecture on its front is re-trained at the long runs' setting (10 epochs, 3 seeds; the hand
placements' runs exist, benchmarks/long_runs.py), and the report compares, in (test accuracy,
latency ratio to none) space: the hypervolume of the searched front against the hand placements'
front, and whether a searched architecture matches the best hand placement's accuracy within noise
at >= 10 % lower latency.

Hours of CPU; every part resumes where it stopped (the study in SQLite, proxy and long runs in
benchmarks/results/*_runs.json, saved after every run). The latency table needs an idle machine:
run nothing beside the first minutes (`search` measures it before training).

    .venv/bin/python benchmarks/latency_front.py --data DEST --part search
    .venv/bin/python benchmarks/latency_front.py --data DEST --part long --seeds 0 1 2
    .venv/bin/python benchmarks/latency_front.py --data DEST --part report

Writes benchmarks/results/latency_front.json and latency_front.png; the study is snapshot to
benchmarks/results/latency_front/tin100_latency.db.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_signal import BASELINES  # noqa: E402
from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    default_space,
    describe,
    hypervolume,
    new_figure,
    save_figure,
    search_only,
    write_json,
)
from long_runs import LongRuns, ProxyRuns, check_study  # noqa: E402

from nas import ArchConfig  # noqa: E402
from nas.front import front_of  # noqa: E402
from nas.noise import TIE_FACTOR  # noqa: E402
from nas.study import open_study  # noqa: E402
from nas.study.latency import table_of  # noqa: E402
from nas.study.loop import run_search  # noqa: E402
from nas.studyfile import StudyConfig, load_study_config  # noqa: E402

FOLDER = RESULTS / "latency_front"
EPOCHS = 4  # the proxy of the single-fidelity TPE the equal-compute comparison measured
LOWER = 0.10  # "at >= 10 % lower latency" than the best hand placement


def study_config(data: Path, trials: int) -> StudyConfig:
    """studies/tiny_imagenet.yaml made single-fidelity with the latency objective, written beside
    the results (its table, measured when the study is created, lands there too)."""
    document = yaml.safe_load((ROOT / "studies" / "tiny_imagenet.yaml").read_text())
    document.pop("fidelity")
    document.update(name="tin100_latency", objectives=["accuracy", "latency"], trials=trials,
                    search_space=default_space(choose_stages=False),  # as its figures were measured
                    proxy={**document.get("proxy", {}), "epochs": EPOCHS},
                    dataset={**document["dataset"], "path": str(data / "tiny-imagenet-200")},
                    latency={"runtime": "onnxruntime", "batch_size": 1, "threads": 1, "device": "cpu"})
    path = FOLDER / "tin100_latency.yaml"
    path.write_text("# written by benchmarks/latency_front.py from studies/tiny_imagenet.yaml\n"
                    + yaml.safe_dump(document, sort_keys=False))
    config = search_only(load_study_config(path))
    check_study(config)
    return config


def snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a study database (sqlite3's online backup) beside the results, replaced whole."""
    tmp = target.with_suffix(".tmp")
    with sqlite3.connect(source) as src, sqlite3.connect(tmp) as copy:
        src.backup(copy)
    shutil.move(tmp, target)


def searched_front(config: StudyConfig) -> tuple[Any, Any]:
    study, _ = open_study(config, create=False)
    return study, front_of(study)


def non_dominated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not any(
        o["accuracy"] >= r["accuracy"] and o["ratio"] <= r["ratio"] and (o["accuracy"] > r["accuracy"]
                                                                         or o["ratio"] < r["ratio"])
        for o in rows)]


def report(config: StudyConfig, long: LongRuns) -> dict[str, Any]:
    study, front = searched_front(config)
    table = table_of(study)
    assert table is not None
    rows = []
    hand = {kind: long.baseline(kind) for kind in BASELINES}
    candidates = [(kind, arch) for kind, arch in hand.items()]
    candidates += [("searched", ArchConfig.from_dict(r.arch)) for r in front.rows if not r.baseline]
    for label, arch in candidates:
        truth = long.truth(arch)
        p = table.predict(arch.arch_id)
        rows.append({"label": label, "arch_id": arch.arch_id, "ratio": p.ratio, "ratio_ci": p.ratio_ci,
                     "latency_ms": p.ms, "latency_ci_ms": p.ms_ci,
                     "accuracy": truth["mean"] if truth else None, "accuracy_std": truth["std"] if truth else None,
                     "n": truth["n"] if truth else 0, "values": truth["values"] if truth else []})
    done = [r for r in rows if r["n"] >= 2]
    hand_rows = [r for r in done if r["label"] != "searched"]
    searched = [r for r in done if r["label"] == "searched"]
    validation = table.validation or {}
    out: dict[str, Any] = {
        "benchmark": "latency_front", "machine": describe("cpu"), "study": config.name,
        "trials": len(study.get_trials(deepcopy=False)), "proxy_epochs": EPOCHS, "latency": table.describe(),
        "table_validation": {k: validation.get(k) for k in ("n", "median_abs_error", "p95_abs_error", "spearman")},
        "rows": rows, "searched_on_front": sum(1 for r in front.rows if not r.baseline),
        "searched_long_done": len(searched)}
    if hand_rows and searched:
        everything = hand_rows + searched
        reference = (min(r["accuracy"] for r in everything), max(r["ratio"] for r in everything) * 1.001)
        best_hand = max(hand_rows, key=lambda r: r["accuracy"])
        wins = []
        for r in searched:
            spread = math.sqrt(r["accuracy_std"] ** 2 / r["n"] + best_hand["accuracy_std"] ** 2 / best_hand["n"])
            matches = r["accuracy"] >= best_hand["accuracy"] - TIE_FACTOR * spread
            # >= 10 % lower by the predictions, and lower beyond both intervals
            cheaper = (r["ratio"] <= (1 - LOWER) * best_hand["ratio"]
                       and best_hand["ratio"] - r["ratio"] > math.hypot(r["ratio_ci"], best_hand["ratio_ci"]))
            wins.append({"arch_id": r["arch_id"], "matches_accuracy": matches, "ten_percent_cheaper": cheaper,
                         "difference": r["accuracy"] - best_hand["accuracy"], "difference_std": spread})
        out.update(
            reference_point=reference, best_hand=best_hand["label"],
            hypervolume={"hand": hypervolume([(r["accuracy"], r["ratio"]) for r in hand_rows], reference),
                         "searched": hypervolume([(r["accuracy"], r["ratio"]) for r in searched], reference),
                         "both": hypervolume([(r["accuracy"], r["ratio"]) for r in everything], reference)},
            hand_front=[r["label"] for r in non_dominated(hand_rows)], comparisons=wins,
            verdict=any(w["matches_accuracy"] and w["ten_percent_cheaper"] for w in wins))
    return out


def plot_front(rows: list[dict[str, Any]], path: Path, *, hand: str, searched: str, ylabel: str,
               title: str) -> None:
    """Test accuracy (± seed std) against predicted latency (± 95 %): the hand placements (labelled)
    and the searched front, rows with 2+ seeds."""
    fig, ax = new_figure(figsize=(7, 4.5), dpi=120)
    for is_searched, color, label in ((False, "tab:red", hand), (True, "tab:blue", searched)):
        shown = [r for r in rows if r["n"] >= 2 and (r["label"] == "searched") == is_searched]
        ax.errorbar([r["ratio"] for r in shown], [r["accuracy"] for r in shown], xerr=[r["ratio_ci"] for r in shown],
                    yerr=[r["accuracy_std"] for r in shown], fmt="o", c=color, capsize=2, label=label)
        for r in shown:
            if not is_searched:
                ax.annotate(r["label"], (r["ratio"], r["accuracy"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=8, color=color)
    ax.set_xlabel("latency / none's (ONNX Runtime, batch 1, 1 thread; table prediction ± 95%)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder stage-datasets.sh filled")
    parser.add_argument("--part", choices=("search", "long", "report", "all"), default="all")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="long-run seeds (part long)")
    parser.add_argument("--threads", type=int, help="torch threads per training (default: torch's)")
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    config = study_config(args.data, args.trials)
    long = LongRuns(args.data, RESULTS, args.threads)
    if args.part in ("search", "all"):
        proxy_runs = ProxyRuns(RESULTS / "proxy_runs.json", long.prefix, args.threads)

        def log(line: str) -> None:
            print(f"{config.name}: {line}", flush=True)
            if (FOLDER / "tin100_latency.db").exists():
                snapshot(FOLDER / "tin100_latency.db", FOLDER / "snapshot.db")

        run_search(config, long.data, trials=args.trials, device="cpu", log=log, progress=False,
                   trainer=proxy_runs.trainer)
    if args.part in ("long", "all"):
        _, front = searched_front(config)
        for r in front.rows:
            if r.baseline:
                continue
            arch = ArchConfig.from_dict(r.arch)
            for seed in args.seeds:
                entry = long.train(arch, seed)
                print(f"long {arch.arch_id} seed {seed}: test {entry['test_accuracy']:.4f}", flush=True)
    if args.part in ("report", "all"):
        result = report(config, long)
        write_json(RESULTS / "latency_front.json", result)
        if "verdict" in result:
            plot_front(result["rows"], RESULTS / "latency_front.png", hand="hand placements",
                       searched="searched front (10 ep x 3 seeds)",
                       ylabel="tin100 test accuracy, 10 epochs (± seed std)",
                       title="tin100 ResNet-20: searched with latency vs hand placement")
        for r in result["rows"]:
            acc = ("-" if r["accuracy"] is None else
                   f"{r['accuracy']:.4f} ± {r['accuracy_std'] or 0:.4f} ({r['n']})")
            print(f"{r['label']:<9} x{r['ratio']:.3f} ± {r['ratio_ci']:.3f}  {acc}  {r['arch_id']}")
        if "verdict" in result:
            print(f"hypervolume: hand {result['hypervolume']['hand']:.4f}, searched "
                  f"{result['hypervolume']['searched']:.4f}; verdict: {result['verdict']}")
        print(f"searched architectures on the front: {result['searched_on_front']}, long-trained: "
              f"{result['searched_long_done']}; mean of hand accuracies "
              f"{statistics.fmean([r['accuracy'] for r in result['rows'] if r['accuracy']] or [0]):.4f}")


if __name__ == "__main__":
    main()
