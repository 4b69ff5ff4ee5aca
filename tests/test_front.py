"""`nas front` and `nas export` on a finished and refined study: plot paths refused before any
output, JSON with each objective once and the knee flagged, the refined front plotted and picked
from, `--pick trial:N` held to the filters, and a warning when the best accuracy is near chance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, nas, write_study
from optuna.trial import TrialState

from nas import ProxyResult, search
from nas.front import FrontRow, near_chance


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    """The tiny study searched to 6 trials, then its top 3 refined over 2 seeds."""
    folder = tmp_path_factory.mktemp("front")
    study = write_study(folder)
    for command in (["search", study.name], ["refine", study.name, "--top", "3", "--epochs", "1", "--seeds", "2"]):
        result = nas(*command, cwd=folder)
        assert result.returncode == 0, result.stderr
    return folder, study.name


@pytest.mark.parametrize("plot, phrase", [("missing/front.png", "the folder missing does not exist"),
                                          ("front.svg", "unsupported file type '.svg'; allowed: .png, .html")])
def test_a_plot_that_cannot_be_written_is_refused_before_any_output(refined, plot, phrase):
    folder, study = refined
    for extra in ([], ["--json"], ["--refined"]):
        result = nas("front", study, "--plot", plot, *extra, cwd=folder)
        assert result.returncode == 2 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nas front: error: --plot {plot}: ")
        assert phrase in result.stderr
    assert not (folder / "front.svg").exists() and not (folder / "missing").exists()


def test_json_has_each_objective_once_in_its_unit_and_flags_the_knee(refined):
    folder, study = refined
    rows = json.loads(nas("front", study, "--json", cwd=folder).stdout)
    table = nas("front", study, cwd=folder).stdout
    assert rows
    for r in rows:
        assert set(r) == {"trial", "accuracy", "mflops", "params", "arch_id", "baseline", "knee"}
        assert 0 < r["mflops"] < 1 and isinstance(r["params"], int)  # MFLOPs, not FLOPs; no "flops" twin
    knees = [r for r in rows if r["knee"]]
    assert len(knees) == 1
    knee_line = next(line for line in table.splitlines() if " knee " in f" {line} ")
    assert knee_line.startswith(f"#{knees[0]['trial']} ")
    refined_rows = json.loads(nas("front", study, "--refined", "--json", cwd=folder).stdout)
    assert refined_rows and all(r["seeds"] == 2 and r["accuracy_std"] >= 0 for r in refined_rows)


def test_refined_plot_shows_the_refined_results(refined):
    folder, study = refined
    for name, extra, title in (("proxy.html", [], "study 'tiny': 6 finished trials"),
                               ("refined.html", ["--refined"], "refined study 'tiny': 3 finished trials")):
        result = nas("front", study, "--plot", name, *extra, cwd=folder)
        assert result.returncode == 0, result.stderr
        assert title in (folder / name).read_text()
    result = nas("front", study, "--refined", "--plot", "refined.png", cwd=folder)
    assert result.returncode == 0 and (folder / "refined.png").read_bytes()[:4] == b"\x89PNG"


def test_pick_trial_n_is_held_to_the_filters_and_to_the_refined_results(refined):
    folder, study = refined
    rows = json.loads(nas("front", study, "--json", cwd=folder).stdout)
    proxy_trial = rows[-1]
    result = nas("export", study, "--pick", f"trial:{proxy_trial['trial']}", "--max-mflops",
                 str(proxy_trial["mflops"] / 2), "-o", "x.yaml", cwd=folder)
    assert result.returncode == 2 and "does not meet --max-mflops" in result.stderr
    result = nas("export", study, "--pick", f"trial:{proxy_trial['trial']}", "--min-accuracy", "1.01",
                 "-o", "x.yaml", cwd=folder)
    assert result.returncode == 2 and "does not meet --min-accuracy 1.01" in result.stderr
    assert not (folder / "x.yaml").exists()

    refined_rows = json.loads(nas("front", study, "--refined", "--json", cwd=folder).stdout)
    chosen = refined_rows[0]
    result = nas("export", study, "--refined", "--pick", f"trial:{chosen['trial']}", "-o", "r.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    metrics = yaml.safe_load((folder / "r.yaml").read_text())["provenance"]["metrics"]
    assert metrics["accuracy"] == chosen["accuracy"] == metrics["refined_accuracy_mean"]
    result = nas("export", study, "--refined", "--pick", "trial:99", "-o", "r.yaml", cwd=folder)
    assert result.returncode == 2 and "trial 99 is not a finished trial of refined study 'tiny'" in result.stderr


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
    result = nas("search", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    end = result.stdout.strip().splitlines()[-1]
    assert end.startswith("done; warning: the best accuracy") and "near chance (0.1000 for 10 classes)" in end
    front = nas("front", study.name, cwd=tmp_path)
    assert front.returncode == 0 and "warning: the best accuracy" in front.stderr
    folder, trained = refined
    assert "warning" not in nas("front", trained, cwd=folder).stderr


def test_every_objective_is_measured_in_its_unit_and_written_under_its_key(tmp_path):
    """A study of accuracy, params and latency (a stub trainer): the values are stored in the units
    `nas.objectives` names, and `--json` rows and an export carry them under its keys."""
    study_file = write_study(tmp_path, objectives=["accuracy", "params", "latency"], baselines=["none"], trials=2)

    def stub(arch, data, proxy, device):
        return ProxyResult(accuracy=0.5, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                           images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device="cpu")

    study = search(study_file, trainer=stub, device="cpu", log=lambda line: None)
    assert study.metric_names == ["accuracy", "params (M)", "latency (ms)"]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        accuracy, params, latency = trial.values
        assert accuracy == 0.5 and params == trial.user_attrs["params"] / 1e6 and 0 < latency < 1e3
    rows = json.loads(nas("front", study_file.name, "--json", cwd=tmp_path).stdout)
    assert rows and all(set(r) == {"trial", "accuracy", "mflops", "params", "latency_ms", "arch_id", "baseline",
                                   "knee"} for r in rows)
    assert nas("export", study_file.name, "-o", "best.yaml", cwd=tmp_path).returncode == 0
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
    other = nas("front", "--storage", f"sqlite:///{folder / 'nothing.db'}", study, cwd=folder)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert not (folder / "nothing.db").exists()
