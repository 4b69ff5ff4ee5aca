"""Attention a backbone brings of its own (MobileNetV3's and EfficientNet's SE): found and counted,
stripped by `none`, kept by `own`, replaced by a block; the `designer` baseline is torchvision's
own model; `own` is refused where there is nothing to keep."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
from conftest import nas, write_study
from torchvision.models import efficientnet_b0, mobilenet_v3_large, mobilenet_v3_small

from nas import ArchConfig, BlockSpec, build_model
from nas.backbones import get_backbone, tv_mobile
from nas.backbones.own import find_attention
from nas.blocks import SqueezeExcite
from nas.errors import ConfigError
from nas.latency.builder import LatencyTarget
from nas.latency.conditions import LatencyConditions
from nas.space import SearchSpace

TV = {"mobilenet_v3_small": mobilenet_v3_small, "mobilenet_v3_large": mobilenet_v3_large,
      "efficientnet_b0": efficientnet_b0}
# SE per stage where each designer put it: MobileNetV3 (Howard et al., 2019, tables 1 and 2),
# EfficientNet-B0 in every unit (Tan and Le, 2019), stages grouped by output resolution.
DESIGNED = {
    "mobilenet_v3_small": (1, 0, 5, 3),
    "mobilenet_v3_large": (0, 0, 3, 2, 3),
    "efficientnet_b0": (1, 2, 2, 6, 5),
}
SE = BlockSpec.paper_default("se", "expand")


def arch(backbone: str, *stages: BlockSpec, **args: object) -> ArchConfig:
    return ArchConfig(backbone, tuple(stages), dict(args))


def own_count(model: torch.nn.Module) -> int:
    return len(find_attention(model))


@pytest.mark.parametrize("backbone", DESIGNED)
def test_torchvision_designers_se_is_counted_per_stage(backbone):
    counts = get_backbone(backbone).own_counts({})
    assert tuple(sum(c.values()) for c in counts) == DESIGNED[backbone]
    assert {k for c in counts for k in c} == {"SqueezeExcitation"}


def test_timm_mobilenetv3_small_has_nine_squeeze_excites_and_none_strips_them():
    """The bug this fixes: the `none` baseline of timm:mobilenetv3_small_100 held 9 SqueezeExcite."""
    backbone = get_backbone("timm:mobilenetv3_small_100")
    counts = backbone.own_counts({})
    assert [sum(c.values()) for c in counts] == [0, 1, 0, 5, 3]
    none = ArchConfig.uniform("timm:mobilenetv3_small_100", BlockSpec("none"))
    designer = ArchConfig.uniform("timm:mobilenetv3_small_100", BlockSpec("own"))
    assert own_count(build_model(none)) == 0
    assert own_count(build_model(designer)) == 9
    assert designer.arch_id == "s1:none|s2:own|s3:none|s4:own|s5:own"  # own where there is none is none


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "cifar_resnet"])
def test_backbones_without_attention_count_none_and_refuse_own(name):
    backbone = get_backbone(name)
    assert not backbone.has_own({})
    with pytest.raises(ConfigError, match=f"stages\\[1\\].kind = 'own' keeps a backbone's own attention, but {name} "
                                          "brings none"):
        ArchConfig.uniform(name, BlockSpec("own"))


@pytest.mark.parametrize("backbone", list(TV))
def test_designer_baseline_is_torchvisions_model_parameter_for_parameter_and_output_for_output(backbone):
    designer = ArchConfig.uniform(backbone, BlockSpec("own"), num_classes=100)
    torch.manual_seed(3)
    ours = build_model(designer).eval()
    torch.manual_seed(3)
    theirs = TV[backbone](num_classes=100).eval()
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert torch.equal(ours_state[key], value), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_a_seeded_build_is_reproducible_when_the_stage_cache_is_cold():
    """Counting the designer's SE builds a model; that must not move the global RNG."""
    tv_mobile._own.cache_clear()
    torch.manual_seed(0)
    first = build_model(ArchConfig.uniform("mobilenet_v3_small", SE))
    torch.manual_seed(0)
    second = build_model(ArchConfig.uniform("mobilenet_v3_small", SE))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))


