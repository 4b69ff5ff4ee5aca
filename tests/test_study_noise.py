"""A study measures its own noise: the `none` baseline at `noise_seeds` seeds, written as the
study attribute `noise` once they have all finished, and used by the front for single evaluations."""

from __future__ import annotations

import json
import statistics

import optuna
import pytest
from conftest import nas, write_study
from optuna.trial import TrialState

from nas import BlockSpec, ProxyResult, search
from nas.data import load_dataset
from nas.studyfile import load_study_config

ACCURACY_AT_SEED = {0: 0.50, 1: 0.56, 2: 0.47}


def stub(arch, data, proxy, device):
    """A trainer whose accuracy depends on the seed (and is 0.1 higher with attention): the noise
    is known exactly."""
    attention = 0.0 if arch.arch_id.count("none") == 3 else 0.1
    return ProxyResult(accuracy=ACCURACY_AT_SEED.get(proxy.seed, 0.6) + attention, loss=1.0, train_loss=1.0,
                       seconds=0.01,
                       train_seconds=0.01, images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False,
                       device=str(device))


def test_the_none_baseline_at_three_seeds_measures_the_noise_once_they_have_finished(tmp_path):
    config = load_study_config(write_study(tmp_path, noise_seeds=3, baselines=["none", "se"], trials=2))
    data = load_dataset(**config.dataset)
    lines: list[str] = []
    study = search(config, trainer=stub, data=data, device="cpu", log=lines.append)
    none = config.baseline_arch(BlockSpec("none"), data.num_classes, data.in_chans)
    runs = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs["arch_id"] == none.arch_id]
    assert sorted(t.user_attrs["seed"] for t in runs) == [0, 1, 2]  # queued past the target of 2: never skipped
    noise = study.user_attrs["noise"]
    assert noise["n"] == 3 and noise["epochs"] == 1 and noise["arch_id"] == none.arch_id
    assert noise["accuracy_std"] == pytest.approx(statistics.stdev(ACCURACY_AT_SEED.values()))
    assert noise["val_size"] == len(data.val) == study.user_attrs["val_size"]
    assert sum(line.startswith("noise: `none` at 3 seeds") for line in lines) == 1, lines

    rows = {r["arch_id"]: r for r in json.loads(nas("front", config.path.name, "--json", cwd=tmp_path).stdout)}
    assert rows[none.arch_id]["n_evals"] == 3  # the three seeds pooled into one row
    assert rows[none.arch_id]["accuracy"] == pytest.approx(statistics.fmean(ACCURACY_AT_SEED.values()))
    single = [r for r in rows.values() if r["n_evals"] == 1]
    assert single and all(r["accuracy_std"] == pytest.approx(noise["accuracy_std"]) for r in single)


def test_noise_seeds_1_or_no_none_baseline_measures_nothing(tmp_path):
    for name, overrides in (("one", {"noise_seeds": 1}), ("nonone", {"noise_seeds": 3, "baselines": ["se"]})):
        config = load_study_config(write_study(tmp_path, name=name, trials=2, **overrides))
        study = search(config, trainer=stub, device="cpu", log=lambda line: None)
        assert "noise" not in study.user_attrs
        assert not any("noise_seed" in t.user_attrs for t in study.trials)


def test_a_bad_noise_seeds_is_refused_in_one_line(tmp_path):
    study = write_study(tmp_path, noise_seeds=0)
    result = nas("check", study.name, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "noise_seeds" in result.stderr and "0" in result.stderr and ">= 1" in result.stderr
    assert not (tmp_path / "tiny.db").exists()


def test_a_multi_fidelity_study_measures_its_noise_at_rung_0(tmp_path):
    config = load_study_config(write_study(tmp_path, noise_seeds=3, baselines=["none", "se"], trials=2,
                                           fidelity={"epochs": [1, 2], "keep": 0.5}))
    lines: list[str] = []
    search(config, trainer=stub, device="cpu", log=lines.append)
    rung0 = optuna.load_study(study_name="tiny", storage=config.storage)
    noise = rung0.user_attrs["noise"]
    assert noise["n"] == 3 and noise["epochs"] == 1
    assert noise["accuracy_std"] == pytest.approx(statistics.stdev(ACCURACY_AT_SEED.values()))
    assert sum(line.startswith("noise: `none` at 3 seeds") for line in lines) == 1, lines
