"""Can the proxy be trusted? Rank agreement between short proxies and long training (issue 5, part 2).

Twelve architectures — the five uniform baselines and seven sampled at random from the default
space — are trained at several cheap proxy settings and once at the long setting (10 epochs, 5x
the demo's, on the full Fashion-MNIST training set). For each proxy setting: Kendall's tau and
Spearman's rho between its validation accuracies and the long run's test accuracies (the
truth a user cares about; the search itself never sees the test split), and the seed noise of
every setting (std of validation accuracy of SE-everywhere over 5 seeds, as in
benchmarks/proxy_accuracy.py). The recommended proxy is the cheapest setting whose tau is within
0.1 of the best tau measured.

The noise decomposition (`noise` in the JSON; `--noise` runs only it): the `none` baseline at the
demo's proxy (1 epoch on 4,500 Fashion-MNIST training images) trained at NOISE_DEMO_SEEDS seeds,
each scored image by image on one fixed 5,000-image validation split carved from the training
pool (nested random prefixes of 500 = the demo's size, 1,000, 2,000 and 5,000 images).
- Evaluation noise: one trained model's accuracy over the draw of the validation images — the
  binomial std sqrt(p(1-p)/n), and a bootstrap over the images of seed 0's model.
- Training noise (initialisation, data order, augmentation): the seed std on a fixed split,
  minus the evaluation part in variance — the binomial part, or exactly the per-image part
  (how often single images flip between seeds, the diagonal of the seeds' covariance).
- What a larger split buys: the seed std at each size, against the seconds it costs to evaluate.

    .venv/bin/python benchmarks/proxy_fidelity.py            # about 1.5 h on 2 CPU cores (cached runs are reused)
    .venv/bin/python benchmarks/proxy_fidelity.py --noise    # the noise part only, ~12 min on 1 CPU thread
    .venv/bin/python benchmarks/proxy_fidelity.py --quick    # synthetic data, a minute: checks the script

Every finished run is saved at once in benchmarks/results/proxy_fidelity_runs.json, so an
interrupted benchmark resumes where it stopped. Writes benchmarks/results/proxy_fidelity.json and .png
(`--noise` updates only the JSON's `noise` section).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import math
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import optuna
import torch
from harness import RESULTS, default_space, describe, new_figure, read_json, save_figure, write_json
from scipy.stats import kendalltau, spearmanr

from nas import ArchConfig, BlockSpec, Dataset, ProxyConfig, Split, build_model, evaluate, load_dataset, train_proxy
from nas.noise import binomial_std, noise_record
from nas.space import SearchSpace

# (epochs, training subset incl. 10% validation, image size): the demo's is (2, 10000, 28)
PROXIES = [(1, 5000, 28), (1, 10000, 28), (2, 5000, 28), (2, 10000, 28), (2, 10000, 20), (2, 20000, 28),
           (4, 10000, 28)]
LONG = (10, None, 28)  # 10 epochs on the full training set
NOISE_SEEDS = 5
# The noise decomposition: the demo's proxy (studies/demo.yaml: 1 epoch, 5k subset with 10% validation,
# so 4,500 training images) with one fixed validation split of the largest size, scored in nested prefixes.
NOISE_DEMO_SEEDS = 48
NOISE_TRAIN = 4500
NOISE_VAL_SIZES = (500, 1000, 2000, 5000)  # 500: the demo's validation split
NOISE_BATCH = 250  # evaluation batch: every size is a whole number of batches, so each is timed exactly


def architectures(n_random: int, args_: dict, in_chans: int) -> list[ArchConfig]:
    """The five uniform baselines, then distinct random samples of the default space."""
    archs = [ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), args_, 10, in_chans)
             for kind in ("none", "se", "eca", "cbam", "ge")]
    space = SearchSpace.from_dict(default_space(choose_stages=False))  # the draws its figures came from
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
    parser.add_argument("--noise", action="store_true",
                        help="only the noise decomposition, on 1 CPU thread; updates the JSON's `noise` section")
    args = parser.parse_args()
    name, proxies, long, backbone_args = "fashion-mnist", PROXIES, LONG, {"depth": 8, "width": 16}
    if args.quick:
        name, proxies, long = "synthetic", [(1, 200, 16), (1, 400, 16)], (3, None, 16)
        backbone_args, args.random = {"depth": 8, "width": 4}, 3
    suffix = "_quick" if args.quick else ""
    runs_path = RESULTS / f"proxy_fidelity_runs{suffix}.json"
    runs: dict[str, dict] = read_json(runs_path, {})
    RESULTS.mkdir(parents=True, exist_ok=True)
    report_path = RESULTS / f"proxy_fidelity{suffix}.json"

    def save_runs() -> None:
        write_json(runs_path, runs, indent=0, end="")  # saved at once: an interrupted run resumes

    if args.noise:
        torch.set_num_threads(1)  # the noise part is sized for one thread (the machine's other core is busy)
        report = read_json(report_path, {"benchmark": "proxy_fidelity"})
        report["noise"] = noise_decomposition(args.quick, backbone_args, runs, save_runs)
        write_json(report_path, report)
        print_noise(report["noise"])
        return

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
        save_runs()
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
        "noise": noise_decomposition(args.quick, backbone_args, runs, save_runs),
    }
    write_json(report_path, report)
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
    print_noise(report["noise"])


def noise_decomposition(quick: bool, backbone_args: dict, runs: dict[str, dict], save) -> dict:  # type: ignore[no-untyped-def]
    """Train `none` at the demo's proxy over seeds, score each model image by image on one fixed
    validation split, and split the seed noise into its evaluation and training parts (module
    docstring); every finished seed is kept in `runs` at once."""
    name, train, sizes, seeds, epochs, size = "fashion-mnist", NOISE_TRAIN, NOISE_VAL_SIZES, NOISE_DEMO_SEEDS, 1, None
    if quick:
        name, train, sizes, seeds, size = "synthetic", 400, (50, 100, 200, 600), 4, 16
    largest = sizes[-1]
    data = load_dataset(name, subset=train + largest, val_fraction=largest / (train + largest), image_size=size,
                        seed=0)
    assert (len(data.train), len(data.val)) == (train, largest), data
    # nested prefixes of one random order, so every size is a random sample of the same split
    order = torch.randperm(largest, generator=torch.Generator().manual_seed(0))
    val = Split(data.val.images[order].contiguous(), data.val.labels[order].contiguous())
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), backbone_args, data.num_classes, data.in_chans)
    batch = math.gcd(NOISE_BATCH, *sizes)
    started = time.perf_counter()
    for seed in range(seeds):
        key = f"noise|{arch.arch_id}|{'synthetic' if quick else 'demo'}|{train}+{largest}|seed{seed}"
        if key in runs:
            continue
        runs[key] = _noise_run(arch, dataclasses.replace(data, val=val), epochs, seed, sizes, batch)
        save()
        entry = runs[key]
        print(f"noise seed {seed:2d}: val {entry['val_accuracy']:.4f} on {sizes[0]}  "
              f"train {entry['train_seconds']:5.1f} s  run {entry['seconds']:5.1f} s  "
              f"scoring {largest} images {entry['eval_seconds'][-1]:4.1f} s", flush=True)
    entries = [runs[f"noise|{arch.arch_id}|{'synthetic' if quick else 'demo'}|{train}+{largest}|seed{s}"]
               for s in range(seeds)]
    correct = np.stack([_unpack(e["correct"], largest) for e in entries]).astype(np.float64)  # seeds x images
    by_size = [_decompose(correct[:, :n], [e["eval_seconds"][i] for e in entries]) for i, n in enumerate(sizes)]
    demo, big = by_size[0], by_size[-1]
    train_seconds = statistics.median(e["train_seconds"] for e in entries)
    accuracies = [float(a) for a in correct[:, : sizes[0]].mean(axis=1)]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe("cpu"),
        "proxy": f"{name}, {train} training images, {epochs} epoch, batch 256, cifar_resnet {backbone_args}, "
                 "28 px (the demo's proxy)" if not quick else f"{name}, {train} training images (quick check)",
        "architecture": arch.arch_id,
        "seeds": seeds,
        "validation": f"one fixed split of {largest} images carved from the training pool (seed 0), scored in "
                      f"nested random prefixes of {', '.join(map(str, sizes))}; {sizes[0]} is the demo's size",
        "evaluation": {"val_size": sizes[0], "binomial_std": demo["binomial_std"],
                       "bootstrap_std_seed0": demo["bootstrap_std_seed0"]},
        "training": {"std": big["training_std_binomial"], "std_per_image_corrected": big["training_std_per_image"],
                     "measured_on": largest},
        "by_val_size": by_size,
        "median_train_seconds": train_seconds,
        "median_run_seconds": statistics.median(e["seconds"] for e in entries),
        "noise_record_demo": noise_record(accuracies, sizes[0], arch_id=arch.arch_id, epochs=epochs),
        "larger_split": {
            "val_sizes": [sizes[0], largest],
            "seed_std": [demo["seed_std"], big["seed_std"]],
            "std_ratio": big["seed_std"] / demo["seed_std"],
            "extra_eval_seconds": big["eval_seconds"] - demo["eval_seconds"],
            "train_seconds": train_seconds,
            "seeds_at_small_split_for_the_same_std": (demo["seed_std"] / big["seed_std"]) ** 2,
        },
        "seconds_of_all_runs": sum(e["seconds"] + e["eval_seconds"][-1] for e in entries),  # cached or not
        "wall_seconds_this_invocation": time.perf_counter() - started,
    }


def _noise_run(arch: ArchConfig, data: Dataset, epochs: int, seed: int, sizes: tuple[int, ...], batch: int) -> dict:
    """One seed: train as the search does (the model built after seeding), score the demo-size
    prefix in the trainer and every image of the split here, timing each prefix's evaluation."""
    built: list[torch.nn.Module] = []

    def builder() -> torch.nn.Module:
        built.append(build_model(arch))
        return built[-1]

    demo_view = dataclasses.replace(data, val=Split(data.val.images[: sizes[0]], data.val.labels[: sizes[0]]))
    result = train_proxy(builder, demo_view, ProxyConfig(epochs=epochs, seed=seed), "cpu", progress=False)
    model = built[0].eval()  # batch-norm statistics as the trainer recalibrated them
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    correct, seconds, tick = [], [], time.perf_counter()
    with torch.no_grad():
        for lo in range(0, sizes[-1], batch):
            x = (data.val.images[lo : lo + batch].float() / 255 - mean) / std
            correct.append(model(x).argmax(1) == data.val.labels[lo : lo + batch])
            if lo + batch in sizes:
                seconds.append(time.perf_counter() - tick)
    bits = torch.cat(correct).numpy()
    return {"val_accuracy": result.accuracy, "seconds": result.seconds, "train_seconds": result.train_seconds,
            "eval_seconds": seconds, "correct": base64.b64encode(np.packbits(bits).tobytes()).decode()}


