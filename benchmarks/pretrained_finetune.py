"""Does identity insertion keep a pretrained network usable, and does placement still matter once
the network was pretrained?

Issue 32's evidence, CPU-sized. Tiny-ImageNet-200 at 32 px is cut in two tasks that share no
image and no class: task A, the first 100 classes of wnids.txt (tin100: 100 training images per
class), and task B, 20 of the other 100 (classes 100-119: 150 training and 50 validation images
per class; all 100 at this budget left every arm within a few points of chance). A `none`
ResNet-20 (cifar_resnet depth 20, width 16) is pretrained on A (6 epochs) and saved as `nas train
--save` would save it; then every arm fine-tunes it on B with the proxy (3 epochs, batch 64,
lr 0.2), 3 seeds:

- identity vs paper initialisation: SE, ECA, CBAM and GE at paper defaults in every unit
  (`placement: block`), inserted as the identity (`weights.identity: true`, the default) or at
  their paper initialisation (`false`), against `none` (the pretrained network as it is);
- the proxy's fine-tuning settings against their defaults, for `none` and SE: `backbone_lr_scale`
  0.1 (default 1.0), `freeze_epochs` 1 (default 0: the first epoch trains only the new
  classifier and blocks), and `bn_recal` 0 (default 4096: batch-norm statistics recalibrated on
  task B's training images before scoring; 0 scores with the running statistics training left);
- `none` trained from scratch on B with the same proxy: what the pretraining is worth.

`--backbone mobilenet_v3_small` asks the same of the network whose designers chose SE: a
MobileNetV3-Small (torchvision's, stride-1 stem for 32 px) pretrained on A *with* its 9 SE blocks
(`own`), then fine-tuned on B as `designer` (its pretrained SE kept), `none` (stripped), and SE
(paper default, reduction 16) or ECA in every unit's SE slot (`expand`), each inserted as the
identity and at its paper initialisation; and the step-0 accuracies on A of each.

Every run is saved as it finishes (RunCache: benchmarks/results/pretrained_finetune_runs.json), so a
killed benchmark resumes. One torch thread by default (the machine is shared).

    .venv/bin/python benchmarks/pretrained_finetune.py --data /work/data          # about 1 h on 1 thread
    .venv/bin/python benchmarks/pretrained_finetune.py --data /work/data --backbone mobilenet_v3_small
    .venv/bin/python benchmarks/pretrained_finetune.py --quick                     # the generated set: seconds
    .venv/bin/python benchmarks/pretrained_finetune.py --report   # the figures from the runs finished so far

Writes benchmarks/results/pretrained_finetune.json and pretrained_finetune.png (with
`--backbone mobilenet_v3_small`: pretrained_finetune_mobilenet.json and .png).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, RunCache, describe, new_figure, save_figure, write_json  # noqa: E402

from nas.arch import ArchConfig  # noqa: E402
from nas.backbones import get_backbone  # noqa: E402
from nas.backbones.weights import Pretrained  # noqa: E402
from nas.blocks import BlockSpec  # noqa: E402
from nas.build import build_model  # noqa: E402
from nas.data import Dataset, Split, load_dataset  # noqa: E402
from nas.files import exclusive_lock  # noqa: E402
from nas.train import ProxyConfig, evaluate, train_proxy  # noqa: E402

ARGS = {"depth": 20, "width": 16}
MOBILE = "mobilenet_v3_small"
MOBILE_ARGS = {"small_input": True}
KINDS = ("se", "eca", "cbam", "ge")
PRETRAIN = {"epochs": 6, "batch_size": 128, "lr": 0.2, "pad": 2, "seed": 0}
PER_CLASS_A, PER_CLASS_B, VAL_PER_CLASS = 100, 150, 50
CLASSES_B = (100, 120)  # 20 of the other 100 classes: a task a 3-epoch fine-tune can learn on a CPU
FINE_TUNE = {"epochs": 3, "batch_size": 64, "lr": 0.2}


def split_classes(data: Dataset, lo: int, hi: int, train_per_class: int, val_per_class: int) -> Dataset:
    """Classes [lo, hi) of `data`, relabelled from 0, the first N images of each class kept."""
    def part(split: Split, per_class: int) -> Split:
        keep = []
        for label in range(lo, hi):
            keep.append((split.labels == label).nonzero().flatten()[:per_class])
        index = torch.cat(keep)
        return dataclasses.replace(split, images=split.images[index], labels=split.labels[index] - lo)

    return dataclasses.replace(data, train=part(data.train, train_per_class), val=part(data.val, val_per_class),
                               test=None, num_classes=hi - lo,
                               classes=None if data.classes is None else tuple(data.classes[lo:hi]))


def tasks(quick: bool, data_root: Path) -> tuple[Dataset, Dataset]:
    if quick:
        data = load_dataset("synthetic", subset=400, image_size=16, seed=0)
        half = data.num_classes // 2
        return (split_classes(data, 0, half, 40, 10), split_classes(data, half, data.num_classes, 20, 10))
    data = load_dataset("tiny-imagenet", path=data_root / "tiny-imagenet-200", image_size=32, val_fraction=0.1,
                        seed=0)
    return (split_classes(data, 0, 100, PER_CLASS_A, 20),
            split_classes(data, *CLASSES_B, PER_CLASS_B, VAL_PER_CLASS))


def spec_of(kind: str, backbone: str) -> BlockSpec:
    """`none`, `designer` (the backbone's own attention kept) or a kind at its paper defaults, placed
    where the backbone's uniform baselines go (ResNet: `block`; MobileNetV3: the SE slot, `expand`)."""
    if kind in ("none", "designer"):
        return BlockSpec("own" if kind == "designer" else "none")
    return BlockSpec.paper_default(kind, get_backbone(backbone).default_placement())


def pretrain(task_a: Dataset, file: Path, args: dict[str, Any], cache: RunCache, threads: int,
             backbone: str = "cifar_resnet") -> dict[str, Any]:
    """The network trained on task A (ResNet: `none`; MobileNetV3: its designer's SE kept), saved as
    `nas train --save` saves it (arch + state dict)."""
    kind = "none" if backbone == "cifar_resnet" else "designer"
    key = pretrain_key(args, backbone)
    if file.exists():  # pretraining is not bitwise repeatable across machines: the record names its file's hash
        done = cache.get(f"{key}|{Pretrained.of(file).sha256[:12]}")
        if done is not None:
            return done
    arch = ArchConfig.uniform(backbone, spec_of(kind, backbone), args, task_a.num_classes, task_a.in_chans)
    model = build_model(arch)
    result = train_proxy(model, task_a, ProxyConfig(**PRETRAIN, threads=threads), "cpu", progress=False)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": arch.to_dict(), "state_dict": model.state_dict()}, file)
    entry = {"val_accuracy": result.accuracy, "seconds": result.seconds, "sha256": Pretrained.of(file).sha256}
    cache.save(f"{key}|{entry['sha256'][:12]}", entry)
    return entry


def pretrain_key(args: dict[str, Any], backbone: str) -> str:
    """What a pretraining depends on (the file's hash is appended once it exists)."""
    return f"pretrain|A|{args}|{PRETRAIN}" + ("" if backbone == "cifar_resnet" else f"|{backbone}:designer")


ARMS: list[tuple[str, str, dict[str, Any]]] = [  # (name, kind, how)
    ("none", "none", {}),
    *[(f"{k} identity", k, {}) for k in ("se", "cbam")],
    *[(f"{k} paper init", k, {"identity": False}) for k in ("se", "cbam")],
    *[(f"{k} identity", k, {}) for k in ("eca", "ge")],
    *[(f"{k} paper init", k, {"identity": False}) for k in ("eca", "ge")],
    ("none, backbone_lr_scale 0.1", "none", {"backbone_lr_scale": 0.1}),
    ("se identity, backbone_lr_scale 0.1", "se", {"backbone_lr_scale": 0.1}),
    ("none, freeze_epochs 1", "none", {"freeze_epochs": 1}),
    ("se identity, freeze_epochs 1", "se", {"freeze_epochs": 1}),
    ("none, bn_recal 0", "none", {"bn_recal": 0}),
    ("se identity, bn_recal 0", "se", {"bn_recal": 0}),
    ("none from scratch", "none", {"scratch": True}),
]
MOBILE_ARMS: list[tuple[str, str, dict[str, Any]]] = [
    ("designer (pretrained SE kept)", "designer", {}),
    ("none (SE stripped)", "none", {}),
    *[(f"{k} identity", k, {}) for k in ("se", "eca")],
    *[(f"{k} paper init", k, {"identity": False}) for k in ("se", "eca")],
]


def arms_of(backbone: str) -> list[tuple[str, str, dict[str, Any]]]:
    return ARMS if backbone == "cifar_resnet" else MOBILE_ARMS


def setting(args: dict[str, Any]) -> str:
    """What a fine-tuning run's result depends on besides its arm, seed and weights file."""
    return f"{args}|{FINE_TUNE}|B{CLASSES_B}x{PER_CLASS_B}+{VAL_PER_CLASS}"


def fine_tune(name: str, kind: str, how: dict[str, Any], seed: int, file: Path, task_b: Dataset,
              args: dict[str, Any], cache: RunCache, threads: int, backbone: str = "cifar_resnet") -> dict[str, Any]:
    weights = None if how.get("scratch") else Pretrained.of(file, identity=how.get("identity", True))
    source = "scratch" if weights is None else weights.sha256[:12]
    key = f"finetune|{name}|seed{seed}|{setting(args)}|{source}"
    done = cache.get(key)
    if done is not None:
        return done
    arch = ArchConfig.uniform(backbone, spec_of(kind, backbone), args, task_b.num_classes, task_b.in_chans, weights)
    settings = {k: v for k, v in how.items() if k in ("backbone_lr_scale", "freeze_epochs", "bn_recal")}
    config = ProxyConfig(**FINE_TUNE, seed=seed, threads=threads, **settings)
    tick = time.perf_counter()
    result = train_proxy(lambda: build_model(arch), task_b, config, "cpu", progress=False)
    entry = {"val_accuracy": result.accuracy, "val_loss": result.loss, "seconds": time.perf_counter() - tick}
    cache.save(key, entry)
    print(f"{name:<36} seed {seed}: {result.accuracy:.4f} ({entry['seconds']:.0f} s)", flush=True)
    return entry


@dataclasses.dataclass(frozen=True)
class Net:
    """One benchmark: which network is pretrained, with what arguments, and where its files go."""

    backbone: str
    args: dict[str, Any]
    quick: bool

    @classmethod
    def of(cls, backbone: str, quick: bool) -> Net:
        if backbone == MOBILE:
            return cls(MOBILE, {**MOBILE_ARGS, **({"width_mult": 0.25} if quick else {})}, quick)
        return cls("cifar_resnet", {"depth": 8, "width": 4} if quick else ARGS, quick)

    @property
    def stem(self) -> str:  # the runs' cache is shared by both backbones; their reports are not
        return "pretrained_finetune-quick" if self.quick else "pretrained_finetune"

    @property
    def out(self) -> Path:
        return RESULTS / (self.stem + ("" if self.backbone == "cifar_resnet" else "_mobilenet"))

    @property
    def file(self) -> Path:  # not committed: rebuilt from the cached key when missing
        name = "resnet-none-task-a.pt" if self.backbone == "cifar_resnet" else "mobilenet-designer-task-a.pt"
        return RESULTS / self.stem / name

    @property
    def step0_kinds(self) -> tuple[str, ...]:
        return ("none", *KINDS) if self.backbone == "cifar_resnet" else ("designer", "none", "se", "eca")


def report(net: Net, runs: dict[tuple[str, str], list[dict[str, Any]]], pretrained: dict[str, dict[str, Any]],
           step0: dict[str, dict[str, float]]) -> None:
    """`runs` by (arm, the pretrained file's hash), `pretrained` and `step0` by that hash: a network
    pretrained again (a lost file) gets rows of its own, compared only with runs from the same file."""
    rows = []
    for (name, weights), entries in runs.items():
        accs = [e["val_accuracy"] for e in entries]
        rows.append({"arm": name, "weights": weights, "seeds": len(accs), "mean": statistics.fmean(accs),
                     "std": statistics.stdev(accs) if len(accs) > 1 else None, "accuracies": accs,
                     "seconds_per_run": statistics.fmean(e["seconds"] for e in entries)})
    placement = get_backbone(net.backbone).default_placement()
    write_json(net.out.with_suffix(".json"), {
        "question": f"identity insertion vs paper init after a short fine-tune of a pretrained {net.backbone}; "
                    "placements vs none after fine-tuning; the proxy's fine-tuning settings",
        "setup": {"backbone": net.backbone, "backbone_args": net.args, "pretrain": PRETRAIN,
                  "pretrained_with": "none" if net.backbone == "cifar_resnet" else "designer (own SE)",
                  "task_a": "tiny-imagenet classes 0-99 (32 px), 100 training images per class",
                  "task_b": f"tiny-imagenet classes {CLASSES_B[0]}-{CLASSES_B[1] - 1} (32 px), {PER_CLASS_B} "
                            f"training / {VAL_PER_CLASS} validation images per class",
                  "fine_tune_proxy": FINE_TUNE, "placement": f"{placement}, paper defaults", "quick": net.quick},
        "pretrained": {w: {"val_accuracy_on_a": p["val_accuracy"], "seconds": p["seconds"],
                           "step0_on_a": step0.get(w, {})} for w, p in pretrained.items()},
        "rows": rows,
        "machine": describe(),
    })
    fig, ax = new_figure(figsize=(9, 0.35 * len(rows) + 1.2))
    several = len({r["weights"] for r in rows}) > 1
    names = [f"{r['arm']} [{r['weights'][:6]}]" if several else r["arm"] for r in rows][::-1]
    means = [r["mean"] for r in rows][::-1]
    stds = [r["std"] or 0 for r in rows][::-1]
    ax.barh(names, means, xerr=stds, color="#4c72b0")
    ax.set_xlabel(f"{net.backbone}: validation accuracy on task B, 3-epoch fine-tune (mean ± seed std)")
    save_figure(fig, net.out.with_suffix(".png"))
    for r in rows:
        std = "   n/a" if r["std"] is None else f"{r['std']:.4f}"
        print(f"{r['arm']:<36} {r['weights']} {r['mean']:.4f} ± {std}  ({r['seeds']} seeds, "
              f"{r['seconds_per_run']:.0f} s/run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"), help="the folder holding tiny-imagenet-200")
    parser.add_argument("--backbone", choices=("cifar_resnet", MOBILE), default="cifar_resnet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="the generated set and a tiny network: checks the script")
    parser.add_argument("--report", action="store_true", help="train nothing: report the runs already finished")
    parser.add_argument("--step0", action="store_true", help="only the step-0 accuracies on task A (no training)")
    parser.add_argument("--arms", nargs="+", help="only these arms (their names as printed)")
    opts = parser.parse_args()
    net = Net.of(opts.backbone, opts.quick)
    cache = RunCache(RESULTS / f"{net.stem}_runs.json")
    if opts.report:
        return report_cached(net)
    task_a, task_b = tasks(opts.quick, opts.data)
    if opts.step0:
        step_zero(net, task_a, cache)
        return None
    torch.set_num_threads(opts.threads)
    net.file.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(net.file.with_name(f".{net.file.name}.lock")):  # processes split by --seeds pretrain once
        pretrained = pretrain(task_a, net.file, net.args, cache, opts.threads, net.backbone)
    print(f"pretrained on A: validation accuracy {pretrained['val_accuracy']:.4f}", flush=True)
    step_zero(net, task_a, cache)
    for seed in opts.seeds:  # a seed of every arm before the next seed: a stopped run still compares every arm
        for name, kind, how in arms_of(net.backbone):
            if opts.arms and name not in opts.arms:
                continue
            fine_tune(name, kind, how, seed, net.file, task_b, net.args, cache, opts.threads, net.backbone)
    report_cached(net)


def step_zero(net: Net, task_a: Dataset, cache: RunCache) -> dict[str, float]:
    """Before any step, on task A itself (the pretrained classifier kept): validation accuracy of the
    pretrained network with each kind inserted on every unit, as the identity and at paper init."""
    out = {}
    for kind in net.step0_kinds:
        for identity in ((True,) if kind in ("none", "designer") else (True, False)):
            name = kind if kind in ("none", "designer") else f"{kind} {'identity' if identity else 'paper init'}"
            key = f"step0|{name}|{net.args}|{Pretrained.of(net.file).sha256[:12]}"
            if cache.get(key) is None:
                arch = ArchConfig.uniform(net.backbone, spec_of(kind, net.backbone), net.args, task_a.num_classes,
                                          task_a.in_chans, Pretrained.of(net.file, identity))
                model = build_model(arch).eval()
                cache.save(key, {"val_accuracy": evaluate(model, task_a.val, task_a, "cpu")[0]})
            out[name] = cache.get(key)["val_accuracy"]
            print(f"step 0 on A, {name:<16} {out[name]:.4f}", flush=True)
    return out


def report_cached(net: Net) -> None:
    """The report from the run cache alone: every arm with the seeds finished so far, per pretrained file."""
    cached = RunCache(RESULTS / f"{net.stem}_runs.json").all()
    head = pretrain_key(net.args, net.backbone) + "|"
    pretrained = {k[len(head):]: v for k, v in cached.items() if k.startswith(head)}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, _, _ in arms_of(net.backbone):
        for k, v in sorted(cached.items()):
            if k.startswith(f"finetune|{name}|seed") and f"|{setting(net.args)}|" in k:
                runs.setdefault((name, k.rsplit("|", 1)[1]), []).append(v)
    step0: dict[str, dict[str, float]] = {}
    for k, v in cached.items():
        parts = k.split("|")
        if parts[0] == "step0" and parts[2] == str(net.args):
            step0.setdefault(parts[3], {})[parts[1]] = v["val_accuracy"]
    report(net, runs, pretrained, step0)


if __name__ == "__main__":
    main()
