"""FLOPs and parameters of the five uniform baselines on cifar_resnet (32 px) and resnet18 (224 px).

fvcore counts, one multiply-add = one flop, one image, attention ops counted (see nas/cost.py).
Deterministic: no timing involved.

    .venv/bin/python benchmarks/baseline_flops.py

Writes benchmarks/results/baseline_flops.json.
"""

from __future__ import annotations

import json

from harness import RESULTS, write_json

from nas import ArchConfig, BlockSpec, arch_cost

BACKBONES = [("cifar_resnet", {"depth": 8, "width": 16}, 32), ("cifar_resnet", {"depth": 20, "width": 16}, 32),
             ("resnet18", {}, 224)]
KINDS = ("none", "se", "eca", "cbam", "ge")


def main() -> None:
    rows = []
    print("FLOPs: fvcore, one multiply-add = one flop, one RGB image, 10 classes")
    print(f"{'backbone':<30} {'px':>4}  {'kind':<5} {'MFLOPs':>10} {'vs none':>8} {'params':>11}  arch_id")
    for backbone, args, size in BACKBONES:
        base = None
        for kind in KINDS:
            arch = ArchConfig.uniform(backbone, BlockSpec.paper_default(kind), args)
            cost = arch_cost(arch, size)
            base = base or cost.flops
            rows.append({"backbone": backbone, "backbone_args": args, "image_size": size, "kind": kind,
                         "arch_id": arch.arch_id, "flops": cost.flops, "params": cost.params})
            name = f"{backbone} {json.dumps(args)}"
            print(f"{name:<30} {size:>4}  {kind:<5} {cost.mflops:10.3f} {100 * (cost.flops / base - 1):+7.2f}% "
                  f"{cost.params:>11,}  {arch.arch_id}")
    write_json(RESULTS / "baseline_flops.json",
               {"benchmark": "baseline_flops", "convention": "fvcore: one multiply-add = one flop", "rows": rows})


if __name__ == "__main__":
    main()
