"""How many training images does batch-norm recalibration need before a proxy's score?

The proxy replaces batch-norm running statistics by averages over `bn_recal` training images
before it evaluates (nas.train, default 4096). On the demo that forward pass is a quarter of a
trial: 4096 of its 4,500 training images. This trains each architecture of a study once per seed
at the study's proxy, then scores the same weights after recalibrating on each `--sizes` count
(each from scratch: the statistics are reset first), and reports, against the default's scores:

- how far each architecture's validation accuracy moves (the same weights, so nothing but the
  recalibration differs), beside the seed std of the proxy itself;
- Kendall's tau between each size's ranking and the default's, beside tau between two seeds at
  the default (how much the ranking moves anyway);
- the seconds each recalibration takes.

    .venv/bin/python benchmarks/bn_recal.py                      # the demo study, ~4 minutes on 2 cores

Writes benchmarks/results/bn_recal.json. Timings need an idle machine; the accuracies do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, describe, write_json  # noqa: E402

from nas.build import build_model  # noqa: E402
from nas.latency.builder import CHECK_SEED  # noqa: E402
from nas.studyfile import load_study_config  # noqa: E402
from nas.train import score_weights, train_proxy  # noqa: E402

DEFAULT = 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("studies/demo.yaml"))
    parser.add_argument("--random", type=int, default=11,
                        help="random architectures of the space, beside its baselines")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, DEFAULT])
    parser.add_argument("--out", type=Path, default=RESULTS / "bn_recal.json")
    args = parser.parse_args()

    config = load_study_config(args.study)
    data = config.load_data()
    target = config.latency_target(data)  # only for its random draws of the space (no timing)
    archs = [config.baseline_arch(spec, data.num_classes, data.in_chans) for _, spec in config.baselines]
    archs += [a for a in target.random_architectures(args.random + len(archs), seed=CHECK_SEED)
              if a.arch_id not in {b.arch_id for b in archs}][: args.random]
    scores: dict[int, list[list[float]]] = {size: [] for size in args.sizes}  # [seed][arch]
    seconds: dict[int, list[float]] = {size: [] for size in args.sizes}
    for seed in range(args.seeds):
        proxy = dataclasses.replace(config.proxy, seed=seed)
        for size in args.sizes:
            scores[size].append([])
        for arch in archs:
            torch.manual_seed(seed)  # as a trial builds its candidate (nas.study.objective)
            model = build_model(arch)
            result = train_proxy(model, data, proxy, "cpu", progress=False)
            for size in args.sizes:
                start = time.perf_counter()
                accuracy, _ = score_weights(model, data, dataclasses.replace(proxy, bn_recal=size), "cpu")
                seconds[size].append(time.perf_counter() - start)
                scores[size][seed].append(accuracy)
            if proxy.bn_recal in scores:  # the trainer's own score is the same recalibration, recomputed
                assert abs(scores[proxy.bn_recal][seed][-1] - result.accuracy) < 1e-9, (arch.arch_id, seed)
            print(f"seed {seed} {arch.arch_id}: " + "  ".join(f"{size}: {scores[size][seed][-1]:.4f}"
                                                             for size in args.sizes), flush=True)

    reference = scores[DEFAULT]
    seed_std = statistics.fmean(statistics.stdev(reference[s][i] for s in range(args.seeds))
                                for i in range(len(archs))) if args.seeds > 1 else None
    between_seeds = [kendalltau(reference[a], reference[b]).statistic
                     for a, b in itertools.combinations(range(args.seeds), 2)]
    rows = {}
    for size in args.sizes:
        moves = [abs(scores[size][s][i] - reference[s][i]) for s in range(args.seeds) for i in range(len(archs))]
        taus = [kendalltau(scores[size][s], reference[s]).statistic for s in range(args.seeds)]
        rows[size] = {"mean_abs_change": statistics.fmean(moves), "max_abs_change": max(moves),
                      "kendall_tau_vs_default": statistics.fmean(taus),
                      "seconds_median": statistics.median(seconds[size])}
    print(f"{args.study}: {len(archs)} architectures x {args.seeds} seeds; proxy seed std at {DEFAULT}: "
          f"{seed_std:.4f}; Kendall tau between seeds at {DEFAULT}: {statistics.fmean(between_seeds):.3f}; "
          f"{describe('cpu')}")
    for size, row in rows.items():
        print(f"bn_recal {size:5d}: |change| mean {row['mean_abs_change']:.4f} max {row['max_abs_change']:.4f}; "
              f"tau vs {DEFAULT} {row['kendall_tau_vs_default']:.3f}; {row['seconds_median']:.2f} s")
    write_json(args.out, {"benchmark": "bn_recal", "machine": describe("cpu"), "study": str(args.study),
                          "architectures": [a.arch_id for a in archs], "seeds": args.seeds,
                          "seed_std_at_default": seed_std, "kendall_tau_between_seeds": between_seeds,
                          "sizes": {str(k): v for k, v in rows.items()},
                          "scores": {str(k): v for k, v in scores.items()},
                          "command": f"python benchmarks/bn_recal.py --study {args.study}"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
