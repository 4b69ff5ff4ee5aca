"""nas refine: front + near-front retrained over seeds, stored in a companion study, resumable.

The commands run through `nas.cli.main` in this process (tests/test_front.py runs `nas refine` as
the real command)."""

from __future__ import annotations

import dataclasses
import shutil

import optuna
import pytest
import yaml
from conftest import nas_in_process as run_nas
from conftest import write_study
from optuna.trial import TrialState

import nas.refine
from nas import ArchConfig, StudyError, build_model
from nas.attrs import StudyAttr
from nas.confirmed import Confirmation, confirmed_front
from nas.data import load_dataset
from nas.noise import pooled_std
from nas.refine import candidates, pareto_ranks, run_refine, screened
from nas.study import open_study, run_search
from nas.studyfile import load_study_config


def test_pareto_ranks_peel_fronts():
    # minimise both: (1,3) (2,2) (3,1) are the front; (2,3) and (3,2) behind them; (3,3) last
    points = [(1, 3), (2, 2), (3, 1), (2, 3), (3, 2), (3, 3)]
    assert pareto_ranks(points) == [0, 0, 0, 1, 1, 2]
    assert pareto_ranks([(1, 1), (1, 1)]) == [0, 0]  # ties do not dominate each other


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refine")
    config = load_study_config(write_study(folder, trials=7))
    data = load_dataset(**config.dataset)
    study = run_search(config, data, device="cpu", log=lambda line: None, progress=False)
    return folder, config, data, study


def test_candidates_are_the_front_then_near_front_distinct(searched):
    _, _, _, study = searched
    front = {t.number for t in study.best_trials}
    chosen = candidates(study, top=5)
    assert len(chosen) == min(5, len({t.user_attrs["arch_id"] for t in study.trials}))
    numbers = [t.number for t in chosen]
    assert set(numbers[:len(front)]) == front or front >= set(numbers)
    assert len({t.user_attrs["arch_id"] for t in chosen}) == len(chosen)


