"""Does a search beat the placement MobileNetV3's designers chose for SE?

Issue 26's evidence. MobileNetV3-Small (torchvision's, untrained, stride-1 stem for 32 px) on
tin100 (Tiny-ImageNet, first 100 classes, 32 px, 14,000 training images: the task where attention
measurably matters for ResNet-20, benchmarks/attention_signal.py). One study (studies/designer.yaml,
search space search_spaces/designer.yaml): objectives [accuracy, latency] (ONNX Runtime, batch 1,
1 thread, CPU; the table measured when the study is created, before any training), single-fidelity
TPE at 3 epochs (20 trials, one thread: the long runs share the machine), the baselines `none`
(the designer's SE stripped), `designer` (kept: 9 SE in stages 1, 3, 4), SE and ECA in every
unit's SE slot queued first. Then the baselines and every searched architecture on the front are
re-trained at the long runs' setting (10 epochs, 4-pixel crops, 3 seeds, test accuracy on the
held-out split), and the report says, in (test accuracy, latency ratio to none) space, whether a
searched placement matches the designer's accuracy within noise at lower latency (beyond both
intervals), beats it at equal latency, or whether the designer's placement stays on the front.

Hours of CPU; every part resumes where it stopped (the study in SQLite, long runs in
benchmarks/results/designer_runs.json, saved after every run). The latency table needs an idle
machine: run nothing beside the first minutes of `search`.

    .venv/bin/python benchmarks/designer_front.py --data DEST --part search
    .venv/bin/python benchmarks/designer_front.py --data DEST --part long --seeds 0 1 2
    .venv/bin/python benchmarks/designer_front.py --data DEST --part report

Writes benchmarks/results/designer_front.json and designer_front.png; the study is snapshot to
benchmarks/results/designer_front/snapshot.db, its latency table beside it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_signal import EPOCHS, SUBSET, TASKS  # noqa: E402
from harness import RESULTS, ROOT, describe, hypervolume, search_only, write_json  # noqa: E402
from latency_front import non_dominated, plot_front, snapshot  # noqa: E402
from long_runs import LongRuns  # noqa: E402

from nas import ArchConfig  # noqa: E402
from nas.front import front_of  # noqa: E402
from nas.noise import TIE_FACTOR  # noqa: E402
from nas.study import open_study  # noqa: E402
from nas.study.latency import table_of  # noqa: E402
from nas.study.loop import run_search  # noqa: E402
from nas.studyfile import StudyConfig, load_study_config  # noqa: E402

FOLDER = RESULTS / "designer_front"
RUNS = RESULTS / "designer_runs.json"
TASK = TASKS["tin100"]


def study_config(data: Path, trials: int | None) -> StudyConfig:
    """studies/designer.yaml with the data folder filled in, written beside the results (its
    database and latency table land there too)."""
    document = yaml.safe_load((ROOT / "studies" / "designer.yaml").read_text())
    document.update(search_space=str(ROOT / "search_spaces" / "designer.yaml"),
                    dataset={**document["dataset"], "path": str(data / "tiny-imagenet-200")})
    if trials is not None:
        document["trials"] = trials
    path = FOLDER / "designer.yaml"
    path.write_text("# written by benchmarks/designer_front.py from studies/designer.yaml\n"
                    + yaml.safe_dump(document, sort_keys=False))
    config = search_only(load_study_config(path))
    want = {"classes": TASK.classes, "image_size": TASK.image_size, "subset": SUBSET}
    if {key: config.dataset.get(key) for key in want} != want:
        raise SystemExit(f"{path}: dataset {dict(config.dataset)} is not the long runs' task {want}")
    return config


class DesignerRuns(LongRuns):
    """long_runs.LongRuns on the same task and setting, MobileNetV3-Small's runs in their own file
    (under `results`: end_to_end.py's --quick keeps its toy runs out of the committed one)."""

    def __init__(self, data_root: Path, threads: int | None, results: Path = RESULTS, epochs: int = EPOCHS,
                 subset: int | None = SUBSET) -> None:
        super().__init__(data_root, results, threads, epochs=epochs, subset=subset)
        self.path = results / RUNS.name
        self.prefix = f"{self.prefix}|mobilenet_v3_small"  # the task's key names the ResNet-20 it was made for


def candidates(config: StudyConfig, searched: bool = True) -> list[tuple[str, ArchConfig]]:
    """The baselines (by label), then, with `searched` and once the study exists, the searched
    architectures on its front (the baselines need no study: their long runs can go first)."""
    out = [(label, config.baseline_arch(spec, TASK.classes, 3)) for label, spec in config.baselines]
    if searched and (FOLDER / "designer.db").exists():
        study, _ = open_study(config, create=False)
        out += [("searched", ArchConfig.from_dict(r.arch)) for r in front_of(study).rows if not r.baseline]
    return out


def report(config: StudyConfig, long: DesignerRuns) -> dict[str, Any]:
    study, _ = open_study(config, create=False)
    table = table_of(study)
    assert table is not None
    rows = []
    for label, arch in candidates(config):
        truth = long.truth(arch)
        p = table.predict(arch.arch_id)
        rows.append({"label": label, "arch_id": arch.arch_id, "ratio": p.ratio, "ratio_ci": p.ratio_ci,
                     "latency_ms": p.ms, "latency_ci_ms": p.ms_ci,
                     "accuracy": truth["mean"] if truth else None, "accuracy_std": truth["std"] if truth else None,
                     "n": truth["n"] if truth else 0, "values": truth["values"] if truth else []})
    done = [r for r in rows if r["n"] >= 2]
    validation = table.validation or {}
    out: dict[str, Any] = {
        "benchmark": "designer_front", "machine": describe("cpu"), "study": config.name,
        "backbone": config.backbone, "backbone_args": dict(config.backbone_args),
        "own_attention": config.own_attention(),
        "trials": len(study.get_trials(deepcopy=False)), "proxy_epochs": config.proxy.epochs,
        "long_epochs": EPOCHS, "latency": table.describe(),
        "table_validation": {k: validation.get(k) for k in ("n", "median_abs_error", "p95_abs_error", "spearman")},
        "rows": rows, "searched_on_front": sum(1 for r in rows if r["label"] == "searched"),
        "searched_long_done": sum(1 for r in done if r["label"] == "searched")}
    designer = next((r for r in done if r["label"] == "designer"), None)
    searched = [r for r in done if r["label"] == "searched"]
    if designer is None or not searched:
        return out
    comparisons = []
    for r in searched:
        spread = math.sqrt(r["accuracy_std"] ** 2 / r["n"] + designer["accuracy_std"] ** 2 / designer["n"])
        difference = r["accuracy"] - designer["accuracy"]
        latency_gap = designer["ratio"] - r["ratio"]
        latency_noise = math.hypot(r["ratio_ci"], designer["ratio_ci"])
        comparisons.append({
            "arch_id": r["arch_id"], "difference": difference, "difference_std": spread,
            "matches_accuracy": difference >= -TIE_FACTOR * spread, "beats_accuracy": difference > TIE_FACTOR * spread,
            "cheaper": latency_gap > latency_noise, "equal_latency": abs(latency_gap) <= latency_noise,
            "latency_ratio_gap": latency_gap})
    everything = done
    reference = (min(r["accuracy"] for r in everything), max(r["ratio"] for r in everything) * 1.001)
    hand = [r for r in done if r["label"] != "searched"]
    front_labels = [r["label"] for r in non_dominated(everything)]
    out.update(
        comparisons=comparisons, reference_point=reference,
        hypervolume={"hand": hypervolume([(r["accuracy"], r["ratio"]) for r in hand], reference),
                     "searched": hypervolume([(r["accuracy"], r["ratio"]) for r in searched], reference),
                     "both": hypervolume([(r["accuracy"], r["ratio"]) for r in everything], reference)},
        front=front_labels,
        matches_designer_cheaper=any(c["matches_accuracy"] and c["cheaper"] for c in comparisons),
        beats_designer_equal_latency=any(c["beats_accuracy"] and c["equal_latency"] for c in comparisons),
        designer_on_front="designer" in front_labels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder stage-datasets.sh filled")
    parser.add_argument("--part", choices=("search", "baselines", "front", "long", "report", "all"), default="all",
                        help="baselines: the long runs of the baselines alone (no study needed); front: those of "
                             "the searched front alone (both at once: two processes, one thread each)")
    parser.add_argument("--trials", type=int, help="finished trials to reach (default: the study file's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="long-run seeds (part long)")
    parser.add_argument("--threads", type=int, help="torch threads per training (default: torch's)")
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    config = study_config(args.data, args.trials)
    long = DesignerRuns(args.data, args.threads)
    if args.part in ("search", "all"):
        def log(line: str) -> None:
            print(f"{config.name}: {line}", flush=True)
            if (FOLDER / "designer.db").exists():
                snapshot(FOLDER / "designer.db", FOLDER / "snapshot.db")

        run_search(config, config.load_data(), trials=args.trials, device="cpu", log=log,
                   progress=False)
    if args.part in ("baselines", "front", "long", "all"):
        for seed in args.seeds:  # every candidate at one seed before the next: a partial run is a fair one
            for label, arch in candidates(config, searched=args.part != "baselines"):
                if args.part == "front" and label != "searched":
                    continue
                entry = long.train(arch, seed)
                print(f"long {label} {arch.arch_id} seed {seed}: test {entry['test_accuracy']:.4f}", flush=True)
    if args.part in ("report", "all"):
        result = report(config, long)
        write_json(RESULTS / "designer_front.json", result)
        if "comparisons" in result:
            plot_front(result["rows"], RESULTS / "designer_front.png", hand="baselines (10 ep x seeds)",
                       searched="searched front (10 ep x seeds)", ylabel="tin100 test accuracy (± seed std)",
                       title="MobileNetV3-Small: searched SE placement vs the designer's")
        for r in result["rows"]:
            acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f} ± {r['accuracy_std'] or 0:.4f} ({r['n']})"
            print(f"{r['label']:<9} x{r['ratio']:.3f} ± {r['ratio_ci']:.3f}  {acc}  {r['arch_id']}")
        for key in ("matches_designer_cheaper", "beats_designer_equal_latency", "designer_on_front"):
            if key in result:
                print(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
