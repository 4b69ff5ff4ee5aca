"""Confirmation at the end of every search: `nas search` retrains the front and its neighbours at
the long fidelity over seeds (more seeds where candidates still tie at the top), and `nas front`
and `nas export` read the confirmed front once it is finished, saying which front they read."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from conftest import ROOT, write_study
from conftest import nas_in_process as run_nas

import nas.refine
from nas.confirmed import FRESH_LABEL, OPTIMISM_NOTE, chosen_front, load_confirmation, read_front
from nas.refine import candidates, run_refine, tied_at_top
from nas.storage import named_lock
from nas.study import open_study, search
from nas.studyfile import load_study_config
from nas.train import ProxyResult

CONFIRM = {"after_search": True, "top": 3, "epochs": 1, "seeds": 2, "max_seeds": 2}


def result(accuracy: float) -> ProxyResult:
    return ProxyResult(accuracy=accuracy, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                       images_per_second=1.0, epochs_done=1, stopped_early=False, device="cpu")


def stub(arch, data, proxy, device):  # a search trainer that trains nothing: 0.5 for everyone
    return result(0.5)


def test_tied_at_top_is_the_leader_and_what_ties_with_it():
    clear = {1: [0.80, 0.81, 0.79], 2: [0.60, 0.61, 0.59], 3: [0.50, 0.52, 0.51]}
    assert tied_at_top(clear) == [1]
    close = {1: [0.80, 0.82, 0.78], 2: [0.78, 0.80, 0.79], 3: [0.50, 0.52, 0.51]}
    assert tied_at_top(close) == [1, 2]
    assert tied_at_top({1: [0.8], 2: [0.79]}) == [1]  # one seed each: no std, a tie cannot be told
    assert tied_at_top({}) == []


def test_a_search_ends_confirmed_and_front_and_export_read_the_confirmed_front(tmp_path):
    study_file = write_study(tmp_path, trials=4, confirm=CONFIRM)
    first = run_nas("search", study_file.name, "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "confirming 3 architectures of study 'tiny': 1 epochs x 2 seeds" in first.stdout
    assert sum(" -> confirmed " in line for line in first.stdout.splitlines()) == 3
    config = load_study_config(study_file)
    # the dashboard serves the whole storage: the search and its confirmed companion side by side
    assert {"tiny", "tiny.refined"} <= set(optuna.get_all_study_names(config.storage))

    front = run_nas("front", study_file.name, cwd=tmp_path)
    assert front.returncode == 0, front.stderr
    assert front.stdout.startswith("confirmed front (1 epochs x 2 seeds; candidates ranked by 1-epoch proxy) of "
                                   "study 'tiny'")
    search_front = run_nas("front", study_file.name, "--search", cwd=tmp_path)
    assert search_front.stdout.startswith("search front (1-epoch proxy; not confirmed) of study 'tiny'")
    rows = json.loads(run_nas("front", study_file.name, "--json", cwd=tmp_path).stdout)
    assert rows and all(r["n_evals"] == 2 and r["epochs"] == 1 and r["std_source"] == "pooled" for r in rows)

    exported = run_nas("export", study_file.name, "--pick", "accuracy", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "of the confirmed front (1 epochs x 2 seeds" in exported.stdout
    provenance = yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]
    assert provenance["front"].startswith("confirmed front") and provenance["metrics"]["refined_seeds"] == 2
    assert provenance["metrics"]["accuracy"] == max(r["accuracy"] for r in rows)

    again = run_nas("search", study_file.name, "--no-progress", cwd=tmp_path)  # nothing left: nothing trained
    assert again.returncode == 0 and "nothing to do" in again.stdout
    refined = optuna.load_study(study_name="tiny.refined", storage=config.storage)
    assert len(refined.trials) == 3


def test_seeds_go_to_the_candidates_still_tied_at_the_top(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, trials=6, confirm={**CONFIRM, "after_search": False, "top": 4, "seeds": 3,
                                                          "max_seeds": 6})
    config = load_study_config(study_file)
    study = search(config, trainer=stub, device="cpu", log=lambda line: None)
    order = [t.user_attrs["arch_id"] for t in candidates(study, 4)]  # the proxy could not tell them apart
    noise = [0.010, -0.010, 0.005, -0.005, 0.0, 0.002]
    base = {arch_id: 0.80 if i == 0 else 0.795 if i == 1 else 0.60 - 0.02 * i for i, arch_id in enumerate(order)}
    runs: list[tuple[str, int]] = []

    def fake_train(factory, data, proxy, device, progress=False):
        arch_id = factory().arch_id  # build_model is replaced by the architecture itself
        runs.append((arch_id, proxy.seed))
        return result(base[arch_id] + noise[proxy.seed])

    monkeypatch.setattr(nas.refine, "build_model", lambda arch: arch)
    monkeypatch.setattr(nas.refine, "train_proxy", fake_train)
    lines: list[str] = []
    refined = run_refine(config, study, None, device="cpu", log=lines.append)
    seeds = {t.user_attrs["arch_id"]: t.user_attrs["refined_seeds"] for t in refined.trials}
    top_two = set(order[:2])
    assert set(seeds) == set(order) and len(order) == 4
    assert all(seeds[a] == 6 for a in top_two) and all(n == 3 for a, n in seeds.items() if a not in top_two)
    assert any(line.startswith("2 architectures tie at the top") and "6 seeds each" in line for line in lines)
    assert len(runs) == len(set(runs)) == 3 * len(seeds) + 3 * 2  # no run trained twice
    state = load_confirmation(config.storage, config.name)[1]
    assert state.finished and set(state.confirmed) == set(state.candidates)
    reading = read_front(config.storage, config.name, study)
    assert reading.confirmed and reading.heading.startswith("confirmed front (1 epochs x 3-6 seeds;")
    best = max(reading.front.architectures, key=lambda r: r.accuracy)
    assert best.arch_id == order[0] and best.n_evals == 6


def test_fresh_seeds_show_the_confirmed_front_at_runs_that_did_not_choose_it(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, trials=6, confirm={**CONFIRM, "after_search": False, "top": 4, "seeds": 2,
                                                          "fresh_seeds": 2})
    config = load_study_config(study_file)
    study = search(config, trainer=stub, device="cpu", log=lambda line: None)
    order = [t.user_attrs["arch_id"] for t in candidates(study, 4)]
    flops = {t.user_attrs["arch_id"]: t.user_attrs["mflops"] for t in study.trials}
    by_cost = sorted(order, key=lambda a: flops[a])
    chosen_on = {a: 0.60 + 0.02 * i for i, a in enumerate(by_cost)}  # dearer is better: all on the front
    fresh_base = {**chosen_on, by_cost[-1]: 0.40}  # the dearest one was lucky: at fresh seeds it is the worst
    runs: list[tuple[str, int]] = []

    def fake_train(factory, data, proxy, device, progress=False):
        arch_id = factory().arch_id
        runs.append((arch_id, proxy.seed))
        fresh = proxy.seed - config.proxy.seed >= 1000
        return result((fresh_base if fresh else chosen_on)[arch_id] + 0.002 * (proxy.seed % 2))

    monkeypatch.setattr(nas.refine, "build_model", lambda arch: arch)
    monkeypatch.setattr(nas.refine, "train_proxy", fake_train)
    lines: list[str] = []
    refined = run_refine(config, study, None, device="cpu", log=lines.append)
    members = {r.arch_id for r in chosen_front(refined)}
    assert members == set(order) and len({flops[a] for a in order}) == 4  # chosen on the confirmation's runs
    fresh_runs = [(a, s - config.proxy.seed) for a, s in runs if s - config.proxy.seed >= 1000]
    assert sorted(fresh_runs) == sorted((a, s) for a in members for s in (1000, 1001))  # the front only, once
    assert len(runs) == 4 * 2 + 4 * 2
    assert any("at 2 fresh seeds: the figures shown are not the runs that chose it" in line for line in lines)

    reading = read_front(config.storage, config.name, study)
    assert reading.confirmed and reading.note is None
    assert reading.heading.startswith("confirmed front (1 epochs x 2 seeds, the front at 2 fresh seeds;")
    assert reading.front.accuracy_label == FRESH_LABEL
    shown = {r.arch_id: r for r in reading.front.architectures}
    assert all(shown[a].n_evals == 2 and shown[a].accuracy == pytest.approx(fresh_base[a] + 0.001) for a in members)
    assert [r.arch_id for r in reading.front.rows] == by_cost[:-1]  # the lucky one left the front
    assert shown[by_cost[-1]].number == next(t.number for t in study.trials if t.user_attrs["arch_id"] == by_cost[-1])

    calls = len(runs)
    run_refine(config, study, None, device="cpu", log=lambda line: None)  # all saved: nothing trains again
    assert len(runs) == calls

    exported = run_nas("export", study_file.name, "--pick", "accuracy", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    provenance = yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]
    assert "the front at 2 fresh seeds" in provenance["front"]
    assert provenance["metrics"]["accuracy"] == pytest.approx(fresh_base[by_cost[-2]] + 0.001)


def test_a_front_shown_at_the_runs_that_chose_it_says_they_read_high(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, trials=3, confirm={**CONFIRM, "after_search": False, "top": 2})
    config = load_study_config(study_file)
    study = search(config, trainer=stub, device="cpu", log=lambda line: None)
    monkeypatch.setattr(nas.refine, "train_proxy", lambda *a, **k: result(0.5))
    run_refine(config, study, None, device="cpu", log=lambda line: None)
    reading = read_front(config.storage, config.name, study)
    assert reading.confirmed and reading.note == OPTIMISM_NOTE and "fresh" not in reading.heading


def test_an_unfinished_confirmation_is_not_read_as_the_front_and_resumes(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, trials=4, confirm={**CONFIRM, "after_search": False})
    config = load_study_config(study_file)
    study = search(config, trainer=stub, device="cpu", log=lambda line: None)
    real, calls = nas.refine.train_proxy, []

    def killed_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(nas.refine, "train_proxy", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_refine(config, study, config.load_data(), device="cpu", log=lambda line: None)
    reading = read_front(config.storage, config.name, study)
    assert not reading.confirmed and reading.heading.startswith("search front")
    assert "confirmation unfinished (0 of 3 candidates)" in reading.note
    assert read_front(config.storage, config.name, study, "confirmed").note.startswith("confirmation unfinished")
    monkeypatch.setattr(nas.refine, "train_proxy", lambda *a, **k: (calls.append(2), real(*a, **k))[1])
    run_refine(config, study, config.load_data(), device="cpu", log=lambda line: None)
    assert calls.count(2) == 3 * 2 - 1  # the run saved before the kill is not trained again
    assert read_front(config.storage, config.name, study).confirmed


def test_a_search_stopped_by_its_timeout_is_not_confirmed(tmp_path):
    study_file = write_study(tmp_path, trials=40, confirm=CONFIRM)
    lines: list[str] = []
    study = search(study_file, trainer=stub, device="cpu", log=lines.append, timeout=0.5)
    assert any(line.startswith("confirmation not started (timeout)") for line in lines)
    assert load_confirmation(load_study_config(study_file).storage, "tiny") is None
    assert len(study.trials) < 40


def test_confirm_settings_that_cannot_work_are_refused_with_nothing_written(tmp_path):
    study_file = write_study(tmp_path, confirm={"seeds": 4, "max_seeds": 2})
    result = run_nas("search", study_file.name, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "confirm" in result.stderr and "max_seeds = 2 is fewer than seeds = 4" in result.stderr
    assert not (tmp_path / "tiny.db").exists()
    result = run_nas("search", write_study(tmp_path, confirm={"top": 4, "screen": 2}).name, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "screen = 2 is fewer than top = 4" in result.stderr and not (tmp_path / "tiny.db").exists()
    result = run_nas("refine", write_study(tmp_path, name="other").name, "--max-seeds", "0", cwd=tmp_path)
    assert result.returncode == 2 and "--max-seeds = 0 is invalid" in result.stderr
    result = run_nas("refine", "other.yaml", "--screen", "0", cwd=tmp_path)
    assert result.returncode == 2 and "--screen = 0 is invalid" in result.stderr
    result = run_nas("refine", "other.yaml", "--fresh-seeds", "-1", cwd=tmp_path)
    assert result.returncode == 2 and "--fresh-seeds = -1 is invalid; allowed: an integer from 0 to 100" in \
        result.stderr
    for confirm, says in (({"fresh_seeds": -1}, "fresh_seeds"), ({"seeds": 600}, "reaches the fresh seeds")):
        result = run_nas("search", write_study(tmp_path, confirm=confirm).name, cwd=tmp_path)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert says in result.stderr and "tiny.yaml" in result.stderr and not (tmp_path / "tiny.db").exists()


def test_one_worker_confirms_at_a_time(tmp_path):
    """Two workers that finish together do not train the same runs: the second waits for the first's lock."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code = ("import time\nfrom nas.storage import named_lock\n"
            f"with named_lock({url!r}, 'tiny.confirm'):\n    print(time.time(), flush=True)\n")
    with named_lock(url, "tiny.confirm"):
        held = time.time()
        other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                 env={"PYTHONPATH": str(ROOT)})
        time.sleep(1.5)
        released = time.time()
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 0 and float(out) >= released > held
    with named_lock(url, "another.confirm"), named_lock(url, "tiny.confirm"):  # other names do not block
        pass


def test_open_study_is_untouched_by_confirmation(tmp_path):
    """The search study keeps its own trials: confirmed results live only in the companion study."""
    study_file = write_study(tmp_path, trials=3, confirm={**CONFIRM, "top": 2})
    config = load_study_config(study_file)
    search(config, trainer=stub, device="cpu", log=lambda line: None)
    study, _ = open_study(config, create=False)
    assert len(study.trials) == 3 and all("refined_seeds" not in t.user_attrs for t in study.trials)
