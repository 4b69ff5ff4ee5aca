"""Bad input: one line naming file, field, value and what is allowed; exit 2; nothing written.

The cases run through `nas.cli.main` in this process (`nas_in_process`), as many refusals through
fresh interpreters would spend minutes importing torch; the last test runs some of them through the
real command and requires the very same exit status and output."""

from __future__ import annotations

import pytest
from conftest import TINY_STUDY, nas, nas_in_process, write_study

SPACE = TINY_STUDY["search_space"]

CASES = {  # name: (study overrides, phrases the one-line message must contain)
    "unknown key": ({"epochs": 3}, ["epochs is not a study key", "allowed: name"]),
    "unknown backbone": ({"backbone": "resnet19"}, ["backbone = 'resnet19' is unknown", "allowed: cifar_resnet"]),
    "unknown block kind": ({"search_space": {"kinds": ["se", "sk"]}}, ["search_space.kinds", "'sk'", "allowed: none"]),
    "reduction 0": ({"search_space": {"kinds": ["se"], "se": {"reduction": [0]}}},
                    ["search_space.se.reduction[0]", "reduction = 0", "an integer >= 1"]),
    "even ECA kernel": ({"search_space": {"kinds": ["eca"], "eca": {"kernel_size": [3, 4]}}},
                        ["search_space.eca.kernel_size[1]", "kernel_size = 4", "odd"]),
    "unknown pool": ({"search_space": {"kinds": ["se"], "se": {"pool": ["median"]}}},
                     ["search_space.se.pool[0]", "'median'", "avg, max, avgmax"]),
    "unknown dataset": ({"dataset": {"name": "imagenet"}}, ["dataset.name = 'imagenet'", "allowed: fashion-mnist"]),
    "missing image folder": ({"dataset": {"name": "imagefolder", "path": "photos"}},
                             ["dataset.path = 'photos'", "no such folder"]),
    "negative trials": ({"trials": -3}, ["trials = -3", "an integer >= 1"]),
    "unsupported storage": ({"storage": "mongodb://localhost/db"}, ["storage = 'mongodb://localhost/db'",
                                                                     "'mongodb' is not supported", "sqlite:///"]),
    "storage folder missing": ({"storage": "sqlite:///nowhere/x.db"}, ["storage", "does not exist"]),
    "missing search-space file": ({"search_space": "spaces/none.yaml"},
                                  ["search_space = 'spaces/none.yaml'", "cannot read"]),
    "unknown objective": ({"objectives": ["accuracy", "energy"]},
                          ["objectives[1] = 'energy'", "allowed: accuracy, flops"]),
    "zero epochs": ({"proxy": {"epochs": 0}}, ["proxy.epochs = 0", ">= 1"]),
    "stage out of range": ({"search_space": {**SPACE, "stages": [1, 5]}},
                           ["stages: stage 5 is out of range", "stages 1..3"]),
    "bad backbone arg": ({"backbone_args": {"depth": 10}}, ["backbone_args.depth = 10", "6n + 2"]),
    "unknown sampler": ({"sampler": {"name": "cmaes"}}, ["sampler.name = 'cmaes'", "allowed: tpe, nsga2, random"]),
    "bad baseline": ({"baselines": ["se", "sk"]}, ["baselines[1] = 'sk'", "allowed: none"]),
    "bad constraint": ({"constraints": {"max_mflops": -1}}, ["constraints.max_mflops = -1", "> 0"]),
    "missing name": ({"name": None}, ["name is missing"]),
}


def assert_refused(result, study_path, phrases):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(study_path) in lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


@pytest.mark.parametrize("case", CASES)
def test_bad_study_files_are_refused_before_anything_is_written(tmp_path, case):
    overrides, phrases = CASES[case]
    study = write_study(tmp_path, **overrides)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert_refused(result, study.name, phrases)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no database, no journal, nothing


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    study = tmp_path / "broken.yaml"
    study.write_text("name: broken\nbackbone: cifar_resnet\ndataset: {name: synthetic\ntrials: 3\n")
    result = nas_in_process("search", study, cwd=tmp_path)
    assert_refused(result, study, ["not valid YAML", "line"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]


def test_missing_study_file(tmp_path):
    result = nas_in_process("search", "nothere.yaml", cwd=tmp_path)
    assert_refused(result, "nothere.yaml", ["cannot read the study file"])
    assert list(tmp_path.iterdir()) == []


def test_every_command_validates_the_same_way(tmp_path):
    study = write_study(tmp_path, trials=0)
    for command in (["check"], ["front"], ["export", "-o", "out.yaml"], ["dashboard"]):
        result = nas_in_process(*command, study.name, cwd=tmp_path)
        assert_refused(result, study.name, ["trials = 0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


def test_front_and_export_on_a_study_that_was_never_run(tmp_path):
    study = write_study(tmp_path)
    for command in (["front"], ["export", "-o", "out.yaml"]):
        result = nas_in_process(*command, study.name, cwd=tmp_path)
        assert result.returncode == 2 and "no study database" in result.stderr and "nas search" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


def test_bad_command_line_values(tmp_path):
    study = write_study(tmp_path)
    result = nas_in_process("search", study.name, "--device", "tpu", cwd=tmp_path)
    assert result.returncode == 2 and "device" in result.stderr and "'tpu'" in result.stderr
    result = nas_in_process("search", study.name, "--trials", "-1", cwd=tmp_path)
    assert result.returncode == 2 and "--trials = -1" in result.stderr
    result = nas_in_process("search", study.name, "--storage", "ftp://x", cwd=tmp_path)
    assert result.returncode == 2 and "--storage" in result.stderr and "'ftp' is not supported" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


def test_bad_architecture_file_for_train(tmp_path):
    arch = tmp_path / "arch.yaml"
    arch.write_text("backbone: cifar_resnet\nstages: [se, eca]\n")
    result = nas_in_process("train", arch, "--dataset", "synthetic", cwd=tmp_path)
    assert_refused(result, arch, ["stages has 2 entries but backbone cifar_resnet has 3 stages"])


@pytest.mark.parametrize("case", ["unknown key", "bad backbone arg"])  # refused by the file's reader; by the backbone
def test_the_real_command_refuses_exactly_as_main_does_in_process(tmp_path, case):
    """The tests above call main() in this process; the installed `nas` command in a fresh
    interpreter must refuse the same way, byte for byte, with nothing more on stderr (a warning at
    import, say) and nothing written."""
    study = write_study(tmp_path, **CASES[case][0])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    real, here = nas("search", study.name, cwd=tmp_path), nas_in_process("search", study.name, cwd=tmp_path)
    assert (real.returncode, real.stdout, real.stderr) == (here.returncode, here.stdout, here.stderr)
    assert_refused(real, study.name, CASES[case][1])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    if case == "unknown key":  # and a command line refused by argparse, and another command
        for args in (["search", study.name, "--device", "tpu"], ["front", study.name]):
            real, here = nas(*args, cwd=tmp_path), nas_in_process(*args, cwd=tmp_path)
            assert (real.returncode, real.stdout, real.stderr) == (here.returncode, here.stdout, here.stderr), args
