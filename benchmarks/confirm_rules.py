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
  halving_fresh   halving, a promotion buying 3 fresh seeds: the screen's run, which chose the
            candidate, is left out of its figure (fewer promotions, no selection in the mean)

A rule's front is also scored as end_to_end.py reports it (the test accuracy of the very runs the
front was chosen on, validation and test of a run correlated as the long runs' are) with its paired
bootstrap, for the first --bar-studies studies: how far the reported gain overstates the true one,
and how often the bar's "beyond seed noise" is met, as reported and as `--heldout` scores it.

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
from harness import RESULTS, RunCache, bootstrap_hv, hypervolume, write_json
from latency_front import non_dominated
from long_runs import LongRuns
from oneshot_ranking import template, truth_set

from nas.latency.table import load_table
from nas.refine import pareto_ranks

TABLE = RESULTS / "latency_front" / "tin100_latency.latency.json"
PROXY_EPOCHS = 4
SEED_STD = 0.0084  # pooled seed std of the tin100 long runs (docs/results.md)
LOWER = 0.10
# per simulated study: the true gain, the reported one, and per interval (resampled or parametric,
# on the runs the front was chosen on or held out) whether it says beyond noise and holds the truth
Bar = dict[str, Any]
INTERVALS = ("reported", "heldout", "reported_parametric", "heldout_parametric")


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


