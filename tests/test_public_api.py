"""Every public name is importable from `nas` itself, and `nas.search` runs a study from Python
with the user's own training loop."""

from __future__ import annotations

import pytest
from conftest import write_study
from optuna.trial import TrialState

import nas

PUBLIC = [
    "BlockSpec", "make_block", "ArchConfig", "load_arch", "build_model", "count_flops", "count_params",
    "measure_latency", "LatencyConditions", "load_table", "arch_cost", "reduced_width",
    "load_dataset", "Dataset", "Split", "ProxyConfig",
    "train_proxy", "ProxyResult", "TrainingDiverged", "evaluate", "resolve_device", "NasError", "ConfigError",
    "DataError", "StudyError", "search", "Pretrained",
]


def test_public_names_are_exported():
    for name in PUBLIC:
        assert hasattr(nas, name) and name in nas.__all__, name
    assert sorted(nas.__all__) == sorted(PUBLIC)
    assert set(PUBLIC) <= set(dir(nas))
    assert issubclass(nas.ConfigError, ValueError) and issubclass(nas.ConfigError, nas.NasError)
    assert issubclass(nas.TrainingDiverged, nas.NasError)
    with pytest.raises(AttributeError, match="no attribute 'serach'"):
        nas.serach  # noqa: B018 - a typo is an AttributeError, not a silent None


def test_search_from_python_with_a_custom_trainer(tmp_path):
    """A user's own training loop: called once per distinct architecture with the study's data,
    proxy and device; its accuracies are what the study records and ranks."""
    study_file = write_study(tmp_path, trials=5)
    seen = []

    def my_trainer(arch, data, proxy, device):
        seen.append((arch.arch_id, data.num_classes, proxy.epochs, device.type))
        accuracy = 0.5 + 0.1 * sum(spec.kind != "none" for spec in arch.stages)  # attention "helps"
        return nas.ProxyResult(accuracy=accuracy, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                               images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False,
                               device=str(device))

    lines = []
    study = nas.search(study_file, trainer=my_trainer, device="cpu", log=lines.append)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 5
    assert [t.user_attrs.get("baseline") for t in study.trials[:2]] == ["none", "se"]
    assert seen and all(entry[1:] == (10, 1, "cpu") for entry in seen)
    assert len(seen) == len({t.user_attrs["arch_id"] for t in complete})  # duplicates are not retrained
    for trial in complete:
        attached = sum(not part.endswith(":none") for part in trial.user_attrs["arch_id"].split("|"))
        assert trial.values[0] == pytest.approx(0.5 + 0.1 * attached)
    assert any(line.startswith("#0 ") for line in lines)
    # resuming with a higher target continues the same study
    more = nas.search(study_file, trainer=my_trainer, device="cpu", trials=6, log=lines.append)
    assert len(more.get_trials(states=(TrialState.COMPLETE,))) == 6


def test_search_records_why_a_custom_trainer_failed_on_the_trials_line(tmp_path):
    study_file = write_study(tmp_path, trials=3)
    data = nas.load_dataset("synthetic", subset=200, image_size=16)

    def broken(arch, data, proxy, device):
        raise ValueError("my loop has a bug\nsecond line")

    lines = []
    with pytest.raises(nas.StudyError, match="the last 5 trials failed .latest: training failed: ValueError: my loop"):
        nas.search(study_file, trainer=broken, data=data, device="cpu", log=lines.append)
    trial_lines = [line for line in lines if line.startswith("#")]
    assert len(trial_lines) == 5
    assert all(line.endswith("training failed: ValueError: my loop has a bug") for line in trial_lines)
    with pytest.raises(nas.ConfigError, match="trials = 0 is invalid"):
        nas.search(study_file, trainer=broken, data=data, trials=0)