def _unpack(packed: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(packed), dtype=np.uint8))[:n].astype(bool)


def _decompose(correct: np.ndarray, eval_seconds: list[float]) -> dict:
    """Seeds x images (1 = right) on one fixed split of n images: the seed std of the accuracy and
    its parts. Var over seeds = (1/n²)·Σ_ij cov(c_i, c_j): the diagonal is single images flipping
    between seeds (shrinks as 1/n: evaluation), the rest moves every image together (training)."""
    seeds, n = correct.shape
    accuracy = correct.mean(axis=1)
    seed_var = float(accuracy.var(ddof=1))
    p = float(accuracy.mean())
    per_image_var = float(correct.var(axis=0, ddof=1).sum()) / n**2
    resamples = np.random.default_rng(0).integers(0, n, size=(2000, n))
    return {
        "val_size": n,
        "mean_accuracy": p,
        "seed_std": math.sqrt(seed_var),
        "binomial_std": binomial_std(p, n),
        "bootstrap_std_seed0": float(correct[0][resamples].mean(axis=1).std(ddof=1)),
        "per_image_std": math.sqrt(per_image_var),
        "training_std_binomial": math.sqrt(max(0.0, seed_var - binomial_std(p, n) ** 2)),
        "training_std_per_image": math.sqrt(max(0.0, seed_var - per_image_var)),
        "std_of_mean_over_seeds": math.sqrt(seed_var / seeds),
        "eval_seconds": statistics.median(eval_seconds),
    }


