"""Does `nas`'s tie rule say "tie" when two architectures are equally good? (issue 31)

`nas.noise.ties` calls two confirmed accuracies a tie when |Δ| <= 2·sqrt(σa²/na + σb²/nb), meant
as a two-sided ~95 % bound. With σ each architecture's own sample std over 2 or 3 seeds (what a
confirmation gives), the std is itself a rough guess, the ratio is Student-t with few degrees of
freedom, and the bound is far narrower than 95 %. A seed std pooled over the architectures
confirmed together (the same fidelity, so the same seed noise) has many more degrees of freedom.

This draws confirmations the way `nas refine` makes them, in seconds, with no training: `--archs`
architectures at `n` seeds each, every run the architecture's true accuracy plus normal seed noise
of `--std` (the pooled seed std of the tin100 long runs, 0.0084, docs/results.md), and compares the
first two, whose true accuracies are equal (`null`) or `--gap` stds apart (`power`). It prints how
often the rule fails to call the equal pair a tie (should be about 5 %) and how often it tells the
unequal pair apart, with each architecture's own std and with the pooled one
(`nas.noise.pooled_std`).

Pooling assumes the architectures share one seed std. The project's long runs test it: every
architecture with 3 or more 10-epoch runs (long_runs.json), Bartlett's and Levene's tests of equal
variances across them, and the spread of their own stds.

    .venv/bin/python benchmarks/tie_calibration.py      # writes benchmarks/results/tie_calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
from typing import Any

from harness import RESULTS, RunCache, write_json
from scipy.stats import bartlett, levene

from nas.noise import pooled_std, ties


@dataclasses.dataclass(frozen=True)
class Row:
    accuracy: float
    accuracy_std: float | None
    n_evals: int


def confirmation(rng: random.Random, truths: list[float], seeds: int, std: float) -> list[list[float]]:
    return [[t + rng.gauss(0.0, std) for _ in range(seeds)] for t in truths]


def verdicts(runs: list[list[float]]) -> tuple[bool | None, bool | None]:
    """Whether the first two architectures tie, by their own stds and by the pooled one."""
    own = [Row(statistics.fmean(r), statistics.stdev(r), len(r)) for r in runs[:2]]
    pooled = pooled_std(runs)
    shared = [Row(r.accuracy, pooled, r.n_evals) for r in own]
    return ties(*own), ties(*shared)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", type=int, default=8, help="architectures confirmed together (confirm.top's default)")
    parser.add_argument("--std", type=float, default=0.0084, help="true seed std of one run")
    parser.add_argument("--gap", type=float, default=3.0, help="the unequal pair's difference, in seed stds")
    parser.add_argument("--draws", type=int, default=20000)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    out: dict[str, Any] = {"benchmark": "tie_calibration", "archs": args.archs, "std": args.std, "gap_stds": args.gap,
                           "draws": args.draws, "seeds": {}}
    print(f"{args.archs} architectures confirmed together, seed std {args.std}, {args.draws} draws; the rule's "
          "nominal rate of calling an equal pair apart: about 5 %")
    for seeds in (2, 3, 4, 6):
        rates: dict[str, dict[str, float]] = {}
        for case, gap in (("null", 0.0), ("power", args.gap * args.std)):
            apart = {"own": 0, "pooled": 0}
            for _ in range(args.draws):
                truths = [0.25, 0.25 + gap] + [0.25 + rng.uniform(-0.02, 0.02) for _ in range(args.archs - 2)]
                own, pooled = verdicts(confirmation(rng, truths, seeds, args.std))
                apart["own"] += own is False
                apart["pooled"] += pooled is False
            rates[case] = {k: v / args.draws for k, v in apart.items()}
        out["seeds"][seeds] = rates
        print(f"  {seeds} seeds: an equal pair called apart {rates['null']['own']:.1%} with its own stds, "
              f"{rates['null']['pooled']:.1%} with the pooled std; a pair {args.gap:g} stds apart told apart "
              f"{rates['power']['own']:.1%} and {rates['power']['pooled']:.1%}")
    out["long_runs"] = equal_variances()
    lr = out["long_runs"]
    print(f"long runs: {lr['architectures']} architectures at >= 3 seeds, own stds {lr['own_std_min']:.4f}-"
          f"{lr['own_std_max']:.4f} (median {lr['own_std_median']:.4f}), pooled {lr['pooled_std']:.4f}; equal "
          f"variances: Bartlett p {lr['bartlett_p']:.2f}, Levene p {lr['levene_p']:.2f}")
    print(f"wrote {write_json(RESULTS / 'tie_calibration.json', out)}")


def equal_variances() -> dict[str, Any]:
    """Do the long runs' architectures share one seed std? Their test accuracies at 3 or more seeds."""
    runs: dict[tuple[str, str], list[float]] = {}
    for entry in RunCache(RESULTS / "long_runs.json").all().values():
        runs.setdefault((entry["task"], entry["arch_id"]), []).append(entry["test_accuracy"])
    groups = [v for v in runs.values() if len(v) >= 3]
    own = sorted(statistics.stdev(g) for g in groups)
    return {"architectures": len(groups), "own_std_min": own[0], "own_std_max": own[-1],
            "own_std_median": statistics.median(own), "pooled_std": pooled_std(groups),
            "bartlett_p": float(bartlett(*groups).pvalue), "levene_p": float(levene(*groups).pvalue)}


if __name__ == "__main__":
    main()
