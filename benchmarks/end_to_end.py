"""Does search + confirmation beat training the hand placements, at twice their compute? (issue 31, item 4)

The product's bar, objectives [accuracy, latency] (ONNX Runtime, batch 1, 1 thread; predicted from
a committed table, whose conditions the report names: only the ResNet-20's --quick measures one),
on two tasks (--task):

- resnet20 (the default): the task where attention measurably matters (tin100: Tiny-ImageNet,
  first 100 classes, 32 px, ResNet-20; studies/tiny_imagenet.yaml), the table latency_front.py's
  study measured (benchmarks/results/latency_front/tin100_latency.latency.json); the hand
  placements are the five kinds everywhere (none, se, eca, cbam, ge);
- mobilenet: MobileNetV3-Small on the same data, designer_front.py's setting (studies/designer.yaml,
  search_spaces/designer.yaml, the table its study measured:
  benchmarks/results/designer_front/designer.latency.json, --quick included); the hand placements
  are that study's baselines: designer (its 9 SE kept), none (stripped), SE and ECA in every SE slot.

Budget: twice what training the hand placements at the long fidelity costs (10 epochs x 3 seeds
each: resnet20 5 x 30 = 150 long epochs, so 300; mobilenet 4 x 30 = 120, so 240 epochs of the
training split), counted in training images: the search's (every trial's `images_seen`, or the
supernet's epochs) plus the confirmation's.
Each arm is a real `nas` study (the search), then confirmation as `nas.refine` does it —
the candidates `nas.refine.candidates` picks, `confirm.seeds` seeds each, more seeds while they
tie at the top (`nas.refine.tied_at_top`) — but trained at the long runs' setting
(benchmarks/long_runs.py: 10 epochs, 4-pixel crops, test accuracy on the held-out split), so the
hand placements' 3-seed runs are reused and every confirmed number is the truth itself:

- tpe4:     TPE on 4-epoch proxies (the default evaluator), --trials (30: 120 epochs), then the
            top K candidates the remaining budget pays for (K = 6 at 30 epochs each; mobilenet 4);
- tpe4stages: tpe4 on the same space with `choose_stages: true` (each stage drawn on/off before
            its kind, so attention on one or two stages is a common draw);
- tpe4stages_seed1: the same with TPE's seed 1: a second search, for how much one search varies;
- tpe4papers: tpe4 on search_spaces/papers.yaml (with `choose_stages`): the four blocks at their
            papers' settings (the hand placements' blocks), any stage and position, 17 choices per
            stage instead of the default space's 241;
- tpe4papers_seed1: the same with TPE's seed 1 (with its _halving: does the screened result replicate?);
- tpe4papers_distinct, tpe4papers_distinct_seed1: tpe4papers and its seed 1 with trials counted as nas
            counts them since 2026-12-07 (a reused duplicate is not a finished trial): each study starts
            as a copy of the committed one (a search under either count is the same up to where the
            old one stopped), and goes on until 30 trials evaluated something;
- tpe4papers_distinct_seed2: the same search with TPE's seed 2, fresh under the new count (a third
            replication);
- supernet: the one-shot evaluator (own weights per choice, 10 epochs, the study's whole space),
            --supernet-trials scored in seconds each, then K = 9 candidates (mobilenet 7).
- <arm>_halving: that arm's search (its study: no new trial), confirmed by confirm_rules.py's
            `halving` rule (nas: `confirm.screen`): twice as many candidates at one seed each, then
            3 seeds for those the one-seed results put first (non-domination rank of validation
            accuracy and latency) while the budget lasts.
- <arm>_breadth2: that arm's search, confirmed by confirm_rules.py's `breadth2` rule (nas:
            `confirm: {seeds: 2, max_seeds: 2}`): as many candidates as the budget pays for at 2
            seeds each (about 1.5 times depth3's), no more seeds for ties.

Selection reads validation accuracy only (the confirmed front is chosen on the long runs'
validation means and predicted latency); the report scores it on test accuracy: the confirmed
front's hypervolume in (test accuracy, latency ratio) against the hand placements', with a
bootstrap over each architecture's seeds, paired (an architecture on both sides is one set of
runs, resampled once per replicate; beyond seed noise when the 95 % interval of the difference
excludes 0), and whether an architecture the sampler proposed (not a queued hand
placement) ties a reference hand placement's test accuracy within noise at >= 10 % lower
predicted latency: ECA everywhere on the ResNet-20; on MobileNetV3-Small `designer` (the issue's
"against designer"), and ECA in every SE slot beside it.

Hours of CPU; every part resumes (studies in SQLite under --cache, the supernet file there, proxy
and long runs in benchmarks/results/{proxy,long}_runs.json, MobileNetV3-Small's in
designer_proxy_runs.json and designer_runs.json, saved after every run). The two tasks may share
one --cache (their studies, supernets and quick files have names of their own):

    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /work/cache/e2e --arms tpe4 supernet
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /work/cache/e2e --report
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /work/cache/e2e --arms tpe4 supernet --replot
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /tmp/e2e --quick   # minutes: the code path
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /work/cache/e2e --task mobilenet --arms tpe4 supernet
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /work/cache/e2e --task mobilenet --report
    .venv/bin/python benchmarks/end_to_end.py --data DEST --cache /tmp/e2e_mbv3 --task mobilenet --quick

Writes benchmarks/results/end_to_end.json, with --task mobilenet end_to_end_mobilenet.json (not
with --quick, whose results stay under --cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_signal import BASELINES, EPOCHS  # noqa: E402
from designer_front import FOLDER, DesignerRuns  # noqa: E402
from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    bootstrap_hv,
    claim,
    describe,
    hypervolume,
    new_figure,
    read_json,
    save_figure,
    search_only,
    write_json,
)
from latency_front import non_dominated  # noqa: E402
from long_runs import LongRuns, ProxyRuns, check_study  # noqa: E402
from oneshot_ranking import template, truth_set  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from nas import ArchConfig  # noqa: E402
from nas.errors import StudyError  # noqa: E402
from nas.noise import TIE_FACTOR, pooled_std  # noqa: E402
from nas.refine import candidates, screened, tied_at_top  # noqa: E402
from nas.study import open_study  # noqa: E402
from nas.study.latency import table_of  # noqa: E402
from nas.study.loop import run_search  # noqa: E402
from nas.studyfile import StudyConfig, load_study_config  # noqa: E402

# the arms with a study (a search) of their own
SEARCHES = ("tpe4", "tpe4stages", "tpe4stages_seed1", "tpe4papers", "tpe4papers_seed1", "supernet",
            "tpe4papers_distinct", "tpe4papers_distinct_seed1", "tpe4papers_distinct_seed2")
TABLE = RESULTS / "latency_front" / "tin100_latency.latency.json"
LOWER = 0.10  # ">= 10 % lower latency" than the reference (ECA everywhere, designer)
SEEDS, MAX_SEEDS = 3, 6
RULES = ("halving", "breadth2")  # <arm>_<rule>: that arm's search, confirmed by another rule than depth3
# a confirmation rule's seeds: each candidate's first runs, and those of a candidate it keeps (the front
# is chosen among these: halving's one-run screen carries no uncertainty to show)
FIRST_SEEDS = {"depth3": SEEDS, "breadth2": 2, "halving": 1}
KEPT_SEEDS = {"depth3": SEEDS, "breadth2": 2, "halving": SEEDS}


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the issue's two tasks differ in; search, confirmation and report are shared."""

    study: str  # studies/<study>.yaml
    space: str  # search_spaces/<space>.yaml, and with --quick
    quick_space: str
    prefix: str  # under --cache: studies <prefix>_<arm>, the supernet <prefix>.supernet.pt
    table: Path  # the committed latency table the studies predict from
    quick_table: bool  # --quick predicts from it too (it covers the quick space), else measures a small one
    output: str  # under benchmarks/results (--quick: under --cache)
    references: tuple[str, ...]  # hand placements a >= 10 % cheaper tie is sought against
    backbone: tuple[str, dict[str, Any]] | None  # long_runs.check_study's; None: the task's ResNet-20