def print_noise(noise: dict) -> None:
    print(f"\nnoise of {noise['architecture']} over {noise['seeds']} seeds ({noise['proxy']}; {noise['device']})")
    print(f"{'val images':>10}  {'accuracy':>8}  {'seed std':>8}  {'binomial':>8}  {'bootstrap':>9}  "
          f"{'per-image':>9}  {'training':>8}  {'eval s':>6}")
    for row in noise["by_val_size"]:
        print(f"{row['val_size']:>10}  {row['mean_accuracy']:8.4f}  {row['seed_std']:8.4f}  "
              f"{row['binomial_std']:8.4f}  {row['bootstrap_std_seed0']:9.4f}  {row['per_image_std']:9.4f}  "
              f"{row['training_std_per_image']:8.4f}  {row['eval_seconds']:6.2f}")
    larger = noise["larger_split"]
    print(f"evaluation noise at {noise['evaluation']['val_size']} images: binomial "
          f"{noise['evaluation']['binomial_std']:.4f}, bootstrap {noise['evaluation']['bootstrap_std_seed0']:.4f}; "
          f"training noise {noise['training']['std']:.4f} (binomial part removed) / "
          f"{noise['training']['std_per_image_corrected']:.4f} (per-image part removed), on {larger['val_sizes'][1]}")
    print(f"{larger['val_sizes'][0]} -> {larger['val_sizes'][1]} validation images: seed std "
          f"{larger['seed_std'][0]:.4f} -> {larger['seed_std'][1]:.4f} (x{larger['std_ratio']:.2f}) for "
          f"+{larger['extra_eval_seconds']:.2f} s of evaluation per trial (training: {larger['train_seconds']:.1f} s); "
          f"the same std from the small split needs {larger['seeds_at_small_split_for_the_same_std']:.1f} seeds")


def plot(report: dict, proxy_accuracies: dict[str, list[float]], path: Path) -> None:
    """One panel per proxy: its accuracy against the long run's test accuracy, tau in the title."""
    truth = report["long"]["test_accuracy"]
    rows = {row["setting"]: row for row in report["proxies"]}
    fig, axes = new_figure(2, 4, figsize=(12, 5.6), dpi=110)
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
    save_figure(fig, path)


if __name__ == "__main__":
    main()
