"""The `nas` command itself: help, version, a start that does not load torch, and `nas check`'s
report (resolved space, baselines' cost) and refusals (a backbone that cannot take the input
size, a budget below anything the space can build). Help, version and start-up run the real
command; `nas check` and a failing search run through `nas.cli.main` in this process."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, nas, nas_in_process, write_study


def test_version_and_help_list_every_command_with_examples():
    version = nas("--version")
    assert version.returncode == 0 and version.stdout.strip() == "nas 0.1.0"
    top = nas("--help")
    assert top.returncode == 0
    for command in ("search", "front", "export", "check", "train", "refine", "dashboard", "latency",
                    "latency-table"):
        assert f"    {command}" in top.stdout, command
        sub = nas(command, "--help")
        assert sub.returncode == 0 and "example:\n  nas " + command in sub.stdout, command
    search = " ".join(nas("search", "--help").stdout.split())  # argparse wraps lines
    assert "study file (YAML)" in search and "sqlite:///<study file's folder>/<name>.db" in search
    train = " ".join(nas("train", "--help").stdout.split())  # argparse wraps lines
    for default in ("--epochs EPOCHS passes over the training split (default: 30)", "(default: 256)",
                    "(default: 0)", "(default: 0.1)"):
        assert default in train, default
    assert "(default: 8080)" in nas("dashboard", "--help").stdout


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_import_help_and_a_malformed_study_file_do_not_load_torch(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: broken\ndataset: {name: synthetic\n")
    code = (
        "import sys, contextlib, io\n"
        "import nas\n"
        "assert 'torch' not in sys.modules, 'import nas'\n"
        "from nas.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        "    assert main(['check', 'broken.yaml']) == 2\n"
        "assert 'not valid YAML' in err.getvalue(), err.getvalue()\n"
        "assert 'torch' not in sys.modules, 'nas check broken.yaml'\n"
        "assert nas.BlockSpec('se').kind == 'se'  # a public name loads its module on first use\n"
        "assert 'torch' in sys.modules\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_check_shows_the_resolved_choices_and_the_defaults_that_differ_from_the_papers(tmp_path):
    study = write_study(tmp_path, search_space={"kinds": ["none", "cbam", "ge"], "cbam": {"reduction": [8]},
                                                "ge": {"extent": [0]}})
    result = nas_in_process("check", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.startswith("    ")}
    assert "reduction [8]" in lines["cbam"] and "pool avg (default; the paper's is avgmax)" in lines["cbam"]
    assert "extent [0]" in lines["ge"] and "reduction 16 (default; the paper's is null)" in lines["ge"]
    assert "placement [block]" in result.stdout
    assert result.stdout.rstrip().endswith("ok: nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


def test_a_space_that_chooses_stages_first_is_shown_and_searched_with_stages_off(tmp_path):
    import optuna

    study = write_study(tmp_path, name="gated", trials=5, baselines=["none"],
                        search_space={"kinds": ["none", "se", "eca"], "choose_stages": True})
    check = nas_in_process("check", study.name, cwd=tmp_path)
    assert check.returncode == 0 and "choose_stages: each stage is drawn on or off" in check.stdout, check.stdout
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="gated", storage=f"sqlite:///{tmp_path / 'gated.db'}").trials
    sampled = [t for t in trials if "baseline" not in t.user_attrs and "stage1.attend" in t.params]
    assert sampled, [t.params for t in trials]
    for t in sampled:  # an off stage is `none`; an on stage never draws `none` as its kind
        for s, part in enumerate(t.user_attrs["arch_id"].split("|"), 1):
            assert (part == f"s{s}:none") == (not t.params[f"stage{s}.attend"])
            assert t.params.get(f"stage{s}.kind") != "none"


def test_check_refuses_a_backbone_that_cannot_take_the_input_size_in_one_line(tmp_path):
    # ViT-Tiny asserts a 224 px input; the study's synthetic images are 16 px
    study = write_study(tmp_path, name="vit", backbone="timm:vit_tiny_patch16_224", backbone_args=None,
                        search_space={"kinds": ["none", "se"], "placement": ["stage"]}, baselines=["none"])
    result = nas_in_process("check", study.name, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(study.name) in lines[0] and "timm:vit_tiny_patch16_224 cannot take 3-channel 16x16 images" in lines[0]
    assert "Input height (16) doesn't match model (224)" in lines[0] and "dataset.image_size" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


@pytest.fixture(scope="module")
def costs():
    """MFLOPs of the tiny study's uniform none and SE baselines, as `nas check` counts them."""
    from nas import ArchConfig, BlockSpec, arch_cost

    def mflops(spec):
        arch = ArchConfig.uniform("cifar_resnet", spec, {"depth": 8, "width": 4}, num_classes=10, in_chans=3)
        return arch_cost(arch, (16, 16)).mflops

    return mflops(BlockSpec("none")), mflops(BlockSpec.paper_default("se"))


def test_check_refuses_a_budget_below_anything_the_space_can_build(tmp_path, costs):
    none, _ = costs
    study = write_study(tmp_path, constraints={"max_mflops": round(none * 0.9, 4)})
    result = nas_in_process("check", study.name, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "constraints.max_mflops" in result.stderr and "below the cheapest architecture" in result.stderr
    assert f"allowed: a number >= {none:.3f}" in result.stderr


def test_check_warns_when_the_budget_is_below_every_baseline(tmp_path, costs):
    none, se = costs
    assert none < se
    study = write_study(tmp_path, baselines=["se", "cbam"], constraints={"max_mflops": (none + se) / 2})
    result = nas_in_process("check", study.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: constraints.max_mflops" in result.stdout and "below every baseline (cheapest: se" in result.stdout
    fine_study = write_study(tmp_path, name="fine", constraints={"max_mflops": se * 2})
    fine = nas_in_process("check", fine_study.name, cwd=tmp_path)
    assert fine.returncode == 0 and "warning" not in fine.stdout


def test_search_prints_why_each_trial_failed_and_records_it(tmp_path):
    """The FLOP count runs inside what records failures: a backbone that cannot take the input
    fails every trial with that reason on its line, in the study, and in the stopping message."""
    import optuna

    study = write_study(tmp_path, name="vit", backbone="timm:vit_tiny_patch16_224", backbone_args=None,
                        search_space={"kinds": ["none", "se"], "placement": ["stage"]}, baselines=["none"])
    result = nas_in_process("search", study.name, cwd=tmp_path)
    reason = "building the model and counting its FLOPs failed: AssertionError: Input height (16) doesn't match"
    assert result.returncode == 2 and "the last 5 trials failed (latest: " + reason in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert len(lines) == 5 and all("fail" in line and reason in line for line in lines)
    trials = optuna.load_study(study_name="vit", storage=f"sqlite:///{tmp_path / 'vit.db'}").trials
    assert len(trials) == 5 and all(t.user_attrs["fail_reason"].startswith(reason) for t in trials)
