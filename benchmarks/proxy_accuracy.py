"""Proxy accuracy and seed noise: what two proxy epochs tell about one architecture.

cifar_resnet (depth 8, width 16) with SE on every stage, trained with the default ProxyConfig
(2 epochs, batch 256) on a 10k class-balanced Fashion-MNIST subset (9000 train / 1000 val) on
the CPU. Prints and writes benchmarks/results/proxy_accuracy.json:
- the validation accuracy and wall time of the seed-0 run (bar: accuracy >= 0.80);
- the seed noise: mean and standard deviation (sample std, n-1) of the validation accuracy over
  `--seeds` proxy seeds. The seed changes initialisation, data order and augmentation; the
  subset and the train/val split stay fixed (dataset seed 0), so only training noise is measured.
  A difference between two architectures smaller than about two such std is not a ranking.

Run: .venv/bin/python benchmarks/proxy_accuracy.py   (about a minute on a quiet 2-core CPU)
Ablations behind ProxyConfig's defaults (printed, written only with --out), for example:
    benchmarks/proxy_accuracy.py --seeds 8 --set pad=2          # crops
    benchmarks/proxy_accuracy.py --seeds 8 --flip on            # horizontal flips
    benchmarks/proxy_accuracy.py --seeds 8 --set bn_recal=0     # no batch-norm recalibration
    benchmarks/proxy_accuracy.py --seeds 8 --set decay=0.95     # triangular one-cycle schedule
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys
from pathlib import Path

import torch
import yaml
from harness import RESULTS, device_name, write_json

from nas import ArchConfig, BlockSpec, build_model
from nas.data import load_dataset
from nas.train import ProxyConfig, train_proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=10000, help="training pool size (default 10000)")
    parser.add_argument("--seeds", type=int, default=5, help="proxy seeds for the noise figure (default 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from here (default 0; the bar is the first seed's run)")
    parser.add_argument("--device", default="cpu", help="cpu (the issue's figure), cuda, auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--root", default=None, help="dataset cache (default: $NAS_DATA or ~/.cache)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a ProxyConfig setting (repeatable), e.g. --set lr=0.2")
    parser.add_argument("--flip", choices=("auto", "on", "off"), default="auto",
                        help="horizontal flips: as the dataset says (auto), or forced")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"JSON report (default: {RESULTS / 'proxy_accuracy.json'} unless ablating)")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    ablation = bool(overrides) or args.flip != "auto" or args.first_seed != 0
    out = args.out if args.out is not None or ablation else RESULTS / "proxy_accuracy.json"

    data = load_dataset("fashion-mnist", subset=args.subset, val_fraction=0.1, seed=0, root=args.root)
    if args.flip != "auto":
        data = dataclasses.replace(data, flip=args.flip == "on")
    arch = ArchConfig.uniform(
        "cifar_resnet", BlockSpec("se"), {"depth": 8, "width": 16}, num_classes=data.num_classes,
        in_chans=data.in_chans,
    )
    config = ProxyConfig.from_dict({**overrides, "threads": args.threads})
    print(f"{data!r}")
    print(f"arch {arch.arch_id}, flip {data.flip}, proxy {config.to_dict()}")
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}")

    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = train_proxy(lambda: build_model(arch), data, dataclasses.replace(config, seed=seed),
                             device=args.device, progress=False)
        runs.append({"seed": seed, **result.to_dict()})
        print(f"seed {seed}: val accuracy {result.accuracy:.4f}, val loss {result.loss:.4f}, "
              f"{result.seconds:.1f} s ({result.images_per_second:.0f} train img/s)", flush=True)

    first = runs[0]
    accs = [r["accuracy"] for r in runs]
    std = statistics.stdev(accs) if len(accs) > 1 else float("nan")
    bar = first["accuracy"] >= 0.80
    print(f"\nseed {first['seed']}: val accuracy {first['accuracy']:.4f} in {first['seconds']:.1f} s "
          f"(bar >= 0.80: {'met' if bar else 'NOT met'})")
    print(f"seed noise over {len(accs)} seeds: mean {statistics.mean(accs):.4f}, std {std:.4f} "
          "(init, data order, augmentation vary; subset and split fixed)")

    report = {
        "benchmark": "proxy_accuracy",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name(args.device),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads() if args.threads is None else args.threads,
        "load_average_1min_end": os.getloadavg()[0],
        "dataset": {"name": "fashion-mnist", "subset": args.subset, "val_fraction": 0.1, "seed": 0,
                    "train": len(data.train), "val": len(data.val), "flip": data.flip},
        "overrides": overrides,
        "arch": arch.to_dict(),
        "proxy": config.to_dict(),
        "accuracy": first["accuracy"],
        "seconds": first["seconds"],
        "bar_accuracy_0.80_met": bar,
        "seed_noise": {"seeds": len(accs), "mean": statistics.mean(accs), "std": std,
                       "std_kind": "sample (n-1)",
                       "varies": "init, data order, augmentation (subset/split fixed at seed 0)"},
        "runs": runs,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if out is None:
        print("ablation: not written (pass --out FILE to keep it)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report, indent=2)
    print(f"wrote {out}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
