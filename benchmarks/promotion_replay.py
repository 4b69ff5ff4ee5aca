"""Replays the multi-fidelity searches of benchmarks/equal_compute.py under another promotion rule,
without training: what would exact-`keep` promotion have spent, and what front would it have found?

Why a replay is exact: one worker runs the searches, and the rung-0 sampler (TPE) learns from
rung 0 only, so the sequence of rung-0 candidates does not depend on what was promoted. Under any
promotion rule that promotes a subset of what asynchronous promotion (ASHA's rule, what `nas
search` does) promotes, every result the replay needs was measured by the real search. The
replay first re-runs the real rule and checks it reproduces the study's rungs, trial for trial.

The two rules of nas.study.promotion (`fidelity.promotion`): asha, what the searches ran
(a candidate goes up while in the best floor(keep x n) of the n finished so far, never taken
back: more than `keep` goes up, 65% at seed 2), and quota (the best candidate not yet promoted
goes up while fewer than floor(keep x n) have: exactly `keep`). quota promotes a subset of what
asha promotes: whatever it promotes is then in the best floor(keep x n), which asha promotes.

Three rows per search seed: asha (the search as it ran), quota (the same rung-0 candidates), and
asha@quota: asha with fewer rung-0 trials, as many as spend what quota spends (the sampler's
sequence does not depend on the budget, so this is exact too): is it the rule or the budget?
Judged at the long run as equal_compute.py judges: the top rung's searched front, trained long
(results/long_runs.json; a front point without a long run is listed, `--train` trains it), with
equal_compute's reference point for the same `--trials`. TPE and random search at quota's budget
are not replayed here: `equal_compute.py --promotion quota` runs all three for real (cached runs).

    .venv/bin/python benchmarks/promotion_replay.py --data DEST [--trials 40] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from equal_compute import fronts, kind_of, method_config, studies_of, tag
from harness import RESULTS, ROOT, hypervolume, write_json
from long_runs import LongRuns, load_task_study
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas import ArchConfig
from nas.attrs import TrialAttr
from nas.fidelity import Fidelity
from nas.front import non_dominated
from nas.study.promotion import first_per_arch, next_promotion


def arch(trial: FrozenTrial) -> str:
    return trial.user_attrs[TrialAttr.ARCH_ID]


def replay(rungs: list[optuna.Study], fidelity: Fidelity, trials: int | None = None) -> dict[str, Any]:
    """One worker's loop (nas.study.asha) under `fidelity.promotion`: promote first, top rungs first, else the
    next rung-0 trial of the real sequence (its first `trials`, if given: what `--trials` would
    have run, since the sampler's sequence does not depend on the budget). Returns the order
    trials ran and each rung's trials."""
    done = [sorted(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
            for s in rungs]
    measured = [{arch(t): t for t in reversed(finished)} for finished in done]  # first trial per architecture
    done[0] = done[0][:trials]
    directions = rungs[0].directions
    ran: list[list[FrozenTrial]] = [[] for _ in rungs]
    taken: list[set[str]] = [set() for _ in rungs]
    order: list[tuple[int, str]] = []
    next_r0 = 0
    missing = []
    while True:
        step = None
        for k in range(fidelity.top - 1, -1, -1):
            candidate = next_promotion(first_per_arch(ran[k]), taken[k + 1], directions, fidelity)
            if candidate is not None:
                step = (k, candidate)
                break
        if step is not None:
            k, candidate = step
            taken[k + 1].add(arch(candidate))
            result = measured[k + 1].get(arch(candidate))
            if result is None:
                missing.append((k + 1, arch(candidate)))
                continue
            ran[k + 1].append(result)
            order.append((k + 1, arch(candidate)))
        elif next_r0 < len(done[0]):
            ran[0].append(done[0][next_r0])
            order.append((0, arch(done[0][next_r0])))
            next_r0 += 1
        else:
            break
    return {"order": order, "rungs": ran, "missing": missing}


def real_order(rungs: list[optuna.Study]) -> list[tuple[int, str]]:
    trials = [(t.datetime_start, k, arch(t)) for k, s in enumerate(rungs)
              for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return [(k, a) for _, k, a in sorted(trials)]


def searched_front(trials: list[FrozenTrial], long: LongRuns,
                   reference: tuple[float, float] | None) -> dict[str, Any]:
    """The searched candidates' Pareto front among `trials` (one fidelity), and its hypervolume at
    the long run (None while a front point has no long run)."""
    top = [t for t in first_per_arch(trials) if TrialAttr.BASELINE not in t.user_attrs]
    front = [top[i] for i in non_dominated([(-t.values[0], t.values[1]) for t in top])]  # accuracy up, MFLOPs down
    points = []
    for t in sorted(front, key=lambda t: t.values[1]):
        truth = long.truth(arch(t))
        points.append({"arch_id": arch(t), "arch": t.user_attrs[TrialAttr.ARCH], "mflops": t.values[1],
                       "proxy_accuracy": t.values[0], "long_accuracy": None if truth is None else truth["mean"]})
    complete = all(p["long_accuracy"] is not None for p in points)
    hv = hypervolume([(p["long_accuracy"], p["mflops"]) for p in points], reference) \
        if complete and reference else None
    return {"searched_front": points, "searched_front_hypervolume": hv}


def images(trials: list[FrozenTrial]) -> int:
    return sum(int(t.user_attrs.get(TrialAttr.IMAGES_SEEN, 0)) for t in trials)


def multi_fidelity(result: dict[str, Any], long: LongRuns, reference: tuple[float, float] | None) -> dict[str, Any]:
    rungs = result["rungs"]
    return {"images_seen": sum(images(r) for r in rungs), "rung0_trials": len(rungs[0]),
            "searched_by_rung": [len({arch(t) for t in r if kind_of(t) == "searched"}) for r in rungs],
            **searched_front(rungs[-1], long, reference)}


def shuffled_arrivals(rung: list[FrozenTrial], directions: Sequence[StudyDirection], fidelity: Fidelity,
                      shuffles: int = 200) -> float:
    """How many of a rung's searched candidates asha passes on when the same results arrive in a
    random order (mean over `shuffles` orders, seeded): asha's own excess over floor(keep x n), apart
    from what an improving sampler adds by sending its better candidates late."""
    searched = [t for t in first_per_arch(rung) if TrialAttr.BASELINE not in t.user_attrs]
    rng = random.Random(0)
    counts = []
    for _ in range(shuffles):
        arrived: list[FrozenTrial] = []
        taken: set[str] = set()
        for trial in rng.sample(searched, len(searched)):
            arrived.append(trial)
            while (up := next_promotion(arrived, taken, directions, fidelity)) is not None:
                taken.add(arch(up))
        counts.append(len(taken))
    return statistics.fmean(counts)


def line(name: str, s: dict[str, Any]) -> str:
    hv = s["searched_front_hypervolume"]
    no_long = [p["arch_id"] for p in s["searched_front"] if p["long_accuracy"] is None]
    return (f"  {name:11s} {s['rung0_trials']:>3} rung-0 trials, {s['images_seen']:>9,} images; searched per rung "
            f"{s['searched_by_rung']}; searched front {len(s['searched_front'])}, HV at the long run "
            f"{'-' if hv is None else f'{hv:.4f}'}" + (f"; no long run yet: {', '.join(no_long)}" if no_long else ""))


def compare(rungs: list[optuna.Study], real: dict[str, Any], fidelity: Fidelity, trials: int, long: LongRuns,
            reference: tuple[float, float]) -> dict[str, dict[str, Any]]:
    """asha as run (`real`, its replay), quota on the same rung-0 candidates, and asha with the
    rung-0 trials that spend what quota spends (is it the rule or the budget?)."""
    asha = dataclasses.replace(fidelity, promotion="asha")
    rows = {"asha": multi_fidelity(real, long, reference),
            "quota": multi_fidelity(replay(rungs, dataclasses.replace(fidelity, promotion="quota")), long, reference)}
    budget = rows["quota"]["images_seen"]
    at_budget = [multi_fidelity(replay(rungs, asha, n), long, reference) for n in range(fidelity.top + 2, trials + 1)]
    rows["asha@quota"] = min(at_budget, key=lambda s: abs(s["images_seen"] - budget))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "tiny_imagenet.yaml")
    parser.add_argument("--data", type=Path, required=True, help="the folder shared/data/stage-datasets.sh filled")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nas" / "equal_compute")
    parser.add_argument("--train", action="store_true", help="train the missing long runs (seed 0), ~6 min each")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = load_task_study(parser, args.study)
    assert base.fidelity is not None  # load_task_study refuses a study without rungs
    long = LongRuns(args.data, RESULTS, 1)
    report = json.loads((RESULTS / f"equal_compute{tag(args.trials)}.json").read_text())
    reference = (report["reference_point"]["accuracy"], report["reference_point"]["mflops"])
    out: dict[str, Any] = {"benchmark": "promotion_replay", "trials": args.trials, "study": str(args.study),
                           "reference_point": report["reference_point"], "seeds": {}}
    for seed in args.seeds:
        config = method_config(base, "mf", seed, args.trials, args.work, base.fidelity)
        rungs = studies_of(config)
        assert config.fidelity is not None
        asha = dataclasses.replace(config.fidelity, promotion="asha")
        real = replay(rungs, asha)
        if real["order"] != real_order(rungs) or real["missing"]:
            raise SystemExit(f"seed {seed}: replaying the asha rule does not reproduce the study "
                             f"(missing {real['missing']}); the replay cannot be trusted for it")
        rows = compare(rungs, real, config.fidelity, args.trials, long, reference)
        missing = {p["arch_id"]: p["arch"] for r in rows.values() for p in r["searched_front"]
                   if p["long_accuracy"] is None}
        if args.train and missing:
            for arch_id, arch_dict in missing.items():
                entry = long.train(ArchConfig.from_dict(arch_dict), 0)
                print(f"long seed 0: test {entry['test_accuracy']:.4f}  {arch_id}", flush=True)
            rows = compare(rungs, real, config.fidelity, args.trials, long, reference)
        _, searched = fronts(config)
        assert {r.arch_id for r in searched} == {p["arch_id"] for p in rows["asha"]["searched_front"]}
        directions = rungs[0].directions
        # asha's own excess: the same rung-0 and rung-1 results in random orders (rung 1 as it arrived)
        arrivals = {f"rung {k}": {"searched": len([t for t in first_per_arch(real["rungs"][k])
                                                   if TrialAttr.BASELINE not in t.user_attrs]),
                                  "passed_on": rows["asha"]["searched_by_rung"][k + 1],
                                  "passed_on_in_random_orders": shuffled_arrivals(real["rungs"][k], directions, asha)}
                    for k in range(config.fidelity.top)}
        out["seeds"][str(seed)] = {**rows, "arrival_order": arrivals}
        print(f"search seed {seed}:")
        for name, s in rows.items():
            print(line(name, s))
        for name, a in arrivals.items():
            print(f"  asha from {name}: {a['passed_on']} of {a['searched']} searched went up; in random orders of the "
                  f"same results {a['passed_on_in_random_orders']:.1f}; floor(keep x n) = "
                  f"{config.fidelity.quota(a['searched'])}")
    written = RESULTS / f"promotion_replay{tag(args.trials)}.json"
    write_json(written, out)
    print(f"written: {written}")


if __name__ == "__main__":
    main()
