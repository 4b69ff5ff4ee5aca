"""Does the search beat hand placement and random search? (issue 5, part 1)

For each search seed, two studies with the same trial budget run on the same data and proxy:
the default sampler (TPE) and random search. Both start with the five uniform baselines (none,
SE, ECA, CBAM, GE on every stage at the papers' defaults), exactly as `nas search` does, and
then sample the default space. Compared, per study, over the *searched* trials only (baselines
excluded, or the front would contain them by construction):

- hypervolume of the front in (accuracy up, MFLOPs down) against one reference point for the
  whole run (the worst accuracy and the largest MFLOPs seen in any trial, stated in the output);
- how many of the five baselines the searched front dominates or ties.

Then `nas refine` (top 6, 3x the proxy's epochs, 3 seeds) retrains the first TPE study's front
and near-front neighbours, and the report says how often the refined order differs from the
proxy's (discordant pairs, Kendall's tau, architectures leaving or joining the front).

Training is deterministic (common random numbers: the proxy seed fixes initialisation, data
order and augmentation), so an architecture trained once gives the same result in every study;
results are shared between studies through `run_search(trainer=...)` instead of retraining.

    .venv/bin/python benchmarks/search_quality.py            # the demo study x 2 samplers x 3 seeds, ~40 min
    .venv/bin/python benchmarks/search_quality.py --quick    # synthetic data, a minute: checks the script

Writes benchmarks/results/search_quality.json and .png (or *_quick.* with --quick). Every
training result is saved at once in search_quality_runs.json: an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import optuna
import torch
import yaml
from harness import RESULTS, ROOT, describe, hypervolume, new_figure, read_json, save_figure, search_only, write_json
from optuna.trial import TrialState
from scipy.stats import kendalltau

from nas.arch import ArchConfig
from nas.data import load_dataset
from nas.refine import pareto_ranks, run_refine
from nas.study import run_search, train_architecture
from nas.studyfile import load_study_config
from nas.train import ProxyResult


def front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Non-dominated (accuracy, mflops, arch_id) points, cheapest first (nas refine's sort)."""
    ranks = pareto_ranks([(-accuracy, mflops) for accuracy, mflops, _ in points])
    return sorted({p for p, rank in zip(points, ranks, strict=True) if rank == 0}, key=lambda p: p[1])


def dominates_or_ties(front_points, baseline) -> bool:
    a, c = baseline
    return any(a2 >= a and c2 <= c for a2, c2, _ in front_points)


DEMO = ROOT / "studies" / "demo.yaml"