TASK_SETTINGS = {
    "resnet20": Setting("tiny_imagenet", "default", "demo", "e2e", TABLE, False, "end_to_end.json", ("eca",),
                        None),
    # designer_front.py's study: its space, the table it measured, designer_runs.json's long runs
    "mobilenet": Setting("designer", "designer", "designer", "e2e_mbv3", FOLDER / "designer.latency.json", True,
                         "end_to_end_mobilenet.json", ("designer", "eca"),
                         ("mobilenet_v3_small", {"width_mult": 1.0, "small_input": True})),
}


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    trials: int
    evaluation: dict[str, Any]
    proxy_epochs: int
    choose_stages: bool = False  # the space's `choose_stages` (search-spaces.md): stage on/off drawn first
    sampler_seed: int = 0  # TPE's seed: another seed is another search of the same arm
    space: str | None = None  # search_spaces/<space>.yaml instead of the task's (not with --quick)
    # how the confirmation spends its long runs (confirm_rules.py simulated them): depth3 is nas
    # refine's, the top K at 3 seeds; halving, one seed for twice as many, then 3 for the best of those;
    # breadth2, the simulation's best, the top K at 2 seeds (nas: `confirm: {seeds: 2, max_seeds: 2}`)
    confirm: str = "depth3"
    search: str | None = None  # another arm whose study (search) this arm confirms by its own rule
    # searched when nas counted a reused duplicate as a finished trial: its committed study is kept as
    # it is (a rerun would add the trials the new count owes it); a fresh one searches under the new count
    repeats_counted: bool = False
    copy_of: str | None = None  # an arm whose study this arm's starts as a copy of (see tpe4papers_distinct)


def study_config(setting: Setting, arm: Arm, data: Path, cache: Path, quick: bool) -> StudyConfig:
    """The task's study file (studies/tiny_imagenet.yaml or designer.yaml), single fidelity,
    [accuracy, latency], this arm's evaluator; written under --cache (its database and supernet
    file land beside it)."""
    document = yaml.safe_load((ROOT / "studies" / f"{setting.study}.yaml").read_text())
    document.pop("fidelity", None)
    table = str(setting.table) if setting.quick_table or not quick else None
    space = setting.quick_space if quick else arm.space or setting.space
    space_path = ROOT / "search_spaces" / f"{space}.yaml"
    # the space inline with the arm's `choose_stages`, whatever the file's default
    search_space = {**yaml.safe_load(space_path.read_text()), "choose_stages": arm.choose_stages}
    document.update(name=f"{setting.prefix}_{arm.search or arm.name}", objectives=["accuracy", "latency"],
                    trials=arm.trials, search_space=search_space,
                    sampler={**document["sampler"], "seed": arm.sampler_seed},
                    proxy={**document.get("proxy", {}), "epochs": arm.proxy_epochs},
                    dataset={**document["dataset"], "path": str(data / "tiny-imagenet-200")},
                    latency={"runtime": "onnxruntime", "batch_size": 1, "threads": 1, "device": "cpu",
                             "table": table, "passes": 1, "check": 5 if quick else 30},
                    evaluation=arm.evaluation)
    if quick:
        document["dataset"]["subset"] = 2000
    path = cache / f"{setting.prefix}_{arm.search or arm.name}.yaml"
    path.write_text(f"# written by benchmarks/end_to_end.py from studies/{setting.study}.yaml\n"
                    + yaml.safe_dump(document, sort_keys=False))
    config = search_only(load_study_config(path))  # confirmation is done below, at the long runs' setting
    if not quick:
        check_study(config, backbone=setting.backbone)
    return config


