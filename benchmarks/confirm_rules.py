"""How should a confirmation spend its long runs: few candidates at many seeds, or many at few? (issue 31)

end_to_end.py's tpe4papers arm proposed the architecture the bar needs (ECA `pre` on stage 2 alone)
and the confirmation never trained it: the proxy ranked it 9th and 18 long runs paid for 6
candidates at 3 seeds. Whether breadth should win is a question of two noises: the 4-epoch proxy's
error about long accuracy (proxy_bias.json: residual std 0.014, of which the one-seed truth's own
noise is 0.008) against the seed noise of a confirmed mean (0.008 / sqrt(seeds)). This measures it
on the project's own runs, in seconds, with no training:

- the pool: every tin100 architecture of the default space with a 4-epoch proxy (proxy_runs.json,
  seed 0: what a search sees) and long runs (long_runs.json and the hand placements'; their mean
  10-epoch test accuracy is the simulation's truth), latency ratios predicted from the tin100 table;
- a simulated study: the five hand placements and --archs architectures drawn from the pool;
- each rule picks candidates as `nas.refine.candidates` does (non-domination ranks of proxy accuracy
  and latency, then proxy accuracy) and spends --runs long runs on them; a long run is the truth plus
  Gaussian seed noise (the pooled seed std); the front is chosen on the runs' means among the
  candidates with the most seeds (a one-seed row carries no uncertainty, so it is never shown);
- the score: the chosen front's hypervolume in (true accuracy, latency ratio) minus the hand
  placements', and how often the front holds a proposed architecture whose true accuracy is within
  one seed std of ECA everywhere's at >= 10 % lower latency (the bar's second half).

Rules (R = --runs):
  depth3    R // 3 candidates x 3 seeds (today's end_to_end.py and nas refine)
  breadth2  R // 2 candidates x 2 seeds
  halving   R // 2 candidates x 1 seed, then 2 more seeds each for the candidates in the order of
            their one-seed means' non-domination ranks, while the budget lasts (successive halving)
  halving_spread  halving, promoting a rank's two ends first (NSGA-II's crowding distance)

    .venv/bin/python benchmarks/confirm_rules.py        # writes benchmarks/results/confirm_rules.json
    # without the architectures a rule may have been chosen for (ECA `pre` on stage 2, any setting):
    .venv/bin/python benchmarks/confirm_rules.py --leave-out 's2:eca-[^|]*@pre'
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
from typing import Any

from attention_signal import BASELINES
from harness import RESULTS, RunCache, hypervolume, write_json
from latency_front import non_dominated
from long_runs import LongRuns
from oneshot_ranking import template, truth_set

from nas.latency.table import load_table
from nas.refine import pareto_ranks

TABLE = RESULTS / "latency_front" / "tin100_latency.latency.json"
PROXY_EPOCHS = 4
SEED_STD = 0.0084  # pooled seed std of the tin100 long runs (docs/results.md)
LOWER = 0.10


def ordered(rows: list[dict[str, Any]], accuracy: str, spread: bool = False) -> list[dict[str, Any]]:
    """`nas.refine.candidates`' order: non-domination rank of (accuracy up, ratio down), then accuracy;
    with `spread`, then crowding distance first (NSGA-II's: a rank's two ends before its middle)."""
    points = [[-r[accuracy], r["ratio"]] for r in rows]
    ranks = pareto_ranks(points)
    crowding = crowding_distances(points, ranks) if spread else [0.0] * len(rows)
    return [rows[i] for i in sorted(range(len(rows)), key=lambda i: (ranks[i], -crowding[i], -rows[i][accuracy]))]


def crowding_distances(points: list[list[float]], ranks: list[int]) -> list[float]:
    """NSGA-II's crowding distance within each rank: inf at a rank's ends in any coordinate, else the
    sum over coordinates of the gap between its neighbours, over that rank's span. (Optuna's is private.)"""
    distance = [0.0] * len(points)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for k in range(len(points[0])):
            members.sort(key=lambda i: points[i][k])
            span = points[members[-1]][k] - points[members[0]][k]
            distance[members[0]] = distance[members[-1]] = math.inf
            for before, i, after in zip(members, members[1:], members[2:], strict=False):
                distance[i] += (points[after][k] - points[before][k]) / span if span > 0 else 0.0
    return distance


def run_rule(rule: str, study: list[dict[str, Any]], runs: int, rng: random.Random) -> list[dict[str, Any]]:
    """The candidates with their simulated long-run accuracies, as the rule spends `runs` runs."""
    seeds = {"depth3": 3, "breadth2": 2, "halving": 1, "halving_spread": 1}[rule]
    chosen = ordered(study, "proxy")[: runs // seeds]
    drawn = {r["arch_id"]: [rng.gauss(r["truth"], SEED_STD) for _ in range(seeds)] for r in chosen}
    spent = seeds * len(chosen)
    if rule.startswith("halving"):
        seen = [{**r, "mean": statistics.fmean(drawn[r["arch_id"]])} for r in chosen]
        for r in ordered(seen, "mean", spread=rule == "halving_spread"):
            if spent + 2 > runs:
                break
            drawn[r["arch_id"]] += [rng.gauss(r["truth"], SEED_STD) for _ in range(2)]
            spent += 2
    most = max(len(v) for v in drawn.values())
    return [{**r, "accuracy": statistics.fmean(drawn[r["arch_id"]])} for r in chosen
            if len(drawn[r["arch_id"]]) == most]


def score(rule: str, study: list[dict[str, Any]], hand: list[dict[str, Any]], runs: int, reference: tuple[float, float],
          rng: random.Random) -> tuple[float, bool]:
    confirmed = run_rule(rule, study, runs, rng)
    front = non_dominated(confirmed)  # chosen on the simulated means
    true = [(r["truth"], r["ratio"]) for r in front]
    gain = hypervolume(true, reference) - hypervolume([(h["truth"], h["ratio"]) for h in hand], reference)
    eca = next(h for h in hand if h["label"] == "eca")
    tie = any(not r["hand"] and r["truth"] >= eca["truth"] - SEED_STD and r["ratio"] <= (1 - LOWER) * eca["ratio"]
              for r in front)
    return gain, tie


def interval(values: list[float]) -> list[float]:
    values = sorted(values)
    return [values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", type=int, default=20, help="searched architectures per simulated study")
    parser.add_argument("--runs", type=int, default=18, help="long runs the confirmation may spend")
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies (each pool resample: 1 %%)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the pool")
    parser.add_argument("--leave-out", metavar="REGEX",
                        help="drop the pool's architectures whose arch_id this matches (confirm_rules_leave_out.json)")
    args = parser.parse_args(argv)

    long = LongRuns(None, RESULTS, None)
    table = load_table(TABLE)
    proxies = RunCache(RESULTS / "proxy_runs.json").all()
    hand_ids = {long.baseline(kind).arch_id: kind for kind in BASELINES}
    pool, hand = [], []
    for arch_id, t in truth_set(long, template(long.task.classes)).items():
        run = proxies.get(f"{long.prefix}|{arch_id}|{PROXY_EPOCHS}ep|bs256|pad0|seed0")
        if run is None:
            continue
        row = {"arch_id": arch_id, "label": hand_ids.get(arch_id, arch_id), "hand": arch_id in hand_ids,
               "proxy": run["result"]["accuracy"], "truth": t["mean"], "ratio": table.predict(arch_id).ratio}
        if row["hand"]:
            hand.append(row)
        elif not (args.leave_out and re.search(args.leave_out, arch_id)):
            pool.append(row)
    if len(hand) != len(BASELINES):
        parser.error(f"the hand placements need proxy and long runs: found {sorted(h['label'] for h in hand)}")
    reference = (min(h["truth"] for h in hand), max(r["ratio"] for r in pool + hand) * 1.001)
    print(f"{len(pool)} searched architectures and {len(hand)} hand placements with a {PROXY_EPOCHS}-epoch proxy "
          f"and long runs; studies of {args.archs} + the hand placements; {args.runs} long runs each")

    rules = ["depth3", "breadth2", "halving", "halving_spread"]
    rng = random.Random(0)

    def simulate(pool: list[dict[str, Any]], studies: int) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
        gains: dict[str, list[float]] = {r: [] for r in rules}
        ties: dict[str, list[bool]] = {r: [] for r in rules}
        for _ in range(studies):
            study = hand + rng.sample(pool, args.archs)
            for rule in rules:
                gain, tie = score(rule, study, hand, args.runs, reference, rng)
                gains[rule].append(gain)
                ties[rule].append(tie)
        return gains, ties

    gains, ties = simulate(pool, args.studies)
    # the pool is one draw of architectures: resample it for the uncertainty of a rule's advantage
    resampled: dict[str, list[float]] = {r: [] for r in rules}
    for _ in range(args.resamples):
        copies = [{**r, "arch_id": f"{r['arch_id']}#{i}"} for i, r in enumerate(rng.choices(pool, k=len(pool)))]
        g, _ = simulate(copies, args.studies // 100)
        for rule in rules:
            resampled[rule].append(statistics.fmean(g[rule]) - statistics.fmean(g["depth3"]))
    out: dict[str, Any] = {"benchmark": "confirm_rules", "pool": len(pool), "archs": args.archs, "runs": args.runs,
                           "leave_out": args.leave_out, "studies": args.studies, "pool_resamples": args.resamples,
                           "seed_std": SEED_STD,
                           "reference_point": reference, "rules": {}}
    for rule in rules:
        row = {"hv_gain_mean": statistics.fmean(gains[rule]),
               "p_beats_hand": statistics.fmean(g > 0 for g in gains[rule]),
               "p_cheaper_eca_tie": statistics.fmean(ties[rule]),
               "minus_depth3_mean": statistics.fmean(gains[rule]) - statistics.fmean(gains["depth3"]),
               "minus_depth3_95": interval(resampled[rule])}
        out["rules"][rule] = row
        print(f"  {rule:9s} HV gain over hand {row['hv_gain_mean']:+.5f} (P>0 {row['p_beats_hand']:.2f}), "
              f"cheaper ECA tie on the front {row['p_cheaper_eca_tie']:.2f}; minus depth3 "
              f"{row['minus_depth3_mean']:+.5f}, 95 % over pool resamples "
              f"[{row['minus_depth3_95'][0]:+.5f}, {row['minus_depth3_95'][1]:+.5f}]")
    name = "confirm_rules_leave_out.json" if args.leave_out else "confirm_rules.json"
    print(f"wrote {write_json(RESULTS / name, out)}")


if __name__ == "__main__":
    main()
