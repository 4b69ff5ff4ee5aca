"""`nas front` and `nas export` on a finished and refined study: plot paths refused before any
output, JSON with each objective once and the knee flagged, the refined front plotted and picked
from, `--pick trial:N` held to the filters, and a warning when the best accuracy is near chance.

And on constructed studies (no training): evaluations of one architecture at several seeds pooled
into one row (mean, std, count; reused duplicates and repeated seeds not counted), the front
computed on those means, a single evaluation's std from the study's noise or its fallbacks, ties
with the cheaper neighbour marked, the knee never a tie with a cheaper point, and `nas export`
saying whether the pick beats `none` beyond noise.

The study is searched and refined by the real `nas` command; the many `nas front` and `nas export`
calls on it run through `nas.cli.main` in this process (`nas_in_process`), sparing a torch import
per command; one test reads a study in a fresh process to show that torch is not loaded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys

import optuna
import pytest
import yaml
from conftest import ROOT, nas, nas_in_process, write_study
from optuna.trial import FrozenTrial, TrialState

from nas import ArchConfig, BlockSpec, ProxyResult, search
from nas.front import Front, FrontRow, format_table, front_of, geometric_knee, knee, near_chance, to_json
from nas.noise import noise_record, ties
from nas.study import open_study
from nas.studyfile import load_study_config


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    """The tiny study searched to 6 trials, then its top 3 confirmed over 2 seeds."""
    folder = tmp_path_factory.mktemp("front")
    study = write_study(folder)
    for command in (["search", study.name], ["refine", study.name, "--top", "3", "--epochs", "1", "--seeds", "2",
                                                          "--max-seeds", "2"]):
        result = nas(*command, cwd=folder)  # the real command, in its own process
        assert result.returncode == 0, result.stderr
    return folder, study.name


@pytest.mark.parametrize("plot, phrase", [("missing/front.png", "the folder missing does not exist"),
                                          ("front.svg", "unsupported file type '.svg'; allowed: .png, .html")])
def test_a_plot_that_cannot_be_written_is_refused_before_any_output(refined, plot, phrase):
    folder, study = refined
    for extra in ([], ["--json"], ["--refined"]):
        result = nas_in_process("front", study, "--plot", plot, *extra, cwd=folder)
        assert result.returncode == 2 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nas front: error: --plot {plot}: ")
        assert phrase in result.stderr
    assert not (folder / "front.svg").exists() and not (folder / "missing").exists()


def test_json_has_each_objective_once_in_its_unit_and_flags_the_knee(refined):
    folder, study = refined
    rows = json.loads(nas_in_process("front", study, "--search", "--json", cwd=folder).stdout)
    table = nas_in_process("front", study, "--search", cwd=folder).stdout
    assert rows
    for r in rows:
        assert set(r) == {"trial", "accuracy", "accuracy_std", "n_evals", "std_source", "epochs", "mflops", "params",
                          "arch_id", "baseline", "knee", "tie", "tie_with", "trials"}
        assert 0 < r["mflops"] < 1 and isinstance(r["params"], int)  # MFLOPs, not FLOPs; no "flops" twin
        # one evaluation each; no noise measured: the 20 validation images' binomial std, a lower bound
        assert r["n_evals"] == 1 and r["epochs"] == 1 and r["std_source"] == "binomial"
        assert r["accuracy_std"] == pytest.approx(math.sqrt(r["accuracy"] * (1 - r["accuracy"]) / 20))
    knees = [r for r in rows if r["knee"]]
    assert len(knees) == 1
    knee_line = next(line for line in table.splitlines() if " knee " in f" {line} ")
    assert knee_line.startswith(f"#{knees[0]['trial']} ")
    assert "± ≥" in table and "a lower bound" in table
    refined_rows = json.loads(nas_in_process("front", study, "--refined", "--json", cwd=folder).stdout)
    # confirmation finished: the confirmed front is what `nas front` reads by default
    assert refined_rows == json.loads(nas_in_process("front", study, "--json", cwd=folder).stdout)
    assert refined_rows and all(r["seeds"] == 2 == r["n_evals"] and r["accuracy_std"] >= 0 for r in refined_rows)
    assert all(r["std_source"] == "pooled" and r["epochs"] == 1 for r in refined_rows)


def test_refined_plot_shows_the_refined_results(refined):
    folder, study = refined
    for name, extra, title in (("proxy.html", ["--search"], "study 'tiny': 6 finished trials, "),
                               ("refined.html", [], "confirmed study 'tiny': 3 finished trials")):
        result = nas_in_process("front", study, "--plot", name, *extra, cwd=folder)
        assert result.returncode == 0, result.stderr
        assert title in (folder / name).read_text()
    result = nas_in_process("front", study, "--refined", "--plot", "refined.png", cwd=folder)
    assert result.returncode == 0 and (folder / "refined.png").read_bytes()[:4] == b"\x89PNG"


def test_pick_trial_n_is_held_to_the_filters_and_to_the_refined_results(refined):
    folder, study = refined
    rows = json.loads(nas_in_process("front", study, "--search", "--json", cwd=folder).stdout)
    proxy_trial = rows[-1]
    result = nas_in_process("export", study, "--search", "--pick", f"trial:{proxy_trial['trial']}", "--max-mflops",
                 str(proxy_trial["mflops"] / 2), "-o", "x.yaml", cwd=folder)
    assert result.returncode == 2 and "does not meet --max-mflops" in result.stderr
    result = nas_in_process("export", study, "--search", "--pick", f"trial:{proxy_trial['trial']}", "--min-accuracy",
                            "1.01",
                 "-o", "x.yaml", cwd=folder)
    assert result.returncode == 2 and "does not meet --min-accuracy 1.01" in result.stderr
    assert not (folder / "x.yaml").exists()

    refined_rows = json.loads(nas_in_process("front", study, "--refined", "--json", cwd=folder).stdout)
    chosen = refined_rows[0]
    result = nas_in_process("export", study, "--refined", "--pick", f"trial:{chosen['trial']}", "-o", "r.yaml",
                            cwd=folder)
    assert result.returncode == 0, result.stderr
    provenance = yaml.safe_load((folder / "r.yaml").read_text())["provenance"]
    metrics = provenance["metrics"]
    assert metrics["accuracy"] == chosen["accuracy"] == metrics["refined_accuracy_mean"]
    assert provenance["front"] == "confirmed front (1 epochs x 2 seeds; candidates ranked by 1-epoch proxy)"
    result = nas_in_process("export", study, "--refined", "--pick", "trial:99", "-o", "r.yaml", cwd=folder)
    assert result.returncode == 2 and "trial 99 is not a finished trial of confirmed study 'tiny'" in result.stderr


def row(accuracy: float, num_classes: int) -> FrontRow:
    return FrontRow(0, {"accuracy": accuracy, "flops": 1.0}, 1.0, 1, "s1:none", {"num_classes": num_classes},
                    None, {})


def test_near_chance_is_a_tenth_of_the_way_from_chance_to_perfect():
    assert "near chance (0.1000 for 10 classes)" in near_chance([row(0.12, 10), row(0.18, 10)])
    assert near_chance([row(0.12, 10), row(0.20, 10)]) is None
    assert near_chance([row(0.54, 2)]) is not None and near_chance([row(0.56, 2)]) is None
    assert near_chance([]) is None


def test_a_study_at_chance_accuracy_is_flagged_by_search_and_front(tmp_path, refined):
    # a learning rate of 1e-7 leaves the networks as initialised: chance accuracy on 500 validation images
    study = write_study(tmp_path, name="chance", dataset={"name": "synthetic", "image_size": 16, "val_fraction": 0.5},
                        proxy={"epochs": 1, "batch_size": 100, "lr": 1e-7}, trials=2)
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    end = result.stdout.strip().splitlines()[-1]
    assert end.startswith("done; warning: the best accuracy") and "near chance (0.1000 for 10 classes)" in end
    front = nas_in_process("front", study.name, cwd=tmp_path)
    assert front.returncode == 0 and "warning: the best accuracy" in front.stderr
    folder, trained = refined
    assert "warning" not in nas_in_process("front", trained, cwd=folder).stderr


def test_every_objective_is_measured_in_its_unit_and_written_under_its_key(tmp_path):
    """A study of accuracy, params and latency (a stub trainer): the values are stored in the units
    `nas.objectives` names, and `--json` rows and an export carry them under its keys."""
    study_file = write_study(tmp_path, objectives=["accuracy", "params", "latency"], baselines=["none"], trials=2,
                             latency={"target": 0.25, "check": 0, "max_seconds": 5})

    def stub(arch, data, proxy, device):
        return ProxyResult(accuracy=0.5, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                           images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device="cpu")

    study = search(study_file, trainer=stub, device="cpu", log=lambda line: None)
    assert study.metric_names == ["accuracy", "params (M)", "latency (ms)"]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        accuracy, params, latency = trial.values
        assert accuracy == 0.5 and params == trial.user_attrs["params"] / 1e6 and 0 < latency < 1e3
    rows = json.loads(nas_in_process("front", study_file.name, "--json", cwd=tmp_path).stdout)
    assert rows and all(set(r) == {"trial", "accuracy", "accuracy_std", "n_evals", "std_source", "epochs", "mflops",
                                   "params", "latency_ms", "latency_ci_ms", "latency_ratio", "latency_ratio_ci",
                                   "latency_tie", "arch_id", "baseline", "knee", "tie", "tie_with",
                                   "trials"} for r in rows)
    assert nas_in_process("export", study_file.name, "-o", "best.yaml", cwd=tmp_path).returncode == 0
    metrics = yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]["metrics"]
    assert {"accuracy", "params_millions", "latency_ms", "mflops", "params"} <= set(metrics)


def test_front_export_of_an_existing_study_do_not_load_torch(refined):
    """Reading a study needs only its name and storage: `nas front` starts in about a second
    instead of 5-7 s (benchmarks/cli_startup.py), and says the same as before."""
    folder, study = refined
    code = (
        "import sys, contextlib, io, json\n"
        "from nas.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['front', {study!r}, '--json']) == 0\n"
        "rows = json.loads(out.getvalue())\n"
        "assert rows and all('arch_id' in r for r in rows), rows\n"
        "assert 'torch' not in sys.modules, 'nas front'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    other = nas_in_process("front", "--storage", f"sqlite:///{folder / 'nothing.db'}", study, cwd=folder)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert not (folder / "nothing.db").exists()


# Constructed studies: trials added with optuna.trial.create_trial, nothing trained.

def evaluated(kind: str, accuracy: float, mflops: float, constraints: dict | None = None, **attrs) -> FrozenTrial:
    """A finished trial of the uniform `kind` architecture at seed 0 (unless `attrs` say otherwise)."""
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), {"depth": 8, "width": 4}, 10, 3)
    user_attrs = {"arch": arch.to_dict(), "arch_id": arch.arch_id, "mflops": mflops, "params": 1000,
                  "proxy_key": "k", "seed": 0, **attrs}
    return optuna.trial.create_trial(values=[accuracy, mflops], user_attrs=user_attrs, constraints=constraints)


def study_with(trials: list[FrozenTrial], **attrs) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for key, value in {"objectives": ["accuracy", "flops"], "proxy": {"epochs": 1}, **attrs}.items():
        study.set_user_attr(key, value)
    for trial in trials:
        study.add_trial(trial)
    return study


def test_evaluations_at_several_seeds_pool_into_one_row_and_repeats_do_not_count():
    study = study_with([
        evaluated("se", 0.70, 2.0, seed=0),
        evaluated("se", 0.74, 2.0, seed=1),
        evaluated("se", 0.70, 2.0, seed=0, duplicate_of=0),  # a reused result, not an evaluation
        evaluated("se", 0.78, 2.0, seed=2),
        evaluated("se", 0.99, 2.0, seed=1),  # a second result at seed 1 is no new evidence
        evaluated("se", 0.60, 2.0, seed=0, epochs=3),  # another fidelity: a row of its own
        evaluated("eca", 0.65, 2.0, seed=0, accuracies=[0.60, 0.70], seeds=[0, 1]),  # one trial, two seeds
        evaluated("eca", 0.80, 2.0, seed=2),
        evaluated("eca", 0.50, 2.0, seed=1),  # seed 1 is already in trial 6's list
        evaluated("ge", 0.66, 2.0, accuracies=[0.64, 0.68]),  # seeds not listed: each counts
    ])
    rows = {(r.arch_id.split("-")[0], r.epochs): r for r in front_of(study).architectures}
    assert len(rows) == 4
    se = rows["s1:se", 1]
    # three architectures at 2-3 seeds at one fidelity: each row's std is their seed std pooled,
    # sqrt(sum (n - 1) s^2 / sum (n - 1)) of se's 0.04, eca's 0.10 and ge's 0.028
    pooled = math.sqrt((2 * 0.04**2 + 2 * 0.10**2 + 1 * statistics.variance([0.64, 0.68])) / 5)
    assert (se.number, se.trials, se.n_evals, se.std_source) == (0, (0, 1, 2, 3, 4), 3, "pooled")
    assert se.accuracy == pytest.approx(0.74) and se.accuracy_std == pytest.approx(pooled)
    assert se.values["accuracy"] == se.accuracy and se.accuracy_text() == f"0.7400 ± {pooled:.4f} (3)"
    longer = rows["s1:se", 3]
    assert (longer.trials, longer.n_evals, longer.accuracy) == ((5,), 1, 0.60)
    eca = rows["s1:eca", 1]
    assert eca.n_evals == 3 and eca.accuracy == pytest.approx(0.70) and eca.accuracy_std == pytest.approx(pooled)
    ge = rows["s1:ge", 1]
    assert ge.n_evals == 2 and ge.accuracy_std == pytest.approx(pooled) and ge.std_source == "pooled"
    # one architecture alone at several seeds keeps its own std: there is nothing to pool with
    alone = front_of(study_with([evaluated("se", 0.70, 2.0, seed=0), evaluated("se", 0.74, 2.0, seed=1),
                                 evaluated("se", 0.78, 2.0, seed=2), evaluated("eca", 0.5, 2.0)])).architectures
    se_alone = next(r for r in alone if r.arch_id.startswith("s1:se"))
    assert se_alone.std_source == "seeds" and se_alone.accuracy_std == pytest.approx(0.04)


def test_the_front_is_computed_on_pooled_means_not_on_a_lucky_seed():
    study = study_with([
        evaluated("none", 0.80, 1.0, seed=0, baseline="none"),  # a lucky seed ...
        evaluated("none", 0.60, 1.0, seed=1),
        evaluated("none", 0.61, 1.0, seed=2),  # ... the mean is 0.67
        evaluated("se", 0.70, 2.0),
        evaluated("eca", 0.65, 2.5),  # dominated by SE
        evaluated("cbam", 0.90, 3.0, constraints={"mflops": 1.0}),  # over budget: never on the front
    ])
    assert [t.number for t in study.best_trials] == [0]  # on raw trials the lucky seed hides SE
    front = front_of(study)
    assert [r.number for r in front.rows] == [0, 3]
    assert front.rows[0].baseline == "none" and front.rows[0].accuracy == pytest.approx(0.67)
    assert {r.number for r in front.architectures} == {0, 3, 4, 5} and front.finished == 6


def test_a_single_evaluation_shows_the_study_noise_else_a_binomial_lower_bound_else_unknown():
    trials = [evaluated("none", 0.70, 1.0, baseline="none"), evaluated("se", 0.80, 2.0, epochs=3)]
    noise = noise_record([0.66, 0.70, 0.74], 500, arch_id="s1:none", epochs=1, proxy_key="k")

    def rows(**attrs) -> dict[str, FrontRow]:
        return {r.arch_id[:5]: r for r in front_of(study_with(trials, **attrs)).architectures}

    measured = rows(noise=noise, val_size=1000)
    assert (measured["s1:no"].accuracy_std, measured["s1:no"].std_source) == (pytest.approx(0.04), "noise")
    # measured at 1 epoch, so not for the 3-epoch row: the study's validation size gives its lower bound
    assert measured["s1:se"].std_source == "binomial"
    assert measured["s1:se"].accuracy_std == pytest.approx(math.sqrt(0.8 * 0.2 / 1000))
    derived = rows(dataset={"name": "fashion-mnist", "subset": 5000, "val_fraction": 0.1})
    assert derived["s1:no"].accuracy_std == pytest.approx(math.sqrt(0.7 * 0.3 / 500))
    assert derived["s1:no"].accuracy_text() == "0.7000 ± ≥0.0205 (1)"
    unknown = rows()
    assert unknown["s1:no"].accuracy_std is None and unknown["s1:no"].accuracy_text() == "0.7000 ± ? (1)"
    table = format_table(front_of(study_with(trials, noise=noise)))
    assert "0.7000 ± 0.0400 (1)" in table
    assert "the study's measured noise, std 0.0400 over 3 seeds of s1:none" in table


def front_row(number: int, accuracy: float, mflops: float, std: float, n: int = 1) -> FrontRow:
    return FrontRow(number, {"accuracy": accuracy, "flops": mflops}, mflops, 1000, f"arch{number}", {}, None, {},
                    accuracy_std=std, n_evals=n, std_source="seeds" if n > 1 else "noise", trials=(number,))


def test_the_knee_never_picks_a_tie_with_a_cheaper_point():
    accuracies = (0.70, 0.74, 0.80, 0.81)  # the bend is at 0.80
    precise = [front_row(i, a, 1.0 + i, 0.01) for i, a in enumerate(accuracies)]
    assert geometric_knee(precise).number == 2 and knee(precise).number == 2
    noisy = [front_row(i, a, 1.0 + i, 0.03) for i, a in enumerate(accuracies)]
    assert ties(noisy[2], noisy[1]) and ties(noisy[1], noisy[0]) and not ties(noisy[2], noisy[0])
    assert geometric_knee(noisy).number == 2 and knee(noisy).number == 0  # down the chain of ties
    # the cheapest point the knee ties with, past a nearer one it does not tie with
    skip = [front_row(0, 0.70, 1.0, 0.2), front_row(1, 0.76, 2.0, 0.005), front_row(2, 0.80, 3.0, 0.005),
            front_row(3, 0.805, 4.0, 0.005)]
    assert ties(skip[2], skip[0]) and not ties(skip[2], skip[1])
    assert geometric_knee(skip).number == 2 and knee(skip).number == 0
    # evaluated at more seeds, the bend stands out from its cheaper neighbours
    sure = [*noisy[:2], dataclasses.replace(noisy[2], accuracy_std=0.01, n_evals=9), noisy[3]]
    sure[:2] = [dataclasses.replace(r, accuracy_std=0.01, n_evals=9) for r in sure[:2]]
    assert knee(sure).number == 2


def test_ties_with_the_cheaper_neighbour_are_marked_in_the_table_and_json():
    rows = [front_row(0, 0.70, 1.0, 0.03), front_row(1, 0.74, 2.0, 0.03), front_row(2, 0.90, 3.0, 0.03),
            front_row(3, 0.91, 4.0, 0.03, n=4)]
    front = Front("constructed", rows, rows)
    items = to_json(front)
    assert [r["tie"] for r in items] == [False, True, False, True]
    assert [r["tie_with"] for r in items] == [None, 0, None, 2]
    assert [r["knee"] for r in items] == [False, False, True, False]
    assert items[3]["n_evals"] == 4 and items[3]["accuracy_std"] == 0.03 and items[3]["trials"] == [3]
    lines = format_table(front).splitlines()
    assert "0.7400 ± 0.0300 (1)" in lines[2] and "tie #0" in lines[2]
    assert "beyond noise" in lines[3] and "knee" in lines[3] and "tie #2" in lines[4]
    assert any("tie = within noise of the next cheaper front row" in line for line in lines[5:])
    unknown = [dataclasses.replace(r, accuracy_std=None) for r in rows]
    assert [r["tie"] for r in to_json(Front("unknown", unknown, unknown))] == [False, None, None, None]


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    """A nas study made by `open_study` with trials added, measured noise std 0.01 at 1 epoch:
    `none` 0.70, SE 0.80 (beats it), ECA 0.71 (ties), CBAM 0.50 (worse); and a study without `none`."""
    folder = tmp_path_factory.mktemp("constructed")
    config = load_study_config(write_study(folder, name="made"))
    study, _ = open_study(config, create=True)
    study.set_user_attr("noise", noise_record([0.69, 0.70, 0.71], 500, arch_id="s1:none", epochs=1))
    for kind, accuracy, mflops in (("none", 0.70, 1.0), ("se", 0.80, 1.1), ("eca", 0.71, 1.05), ("cbam", 0.50, 1.2)):
        study.add_trial(evaluated(kind, accuracy, mflops, baseline=kind))
    other = load_study_config(write_study(folder, name="nonone"))
    study, _ = open_study(other, create=True)
    study.add_trial(evaluated("se", 0.80, 1.1))
    return folder


def export(folder, study: str, *args: str) -> tuple[str, dict]:
    result = nas_in_process("export", study, *args, "-o", "pick.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    return result.stdout, yaml.safe_load((folder / "pick.yaml").read_text())["provenance"]


def test_front_cli_shows_every_accuracy_with_its_noise(constructed):
    result = nas_in_process("front", "made.yaml", cwd=constructed)
    assert result.returncode == 0, result.stderr
    assert "0.7000 ± 0.0100 (1)" in result.stdout and "0.8000 ± 0.0100 (1)" in result.stdout
    assert "tie #0" in result.stdout  # ECA (#2) is within noise of the cheaper none (#0)
    rows = json.loads(nas_in_process("front", "made.yaml", "--json", cwd=constructed).stdout)
    assert [(r["trial"], r["tie"], r["tie_with"]) for r in rows] == [(0, False, None), (2, True, 0), (1, False, None)]
    assert all(r["accuracy_std"] == pytest.approx(0.01) and r["std_source"] == "noise" for r in rows)


@pytest.mark.parametrize("trial, verdict, difference", [(1, "beats none beyond noise", 0.10),
                                                        (2, "tie with none (within noise)", 0.01),
                                                        (3, "worse than none beyond noise", -0.20)])
def test_export_says_whether_the_pick_beats_none_beyond_noise(constructed, trial, verdict, difference):
    stdout, provenance = export(constructed, "made.yaml", "--pick", f"trial:{trial}")
    vs_none = provenance["vs_none"]
    assert vs_none["verdict"] == verdict and vs_none["baseline_trial"] == 0
    assert vs_none["difference"] == pytest.approx(difference)
    assert vs_none["difference_std"] == pytest.approx(0.01 * math.sqrt(2)) and vs_none["tie_factor"] == 2.0
    line = stdout.strip().splitlines()[-1]
    assert line.startswith(f"vs none (#0): accuracy {difference:+.4f} ± 0.0141") and line.endswith(verdict)
    assert provenance["metrics"]["accuracy_std"] == pytest.approx(0.01) and provenance["metrics"]["n_evals"] == 1


def test_export_without_a_none_baseline_says_so(constructed):
    stdout, provenance = export(constructed, "nonone.yaml")
    assert provenance["vs_none"] == {"verdict": "no none baseline in the study"}
    assert stdout.strip().splitlines()[-1] == "vs none: no none baseline in the study"
    stdout, provenance = export(constructed, "made.yaml", "--pick", "trial:0")
    assert provenance["vs_none"]["verdict"] == "is the none baseline"


def test_refined_export_compares_with_the_refined_none_or_says_it_was_not_refined(constructed):
    config = load_study_config(constructed / "made.yaml")
    refined = optuna.create_study(study_name="made.refined", storage=config.storage,
                                  directions=["maximize", "minimize"])
    refined.set_user_attr("objectives", ["accuracy", "flops"])

    def add(kind: str, source: int, accuracies: list[float], mflops: float) -> None:
        mean = statistics.fmean(accuracies)
        refined.add_trial(evaluated(kind, mean, mflops, baseline=kind, source_trial=source,
                                    refined_accuracies=accuracies, refined_epochs=3, refined_seeds=len(accuracies),
                                    refined_accuracy_mean=mean, refined_accuracy_std=statistics.stdev(accuracies)))

    add("se", 1, [0.80, 0.82], 1.1)
    stdout, provenance = export(constructed, "made.yaml", "--refined", "--pick", "trial:1")
    assert provenance["vs_none"] == {"verdict": "the none baseline was not confirmed (run `nas refine` with a "
                                                "larger --top)"}
    assert stdout.strip().splitlines()[-1].startswith("vs none: the none baseline was not confirmed")
    add("none", 0, [0.70, 0.72], 1.0)
    stdout, provenance = export(constructed, "made.yaml", "--refined", "--pick", "trial:1")
    vs_none = provenance["vs_none"]
    assert vs_none["baseline_n_evals"] == 2 and vs_none["difference"] == pytest.approx(0.10)
    assert vs_none["difference_std"] == pytest.approx(math.sqrt(2 * 0.0002 / 2))
    assert vs_none["verdict"] == "beats none beyond noise" and "0.8100 ± 0.0141 (2)" in stdout