@pytest.mark.parametrize("backbone", list(TV))
def test_none_strips_own_keeps_and_a_block_replaces(backbone):
    designed = DESIGNED[backbone]
    n = len(designed)
    assert own_count(build_model(ArchConfig.uniform(backbone, BlockSpec("none")))) == 0
    assert own_count(build_model(ArchConfig.uniform(backbone, BlockSpec("own")))) == sum(designed)
    units = tv_mobile.unit_stages(build_model(ArchConfig.uniform(backbone, BlockSpec("none"))))
    # SE in every unit's SE slot: the designer's modules are gone, ours sit where theirs were
    model = build_model(ArchConfig.uniform(backbone, SE))
    assert own_count(model) == 0
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == sum(map(len, units))
    # one stage each way: own kept on the last stage only, stripped elsewhere, a stage block on stage 1
    stages = [BlockSpec("none")] * n
    stages[0] = BlockSpec.paper_default("eca", "stage")
    stages[-1] = BlockSpec("own")
    model = build_model(arch(backbone, *stages))
    assert own_count(model) == designed[-1]
    assert sum(type(m).__name__ == "EfficientChannelAttention" for m in model.modules()) == 1


def test_block_placement_goes_after_the_projection_and_strips_the_designers():
    model = build_model(arch("mobilenet_v3_small", *[BlockSpec.paper_default("se", "block")] * 4))
    assert own_count(model) == 0
    unit = model.get_submodule(tv_mobile.unit_stages(model)[0][0])
    assert isinstance(unit.block[-1], SqueezeExcite)  # last in the branch: after the projection and its norm
    assert isinstance(unit.block[-2][1], torch.nn.BatchNorm2d)
    assert unit.block[-2][1].num_features == unit.out_channels
    x = torch.randn(2, 3, 32, 32)
    assert model.eval()(x).shape == (2, 10)


def test_own_where_a_stage_has_none_of_its_own_is_none():
    with_own = arch("mobilenet_v3_small", BlockSpec("own"), BlockSpec("own"), BlockSpec("none"), BlockSpec("none"))
    assert with_own.arch_id == "s1:own|s2:none|s3:none|s4:none"
    assert with_own == ArchConfig.from_dict(with_own.to_dict())


def test_small_input_stem_runs_at_32_px_and_halves_less():
    small = build_model(ArchConfig.uniform("mobilenet_v3_small", BlockSpec("own"), {"small_input": True}))
    assert small.features[0][0].stride == (1, 1)
    assert small.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ConfigError, match="backbone_args.small_input = 'yes' is invalid for efficientnet_b0"):
        ArchConfig.uniform("efficientnet_b0", BlockSpec("none"), {"small_input": "yes"})


def test_the_space_offers_own_only_on_stages_that_have_some():
    space = SearchSpace.from_dict({"kinds": ["none", "own", "se"], "se": {"reduction": [4, 16]},
                                   "placement": ["expand"]})
    template = ArchConfig.uniform("mobilenet_v3_small", BlockSpec("none"))
    owned = tuple(bool(c) for c in get_backbone("mobilenet_v3_small").own_counts({}))
    assert owned == (True, False, True, True)
    per_stage = get_backbone("mobilenet_v3_small").placements_per_stage({})
    assert space.size(4, per_stage, owned) == 4 * 3 * 4 * 4
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        sampled = space.sample(trial, template)
        seen |= {(s, spec.kind) for s, spec in enumerate(sampled.stages, 1)}
        assert space.params_for(sampled) == trial.params
        study.tell(trial, 0.0)
    assert (2, "own") not in seen and {(1, "own"), (3, "own"), (4, "own")} <= seen


def test_a_space_with_own_is_refused_on_a_backbone_without_attention():
    space = SearchSpace.from_dict({"kinds": ["none", "own"]})
    with pytest.raises(ConfigError, match="search_space.kinds: own keeps the attention a backbone brings, but "
                                          "resnet18 has none; allowed: remove own"):
        space.check_stages(4, "resnet18")
    with pytest.raises(ConfigError, match="has none in the searched stages"):
        dataclasses.replace(space, stages=(2,)).check_stages(4, "mobilenet_v3_small")


