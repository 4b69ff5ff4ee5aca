"""benchmarks/harness.py's claim: how benchmark workers started side by side split long runs
(end_to_end.py's confirmation). A claimed run is one worker's until it finishes or dies, so no run
is trained twice and a killed worker's run is not lost to the others. And its hypervolume, the one
score every front in the results is compared by."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, write_study

BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from harness import RESULTS, claim, hypervolume  # noqa: E402


def hold(lock: Path) -> subprocess.Popen:
    """Another worker that claims `lock` and keeps it until killed."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from harness import claim\n"
            "with claim(__import__('pathlib').Path(sys.argv[2])) as mine:\n"
            "    print(mine, flush=True); time.sleep(120)")
    worker = subprocess.Popen([sys.executable, "-c", code, str(BENCHMARKS), str(lock)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    assert worker.stdout is not None and worker.stdout.readline().strip() == "True"
    return worker


def test_a_claimed_run_is_one_workers_until_it_dies(tmp_path):
    lock = tmp_path / "claims" / "run.lock"  # its folder is made on the first claim
    worker = hold(lock)
    try:
        with claim(lock) as mine:
            assert mine is False  # held elsewhere: answered at once, not waited for
    finally:
        worker.kill()
        worker.wait()
    with claim(lock) as mine:  # the dead worker's claim is free again
        assert mine is True
        with claim(lock) as again:
            assert again is False  # one holder at a time, even within a process
    with claim(lock) as mine:  # released when the work is done
        assert mine is True


class FakeLongRuns:
    """LongRuns' interface for end_to_end.confirm: a fixed validation accuracy per architecture, and
    a record of every run trained."""

    def __init__(self, val: dict[str, float]) -> None:
        self.val, self.saved, self.trained = val, {}, []

    def key(self, arch, seed):
        return f"{arch.arch_id}|seed{seed}"

    def get(self, arch, seed):
        return self.saved.get(self.key(arch, seed))

    def train(self, arch, seed):
        if self.get(arch, seed) is None:
            self.trained.append((arch.arch_id, seed))
            self.saved[self.key(arch, seed)] = {"val_accuracy": self.val[arch.arch_id], "test_accuracy": 0.0}
        return self.get(arch, seed)


def study_of(proxies: list[float]):
    """An in-memory [accuracy, latency] study: one trial per proxy accuracy, each its own architecture
    (SE on stage 1 at reduction 2, 4, ...), latency rising with the proxy so every trial is on the front."""
    import optuna

    from nas import ArchConfig, BlockSpec

    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, proxy in enumerate(proxies):
        arch = ArchConfig("cifar_resnet", (BlockSpec("se", reduction=2 ** (i + 1)), BlockSpec("none"),
                                           BlockSpec("none")), {"depth": 20, "width": 16}, 10, 3)
        study.add_trial(optuna.trial.create_trial(values=[proxy, 1.0 + proxy], user_attrs={
            "arch": arch.to_dict(), "arch_id": arch.arch_id}))
    return study


def test_confirmation_rules_spend_the_budget_as_named(tmp_path):
    from end_to_end import SEEDS, confirm

    proxies = [0.20, 0.19, 0.18, 0.17, 0.16, 0.15]
    study = study_of(proxies)
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    # long training reverses the proxy: the screen must promote by its own results, not the proxy's
    long = FakeLongRuns({arch_id: 0.30 - p for arch_id, p in zip(ids, proxies, strict=True)})
    runs = confirm(study, long, budget_runs=10, claims=tmp_path, log=lambda _: None, rule="halving")
    assert len(long.trained) <= 10
    assert set(runs) == {"0", "1", "2", "3", "4"}  # budget // 2 candidates, in candidates' order
    seeds = {int(n): len(rs) for n, rs in runs.items()}
    # one-seed results: #4 is the most accurate, then #3 (each on the screen's front by latency too)
    promoted = sorted(n for n, k in seeds.items() if k == SEEDS)
    assert promoted == [3, 4] and all(seeds[n] == 1 for n in (0, 1, 2))

    depth = FakeLongRuns(long.val)
    runs = confirm(study, depth, budget_runs=10, claims=tmp_path, log=lambda _: None, rule="depth3")
    assert {n: len(rs) for n, rs in runs.items()} == {"0": 3, "1": 3, "2": 3}  # budget // 3 at 3 seeds

    breadth = FakeLongRuns(long.val)
    runs = confirm(study, breadth, budget_runs=10, claims=tmp_path, log=lambda _: None, rule="breadth2")
    assert {n: len(rs) for n, rs in runs.items()} == {str(n): 2 for n in range(5)}  # budget // 2 at 2 seeds


def test_hypervolume_is_the_area_a_front_dominates():
    reference = (0.1, 2.0)  # (worst accuracy, largest cost)
    front = [(0.3, 1.0), (0.2, 0.5)]
    assert hypervolume(front, reference) == pytest.approx(0.5 * 0.1 + 1.0 * 0.2)
    # a dominated point, a point outside the box and a repeat add nothing; order does not matter
    extra = [(0.15, 1.5), (0.05, 0.1), (0.3, 1.0)]
    assert hypervolume(extra[::-1] + front, reference) == pytest.approx(0.25)
    assert hypervolume([], reference) == 0.0


def test_hypervolume_gives_the_committed_hand_placements_figure():
    """end_to_end.json's hand placements' hypervolume, recomputed from its own points."""
    arm = json.loads((RESULTS / "end_to_end.json").read_text())["arms"]["tpe4papers_halving"]
    points = [(h["accuracy"], h["ratio"]) for h in arm["hand"]]
    assert hypervolume(points, tuple(arm["reference_point"])) == pytest.approx(arm["hypervolume"]["hand"], rel=1e-9)


def test_the_hypervolume_interval_pairs_an_architecture_on_both_sides():
    """end_to_end.py's bootstrap: a front that keeps the hand placements' runs as they are differs
    from them by nothing, whatever their seed noise (drawn apart it spanned +-0.003); a front that
    adds a cheaper point above them wins beyond noise; one that loses the best hand point, loses."""
    from harness import bootstrap_hv

    def row(arch_id, values, ratio):
        return {"arch_id": arch_id, "values": values, "ratio": ratio}

    hand = [row("none", [0.244, 0.240, 0.248], 1.0), row("eca", [0.266, 0.266, 0.259], 1.22),
            row("se", [0.260, 0.241, 0.268], 1.25)]
    reference = (0.24, 1.3)
    same = bootstrap_hv(list(hand), hand, reference)
    assert same["low"] == pytest.approx(0.0, abs=1e-12) and same["high"] == pytest.approx(0.0, abs=1e-12)
    assert same["p_better"] == 0.0
    cheaper = bootstrap_hv([*hand, row("s3", [0.262, 0.265, 0.263], 1.03)], hand, reference)
    assert cheaper["low"] > 0 and cheaper["p_better"] == 1.0
    lost = bootstrap_hv([hand[0], row("s3", [0.245, 0.246, 0.244], 1.03)], hand, reference)
    assert lost["high"] < 0

    # parametric at the pooled seed std: still paired, and three runs that happen to agree are not
    # taken for certainty (resampled, s3's spread of 0.0015 made the interval 3.4x narrower)
    assert bootstrap_hv(list(hand), hand, reference, seed_std=0.0084)["high"] == pytest.approx(0.0, abs=1e-12)
    parametric = bootstrap_hv([*hand, row("s3", [0.262, 0.265, 0.263], 1.03)], hand, reference, seed_std=0.0084)
    assert parametric["low"] < cheaper["low"] and parametric["high"] > cheaper["high"]


def test_heldout_scores_the_confirmed_front_on_seeds_its_selection_never_saw(tmp_path):
    """end_to_end.py --heldout: each front member is trained at the 3 seeds after the confirmation's
    last, a hand placement on both sides at those same seeds; the hand placements off the front keep
    their own runs; the figures come from the fresh runs only."""
    from end_to_end import SEEDS, heldout

    from nas import ArchConfig, BlockSpec

    study = study_of([0.20, 0.19])
    sampled = [ArchConfig.from_dict(t.user_attrs["arch"]) for t in study.trials]
    none = ArchConfig("cifar_resnet", (BlockSpec("none"),) * 3, {"depth": 20, "width": 16}, 10, 3)
    eca = ArchConfig("cifar_resnet", (BlockSpec("eca"),) * 3, {"depth": 20, "width": 16}, 10, 3)
    hand_archs = [("none", none), ("eca", eca)]
    ratio = {none.arch_id: 1.0, eca.arch_id: 1.2, sampled[0].arch_id: 1.05, sampled[1].arch_id: 1.1}
    # every architecture looked 0.01 better at the seeds the confirmation chose on than it is
    truth = {none.arch_id: 0.24, eca.arch_id: 0.26, sampled[0].arch_id: 0.25, sampled[1].arch_id: 0.23}

    class Runs(FakeLongRuns):
        def train(self, arch, seed):
            if self.get(arch, seed) is None:
                self.trained.append((arch.arch_id, seed))
                accuracy = truth[arch.arch_id] + (0.01 if seed < SEEDS or arch is sampled[0] and seed < 6 else 0)
                self.saved[self.key(arch, seed)] = {"val_accuracy": accuracy, "test_accuracy": accuracy + 0.001 * seed}
            return self.get(arch, seed)

    class Table:
        def predict(self, arch_id):
            return type("Prediction", (), {"ratio": ratio[arch_id], "ratio_ci": 0.01})()

    long = Runs({})
    reported = {"confirmed": [{"label": "#0", "arch_id": sampled[0].arch_id, "n": 6, "proposed": True},
                              {"label": "none", "arch_id": none.arch_id, "n": 3, "proposed": False}],
                "front": [sampled[0].arch_id, none.arch_id], "reference_point": [0.2, 1.3]}
    found = heldout(study, Table(), long, hand_archs, reported, tmp_path, log=lambda _: None)
    expected = [(sampled[0].arch_id, s) for s in (6, 7, 8)] + [(none.arch_id, s) for s in (3, 4, 5)]
    assert sorted(long.trained) == sorted(expected + [(eca.arch_id, s) for s in range(3)])
    assert found["seeds"] == {"#0": [6, 7, 8], "none": [3, 4, 5]}
    rows = {r["label"]: r for r in found["front"] + found["hand"]}
    assert rows["#0"]["accuracy"] == pytest.approx(0.25 + 0.007)  # its fresh seeds, none of the chosen ones
    assert rows["none"]["values"] == pytest.approx([0.243, 0.244, 0.245])  # the same runs on both sides
    assert rows["eca"]["values"] == pytest.approx([0.27, 0.271, 0.272])  # off the front: its own 3 seeds
    assert found["hypervolume"]["confirmed"] == pytest.approx(
        hypervolume([(0.257, 1.05), (0.244, 1.0)], (0.2, 1.3)))
    assert found["cheaper_eca_tie_found"] is False  # 0.257 against ECA's 0.271, a spread of 0.001


def test_a_distinct_arm_starts_as_a_copy_and_an_old_arm_is_kept_as_it_is(tmp_path):
    """end_to_end.py: an arm searched under the old count (repeats counted) is not extended by a
    rerun; an arm with `copy_of` starts, once, as Optuna's copy of that arm's study."""
    from end_to_end import Arm, searched, start_as_copy

    from nas import ProxyResult, search
    from nas.studyfile import load_study_config

    def stub_trainer(arch, data, proxy, device):
        return ProxyResult(accuracy=0.5, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                           images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device=str(device))

    old = load_study_config(write_study(tmp_path, name="old", trials=2, baselines=["none"]))
    new = load_study_config(write_study(tmp_path, name="new", trials=4, baselines=["none"],
                                        storage=old.storage))
    arm = Arm("old", 2, {"kind": "proxy"}, 1, repeats_counted=True)
    assert not searched(old, arm, log=lambda _: None)  # no study yet: a fresh search
    search(old, trainer=stub_trainer, device="cpu", log=lambda _: None)
    lines: list[str] = []
    assert searched(old, arm, log=lines.append) and "kept as it is" in lines[0]
    assert not searched(old, dataclasses.replace(arm, repeats_counted=False), log=lambda _: None)
    for _ in range(2):  # the second call finds the copy made and leaves it alone
        start_as_copy(new, old, log=lambda _: None)
    copied = optuna.load_study(study_name="new", storage=old.storage).trials
    original = optuna.load_study(study_name="old", storage=old.storage).trials
    assert [(t.values, t.user_attrs["arch_id"]) for t in copied] == [(t.values, t.user_attrs["arch_id"])
                                                                        for t in original]


def test_replot_draws_the_named_arms_from_the_results_file_and_refuses_an_unreported_one(tmp_path):
    """end_to_end.py --replot: the plot comes from the written results (no study, no data needed);
    an arm the file does not hold is refused with the file and the arm named, exit 2."""
    written = json.loads((RESULTS / "end_to_end.json").read_text())
    written["arms"] = {name: written["arms"][name] for name in ("tpe4", "tpe4papers_halving")}
    (tmp_path / "end_to_end.json").write_text(json.dumps(written))
    command = [sys.executable, str(BENCHMARKS / "end_to_end.py"), "--data", str(tmp_path / "no-data"),
               "--cache", str(tmp_path), "--quick", "--replot", "--arms"]
    done = subprocess.run([*command, "tpe4", "tpe4papers_halving"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "end_to_end.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = subprocess.run([*command, "tpe4", "supernet"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2
    assert "holds no results for supernet" in refused.stderr and str(tmp_path / "end_to_end.json") in refused.stderr
