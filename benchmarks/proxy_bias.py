"""Which architectures does the 4-epoch proxy over- or under-rate against long training? (issue 31)

A Kendall tau (oneshot_ranking.py) says how often the proxy orders two architectures right, not
whether it is wrong the same way for a whole family. Here: every tin100 architecture with both a
4-epoch proxy run (proxy_runs.json, seed 0: what a search sees) and long runs (long_runs.json and
attention_signal.py's hand placements: mean 10-epoch test accuracy), a least-squares line
long ~ proxy, and each family's mean residual (long minus what the line predicts from the proxy),
with a bootstrap 95 % interval over architectures for the difference between two families:

- by position: an architecture with any `post` or `identity` block, against those with `block` or
  `pre` blocks only (the long runs punish the former: docs/results.md);
- by how many stages take attention (1, 2, 3).

A family with a negative mean residual is one the proxy over-rates: a search reading the proxy
puts it on its front more often than long training would. Seconds, from the committed files; no
data or training needed:

    .venv/bin/python benchmarks/proxy_bias.py       # writes benchmarks/results/proxy_bias.json
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

from harness import RESULTS, RunCache, write_json
from long_runs import LongRuns
from oneshot_ranking import template, truth_set

EPOCHS = 4


def positions(arch_id: str) -> list[str]:
    """The placement of each stage's block that is not `none` (`block` when the id names none)."""
    blocks = [part.split(":", 1)[1] for part in arch_id.split("|")]
    return [b.split("@", 1)[1] if "@" in b else "block" for b in blocks if b != "none"]


FAMILIES: dict[str, Callable[[str], str | None]] = {
    "position": lambda a: None if not positions(a)
    else ("post/identity" if {"post", "identity"} & set(positions(a)) else "block/pre only"),
    "stages": lambda a: f"{len(positions(a))} stages" if positions(a) else None,
}


def difference_interval(a: list[float], b: list[float], n: int = 4000) -> list[float]:
    """95 % bootstrap interval of mean(a) - mean(b), resampling each family's architectures."""
    rng = random.Random(0)
    diffs = sorted(statistics.fmean(rng.choices(a, k=len(a))) - statistics.fmean(rng.choices(b, k=len(b)))
                   for _ in range(n))
    return [diffs[int(0.025 * n)], diffs[int(0.975 * n) - 1]]


def main() -> None:
    long = LongRuns(None, RESULTS, None)
    truth = truth_set(long, template(long.task.classes))
    proxies = RunCache(RESULTS / "proxy_runs.json").all()
    pairs = {}
    for arch_id, t in truth.items():
        run = proxies.get(f"{long.prefix}|{arch_id}|{EPOCHS}ep|bs256|pad0|seed0")
        if run is not None:
            pairs[arch_id] = (run["result"]["accuracy"], t["mean"])
    slope, intercept = statistics.linear_regression([p for p, _ in pairs.values()], [t for _, t in pairs.values()])
    residual = {a: t - (intercept + slope * p) for a, (p, t) in pairs.items()}
    out = {"benchmark": "proxy_bias", "proxy_epochs": EPOCHS, "architectures": len(pairs),
           "line": {"intercept": intercept, "slope": slope},
           "residual_std": statistics.stdev(residual.values()), "families": {}}
    print(f"{len(pairs)} architectures with a {EPOCHS}-epoch proxy and long runs; long = {intercept:.4f} + "
          f"{slope:.3f} x proxy, residual std {out['residual_std']:.4f}")
    for name, family in FAMILIES.items():
        groups: dict[str, list[float]] = {}
        for arch_id, r in residual.items():
            key = family(arch_id)
            if key is not None:
                groups.setdefault(key, []).append(r)
        rows = {k: {"n": len(v), "mean_residual": statistics.fmean(v)} for k, v in sorted(groups.items())}
        for k, row in rows.items():
            print(f"  {name:8s} {k:15s} n={row['n']:3d}  mean residual {row['mean_residual']:+.4f}")
        keys = sorted(groups)
        first, last = keys[0], keys[-1]
        interval = difference_interval(groups[first], groups[last])
        print(f"  {name:8s} {first} - {last}: 95 % [{interval[0]:+.4f}, {interval[1]:+.4f}]")
        out["families"][name] = {"groups": rows, "difference": f"{first} - {last}", "difference_95": interval}
    print(f"wrote {write_json(RESULTS / 'proxy_bias.json', out)}")


if __name__ == "__main__":
    main()