def test_the_latency_table_measures_own_where_the_designer_put_it():
    space = SearchSpace.from_dict({"kinds": ["none", "own", "se"], "se": {"reduction": [4]},
                                   "placement": ["expand"]})
    target = LatencyTarget("mobilenet_v3_small", {"small_input": True}, space, (32, 32), 3, 10,
                           LatencyConditions(), extra=(BlockSpec("own"),))
    keys = set(target.choices())
    assert {"s1:own", "s3:own", "s4:own"} <= keys and "s2:own" not in keys
    assert {f"s{s}:se-r4-avg@expand" for s in range(1, 5)} <= keys


def test_check_names_the_backbones_own_attention_and_the_designer_baseline(tmp_path):
    study = write_study(
        tmp_path, backbone="mobilenet_v3_small", backbone_args={"small_input": True},
        dataset={"name": "synthetic", "subset": 100, "image_size": 32},
        search_space={"kinds": ["none", "own", "se"], "placement": ["expand"]},
        baselines=None,
    )
    result = nas("check", study)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "own attention 9 SqueezeExcitation (stage 1: 1, stage 2: 0, stage 3: 5, stage 4: 3)" in out
    lines = {line.split()[0]: line for line in out.splitlines()[out.splitlines().index(
        next(line for line in out.splitlines() if line.startswith("  baselines"))) + 1:] if line.startswith("    ")}
    assert {"none", "se", "eca", "cbam", "ge", "designer"} <= set(lines)
    assert "s1:own|s2:none|s3:own|s4:own" in lines["designer"]
    mflops = {label: float(line.split()[1]) for label, line in lines.items()}
    assert mflops["none"] < mflops["designer"]  # the no-attention line is true: the designer's SE is stripped


def test_a_designer_baseline_on_a_backbone_without_attention_is_one_line_and_exit_2(tmp_path):
    study = write_study(tmp_path, baselines=["none", "designer"])
    result = nas("check", study)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nas check: error: {study}: baselines[1] = 'designer' keeps a backbone's own attention, but cifar_resnet "
        "brings none; allowed: none, se, eca, cbam, ge, sa, coord"]
    assert not list(tmp_path.glob("*.db"))


def test_a_study_on_mobilenet_v3_searches_keeps_and_strips_the_designers_se_end_to_end(tmp_path):
    """The user's path: search with `own` in the space, the front names what the backbone brings,
    the designer baseline is a row, and an exported architecture builds the same network again."""
    study = write_study(
        tmp_path, name="mbv3", backbone="mobilenet_v3_small", backbone_args={"small_input": True},
        dataset={"name": "synthetic", "subset": 120, "image_size": 16},
        search_space={"kinds": ["none", "own", "eca"], "placement": ["expand"]},
        objectives=["accuracy", "flops"], baselines=["none", "designer"], trials=4,
        proxy={"epochs": 1, "batch_size": 60, "bn_recal": 0},
    )
    searched = nas("search", study, "--no-progress")
    assert searched.returncode == 0, searched.stderr
    assert searched.stdout.splitlines()[0].startswith(
        "backbone mobilenet_v3_small brings attention of its own: 9 SqueezeExcitation")
    trials = optuna.load_study(study_name="mbv3", storage=f"sqlite:///{tmp_path / 'mbv3.db'}").trials
    baselines = {t.user_attrs["baseline"]: t for t in trials if "baseline" in t.user_attrs}
    assert ArchConfig.from_dict(baselines["designer"].user_attrs["arch"]).arch_id == "s1:own|s2:none|s3:own|s4:own"
    assert ArchConfig.from_dict(baselines["none"].user_attrs["arch"]).arch_id == "s1:none|s2:none|s3:none|s4:none"
    assert all(t.state.name == "COMPLETE" for t in trials)
    front = nas("front", study)
    assert "the backbone's own attention: 9 SqueezeExcitation" in front.stdout
    trial = baselines["designer"].number
    exported = nas("export", study, "--pick", f"trial:{trial}", "-o", tmp_path / "designer.yaml")
    assert exported.returncode == 0, exported.stderr
    model = build_model(tmp_path / "designer.yaml")
    assert own_count(model) == 9
