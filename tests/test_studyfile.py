"""Study files: shipped ones validate; defaults and relative paths resolve as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_study

from nas import BlockSpec, ConfigError
from nas.studyfile import load_study_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "cifar10_resnet18.yaml", "demo_fidelity.yaml", "tiny_imagenet.yaml"])
def test_shipped_studies_validate(name):
    config = load_study_config(ROOT / "studies" / name)
    assert config.storage == f"sqlite:///{ROOT / 'studies' / config.name}.db"
    # the demo trades accuracy against latency on a space small enough to measure its table in seconds
    demo = name == "demo.yaml"
    assert config.objectives == ("accuracy", "latency" if demo else "flops")
    assert config.directions == ["maximize", "minimize"]
    assert [label for label, _ in config.baselines] == ["none", "se", "eca", "cbam", "ge"]
    assert config.space.size(len(config.template(10, 3).stages)) > (500 if demo else 1000)
    assert all(config.space.params_for(config.baseline_arch(spec, 10, 1)) is not None for _, spec in config.baselines
               ) or not demo  # the demo's hand placements are points of its space


def test_tiny_imagenet_study_is_the_signal_task_read_at_its_top_rung():
    """studies/tiny_imagenet.yaml must load the data benchmarks/attention_signal.py measured the
    signal on (tin100), or its evidence says nothing about it."""
    config = load_study_config(ROOT / "studies" / "tiny_imagenet.yaml")
    assert dict(config.dataset) == {"name": "tiny-imagenet", "classes": 100, "image_size": 32, "subset": 14000,
                                    "val_fraction": 0.1}
    assert (config.backbone, dict(config.backbone_args)) == ("cifar_resnet", {"depth": 20, "width": 16})
    assert config.fidelity is not None and config.fidelity.epochs == (1, 2, 4) and config.fidelity.seeds == (1, 1, 2)
    assert config.proxy.epochs == config.fidelity.epochs[0]


def test_relative_paths_resolve_against_the_study_file(tmp_path):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "s.yaml").write_text("kinds: [none, se]\n")
    (tmp_path / "db").mkdir()
    study = write_study(tmp_path, search_space="spaces/s.yaml", storage="sqlite:///db/x.db",
                        dataset={"name": "imagefolder", "path": "."})
    config = load_study_config(study)
    assert config.space.kinds == ("none", "se")
    assert config.storage == f"sqlite:///{tmp_path / 'db' / 'x.db'}"
    assert config.dataset["path"] == tmp_path / "."


def test_storage_override_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sub = tmp_path / "sub"
    sub.mkdir()
    config = load_study_config(write_study(sub), storage="sqlite:///other.db")
    assert config.storage == f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(ConfigError, match="--storage = 'redis://x'"):
        load_study_config(write_study(sub), storage="redis://x")


def test_defaults_and_custom_baselines(tmp_path):
    study = write_study(tmp_path, objectives=None, sampler=None, trials=None,
                        baselines=["none", {"kind": "se", "reduction": 4, "placement": "stage"}])
    config = load_study_config(study)
    assert config.objectives == ("accuracy", "flops") and config.sampler == {"name": "tpe"}
    assert config.trials == 24
    assert config.baselines[1] == ("se-r4-avg@stage", BlockSpec("se", reduction=4, placement="stage"))
    assert config.max_mflops is None


def test_objectives_must_include_accuracy_once(tmp_path):
    for objectives in (["flops"], ["accuracy", "accuracy"]):
        with pytest.raises(ConfigError, match="must include accuracy and list each objective once"):
            load_study_config(write_study(tmp_path, objectives=objectives))
