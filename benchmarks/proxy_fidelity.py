"""Can the proxy be trusted? Rank agreement between short proxies and long training (issue 5, part 2).

Twelve architectures — the five uniform baselines and seven sampled at random from the default
space — are trained at several cheap proxy settings and once at the long setting (10 epochs, 5x
the demo's, on the full Fashion-MNIST training set). For each proxy setting: Kendall's tau and
Spearman's rho between its validation accuracies and the long run's test accuracies (the
truth a user cares about; the search itself never sees the test split), and the seed noise of
every setting (std of validation accuracy of SE-everywhere over 5 seeds, as in
benchmarks/proxy_accuracy.py). The recommended proxy is the cheapest setting whose tau is within
0.1 of the best tau measured.

    .venv/bin/python benchmarks/proxy_fidelity.py            # about 1.5 h on 2 CPU cores (cached runs are reused)
    .venv/bin/python benchmarks/proxy_fidelity.py --quick    # synthetic data, a minute: checks the script

Every finished run is saved at once in benchmarks/results/proxy_fidelity_runs.json, so an
interrupted benchmark resumes where it stopped. Writes benchmarks/results/proxy_fidelity.json and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import optuna
from machine import describe
from scipy.stats import kendalltau, spearmanr

from nas import ArchConfig, BlockSpec, ProxyConfig, build_model, evaluate, load_dataset, train_proxy
from nas.space import load_space

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# (epochs, training subset incl. 10% validation, image size): the demo's is (2, 10000, 28)
PROXIES = [(1, 5000, 28), (1, 10000, 28), (2, 5000, 28), (2, 10000, 28), (2, 10000, 20), (2, 20000, 28),
           (4, 10000, 28)]
LONG = (10, None, 28)  # 10 epochs on the full training set
NOISE_SEEDS = 5


def architectures(n_random: int, args_: dict, in_chans: int) -> list[ArchConfig]:
    """The five uniform baselines, then distinct random samples of the default space."""
    archs = [ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), args_, 10, in_chans)
             for kind in ("none", "se", "eca", "cbam", "ge")]
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    template = archs[0]
    while len(archs) < 5 + n_random:
        trial = study.ask()
        arch = space.sample(trial, template)
        study.tell(trial, 0.0)
        if arch not in archs:
            archs.append(arch)
    return archs


def label(setting: tuple) -> str:
    epochs, subset, size = setting
    return f"{epochs}ep-{'full' if subset is None else subset}-{size}px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="synthetic data, tiny settings: checks the script")
    parser.add_argument("--random", type=int, default=7, help="random architectures besides the 5 baselines")
    args = parser.parse_args()
    name, proxies, long, backbone_args = "fashion-mnist", PROXIES, LONG, {"depth": 8, "width": 16}
    if args.quick:
        name, proxies, long = "synthetic", [(1, 200, 16), (1, 400, 16)], (3, None, 16)
        backbone_args, args.random = {"depth": 8, "width": 4}, 3
    suffix = "_quick" if args.quick else ""
    runs_path = RESULTS / f"proxy_fidelity_runs{suffix}.json"
    runs: dict[str, dict] = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    RESULTS.mkdir(parents=True, exist_ok=True)

    datasets: dict[tuple, object] = {}

    def data_for(setting):  # type: ignore[no-untyped-def]
        _, subset, size = setting
        key = (subset, size)
        if key not in datasets:
            datasets.clear()  # one at a time: the full set at 28 px is 47 MB of uint8
            datasets[key] = load_dataset(name, subset=subset, val_fraction=0.1, image_size=size, seed=0)
        return datasets[key]

    first = data_for(proxies[0])
    archs = architectures(args.random, backbone_args, first.in_chans)
    started = time.perf_counter()

    def run(arch: ArchConfig, setting: tuple, seed: int, with_test: bool = False) -> dict:
        key = f"{arch.arch_id}|{label(setting)}|seed{seed}"
        if key in runs:
            return runs[key]
        data = data_for(setting)
        config = ProxyConfig(epochs=setting[0], seed=seed)
        model = build_model(arch)
        result = train_proxy(model, data, config, "cpu", progress=False)
        entry = {"val_accuracy": result.accuracy, "seconds": result.seconds,
                 "images": int(setting[0] * len(data.train))}
        if with_test and data.test is not None:
            entry["test_accuracy"] = evaluate(model, data.test, data, "cpu")[0]
        runs[key] = entry
        runs_path.write_text(json.dumps(runs, indent=0))  # saved at once: an interrupted run resumes
        test = f"  test {entry['test_accuracy']:.4f}" if "test_accuracy" in entry else ""
        print(f"{label(setting):>18} seed {seed}  {entry['val_accuracy']:.4f}{test}  {entry['seconds']:6.1f} s  "
              f"{arch.arch_id}", flush=True)
        return entry

    # the long runs first: they are the truth every proxy is compared with
    ordered = sorted(proxies, key=lambda s: s[0] * (s[1] or 10**9) * s[2] ** 2)
    for setting in [long, *ordered]:
        for arch in archs:
            run(arch, setting, 0, with_test=setting is long)
        for seed in range(1, NOISE_SEEDS):
            run(archs[1], setting, seed, with_test=setting is long)  # SE everywhere: seed noise

    def accuracies(setting: tuple, metric: str) -> list[float]:
        return [runs[f"{a.arch_id}|{label(setting)}|seed0"][metric] for a in archs]

    def noise(setting: tuple) -> float:
        return statistics.stdev(runs[f"{archs[1].arch_id}|{label(setting)}|seed{s}"]["val_accuracy"]
                                for s in range(NOISE_SEEDS))

    truth = accuracies(long, "test_accuracy")
    table = []
    for setting in ordered:
        proxy = accuracies(setting, "val_accuracy")
        tau_test = kendalltau(proxy, truth)
        tau = tau_test.statistic
        rho = spearmanr(proxy, truth).statistic
        seconds = statistics.fmean(runs[f"{a.arch_id}|{label(setting)}|seed0"]["seconds"] for a in archs)
        images = runs[f"{archs[0].arch_id}|{label(setting)}|seed0"]["images"] * (setting[2] / 28) ** 2
        table.append({"setting": label(setting), "epochs": setting[0], "subset": setting[1],
                      "image_size": setting[2], "kendall_tau": tau, "kendall_p": tau_test.pvalue, "spearman_rho": rho,
                      "seed_std": noise(setting), "seconds_per_trial": seconds, "cost_28px_images": images})
    long_val = accuracies(long, "val_accuracy")
    best_tau = max(row["kendall_tau"] for row in table)
    eligible = [row for row in table if row["kendall_tau"] >= best_tau - 0.1]
    choice = min(eligible, key=lambda row: row["cost_28px_images"])
    report = {
        "benchmark": "proxy_fidelity",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe("cpu"),
        "dataset": name, "backbone": f"cifar_resnet {backbone_args}",
        "architectures": [a.arch_id for a in archs],
        "long": {"setting": label(long), "test_accuracy": truth, "val_accuracy": long_val,
                 "seed_std_val": noise(long),
                 "seed_std_test": statistics.stdev(
                     runs[f"{archs[1].arch_id}|{label(long)}|seed{s}"]["test_accuracy"] for s in range(NOISE_SEEDS)),
                 "val_vs_test_kendall_tau": kendalltau(long_val, truth).statistic},
        "proxies": table,
        "rule": "cheapest setting (epochs x images x pixels) whose Kendall tau is within 0.1 of the best",
        "recommended": choice["setting"],
        "wall_seconds_this_invocation": time.perf_counter() - started,
    }
    (RESULTS / f"proxy_fidelity{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, {label(s): accuracies(s, "val_accuracy") for s in ordered}, RESULTS / f"proxy_fidelity{suffix}.png")
    print(f"\nlong run {label(long)}: test accuracy {min(truth):.4f}..{max(truth):.4f} over {len(archs)} "
          f"architectures; seed std (val) {report['long']['seed_std_val']:.4f}, "
          f"(test) {report['long']['seed_std_test']:.4f}")
    print(f"long run's own validation vs test accuracy: Kendall tau "
          f"{report['long']['val_vs_test_kendall_tau']:.3f} (how well the truth agrees with itself on another split)")
    print(f"{'proxy':>18}  {'tau':>6}  {'p':>5}  {'rho':>6}  {'seed std':>8}  {'s/trial':>7}")
    for row in table:
        print(f"{row['setting']:>18}  {row['kendall_tau']:6.3f}  {row['kendall_p']:5.2f}  {row['spearman_rho']:6.3f}  "
              f"{row['seed_std']:8.4f}  {row['seconds_per_trial']:7.1f}")
    print(f"recommended proxy: {choice['setting']} ({report['rule']})")


def plot(report: dict, proxy_accuracies: dict[str, list[float]], path: Path) -> None:
    """One panel per proxy: its accuracy against the long run's test accuracy, tau in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = report["long"]["test_accuracy"]
    rows = {row["setting"]: row for row in report["proxies"]}
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.6), dpi=110)
    for ax, (setting, accs) in zip(axes.flat, proxy_accuracies.items(), strict=False):
        row = rows[setting]
        ax.errorbar(accs, truth, xerr=row["seed_std"], yerr=report["long"]["seed_std_test"], fmt="o", ms=4,
                    alpha=0.8, elinewidth=0.6)
        ax.set_title(f"{setting}: tau {row['kendall_tau']:.2f}, rho {row['spearman_rho']:.2f}"
                     + (" (chosen)" if setting == report["recommended"] else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    last = axes.flat[len(proxy_accuracies)]
    last.scatter([r["cost_28px_images"] for r in report["proxies"]], [r["kendall_tau"] for r in report["proxies"]])
    last.axhline(report["long"]["val_vs_test_kendall_tau"], color="grey", ls="--", lw=0.8)
    last.set_xscale("log")
    last.set_title("tau vs cost (grey: long run val vs test)", fontsize=8)
    last.tick_params(labelsize=7)
    fig.supxlabel("proxy validation accuracy (error bar: seed std)  |  last panel: images x epochs at 28 px",
                  fontsize=8)
    fig.supylabel(f"test accuracy after {report['long']['setting']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
