"""One validation layer (nas.validation): the same models check study files, proxy settings and
dataset settings, in the one-line format, and give editors a JSON Schema (`nas schema`)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from conftest import ROOT, TINY_STUDY, nas

from nas import ConfigError, ProxyConfig, load_dataset
from nas.blocks.registry import KINDS
from nas.validation import StudyFile, validate


@pytest.mark.parametrize(("settings", "message"), [
    ({"epochs": True}, "epochs = True is invalid; allowed: an integer >= 1"),
    ({"lr": True}, "lr = True is invalid; allowed: a number > 0"),
    ({"lr": float("nan")}, "lr = nan is invalid; allowed: a number > 0"),
    ({"momentum": 1.0}, "momentum = 1.0 is invalid; allowed: a number in [0, 1)"),
    ({"precision": "fp16"}, "precision = 'fp16' is invalid; allowed: auto, fp32, bf16"),
    ({"warmup": 0.7, "decay": 0.5}, "warmup + decay = 0.7 + 0.5 is invalid; allowed: a sum <= 1"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov = true needs momentum > 0"),
])
def test_proxy_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError) as error:
        ProxyConfig(**settings)
    assert str(error.value).startswith(message)


def test_proxy_from_a_study_file_takes_yaml_strings_for_numbers_and_names_the_section():
    assert ProxyConfig.from_dict({"lr": "1e-3", "epochs": 3}).lr == pytest.approx(0.001)
    with pytest.raises(ConfigError, match=r"^proxy\.lr = 'fast' is invalid; allowed: a number > 0$"):
        ProxyConfig.from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match=r"^proxy\.epoch is not a proxy setting; allowed: epochs, batch_size"):
        ProxyConfig.from_dict({"epoch": 3})


def test_load_dataset_and_study_files_refuse_dataset_settings_with_the_same_words(tmp_path):
    with pytest.raises(ConfigError) as api:
        load_dataset("synthetic", image_size=0)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "dataset": {"name": "synthetic", "image_size": 0}}))
    cli = nas("check", path, timeout=120)
    assert cli.returncode == 2
    assert str(api.value) == "image_size = 0 is invalid; allowed: a positive integer or [height, width]"
    assert cli.stderr.strip().endswith(f"{path}: dataset.{api.value}")


def test_a_sampler_setting_of_another_sampler_is_named():
    data = {**TINY_STUDY, "sampler": {"name": "tpe", "population_size": 8}}
    with pytest.raises(ConfigError, match=r"^sampler\.population_size is not a setting of tpe; "
                                          r"allowed: seed, n_startup_trials$"):
        validate(StudyFile, data)


def test_nas_schema_is_a_valid_json_schema_that_accepts_the_shipped_studies_and_refuses_mistakes(tmp_path):
    result = nas("schema", timeout=60)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["required"]) == {"name", "backbone", "dataset", "search_space"}
    for study in sorted((ROOT / "studies").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(study.read_text()), schema)
    for space in sorted((ROOT / "search_spaces").glob("*.yaml")):  # settings lists and whole variants
        jsonschema.validate({**TINY_STUDY, "search_space": yaml.safe_load(space.read_text())}, schema)
    space = schema["properties"]["search_space"]["anyOf"][1]
    assert space["properties"]["kinds"]["items"]["enum"] == list(KINDS)
    for mistake in ({"proxy": {"epochs": 0}}, {"trials": "many"}, {"search_space": {"kinds": ["sk"]}},
                    {"dataset": {"name": "synthetic", "subset": [1, 2]}}, {"epochs": 3}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**TINY_STUDY, **mistake}, schema)
    written = nas("schema", "-o", tmp_path / "nas.schema.json", timeout=60)
    assert written.returncode == 0 and json.loads((tmp_path / "nas.schema.json").read_text()) == schema