def study_file(folder: Path, name: str, sampler: str, seed: int, args: argparse.Namespace) -> Path:
    """The demo study (its backbone, data, space, proxy and trial budget) with another sampler/seed."""
    data = yaml.safe_load(DEMO.read_text())
    data.update(name=name, sampler={"name": sampler, "seed": seed}, trials=args.trials,
                search_space=str((DEMO.parent / data["search_space"]).resolve()),
                baselines=["none", "se", "eca", "cbam", "ge"])
    if args.quick:
        data.update(dataset={"name": "synthetic", "subset": 400, "image_size": 16}, proxy={"epochs": 1})
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, help="finished trials per study, baselines included "
                        "(default: the demo study's)")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--quick", action="store_true", help="synthetic data and 8 trials: checks the script")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    demo = yaml.safe_load(DEMO.read_text())
    args.trials = args.trials or demo["trials"]
    if args.quick:
        args.trials, args.seeds = 8, args.seeds[:2]
    suffix = "_quick" if args.quick else ""

    # Every training result is saved at once, so an interrupted benchmark resumes where it stopped.
    cache_path = RESULTS / f"search_quality_runs{suffix}.json"
    cache: dict[str, dict] = read_json(cache_path, {})
    trained = {"runs": 0, "seconds": 0.0}

    def shared_trainer(arch: ArchConfig, data, proxy, device):  # type: ignore[no-untyped-def]
        # CPU results are exact per thread count; the proxy and data size are in the key so a changed
        # demo study never reuses stale results
        key = (f"{arch.arch_id}|{proxy.epochs}ep-b{proxy.batch_size}-{len(data.train)}train-"
               f"{data.image_size[0]}px|{torch.get_num_threads()} threads")
        if key not in cache:
            result = train_architecture(arch, data, proxy, device)
            cache[key] = result.to_dict()
            RESULTS.mkdir(parents=True, exist_ok=True)
            write_json(cache_path, cache, indent=0, end="")
            trained["runs"] += 1
            trained["seconds"] += result.seconds
        return ProxyResult(**cache[key])

    started = time.perf_counter()
    runs: dict[str, list[dict]] = {s: [] for s in args.samplers}
    baselines: dict[str, tuple[float, float]] = {}
    all_points: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = None
        refined: dict | None = None
        for seed in args.seeds:
            for sampler in args.samplers:
                path = study_file(folder, f"{sampler}-{seed}", sampler, seed, args)
                config = search_only(load_study_config(path))
                data = data or load_dataset(**config.dataset)
                t0 = time.perf_counter()
                study = run_search(config, data, device="cpu", log=lambda line: None, progress=False,
                                   trainer=shared_trainer)
                searched, seen = [], set()
                for trial in study.get_trials(states=(TrialState.COMPLETE,)):
                    point = (trial.values[0], trial.values[1], trial.user_attrs["arch_id"])
                    all_points.append(point[:2])
                    if "baseline" in trial.user_attrs:
                        baselines[trial.user_attrs["baseline"]] = point[:2]
                    elif point[2] not in seen:
                        seen.add(point[2])
                        searched.append(point)
                runs[sampler].append({"seed": seed, "searched": searched, "distinct": len(seen),
                                      "seconds": time.perf_counter() - t0})
                print(f"seed {seed} {sampler:>6}: {len(searched)} searched trials, {len(seen)} distinct, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
                if refined is None and sampler == args.samplers[0]:
                    refined = refine_report(config, study, data, args)

    reference = (min(a for a, _ in all_points), max(c for _, c in all_points))
    summary: dict[str, dict] = {}
    for sampler, results in runs.items():
        for r in results:
            r["front"] = front(r["searched"])
            r["hypervolume"] = hypervolume([(a, c) for a, c, _ in r["front"]], reference)
            r["baselines_dominated_or_tied"] = sorted(
                name for name, b in baselines.items() if dominates_or_ties(r["front"], b))
        hvs = [r["hypervolume"] for r in results]
        beaten = [len(r["baselines_dominated_or_tied"]) for r in results]
        summary[sampler] = {
            "hypervolume_mean": statistics.fmean(hvs),
            "hypervolume_std": statistics.stdev(hvs) if len(hvs) > 1 else 0.0,
            "baselines_dominated_or_tied_mean": statistics.fmean(beaten),
            "per_seed": [{"seed": r["seed"], "hypervolume": r["hypervolume"],
                          "baselines_dominated_or_tied": r["baselines_dominated_or_tied"],
                          "front": [{"accuracy": a, "mflops": c, "arch_id": n} for a, c, n in r["front"]],
                          "distinct_architectures": r["distinct"]} for r in results],
        }
    tpe, rnd = summary.get("tpe"), summary.get("random")
    verdict = {}
    if tpe and rnd:
        verdict = {
            "tpe_hypervolume_beats_random_on_average": tpe["hypervolume_mean"] > rnd["hypervolume_mean"],
            "tpe_hypervolume_wins_per_seed": [a["hypervolume"] > b["hypervolume"]
                                              for a, b in zip(tpe["per_seed"], rnd["per_seed"], strict=True)],
            "tpe_front_dominates_or_ties_all_baselines_but_one": all(
                len(s["baselines_dominated_or_tied"]) >= len(baselines) - 1 for s in tpe["per_seed"]),
        }
    report = {
        "benchmark": "search_quality",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe("cpu"),
        "study": "studies/demo.yaml with the sampler and seed below" + (" (quick: synthetic data)" if args.quick
                                                                         else ""),
        "dataset": "synthetic" if args.quick else demo["dataset"], "backbone": demo["backbone"],
        "backbone_args": demo["backbone_args"], "space": demo["search_space"],
        "proxy": "epochs 1" if args.quick else demo["proxy"],
        "trials_per_study": args.trials, "baselines_per_study": 5,
        "seeds": args.seeds,
        "reference_point": {"accuracy": reference[0], "mflops": reference[1],
                            "rule": "worst accuracy and largest MFLOPs over every trial of the run"},
        "flops_convention": "fvcore: one multiply-add = one flop",
        "baselines": {k: {"accuracy": a, "mflops": c} for k, (a, c) in baselines.items()},
        "samplers": summary, "verdict": verdict, "refine": refined,
        "architectures_trained_this_invocation": trained["runs"], "training_seconds_this_invocation":
        trained["seconds"], "distinct_architectures_trained": len(cache),
        "wall_seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"search_quality{suffix}.json", report)
    plot(report, RESULTS / f"search_quality{suffix}.png")
    print(f"\nreference point: accuracy {reference[0]:.4f}, {reference[1]:.3f} MFLOPs "
          "(fvcore: one multiply-add = one flop)")
    for sampler, s in summary.items():
        print(f"{sampler:>6}: hypervolume {s['hypervolume_mean']:.5f} ± {s['hypervolume_std']:.5f}, "
              f"baselines dominated or tied {s['baselines_dominated_or_tied_mean']:.1f} of {len(baselines)} "
              f"(per seed: {[len(p['baselines_dominated_or_tied']) for p in s['per_seed']]})")
    for key, value in verdict.items():
        print(f"{key}: {value}")
    if refined:
        print(f"nas refine on {refined['study']} ({refined['settings']}): {refined['discordant_pairs']} of "
              f"{refined['pairs']} pairs of the {refined['architectures']} refined architectures change order "
              f"(Kendall tau proxy vs refined {refined['kendall_tau']:.3f}); front {refined['proxy_front_size']} "
              f"-> {refined['refined_front_size']} architectures, {refined['left_front']} left it, "
              f"{refined['joined_front']} joined")
    print(f"{trained['runs']} architectures trained now in {trained['seconds']:.0f} s ({len(cache)} in all); "
          f"wall {report['wall_seconds']:.0f} s; results in {RESULTS}/search_quality{suffix}.json")


def refine_report(config, study: optuna.Study, data, args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    """Run `nas refine` on one searched study and measure how much the higher fidelity reorders
    its front and near-front candidates: discordant pairs, Kendall's tau, front membership."""
    top, seeds = (4, 2) if args.quick else (6, 3)
    t0 = time.perf_counter()
    refined = run_refine(config, study, data, top=top, seeds=seeds, device="cpu", log=lambda line: None)
    trials = refined.get_trials(states=(TrialState.COMPLETE,))
    proxy = [t.user_attrs["proxy_accuracy"] for t in trials]
    mean = [t.user_attrs["refined_accuracy_mean"] for t in trials]
    pairs = [(i, j) for i in range(len(trials)) for j in range(i + 1, len(trials))]
    discordant = sum((proxy[i] - proxy[j]) * (mean[i] - mean[j]) < 0 for i, j in pairs)

    def front_ids(accuracy: list[float]) -> set[str]:
        points = [(a, t.user_attrs["mflops"], t.user_attrs["arch_id"]) for a, t in zip(accuracy, trials, strict=True)]
        return {name for _, _, name in front(points)}

    before, after = front_ids(proxy), front_ids(mean)
    return {
        "study": f"{config.name} (sampler {config.sampler['name']}, seed {config.sampler.get('seed')})",
        "settings": f"top {top}, {3 * config.proxy.epochs} epochs, {seeds} seeds",
        "architectures": len(trials), "pairs": len(pairs), "discordant_pairs": discordant,
        "kendall_tau": kendalltau(proxy, mean).statistic if len(trials) > 1 else None,
        "proxy_front_size": len(before), "refined_front_size": len(after),
        "left_front": len(before - after), "joined_front": len(after - before),
        "per_architecture": [{"arch_id": t.user_attrs["arch_id"], "mflops": t.user_attrs["mflops"],
                              "proxy_accuracy": p, "refined_mean": m,
                              "refined_std": t.user_attrs["refined_accuracy_std"]}
                             for t, p, m in zip(trials, proxy, mean, strict=True)],
        "seconds": time.perf_counter() - t0,
    }


def plot(report: dict, path: Path) -> None:
    fig, ax = new_figure(figsize=(7.5, 4.8), dpi=120)
    colours = {"tpe": "tab:blue", "random": "tab:orange"}
    for sampler, s in report["samplers"].items():
        for i, run in enumerate(s["per_seed"]):
            pts = run["front"]
            ax.step([p["mflops"] for p in pts], [p["accuracy"] for p in pts], where="post", alpha=0.8,
                    color=colours.get(sampler, None), marker="o", ms=3,
                    label=f"{sampler} fronts (one per seed)" if i == 0 else None)
    for name, b in report["baselines"].items():
        ax.scatter([b["mflops"]], [b["accuracy"]], marker="s", s=50, facecolors="none", edgecolors="tab:red")
        ax.annotate(name, (b["mflops"], b["accuracy"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=8, color="tab:red")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:red", label="uniform baselines")
    ax.set_xlabel("MFLOPs (fvcore: 1 multiply-add = 1 flop)")
    ax.set_ylabel("proxy validation accuracy")
    ax.set_title(f"searched fronts (baselines excluded), {report['trials_per_study']} trials per study, "
                 f"seeds {report['seeds']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