def hand_placements(setting: Setting, config: StudyConfig, long: LongRuns) -> list[tuple[str, ArchConfig]]:
    """(label, architecture) of the hand placements: attention_signal.py's five on the ResNet-20,
    the designer study's baselines (none, designer, se, eca) on MobileNetV3-Small."""
    if setting.backbone is None:
        return [(kind, long.baseline(kind)) for kind in BASELINES]
    return [(label, config.baseline_arch(spec, long.task.classes, 3)) for label, spec in config.baselines]


def search_images(config: StudyConfig, study: Any, train_images: int) -> int:
    """Training images the search consumed: every trial's own, and the supernet's training."""
    images = sum(t.user_attrs.get("images_seen", 0) for t in study.get_trials(deepcopy=False))
    supernet = study.user_attrs.get("supernet")
    if supernet:
        images += config.evaluation.epochs * train_images
    return images


def searched(config: StudyConfig, arm: Arm, log: Any) -> bool:
    """An arm searched under the old count whose study holds its trials: kept as it is."""
    if not arm.repeats_counted:
        return False
    try:
        study, _ = open_study(config, create=False)
    except StudyError:  # no study yet: a fresh search, under nas's count
        return False
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if done >= arm.trials:
        log(f"searched before nas stopped counting reused duplicates ({done} finished trials): kept as it is")
    return done >= arm.trials


def start_as_copy(config: StudyConfig, source: StudyConfig, log: Any) -> None:
    """This arm's study, made once as a copy of `source`'s (Optuna's own copy: trials, attributes)."""
    if config.name in optuna.get_all_study_names(config.storage):
        return
    optuna.copy_study(from_study_name=source.name, from_storage=source.storage, to_storage=config.storage,
                      to_study_name=config.name)
    log(f"study {config.name} starts as a copy of {source.name}")


def train_side_by_side(long: LongRuns, jobs: list[tuple[ArchConfig, int]], claims: Path, log: Any) -> None:
    """Train the long runs (architecture, seed) that no process has saved, each by whichever worker
    claims it first: workers started side by side on one arm split its confirmation instead of
    training the same run twice. Returns once every run is saved, waiting for other workers' runs."""
    pending = list(jobs)
    while pending:
        waiting = []
        for arch, seed in pending:
            if long.get(arch, seed) is not None:
                continue
            with claim(claims / f"{hashlib.sha1(long.key(arch, seed).encode()).hexdigest()}.lock") as mine:
                if mine:
                    long.train(arch, seed)  # trains only if no worker saved it meanwhile
                else:
                    waiting.append((arch, seed))
        if waiting:
            log(f"waiting for {len(waiting)} long runs other workers are training")
            time.sleep(30)
        pending = waiting


def wait_for_running(study: Any, log: Any) -> None:
    """Other workers' last trials: the candidates are read from the finished search only."""
    while running := study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log(f"waiting for {len(running)} trials other workers are running")
        time.sleep(30)