def run_rule(rule: str, study: list[dict[str, Any]], runs: int, rng: random.Random,
             correlation: float) -> list[dict[str, Any]]:
    """The candidates with their simulated long-run accuracies (`values`, `accuracy`), as the rule
    spends `runs` runs; a hand placement's runs are its own `values`, as the benchmark reuses them."""
    seeds = {"depth3": 3, "breadth2": 2, "halving": 1, "halving_spread": 1, "halving_fresh": 1}[rule]
    # the halving rules screen R // 2 (as end_to_end.py's and nas.refine's screen do), leaving runs
    # to promote; until 2026-12-07 they screened R and promoted none (a one-seed breadth rule)
    chosen = ordered(study, "proxy")[: runs // 2 if rule.startswith("halving") else runs // seeds]
    drawn: dict[str, list[tuple[float, float]]] = {r["arch_id"]: [] for r in chosen}  # (val, test) per run

    def train(r: dict[str, Any], k: int) -> None:
        done = drawn[r["arch_id"]]
        known = r["runs"][len(done):len(done) + k] if r["hand"] else []
        done += known + [seed_run(r["truth"], correlation, rng) for _ in range(k - len(known))]

    for r in chosen:
        train(r, seeds)
    spent = seeds * len(chosen)
    more = 3 if rule == "halving_fresh" else 2
    if rule.startswith("halving"):
        seen = [{**r, "mean": statistics.fmean(v for v, _ in drawn[r["arch_id"]])} for r in chosen]
        for r in ordered(seen, "mean", spread=rule == "halving_spread"):
            if spent + more > runs:
                break
            train(r, more)
            spent += more
    if rule == "halving_fresh":  # the screen's run chose the candidate: it is not part of its figure
        drawn = {arch_id: done[1:] for arch_id, done in drawn.items()}
    most = max(len(v) for v in drawn.values())
    return [{**r, "values": [t for _, t in drawn[r["arch_id"]]],
             "accuracy": statistics.fmean(v for v, _ in drawn[r["arch_id"]])} for r in chosen
            if len(drawn[r["arch_id"]]) == most]


def val_test_correlation(long: LongRuns) -> tuple[float, int]:
    """How far a long run's validation and test accuracy move together from seed to seed: the
    correlation of their deviations from each architecture's means (architectures at >= 3 seeds)."""
    head = long.prefix + "|"
    runs: dict[str, list[tuple[float, float]]] = {}
    for key, entry in long._runs().items():
        if key.startswith(head):
            arch_id = key[len(head):].rsplit("|", 1)[0]
            runs.setdefault(arch_id, []).append((entry["val_accuracy"], entry["test_accuracy"]))
    val, test = [], []
    seeded = [rs for rs in runs.values() if len(rs) >= 3]
    for rs in seeded:
        mean_val, mean_test = statistics.fmean(v for v, _ in rs), statistics.fmean(t for _, t in rs)
        val += [v - mean_val for v, _ in rs]
        test += [t - mean_test for _, t in rs]
    return statistics.correlation(val, test), len(seeded)


def seed_run(truth: float, correlation: float, rng: random.Random) -> tuple[float, float]:
    """One simulated long run's (validation, test) accuracy: each off the truth by the seed std, the
    two correlated as the long runs' are."""
    test = rng.gauss(0.0, 1.0)
    val = correlation * test + math.sqrt(1 - correlation**2) * rng.gauss(0.0, 1.0)
    return truth + SEED_STD * val, truth + SEED_STD * test


def score(rule: str, study: list[dict[str, Any]], hand: list[dict[str, Any]], runs: int, reference: tuple[float, float],
          rng: random.Random, correlation: float,
          bar: bool) -> tuple[float, bool, Bar | None]:
    """The chosen front's true hypervolume gain over the hand placements', whether it holds a true
    cheaper ECA tie, and (with `bar`) the gain end_to_end.py would report (on the test accuracies of
    the runs it chose on), whether it would call that gain beyond seed noise, whether `--heldout`
    would (the front retrained at 3 fresh seeds, a hand placement on it at the same), and whether
    each 95 % interval holds the true gain (its coverage, over studies): the paired resampling
    bootstrap end_to_end.py uses, and the parametric one at the pooled seed std."""
    confirmed = run_rule(rule, study, runs, rng, correlation)
    front = non_dominated(confirmed)  # chosen on the simulated validation means, scored on test
    true = [(r["truth"], r["ratio"]) for r in front]
    gain = hypervolume(true, reference) - hypervolume([(h["truth"], h["ratio"]) for h in hand], reference)
    eca = next(h for h in hand if h["label"] == "eca")
    tie = any(not r["hand"] and r["truth"] >= eca["truth"] - SEED_STD and r["ratio"] <= (1 - LOWER) * eca["ratio"]
              for r in front)
    if not bar:
        return gain, tie, None
    reported = hypervolume([(statistics.fmean(r["values"]), r["ratio"]) for r in front], reference) \
        - hypervolume([(statistics.fmean(h["values"]), h["ratio"]) for h in hand], reference)
    fresh = {r["arch_id"]: [seed_run(r["truth"], correlation, rng)[1] for _ in range(3)] for r in front}
    fresh_front = [{**r, "values": fresh[r["arch_id"]]} for r in front]
    fresh_hand = [{**h, "values": fresh.get(h["arch_id"], h["values"])} for h in hand]
    intervals = {"reported": bootstrap_hv(front, hand, reference, n=200),
                 "heldout": bootstrap_hv(fresh_front, fresh_hand, reference, n=200),
                 "reported_parametric": bootstrap_hv(front, hand, reference, n=200, seed_std=SEED_STD),
                 "heldout_parametric": bootstrap_hv(fresh_front, fresh_hand, reference, n=200, seed_std=SEED_STD)}
    return gain, tie, {"gain": gain, "reported_gain": reported,
                       **{f"{k}_beyond": v["low"] > 0 for k, v in intervals.items()},
                       **{f"{k}_covers": v["low"] <= gain <= v["high"] for k, v in intervals.items()}}


def bar_rates(bars: list[Bar]) -> dict[str, Any]:
    """The mean reported gain and, per interval, how often it says beyond noise, overall and where
    the true gain is not positive (its false alarms), and how often it holds the true gain."""
    if not bars:
        return {}
    none = [b for b in bars if b["gain"] <= 0]
    out: dict[str, Any] = {"reported_gain_mean": statistics.fmean(b["reported_gain"] for b in bars),
                           "no_true_gain": len(none)}
    for k in INTERVALS:
        out[f"p_{k}_beyond_noise"] = statistics.fmean(b[f"{k}_beyond"] for b in bars)
        out[f"p_{k}_beyond_noise_no_true_gain"] = statistics.fmean(b[f"{k}_beyond"] for b in none) if none else 0.0
        out[f"{k}_interval_coverage"] = statistics.fmean(b[f"{k}_covers"] for b in bars)
    return out


def interval(values: list[float]) -> list[float]:
    values = sorted(values)
    return [values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", type=int, default=20, help="searched architectures per simulated study")
    parser.add_argument("--runs", type=int, default=18, help="long runs the confirmation may spend")
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies (each pool resample: 1 %%)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the pool")
    parser.add_argument("--bar-studies", type=int, default=400,
                        help="of the simulated studies, how many also run end_to_end.py's paired bootstrap "
                             "(the bar's 'beyond seed noise')")
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

    correlation, seeded = val_test_correlation(long)
    print(f"validation and test accuracy of a long run move together at r {correlation:.2f} from seed to seed "
          f"({seeded} architectures at >= 3 seeds)")
    rules = ["depth3", "breadth2", "halving", "halving_spread", "halving_fresh"]
    rng = random.Random(0)

    def simulate(pool: list[dict[str, Any]], studies: int, bar_studies: int = 0) -> tuple[
            dict[str, list[float]], dict[str, list[bool]], dict[str, list[Bar]]]:
        gains: dict[str, list[float]] = {r: [] for r in rules}
        ties: dict[str, list[bool]] = {r: [] for r in rules}
        bars: dict[str, list[Bar]] = {r: [] for r in rules}
        for i in range(studies):
            # the hand placements' own 3 seeds, drawn afresh with each study as the benchmark trains them
            drawn = [{**h, "runs": (runs := [seed_run(h["truth"], correlation, rng) for _ in range(3)]),
                      "values": [t for _, t in runs]} for h in hand]
            study = drawn + rng.sample(pool, args.archs)
            for rule in rules:
                gain, tie, bar = score(rule, study, drawn, args.runs, reference, rng, correlation,
                                           bar=i < bar_studies)
                gains[rule].append(gain)
                ties[rule].append(tie)
                if bar is not None:
                    bars[rule].append(bar)
        return gains, ties, bars

    gains, ties, bars = simulate(pool, args.studies, args.bar_studies)
    # the pool is one draw of architectures: resample it for the uncertainty of a rule's advantage
    resampled: dict[str, list[float]] = {r: [] for r in rules}
    for _ in range(args.resamples):
        copies = [{**r, "arch_id": f"{r['arch_id']}#{i}"} for i, r in enumerate(rng.choices(pool, k=len(pool)))]
        g, _, _ = simulate(copies, args.studies // 100)
        for rule in rules:
            resampled[rule].append(statistics.fmean(g[rule]) - statistics.fmean(g["depth3"]))
    out: dict[str, Any] = {"benchmark": "confirm_rules", "pool": len(pool), "archs": args.archs, "runs": args.runs,
                           "leave_out": args.leave_out, "studies": args.studies, "pool_resamples": args.resamples,
                           "seed_std": SEED_STD, "val_test_correlation": correlation,
                           "bar_studies": args.bar_studies,
                           "reference_point": reference, "rules": {}}
    for rule in rules:
        row = {"hv_gain_mean": statistics.fmean(gains[rule]),
               "p_beats_hand": statistics.fmean(g > 0 for g in gains[rule]),
               "p_cheaper_eca_tie": statistics.fmean(ties[rule]),
               "minus_depth3_mean": statistics.fmean(gains[rule]) - statistics.fmean(gains["depth3"]),
               "minus_depth3_95": interval(resampled[rule]),
               **bar_rates(bars[rule])}
        out["rules"][rule] = row
        print(f"  {rule:9s} HV gain over hand {row['hv_gain_mean']:+.5f} (P>0 {row['p_beats_hand']:.2f}), "
              f"cheaper ECA tie on the front {row['p_cheaper_eca_tie']:.2f}; minus depth3 "
              f"{row['minus_depth3_mean']:+.5f}, 95 % over pool resamples "
              f"[{row['minus_depth3_95'][0]:+.5f}, {row['minus_depth3_95'][1]:+.5f}]")
        if bars[rule]:
            print(f"    as end_to_end.py reports it (test accuracy of the runs chosen on): gain "
                  f"{row['reported_gain_mean']:+.5f}; of {len(bars[rule])} studies ({row['no_true_gain']} with no "
                  "true gain), beyond seed noise / false alarms / 95 % interval holds the true gain:")
            for k in INTERVALS:
                print(f"      {k:20s} {row[f'p_{k}_beyond_noise']:.2f} / {row[f'p_{k}_beyond_noise_no_true_gain']:.2f}"
                      f" / {row[f'{k}_interval_coverage']:.2f}")
    name = "confirm_rules_leave_out.json" if args.leave_out else "confirm_rules.json"
    print(f"wrote {write_json(RESULTS / name, out)}")


if __name__ == "__main__":
    main()