def test_refine_records_mean_and_std_and_resumes(searched, monkeypatch):
    folder, config, data, study = searched
    calls = []
    real = nas.refine.train_proxy

    def interrupted_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(kwargs.get("config", args[2]).seed)
        return real(*args, **kwargs)

    monkeypatch.setattr(nas.refine, "train_proxy", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_refine(config, study, data, top=3, epochs=2, seeds=2, max_seeds=2, device="cpu", log=lambda line: None)
    monkeypatch.setattr(nas.refine, "train_proxy", lambda *a, **k: (calls.append("resumed"), real(*a, **k))[1])
    refined = run_refine(config, study, data, top=3, epochs=2, seeds=2, max_seeds=2, device="cpu",
                         log=lambda line: None)
    assert calls.count("resumed") == 3  # 3 x 2 runs in all, 3 were saved before the interruption
    trials = refined.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    for trial in trials:
        attrs = trial.user_attrs
        runs = attrs["refined_accuracies"]
        assert len(runs) == 2 and attrs["refined_accuracy_mean"] == pytest.approx(sum(runs) / 2)
        assert attrs["refined_epochs"] == 2 and trial.values[0] == attrs["refined_accuracy_mean"]
        assert trial.values[1] == study.trials[attrs["source_trial"]].values[1]
    # a run saved before the interruption equals a fresh run of the same architecture and seed
    first = trials[0]
    arch = ArchConfig.from_dict(first.user_attrs["arch"])
    fresh = real(lambda: build_model(arch), data, dataclasses.replace(config.proxy, epochs=2, seed=0), "cpu")
    assert fresh.accuracy == first.user_attrs["refined_accuracies"][0]
    front = confirmed_front(config.storage, config.name)  # numbered by the search study's trials
    sources = {t.user_attrs["source_trial"] for t in trials}
    assert front.rows and {r.number for r in front.rows} <= sources == {r.number for r in front.architectures}
    # each refined architecture: its seeds averaged at the refined fidelity, the seed std pooled
    # over them all (the trial keeps its own in refined_accuracy_std)
    pooled = pooled_std([t.user_attrs["refined_accuracies"] for t in trials])
    for r in front.architectures:
        attrs = r.user_attrs
        assert (r.n_evals, r.epochs, r.std_source) == (2, 2, "pooled")
        assert r.accuracy == attrs["refined_accuracy_mean"]
        assert r.accuracy_std == pytest.approx(pooled)
    # running again trains nothing
    calls.clear()
    run_refine(config, study, data, top=3, epochs=2, seeds=2, max_seeds=2, device="cpu", log=lambda line: None)
    assert calls == []
    with pytest.raises(StudyError, match="was confirmed with"):
        run_refine(config, study, data, top=3, epochs=3, seeds=2, max_seeds=2, device="cpu", log=lambda line: None)


def test_the_screen_keeps_the_best_by_their_first_long_run_not_by_the_search():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(StudyAttr.OBJECTIVES, ["accuracy", "latency"])
    for proxy, latency in [(0.9, 3.0), (0.8, 2.0), (0.7, 1.0), (0.6, 1.5)]:
        study.add_trial(optuna.trial.create_trial(values=[proxy, latency]))
    chosen = {t.number: t for t in study.trials}
    # the first long run reverses the proxy: #3 leads, and #2 is the cheapest of the rest
    first = {0: 0.50, 1: 0.55, 2: 0.60, 3: 0.65}
    assert screened(study, chosen, first, 2) == [3, 2]  # both on the one-run front, more accurate first
    assert screened(study, chosen, first, 3) == [3, 2, 1]
    assert screened(study, chosen, {0: 0.7, 1: 0.5, 2: 0.5, 3: 0.5}, 1) == [0]


def test_a_screen_trains_one_run_each_then_confirms_the_best(searched, tmp_path):
    folder, config, data, _ = searched
    for path in [config.path, *folder.glob("tiny.db*")]:  # a copy: the module's other tests refine the original
        shutil.copy(path, tmp_path / path.name)
    config = load_study_config(tmp_path / config.path.name)
    if "tiny.refined" in optuna.get_all_study_names(config.storage):
        optuna.delete_study(study_name="tiny.refined", storage=config.storage)
    study, _ = open_study(config, create=False)
    lines = []
    refined = run_refine(config, study, data, top=2, screen=4, epochs=1, seeds=2, max_seeds=2, device="cpu",
                         log=lines.append)
    pool = {t.number: t for t in candidates(study, 4)}
    assert len(pool) == 4
    runs = {key: value for key, value in refined.user_attrs.items() if key.startswith("run:")}
    assert len(runs) == 4 + 2  # one run each, then the second seed of the two kept
    first = {n: refined.user_attrs[StudyAttr.refine_run(n, 0)] for n in pool}
    kept = screened(study, pool, first, 2)
    trials = refined.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["source_trial"] for t in trials) == sorted(kept)
    for trial in trials:  # the screen's run is the confirmation's first seed, not trained again
        assert trial.user_attrs["refined_accuracies"][0] == first[trial.user_attrs["source_trial"]]
        assert len(trial.user_attrs["refined_accuracies"]) == 2
    state = Confirmation.of(refined)
    assert state.finished and sorted(state.candidates) == sorted(kept)  # screened out: not left unconfirmed
    assert any("the 2 best of 4 by one run each" in line for line in lines)
    with pytest.raises(StudyError, match="screen = 1 is fewer than top = 2"):
        run_refine(config, study, data, top=2, screen=1, epochs=1, seeds=2, device="cpu", log=lines.append)


def test_refine_cli_front_and_export(searched):
    folder, config, _, _ = searched
    study_file = config.path.name
    result = run_nas("refine", study_file, "--top", "4", "--epochs", "2", "--seeds", "2", "--max-seeds", "2",
                     cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "confirmed front (2 epochs x 2 seeds" in result.stdout and "±" in result.stdout
    result = run_nas("front", study_file, "--refined", cwd=folder)
    assert result.returncode == 0 and "±" in result.stdout
    result = run_nas("export", study_file, "--refined", "--pick", "accuracy", "-o", "refined.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    metrics = yaml.safe_load((folder / "refined.yaml").read_text())["provenance"]["metrics"]
    assert metrics["refined_seeds"] == 2 and "refined_accuracy_std" in metrics
    study, _ = open_study(config, create=False)
    refined = optuna.load_study(study_name="tiny.refined", storage=config.storage)
    best = max(refined.best_trials, key=lambda t: t.values[0])
    assert metrics["accuracy"] == best.values[0]


def test_refine_before_search_is_refused(tmp_path):
    study = write_study(tmp_path)
    result = run_nas("refine", study.name, cwd=tmp_path)
    assert result.returncode == 2 and "no study database" in result.stderr
    result = run_nas("front", study.name, "--refined", cwd=tmp_path)
    assert result.returncode == 2