def confirm(study: Any, long: LongRuns, budget_runs: int, claims: Path, log: Any,
            rule: str = "depth3") -> dict[str, list[dict[str, Any]]]:
    """`nas.refine`'s confirmation at the long runs' setting. depth3: the candidates the budget pays
    for at SEEDS runs each; breadth2: those it pays for at 2 runs each; halving: twice as many at one
    run each, then SEEDS - 1 more runs for each in the order of its one-seed result (non-domination
    rank of validation accuracy and latency), while the budget lasts. Then, for depth3 and halving,
    more seeds while candidates tie at the top (breadth2's candidates never reach SEEDS runs). Workers
    on the same arm split the runs (`train_side_by_side`)."""
    first = FIRST_SEEDS[rule]
    trials = {t.number: t for t in candidates(study, max(1, budget_runs // (2 if rule == "halving" else first)))}
    chosen = {n: ArchConfig.from_dict(t.user_attrs["arch"]) for n, t in trials.items()}
    train_side_by_side(long, [(arch, s) for arch in chosen.values() for s in range(first)], claims, log)
    runs = {n: [long.train(arch, s) for s in range(first)] for n, arch in chosen.items()}
    used = len(chosen) * first
    if rule == "halving":
        val = {n: statistics.fmean(r["val_accuracy"] for r in rs) for n, rs in runs.items()}
        promoted = []
        for n in screened(study, trials, val, len(trials)):  # nas refine's screen order
            if used + SEEDS - first > budget_runs:
                break
            promoted.append(n)
            used += SEEDS - first
        log(f"one seed each for {len(runs)} candidates; {SEEDS} seeds for #{', #'.join(map(str, promoted))}")
        train_side_by_side(long, [(chosen[n], s) for n in promoted for s in range(first, SEEDS)], claims, log)
        for n in promoted:
            runs[n] += [long.train(chosen[n], s) for s in range(first, SEEDS)]
    for n, arch in chosen.items():
        log(f"confirmed #{n}: val {statistics.fmean(r['val_accuracy'] for r in runs[n]):.4f} over {len(runs[n])} "
            f"seeds  {arch.arch_id}")
    seeds = SEEDS
    while seeds < MAX_SEEDS:
        tied = tied_at_top({n: [r["val_accuracy"] for r in rs] for n, rs in runs.items() if len(rs) >= SEEDS})
        more = min(2 * seeds, MAX_SEEDS)
        cost = sum(more - len(runs[n]) for n in tied)
        if len(tied) < 2 or used + cost > budget_runs:
            break
        seeds = more
        log(f"{len(tied)} tie at the top: {seeds} seeds each")
        train_side_by_side(long, [(chosen[n], s) for n in tied for s in range(len(runs[n]), seeds)], claims, log)
        for n in tied:
            runs[n] += [long.train(chosen[n], s) for s in range(len(runs[n]), seeds)]
        used += cost
    return {str(n): [{"seed": s, **r} for s, r in enumerate(rs)] for n, rs in runs.items()}


def hypervolumes(front: list[dict[str, Any]], hand: list[dict[str, Any]],
                 reference: tuple[float, float]) -> dict[str, float]:
    """The confirmed front's and the hand placements' hypervolumes in (test accuracy, latency ratio)."""
    return {"confirmed": hypervolume([(r["accuracy"], r["ratio"]) for r in front], reference),
            "hand": hypervolume([(r["accuracy"], r["ratio"]) for r in hand], reference)}


def hv_interval(result: dict[str, Any], references: tuple[str, ...] = ()) -> dict[str, Any]:
    """An arm's hypervolume difference interval and verdict, from its written rows: the paired
    parametric bootstrap at the seed std pooled over the arm's rows (confirm_rules.py: its 95 %
    interval held the true gain in 93-97 % of simulated studies held out, resampling 3 seeds in
    81-85 %); the resampled interval is kept beside it (`..._resampled`). The cheaper ties of the
    hand placements `references` are drawn at the same pooled std, as `nas front` draws ties
    (tie_calibration.py: a 3-seed std of its own calls an equal pair apart twice as often)."""
    front = scored_front(result["confirmed"], result["front"], result["hand"])
    reference = tuple(result["reference_point"])
    std = rows_seed_std([*result["confirmed"], *result["hand"]])
    interval = bootstrap_hv(front, result["hand"], reference, seed_std=std)
    ties = {key: value for label in references
            for key, value in cheaper_ties(front, result["hand"], label, std).items()}
    return {"hypervolume_difference_95": interval, "seed_std_pooled": std,
            "hypervolume_difference_95_resampled": bootstrap_hv(front, result["hand"], reference),
            "beats_hand_beyond_noise": interval["low"] > 0, **ties}


def scored_front(rows: list[dict[str, Any]], front: list[str], hand: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The confirmed front's rows as the report scores them: a hand placement on it at its hand-side
    runs (3 seeds), whatever the rule gave it. Otherwise breadth2's 2 seeds of ECA everywhere (0.2661)
    beside its 3 (0.2638) would count a dropped seed as a gain; under depth3 and halving the two are
    the same runs."""
    by_id = {r["arch_id"]: r for r in hand}
    return [{**by_id[r["arch_id"]], "label": r["label"]} if r["arch_id"] in by_id else r
            for r in rows if r["arch_id"] in front]


def report_arm(arm: Arm, config: StudyConfig, long: LongRuns, confirmed: dict[str, Any], images: int,
               budget: int, hand_archs: list[tuple[str, ArchConfig]],
               references: tuple[str, ...]) -> dict[str, Any]:
    study, _ = open_study(config, create=False)
    table = table_of(study)
    assert table is not None
    hand = [result_row(table, label, arch, [long.train(arch, s) for s in range(3)], False)
            for label, arch in hand_archs]
    rows = []
    for number, runs in confirmed.items():
        trial = study.trials[int(number)]
        arch = ArchConfig.from_dict(trial.user_attrs["arch"])
        label = trial.user_attrs.get("baseline") or f"#{number}"
        # proposed: sampled, and not a hand placement the sampler happened to draw
        proposed = "baseline" not in trial.user_attrs and arch.arch_id not in {h["arch_id"] for h in hand}
        rows.append(result_row(table, label, arch, runs, proposed))
    # the confirmed front, chosen as `nas front` would: validation means and predicted latency, of
    # the candidates the rule kept (a one-seed screen carries no uncertainty to show)
    chosen = non_dominated([{**r, "accuracy": r["val_accuracy"]} for r in rows if r["n"] >= KEPT_SEEDS[arm.confirm]])
    front = scored_front(rows, [c["arch_id"] for c in chosen], hand)
    everything = hand + front
    reference = (min(r["accuracy"] for r in everything), max(r["ratio"] for r in everything) * 1.001)
    result = {"arm": dataclasses.asdict(arm), "latency": table.describe(), "trials": len(study.trials),
              "compute": {"search_epochs": images / len(long.data.train),
                          "confirm_runs": sum(len(v) for v in confirmed.values()),
                          "total_epochs": images / len(long.data.train)
                          + long.epochs * sum(len(v) for v in confirmed.values()),
                          "budget_epochs": budget},
              "hand": hand, "confirmed": rows, "front": [r["arch_id"] for r in front], "reference_point": reference,
              "hypervolume": hypervolumes(front, hand, reference)}
    return {**result, **hv_interval(result, references)}


def result_row(table: Any, label: str, arch: ArchConfig, runs: list[dict[str, Any]],
               proposed: bool) -> dict[str, Any]:
    """One architecture's confirmed figures: test accuracy over its seeds, predicted latency ratio."""
    p = table.predict(arch.arch_id)
    test = [r["test_accuracy"] for r in runs]
    return {"label": label, "arch_id": arch.arch_id, "proposed": proposed, "ratio": p.ratio,
            "ratio_ci": p.ratio_ci, "accuracy": statistics.fmean(test),
            "accuracy_std": statistics.stdev(test) if len(test) > 1 else None, "n": len(test), "values": test,
            "val_accuracy": statistics.fmean(r["val_accuracy"] for r in runs),
            "machines": sorted({r.get("machine", "not recorded") for r in runs})}  # where its runs trained


def hand_reference(config: StudyConfig, long: LongRuns,
                   hand_archs: list[tuple[str, ArchConfig]]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The arm's study, its latency table and the hand placements' rows at SEEDS seeds: what --probe
    and --check compare against (ECA everywhere) and pool the seed std over."""
    study, _ = open_study(config, create=False)
    table = table_of(study)
    assert table is not None
    return study, table, [result_row(table, label, arch, [long.train(arch, s) for s in range(SEEDS)], False)
                          for label, arch in hand_archs]


def rows_seed_std(rows: list[dict[str, Any]]) -> float | None:
    """The seed std pooled over `rows` (nas.noise.pooled_std), each architecture once: a hand
    placement on the front is one set of runs in both lists."""
    return pooled_std(list({r["arch_id"]: r["values"] for r in rows}.values()))


def pooled_ties(rows: list[dict[str, Any]], hand: list[dict[str, Any]]) -> dict[str, Any]:
    """`rows` against ECA everywhere at the seed std pooled over them and the hand placements, as
    an arm's verdicts are drawn (`hv_interval`) and `nas front` draws ties."""
    std = rows_seed_std([*rows, *hand])
    return {"seed_std_pooled": std, **cheaper_ties(rows, hand, "eca", std)}


def probe_space(config: StudyConfig, long: LongRuns, hand_archs: list[tuple[str, ArchConfig]], top: int,
                log: Any) -> dict[str, Any]:
    """Does the space hold a >= 10 % cheaper tie of ECA everywhere at all, whether or not a search
    finds it? Every architecture of the study's space with long runs in long_runs.json (earlier
    benchmarks' random draws and searches) that is predicted >= 10 % cheaper than ECA everywhere,
    the `top` best by mean validation accuracy (selection never reads test accuracy) trained to
    SEEDS seeds, then judged on test accuracy as the arms' fronts are."""
    _, table, hand = hand_reference(config, long, hand_archs)
    eca = next(r for r in hand if r["label"] == "eca")
    known = truth_set(long, template(long.task.classes))
    hand_ids = {arch.arch_id for _, arch in hand_archs}
    cheap = {a: row["arch"] for a, row in known.items()
             if a not in hand_ids and table.predict(a).ratio <= (1 - LOWER) * eca["ratio"]}
    by_val = sorted(cheap, key=lambda a: -statistics.fmean(r["val_accuracy"] for r in long.runs_of(a)))
    probed = []
    for arch_id in by_val[:top]:
        arch = cheap[arch_id]
        probed.append(result_row(table, arch_id, arch, [long.train(arch, s) for s in range(SEEDS)], True))
        log(f"probe: {probed[-1]['accuracy']:.4f} ± {probed[-1]['accuracy_std']:.4f} "
            f"x{probed[-1]['ratio']:.3f}  {arch_id}")
    ties = pooled_ties(probed, hand)
    return {"latency": table.describe(), "with_long_runs": len(known), "cheaper_than_eca": len(cheap),
            "selected_by": "mean validation accuracy of the runs so far", "eca": eca, "probed": probed,
            "seed_std_pooled": ties["seed_std_pooled"], "eca_comparisons": ties["eca_comparisons"],
            "cheaper_eca_tie_exists": ties["cheaper_eca_tie_found"]}


def check_trials(config: StudyConfig, long: LongRuns, hand_archs: list[tuple[str, ArchConfig]], numbers: list[int],
                 seeds: int, log: Any) -> dict[str, Any]:
    """After the bar: the arm's trials `numbers` trained to `seeds` seeds (beyond the budget, so
    never part of an arm's figures), each compared with ECA everywhere at its own 3 seeds: is a
    tie at the bar's 3 seeds still one with more, and what would a trial the confirmation left out
    have given?"""
    study, table, hand = hand_reference(config, long, hand_archs)
    eca = next(r for r in hand if r["label"] == "eca")
    checked = []
    for number in numbers:
        arch = ArchConfig.from_dict(study.trials[number].user_attrs["arch"])
        checked.append(result_row(table, f"#{number}", arch, [long.train(arch, s) for s in range(seeds)], True))
        log(f"#{number}: {checked[-1]['accuracy']:.4f} ± {checked[-1]['accuracy_std']:.4f} over {seeds} seeds "
            f"x{checked[-1]['ratio']:.3f}  {arch.arch_id}")
    ties = pooled_ties(checked, hand)
    return {"study": config.name, "seeds": seeds, "eca": eca, "checked": checked,
            "seed_std_pooled": ties["seed_std_pooled"], "eca_comparisons": ties["eca_comparisons"]}


def heldout(study: Any, table: Any, long: LongRuns, hand_archs: list[tuple[str, ArchConfig]],
            result: dict[str, Any], claims: Path, log: Any, references: tuple[str, ...] = ("eca",)) -> dict[str, Any]:
    """An arm's confirmed front scored on seeds its selection never saw: the confirmation chose the
    front on the same runs the report scores it on (validation and test of one run move together,
    r 0.64 over the long runs' seeds), so the report's gain is optimistic; confirm_rules.py
    measures how much. Each front member is trained at the 3 seeds after the last one the
    confirmation gave it, a hand placement on both sides at the same seeds (paired); the hand
    placements off the confirmed front keep their own 3 seeds, which no selection read."""
    hand_by_id = {arch.arch_id: (label, arch) for label, arch in hand_archs}
    front = [r for r in result["confirmed"] if r["arch_id"] in result["front"]]
    fresh: dict[str, tuple[ArchConfig, range]] = {}
    for r in front:
        arch = hand_by_id[r["arch_id"]][1] if r["arch_id"] in hand_by_id else \
            ArchConfig.from_dict(study.trials[int(r["label"].lstrip("#"))].user_attrs["arch"])
        fresh[r["arch_id"]] = (arch, range(r["n"], r["n"] + SEEDS))
    train_side_by_side(long, [(arch, s) for arch, seeds in fresh.values() for s in seeds], claims, log)

    def row(label: str, arch: ArchConfig, proposed: bool) -> dict[str, Any]:
        seeds = fresh[arch.arch_id][1] if arch.arch_id in fresh else range(SEEDS)
        return result_row(table, label, arch, [long.train(arch, s) for s in seeds], proposed)

    scored = [row(r["label"], fresh[r["arch_id"]][0], r["proposed"]) for r in front]
    hand = [row(label, arch, False) for label, arch in hand_archs]
    reference = tuple(result["reference_point"])
    interval = hv_interval({"confirmed": scored, "front": [r["arch_id"] for r in scored], "hand": hand,
                            "reference_point": reference}, references)
    return {"study": study.study_name, "seeds": {r["label"]: list(fresh[r["arch_id"]][1]) for r in front},
            "front": scored, "hand": hand, "reference_point": reference,
            "hypervolume": hypervolumes(scored, hand, reference), **interval}


def cheaper_ties(front: list[dict[str, Any]], hand: list[dict[str, Any]], label: str,
                 std: float | None = None) -> dict[str, Any]:
    """Does an architecture the sampler proposed tie the hand placement `label` within noise at >= 10 %
    lower predicted latency? (`<label>_comparisons`, `cheaper_<label>_tie_found`) With `std`, the
    difference's std is that seed std over both counts, else each row's own."""
    ref = next(r for r in hand if r["label"] == label)
    wins = []
    for r in front:
        if not r["proposed"]:
            continue
        spread = std * math.sqrt(1 / r["n"] + 1 / ref["n"]) if std is not None else \
            math.sqrt((r["accuracy_std"] or 0) ** 2 / r["n"] + ref["accuracy_std"] ** 2 / ref["n"])
        wins.append({"arch_id": r["arch_id"], "difference": r["accuracy"] - ref["accuracy"], "difference_std": spread,
                     f"ties_or_beats_{label}": r["accuracy"] >= ref["accuracy"] - TIE_FACTOR * spread,
                     f"ratio_vs_{label}": r["ratio"] / ref["ratio"],
                     "ten_percent_cheaper": r["ratio"] <= (1 - LOWER) * ref["ratio"]})
    return {f"{label}_comparisons": wins,
            f"cheaper_{label}_tie_found": any(w[f"ties_or_beats_{label}"] and w["ten_percent_cheaper"] for w in wins)}


def plot(out: dict[str, Any], path: Path, names: list[str]) -> Path:
    """The named arms' confirmed fronts against the hand placements: test accuracy (mean ± seed std)
    over predicted latency ratio; hollow markers are confirmed candidates off the front."""
    fig, ax = new_figure(figsize=(6.4, 4.4))
    first = next(iter(out["arms"].values()))  # every arm holds the same hand placements
    hand = first["hand"]
    ax.errorbar([r["ratio"] for r in hand], [r["accuracy"] for r in hand], yerr=[r["accuracy_std"] for r in hand],
                fmt="ks", capsize=3, label="hand placements (3 seeds)")
    for r in hand:
        ax.annotate(r["label"], (r["ratio"], r["accuracy"]), textcoords="offset points", xytext=(5, -10), fontsize=8)
    for i, name in enumerate(names):
        arm, colour = out["arms"][name], f"C{i % 10}"
        front = sorted(scored_front(arm["confirmed"], arm["front"], arm["hand"]), key=lambda r: r["ratio"])
        rest = [r for r in arm["confirmed"] if r["arch_id"] not in arm["front"]]
        hv = arm["hypervolume"]["confirmed"]
        ax.errorbar([r["ratio"] for r in front], [r["accuracy"] for r in front],
                    yerr=[r["accuracy_std"] or 0 for r in front], fmt="o-", color=colour, capsize=3,
                    label=f"{name}: confirmed front (HV {hv:.4f})")
        ax.plot([r["ratio"] for r in rest], [r["accuracy"] for r in rest], "o", mfc="none", color=colour,
                label=f"{name}: off the front (screened or confirmed)")
    hv_hand = first["hypervolume"]["hand"]
    ax.set_title(f"search + confirmation at <= {out['budget_epochs']} epochs vs hand placements (HV {hv_hand:.4f})",
                 fontsize=9)
    ax.set_xlabel("predicted latency ratio to none (ONNX Runtime, batch 1, 1 thread)")
    ax.set_ylabel(f"test accuracy, {out['long_epochs']} epochs")
    ax.legend(fontsize=6, loc="upper right")  # the hand placements' CBAM and GE sit low on the right
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder stage-datasets.sh filled")
    parser.add_argument("--cache", type=Path, required=True, help="studies and the supernet, outside the repo")
    parser.add_argument("--task", choices=tuple(TASK_SETTINGS), default="resnet20",
                        help="resnet20: ResNet-20 against the five hand placements; mobilenet: MobileNetV3-Small "
                             "against designer_front.py's baselines (designer, none, se, eca)")
    parser.add_argument("--arms", nargs="+",
                        choices=[*SEARCHES, *(f"{name}_{rule}" for name in SEARCHES for rule in RULES)],
                        default=["tpe4", "supernet"])
    parser.add_argument("--trials", type=int, default=30, help="tpe4's trials (4 epochs each)")
    parser.add_argument("--supernet-trials", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument("--report", action="store_true", help="only report what is trained")
    parser.add_argument("--replot", action="store_true",
                        help="only recompute the hypervolume intervals of --arms and redraw the plot, from the written "
                             "results (no study, no training)")
    parser.add_argument("--probe", type=int, metavar="K", default=0,
                        help="resnet20: also train the K best known architectures >= 10 %% cheaper than ECA "
                             "everywhere to 3 seeds: does the space hold a cheaper tie at all? "
                             "(end_to_end_space.json)")
    parser.add_argument("--check", type=int, nargs="+", metavar="TRIAL", default=[],
                        help="after the bar: train these trials of the (one) arm to --check-seeds seeds and compare "
                             "them with ECA everywhere (end_to_end_checks.json; never part of an arm's figures)")
    parser.add_argument("--check-seeds", type=int, default=MAX_SEEDS)
    parser.add_argument("--heldout", action="store_true",
                        help="after the bar: score each of --arms' confirmed front on 3 seeds its selection never "
                             "saw (end_to_end_heldout.json; never part of an arm's figures)")
    parser.add_argument("--quick", action="store_true", help="toy sizes (1-epoch runs, 2,000 images): the code path")
    args = parser.parse_args()
    setting = TASK_SETTINGS[args.task]
    args.cache.mkdir(parents=True, exist_ok=True)
    results = args.cache if args.quick else RESULTS
    epochs = 1 if args.quick else EPOCHS
    if args.replot:  # the figures come from the results file: an arm's study need not be at hand
        path = results / setting.output
        written = read_json(path, {})
        missing = [name for name in args.arms if name not in written.get("arms", {})]
        if missing:
            parser.error(f"--replot: {path} holds no results for {', '.join(missing)}; report them first")
        for name in args.arms:  # the interval as this script computes it now
            written["arms"][name].update(hv_interval(written["arms"][name], setting.references))
        write_json(path, written)
        print(f"wrote {path} and {plot(written, path.with_suffix('.png'), args.arms)}")
        return
    if setting.backbone is not None:  # MobileNetV3-Small: its long and proxy runs in files of their own
        long: LongRuns = DesignerRuns(args.data, args.threads, results, epochs, 2000) if args.quick \
            else DesignerRuns(args.data, args.threads)
        proxy_runs = ProxyRuns(results / "designer_proxy_runs.json", long.prefix, args.threads)
    else:
        long = LongRuns(args.data, results, args.threads, epochs=epochs, subset=2000 if args.quick else None) \
            if args.quick else LongRuns(args.data, results, args.threads)
        proxy_runs = ProxyRuns(results / "proxy_runs.json", long.prefix, args.threads)
    arms = {"tpe4": Arm("tpe4", 4 if args.quick else args.trials, {"kind": "proxy"}, 1 if args.quick else 4),
            "tpe4stages": Arm("tpe4stages", 4 if args.quick else args.trials, {"kind": "proxy"},
                              1 if args.quick else 4, choose_stages=True),
            "tpe4stages_seed1": Arm("tpe4stages_seed1", 4 if args.quick else args.trials, {"kind": "proxy"},
                                    1 if args.quick else 4, choose_stages=True, sampler_seed=1),
            "tpe4papers": Arm("tpe4papers", 4 if args.quick else args.trials, {"kind": "proxy"},
                              1 if args.quick else 4, choose_stages=True, space="papers"),
            "tpe4papers_seed1": Arm("tpe4papers_seed1", 4 if args.quick else args.trials, {"kind": "proxy"},
                                    1 if args.quick else 4, choose_stages=True, space="papers", sampler_seed=1),
            "supernet": Arm("supernet", 8 if args.quick else args.supernet_trials,
                            {"kind": "supernet", "sharing": "choice", "epochs": 1 if args.quick else 10,
                             "recal": 256 if args.quick else 2048,
                             "file": str(args.cache / f"{setting.prefix}.supernet.pt")},
                            1 if args.quick else 4)}
    arms = {name: dataclasses.replace(arm, repeats_counted=True) for name, arm in arms.items()}
    arms.update({f"tpe4papers_distinct{tail}": dataclasses.replace(arms[f"tpe4papers{tail}"],
                                                                  name=f"tpe4papers_distinct{tail}",
                                                                  repeats_counted=False, copy_of=f"tpe4papers{tail}")
                 for tail in ("", "_seed1")})
    arms["tpe4papers_distinct_seed2"] = dataclasses.replace(  # a fresh search under the new count
        arms["tpe4papers_distinct"], name="tpe4papers_distinct_seed2", sampler_seed=2, copy_of=None)
    arms.update({f"{name}_{rule}": dataclasses.replace(arm, name=f"{name}_{rule}", search=name, confirm=rule)
                 for name, arm in list(arms.items()) for rule in RULES})
    configs = {name: study_config(setting, arms[name], args.data, args.cache, args.quick) for name in args.arms}
    hand_archs = hand_placements(setting, configs[args.arms[0]], long)
    hand_runs = len(hand_archs) * 3  # the hand placements at the long fidelity, 3 seeds each
    budget = 2 * hand_runs * epochs  # epochs of the training split
    out: dict[str, Any] = {"benchmark": "end_to_end", "machine": describe("cpu"), "budget_epochs": budget,
                           "hand_runs": hand_runs, "long_epochs": epochs, "arms": {}}
    if setting.backbone is not None:
        out = {"benchmark": "end_to_end", "task": args.task, "backbone": setting.backbone[0],
               "hand": [label for label, _ in hand_archs], "references": list(setting.references), **out}
    if args.probe:
        if setting.backbone is not None:
            parser.error("--probe: resnet20 only (the MobileNetV3-Small task has too few long runs to probe)")
        probe = probe_space(configs[args.arms[0]], long, hand_archs, args.probe, print)
        write_json((args.cache if args.quick else RESULTS) / "end_to_end_space.json",
                   {"benchmark": "end_to_end --probe", "machine": describe("cpu"), **probe})
        print(f"probe: cheaper ECA tie in the space: {probe['cheaper_eca_tie_exists']}")
        return
    if args.check:
        if len(args.arms) != 1:
            parser.error("--check: name one arm, whose study holds the trials")
        checks = check_trials(configs[args.arms[0]], long, hand_archs, args.check, args.check_seeds, print)
        path = (args.cache if args.quick else RESULTS) / "end_to_end_checks.json"
        key = f"{args.task}:{args.arms[0]}:{','.join(map(str, args.check))}x{args.check_seeds}"
        # the machines its runs trained on, not this one: a check recomputed from cached runs trains nothing
        machines = sorted({m for row in [*checks["checked"], checks["eca"]] for m in row["machines"]})
        write_json(path, {**read_json(path, {}), key: {"machine": "; ".join(machines), **checks}})
        return
    if args.heldout:
        path = results / "end_to_end_heldout.json"
        reported = read_json(results / setting.output, {}).get("arms", {})
        for name in args.arms:
            if name not in reported:
                parser.error(f"--heldout: {results / setting.output} holds no results for {name}; report it first")
            study, _ = open_study(configs[name], create=False)
            found = heldout(study, table_of(study), long, hand_archs, reported[name], args.cache / ".claims", print,
                            setting.references)
            ci = found["hypervolume_difference_95"]
            ties = "; ".join(f"cheaper {label} tie: {found[f'cheaper_{label}_tie_found']}"
                             for label in setting.references)
            print(f"{name}: held out, hypervolume {found['hypervolume']['confirmed']:.4f} vs hand "
                  f"{found['hypervolume']['hand']:.4f} (difference 95% [{ci['low']:+.4f}, {ci['high']:+.4f}]); {ties}")
            write_json(path, {**read_json(path, {}), f"{args.task}:{name}": {"machine": describe("cpu"), **found}})
        return
    for name in args.arms:
        arm, config = arms[name], configs[name]

        def log(line: str, name: str = name) -> None:
            print(f"{name}: {line}", flush=True)

        searching = arms[arm.search] if arm.search else arm  # an <arm>_<rule> arm's search is <arm>'s
        if not args.report and not searched(config, searching, log):
            if searching.copy_of is not None:
                start_as_copy(config, study_config(setting, arms[searching.copy_of], args.data, args.cache,
                                                   args.quick), log)
            run_search(config, long.data, trials=arm.trials, device="cpu", log=log, progress=False,
                       trainer=proxy_runs.trainer if searching.evaluation["kind"] == "proxy" else None)
        study, _ = open_study(config, create=False)
        wait_for_running(study, log)
        images = search_images(config, study, len(long.data.train))
        left_runs = int((budget - images / len(long.data.train)) // epochs)
        log(f"search used {images / len(long.data.train):.1f} epochs of {budget}; {left_runs} long runs left")
        confirmed = confirm(study, long, left_runs, args.cache / ".claims", log, arm.confirm)
        result = report_arm(arm, config, long, confirmed, images, budget, hand_archs, setting.references)
        out["arms"][name] = result
        hv, ci = result["hypervolume"], result["hypervolume_difference_95"]
        ties = "; ".join(f"cheaper {'ECA' if label == 'eca' else label} tie: {result[f'cheaper_{label}_tie_found']}"
                         for label in setting.references)
        log(f"hypervolume confirmed {hv['confirmed']:.4f} vs hand {hv['hand']:.4f} (difference 95% "
            f"[{ci['low']:+.4f}, {ci['high']:+.4f}]); {ties}; "
            f"{result['compute']['total_epochs']:.0f} of {budget} epochs")
    path = (args.cache if args.quick else RESULTS) / setting.output
    previous = read_json(path, {})
    if previous.get("budget_epochs") == budget:  # arms run on their own add to the others' figures
        out["arms"] = {**previous.get("arms", {}), **out["arms"]}
    output = write_json(path, out)
    print(f"wrote {output} and {plot(out, output.with_suffix('.png'), args.arms)}")


if __name__ == "__main__":
    main()
