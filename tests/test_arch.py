"""ArchConfig: frozen value semantics, round trips, strict parsing, readable ids."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from nas import ArchConfig, BlockSpec, ConfigError, load_arch

MIXED = ArchConfig(
    "cifar_resnet",
    (BlockSpec("se", reduction=8), BlockSpec("none"), BlockSpec("cbam", reduction=8, pool="avgmax")),
    {"depth": 8},
    num_classes=10,
    in_chans=1,
)


def test_value_semantics():
    same = ArchConfig.from_dict(MIXED.to_dict())
    assert same == MIXED and hash(same) == hash(MIXED)
    assert len({MIXED, same}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        MIXED.backbone = "resnet18"
    with pytest.raises(TypeError):
        MIXED.backbone_args["depth"] = 20
    other = dataclasses.replace(MIXED, in_chans=3)
    assert other != MIXED


def test_backbone_defaults_are_filled_in():
    short = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8})
    full = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8, "width": 16})
    assert short == full
    assert dict(short.backbone_args) == {"depth": 8, "width": 16}


def test_arch_id():
    assert MIXED.arch_id == "s1:se-r8-avg|s2:none|s3:cbam-r8-k7-avgmax"
    assert ArchConfig.uniform("resnet18", BlockSpec("eca", placement="stage")).arch_id == "|".join(
        f"s{i}:eca-kauto-avg@stage" for i in range(1, 5))


def test_uniform_repeats_one_spec_per_stage():
    assert len(ArchConfig.uniform("resnet50", BlockSpec("se")).stages) == 4
    assert len(ArchConfig.uniform("mobilenet_v2", BlockSpec("se")).stages) == 6  # 5 resolutions + the head
    assert len(ArchConfig.uniform("timm:resnet10t", BlockSpec("se", placement="stage")).stages) == 5


def test_yaml_and_json_round_trip(tmp_path):
    (tmp_path / "a.yaml").write_text(MIXED.to_yaml())
    (tmp_path / "a.json").write_text(json.dumps(MIXED.to_dict()))
    assert load_arch(tmp_path / "a.yaml") == MIXED
    assert load_arch(tmp_path / "a.json") == MIXED
    exported = {**MIXED.to_dict(), "provenance": {"study": "demo", "trial": 3}}
    (tmp_path / "export.yaml").write_text(yaml.safe_dump(exported))
    assert load_arch(tmp_path / "export.yaml") == MIXED


EVERY_SETTING = ArchConfig(
    "resnet18",
    (BlockSpec("se", reduction=3.33, divisor=8, bias=False, gate="hard_sigmoid", placement="pre"),
     BlockSpec("cbam", channel="eca", channel_kernel_size=7, bias=True, norm=False, pool="avgmax",
               placement="identity"),
     BlockSpec("ge", extent=4, gather="conv", reduction=8, placement="post"),
     BlockSpec("sa", kernel_size=5, bias=True, norm=False)),
    {"small_input": True},
)


def test_new_settings_and_placements_round_trip(tmp_path):
    assert EVERY_SETTING.arch_id == (
        "s1:se-r3.33-d8-avg-hs-nobias@pre|s2:cbam-eca-ek7-k7-avgmax-bias-nonorm@identity|"
        "s3:ge-x4-conv-r8@post|s4:sa-k5-bias-nonorm")
    (tmp_path / "a.yaml").write_text(EVERY_SETTING.to_yaml())
    again = load_arch(tmp_path / "a.yaml")
    assert again == EVERY_SETTING and again.arch_id == EVERY_SETTING.arch_id
    assert ArchConfig.from_dict(json.loads(json.dumps(EVERY_SETTING.to_dict()))) == EVERY_SETTING
    mobile = ArchConfig("mobilenet_v2", (BlockSpec("coord", placement="expand"), BlockSpec("none"),
                                         BlockSpec("eca", placement="expand"), BlockSpec("none"),
                                         BlockSpec("se"), BlockSpec("se", bias=False, placement="stage")))
    assert ArchConfig.from_dict(mobile.to_dict()) == mobile
    assert mobile.arch_id.endswith("|s6:se-r16-avg-nobias@stage")


def test_from_dict_rejects_unknown_keys_and_wrong_stage_count():
    with pytest.raises(ConfigError, match="stage_blocks is not an architecture key; allowed: backbone"):
        ArchConfig.from_dict({**MIXED.to_dict(), "stage_blocks": []})
    data = MIXED.to_dict()
    data["stages"] = data["stages"][:2]
    with pytest.raises(ConfigError, match="stages has 2 entries but backbone cifar_resnet has 3 stages"):
        ArchConfig.from_dict(data)


@pytest.mark.parametrize("change,needle", [
    ({"backbone": "resnet19"}, "backbone = 'resnet19' is unknown; allowed: cifar_resnet, resnet18"),
    ({"backbone": "timm:resnet10q"}, "is not a timm model; did you mean timm:"),
    ({"backbone_args": {"depth": 9}}, "backbone_args.depth = 9 is invalid for cifar_resnet; allowed: 6n + 2"),
    ({"backbone_args": {"depht": 8}}, "backbone_args.depht is not an argument of cifar_resnet; allowed: depth, width"),
    ({"num_classes": 0}, "num_classes = 0 is invalid"),
    ({"stages": "se"}, "stages = 'se' is invalid; expected a list"),
])
def test_from_dict_errors_name_field_value_and_choices(change, needle):
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_dict({**MIXED.to_dict(), **change})
    assert needle in str(info.value)


def test_timm_backbones_take_stage_placement_only():
    with pytest.raises(ConfigError, match=r"stages\[1\]\.placement = 'block' is not supported by timm:resnet10t"):
        ArchConfig.uniform("timm:resnet10t", BlockSpec("se"))


@pytest.mark.parametrize("backbone,stages,needle", [
    ("cifar_resnet", ("se@expand", "none", "none"),
     "stages[1].placement = 'expand' is not supported by cifar_resnet at stage 1; "
     "allowed there: block, pre, post, identity, stage"),
    ("mobilenet_v2", ("none",) * 5 + ("se@expand",),
     "stages[6].placement = 'expand' is not supported by mobilenet_v2 at stage 6; allowed there: block, stage"),
    ("mobilenet_v2", ("se@pre",) + ("none",) * 5, "allowed there: block, expand, stage"),
    ("timm:efficientnet_b0", ("se@expand",) * 4 + ("se@block",), "stages[5].placement = 'block'"),
    ("timm:resnet10t", ("se@expand",) + ("none",) * 4, "at stage 1; allowed there: stage"),
])
def test_placements_are_checked_per_stage(backbone, stages, needle):
    specs = tuple(BlockSpec("none") if s == "none" else BlockSpec(s.split("@")[0], placement=s.split("@")[1])
                  for s in stages)
    with pytest.raises(ConfigError) as info:
        ArchConfig(backbone, specs)
    assert needle in str(info.value)


@pytest.mark.parametrize("key", ["pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay",
                                 "pretrained_strict"])
def test_timm_arguments_that_load_weights_are_refused(key):
    with pytest.raises(ConfigError) as info:
        ArchConfig.uniform("timm:resnet10t", BlockSpec("none"), {key: "x.pth"})
    assert f"backbone_args.{key} is refused for timm:resnet10t" in str(info.value)
    assert "never loads weights" in str(info.value)


def test_load_arch_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone: cifar_resnet\nstages: [se, eca, {kind: se, reduction: 0}]\n")
    with pytest.raises(ConfigError, match=rf"{bad}: stages\[3\]\.reduction = 0 is invalid for se"):
        load_arch(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("backbone: [cifar_resnet\n")
    with pytest.raises(ConfigError, match=rf"{broken}: not valid YAML"):
        load_arch(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_arch(tmp_path / "missing.yaml")
