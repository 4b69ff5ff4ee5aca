"""Search studies end to end through the CLI: results, resumption, front, export, budgets,
duplicates, failures.

The finished study is searched, and a study resumed, by the real `nas` command in a fresh process;
the other commands run through `nas.cli.main` in this process (`nas_in_process`), since a fresh
interpreter per command spends seconds importing torch (tests/test_cli_errors.py checks that the
two print the same)."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from conftest import nas, nas_in_process, write_study
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from nas import BlockSpec, ProxyResult, build_model, load_arch, search
from nas.data import load_dataset
from nas.storage import quiet_experimental
from nas.study import loop, open_study
from nas.study.counts import study_target
from nas.studyfile import load_study_config


def load(study_path, name="tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_path.parent / name}.db")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One grayscale tiny study run to its target of 6 finished trials."""
    folder = tmp_path_factory.mktemp("finished")
    study = write_study(folder, dataset={"name": "synthetic", "subset": 200, "image_size": 16, "in_chans": 1})
    result = nas("search", study.name, cwd=folder)  # the real command, in its own process
    assert result.returncode == 0, result.stderr
    return study, result


def test_search_reaches_its_target_with_baselines_first(finished):
    study_path, result = finished
    study = load(study_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6 and len(study.trials) == 6
    assert [t.user_attrs.get("baseline") for t in study.trials[:2]] == ["none", "se"]
    assert study.trials[1].user_attrs["arch_id"] == "s1:se-r16-avg|s2:se-r16-avg|s3:se-r16-avg"
    assert study.metric_names == ["accuracy", "MFLOPs"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.user_attrs["study_file"] == str(study_path)
    for trial in complete:
        attrs = trial.user_attrs
        for key in ("arch", "arch_id", "mflops", "params", "seconds", "images_per_second", "device", "seed"):
            assert key in attrs, key
        assert 0 <= trial.values[0] <= 1 and trial.values[1] == pytest.approx(attrs["mflops"])
        assert attrs["arch"]["in_chans"] == 1
    # one line per trial: number, arch_id, accuracy, MFLOPs
    for trial in complete:
        assert any(line.startswith(f"#{trial.number} ") and trial.user_attrs["arch_id"] in line
                   and f"{trial.values[1]:.2f} MFLOPs" in line for line in result.stdout.splitlines())
    assert "one multiply-add = one flop" in result.stdout


def test_rerunning_a_finished_study_says_so(finished):
    study_path, _ = finished
    result = nas_in_process("search", study_path.name, cwd=study_path.parent)
    assert result.returncode == 0 and "already has 6 finished trials" in result.stdout
    assert len(load(study_path).trials) == 6


def test_front_table_json_and_plots(finished):
    study_path, _ = finished
    folder = study_path.parent
    study = load(study_path)
    front_numbers = {t.number for t in study.best_trials}
    result = nas_in_process("front", study_path.name, "--json", cwd=folder)
    rows = json.loads(result.stdout)
    assert {r["trial"] for r in rows} <= front_numbers and rows
    assert all(set(r) >= {"trial", "accuracy", "mflops", "params", "arch_id", "baseline"} for r in rows)
    result = nas_in_process("front", study_path.name, "--plot", "front.png", cwd=folder)
    assert result.returncode == 0 and "knee" in result.stdout and "multiply-add" in result.stdout
    assert (folder / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nas_in_process("front", study_path.name, "--plot", "front.html", cwd=folder).returncode == 0
    assert "plotly" in (folder / "front.html").read_text()[:200_000].lower()


@pytest.mark.parametrize("pick", ["knee", "accuracy", "flops", "trial:3"])
def test_export_builds_with_the_study_shape(finished, pick):
    study_path, _ = finished
    folder = study_path.parent
    out = folder / f"best-{pick.replace(':', '')}.yaml"
    result = nas_in_process("export", study_path.name, "--pick", pick, "-o", out.name, cwd=folder)
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(out.read_text())
    provenance = document["provenance"]
    study = load(study_path)
    trial = study.trials[provenance["trial"]]
    assert provenance["study"] == "tiny" and provenance["arch_id"] == trial.user_attrs["arch_id"]
    assert provenance["metrics"]["accuracy"] == trial.values[0]
    assert {"torch", "optuna", "nas"} <= set(provenance["versions"]) and provenance["proxy"]["epochs"] == 1
    arch = load_arch(out)
    assert arch.in_chans == 1 and arch.num_classes == 10
    import torch
    assert build_model(out)(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    front = study.best_trials
    if pick == "accuracy":
        assert trial.values[0] == max(t.values[0] for t in front)
    if pick == "flops":
        assert trial.values[1] == min(t.values[1] for t in front)
    if pick == "trial:3":
        assert trial.number == 3


def test_export_filters(finished):
    study_path, _ = finished
    result = nas_in_process("export", study_path.name, "--max-mflops", "0.0001", "-o", "x.yaml", cwd=study_path.parent)
    assert result.returncode == 2 and "no front trial meets --max-mflops" in result.stderr
    assert not (study_path.parent / "x.yaml").exists()
    result = nas_in_process("export", study_path.name, "--pick", "trial:99", "-o", "x.yaml", cwd=study_path.parent)
    assert result.returncode == 2 and "trial 99 is not a finished trial" in result.stderr


def test_resume_with_a_higher_target_and_check(tmp_path):
    study = write_study(tmp_path, trials=3)
    assert nas_in_process("search", study.name, cwd=tmp_path).returncode == 0
    first = [(t.number, t.values, t.params) for t in load(study).trials]
    result = nas("search", study.name, "--trials", "5", cwd=tmp_path)  # another process resumes it
    assert result.returncode == 0, result.stderr
    trials = load(study).trials
    assert [(t.number, t.values, t.params) for t in trials[:3]] == first
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 5
    check = nas_in_process("check", study.name, cwd=tmp_path)
    assert check.returncode == 0 and "3 stages" in check.stdout and "distinct architectures" in check.stdout
    assert "s1:se-r16-avg|s2:se-r16-avg|s3:se-r16-avg" in check.stdout and "MFLOPs" in check.stdout


def test_duplicates_are_not_retrained_nor_counted(tmp_path):
    # 4 architectures, 3 trials asked: TPE (seed 0) draws duplicates before it has 3 distinct ones;
    # each reuses the first result and the study runs on until 3 architectures were evaluated
    study = write_study(tmp_path, search_space={"kinds": ["none", "se"], "stages": [1, 2]}, baselines=["none"],
                        trials=3)
    assert nas_in_process("search", study.name, cwd=tmp_path).returncode == 0
    trials = load(study).trials
    firsts = {}
    for trial in trials:
        arch_id = trial.user_attrs["arch_id"]
        if arch_id in firsts:
            assert trial.user_attrs["duplicate_of"] == firsts[arch_id].number
            assert trial.values == firsts[arch_id].values and trial.user_attrs["images_seen"] == 0
        else:
            assert "duplicate_of" not in trial.user_attrs
            firsts[arch_id] = trial
    assert len(firsts) == 3 and len(trials) > 3  # duplicates drawn, reused, and not counted
    assert "duplicate_of" not in trials[-1].user_attrs  # it stopped at the third evaluation


def test_a_settled_sampler_stops_the_search_without_error(tmp_path, monkeypatch):
    """Reused duplicates one after another (the sampler keeps proposing what it has evaluated) stop
    the worker with a line saying so, not a loop that never reaches the target."""
    monkeypatch.setattr(loop, "MAX_REPEATS_IN_A_ROW", 2)
    config = load_study_config(write_study(tmp_path, search_space={"kinds": ["none", "se"], "stages": [1, 2]},
                                           baselines=["none"], trials=4, sampler={"name": "random", "seed": 0}))
    data = load_dataset(**config.dataset)
    none = config.baseline_arch(BlockSpec("none"), data.num_classes, data.in_chans)
    monkeypatch.setattr(type(config.space), "sample", lambda self, trial, template: none)

    def stub(arch, data, proxy, device):
        return ProxyResult(accuracy=0.5, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                           images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device=str(device))

    lines: list[str] = []
    trials = search(config, trainer=stub, data=data, device="cpu", log=lines.append).trials
    assert [t.user_attrs.get("duplicate_of") for t in trials] == [None, 0, 0]
    assert any(line.startswith("stopping: the sampler proposed only architectures already evaluated for 2 trials in "
                               "a row (1/4 finished trials") for line in lines)


def test_over_budget_trials_are_infeasible_untrained_and_not_counted(tmp_path):
    # none costs about 0.23 MFLOPs; CBAM on every stage costs more than 0.235
    study = write_study(tmp_path, constraints={"max_mflops": 0.235}, trials=5,
                        baselines=["none", "cbam"])
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = load(study)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all(t.constraints["mflops"] > 0 and "seconds" not in t.user_attrs for t in pruned)
    assert all("over budget" in t.user_attrs["fail_reason"] for t in pruned)
    assert study.trials[1].user_attrs["baseline"] == "cbam" and study.trials[1].state == TrialState.PRUNED
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    assert all(t.user_attrs["mflops"] <= 0.235 for t in study.best_trials)


def test_a_study_that_cannot_progress_stops_with_a_message(tmp_path):
    study = write_study(tmp_path, constraints={"max_mflops": 0.01}, trials=3)
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 2
    assert "were all over budget" in result.stderr and "raise the limit" in result.stderr


def test_diverging_trials_are_recorded_and_repeated_failure_stops(tmp_path):
    study = write_study(tmp_path, proxy={"epochs": 1, "batch_size": 50, "lr": 1e6, "warmup": 0.0}, trials=3)
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 2 and "the last 5 trials failed" in result.stderr and "diverged" in result.stderr
    trials = load(study).trials
    assert len(trials) == 5 and all(t.state == TrialState.FAIL for t in trials)
    assert all(t.user_attrs["fail_reason"].startswith("diverged") for t in trials)


def test_train_an_exported_architecture_reports_validation_and_test(finished):
    study_path, _ = finished
    folder = study_path.parent
    exported = nas_in_process("export", study_path.name, "--pick", "accuracy", "-o", "train-me.yaml", cwd=folder)
    assert exported.returncode == 0
    result = nas_in_process("train", "train-me.yaml", "--dataset", "synthetic", "--subset", "300", "--image-size",
                            "16", "--in-chans", "1", "--epochs", "2", "--device", "cpu", "--save", "weights.pt",
                            cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "validation accuracy" in result.stdout and "test accuracy" in result.stdout
    import torch
    model = build_model(folder / "train-me.yaml")
    model.load_state_dict(torch.load(folder / "weights.pt")["state_dict"])  # they fit the exported architecture
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_a_trial_queued_with_epochs_and_a_seed_is_trained_with_them_and_reuses_only_their_result(tmp_path):
    """The seam for noise seeds and fidelity rungs: a trial enqueued with `epochs` and `seed` user
    attributes is trained with them and records them; every trial records the ones it used; a
    result is reused only at the same architecture, proxy, epochs and seed."""
    config = load_study_config(write_study(tmp_path, baselines=["none"], trials=1))
    data = load_dataset(**config.dataset)
    study, _ = open_study(config, create=True, data=data)  # queues the `none` baseline, at the study's proxy
    none = config.baseline_arch(BlockSpec("none"), data.num_classes, data.in_chans)
    for _ in range(2):
        study.enqueue_trial(config.space.params_for(none), user_attrs={"epochs": 3, "seed": 7})
    seen = []

    def stub(arch, data, proxy, device):
        seen.append((arch.arch_id, proxy.epochs, proxy.seed, proxy.batch_size))
        return ProxyResult(accuracy=0.5 + proxy.seed / 100, loss=1.0, train_loss=1.0, seconds=0.01,
                           train_seconds=0.01, images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False,
                           device=str(device))

    study = search(config, trainer=stub, data=data, device="cpu", log=lambda line: None)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.user_attrs["arch_id"] for t in trials} == {none.arch_id}
    assert seen == [(none.arch_id, 1, 0, 50), (none.arch_id, 3, 7, 50)]  # the queued settings; the rest the study's
    assert [(t.user_attrs["epochs"], t.user_attrs["seed"]) for t in trials] == [(1, 0), (3, 7), (3, 7)]
    assert "duplicate_of" not in trials[1].user_attrs and trials[1].values[0] == pytest.approx(0.57)
    assert trials[2].user_attrs["duplicate_of"] == 1 and trials[2].values == trials[1].values


def test_every_worker_states_the_same_target_and_why(tmp_path):
    """Issue 24, item 6: with `trials: 6`, five baselines and three seeds of `none`, the 7 queued
    trials raise the target to 7, for a worker starting first and for one starting after others
    have taken, finished, or lost (and re-queued) queued trials; the first line says why."""
    config = load_study_config(write_study(tmp_path, trials=6, baselines=["none", "se", "eca", "cbam", "ge"],
                                           noise_seeds=3))
    data = load_dataset(**config.dataset)
    study, storage = open_study(config, create=True, data=data)
    why = "trials: 6, raised to the 7 queued trials (5 baselines, 2 extra seeds of `none`), which are all trained"
    first = study_target(study, 6)
    assert (first.count, first.why()) == (7, why)
    # other workers: one finished a queued trial, one holds another, one died in a third (retried)
    study.tell(study.ask(), [0.5, 1.0])
    study.ask()
    dead = study.ask()
    storage.set_trial_state_values(dead._trial_id, state=TrialState.FAIL)
    with quiet_experimental():
        RetryHeartbeatStaleTrialCallback(max_retry=3)(study, storage.get_trial(dead._trial_id))
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 5  # 4 never taken + the retry
    assert study_target(study, 6) == first
    assert study_target(study, 9).why() == "trials: 9" and study_target(study, 9).count == 9

    def stub(arch, data, proxy, device):
        return ProxyResult(accuracy=0.5, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                           images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device=str(device))

    lines: list[str] = []
    search(config, trainer=stub, data=data, device="cpu", log=lines.append)
    assert lines[0].startswith(f"study 'tiny': 1/7 finished trials ({why}), storage ")
    study = load(tmp_path / "tiny.yaml")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 7 and not study.get_trials(
        states=(TrialState.WAITING,))
