"""build_model: every block variant on every backbone, in the right place, as a plain module."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torchvision
from torch import nn

from nas import ArchConfig, BlockSpec, build_model
from nas.backbones import get_backbone
from nas.backbones.tv import mobilenet_v2_stages
from nas.blocks import BLOCK_KINDS, GATES, POOLS, SqueezeExcite

BACKBONES = {  # name: (backbone_args, input size)
    "cifar_resnet": ({"depth": 8, "width": 8}, 16),
    "resnet18": ({"small_input": True}, 16),
    "resnet34": ({}, 32),
    "resnet50": ({}, 32),
    "mobilenet_v2": ({"width_mult": 0.35}, 32),
    "timm:resnet10t": ({}, 32),
    "timm:mobilenetv3_small_050": ({}, 32),
}
EXTRA_VARIANTS = (
    BlockSpec("cbam", channel="eca", bias=True, norm=False), BlockSpec("ge", gather="conv", extent=2),
    BlockSpec("se", reduction=2.5, divisor=8, bias=False), BlockSpec("ge", extent=6, pool="mix"),
)


def variants(placements):
    """Every kind at every placement (pools and gates taken in turn), and the settings that add layers."""
    specs = [BlockSpec("none")]
    for i, (kind, placement) in enumerate(itertools.product(BLOCK_KINDS, placements)):
        specs.append(BlockSpec(kind, pool=POOLS[i % len(POOLS)], gate=GATES[i % len(GATES)], placement=placement,
                               reduction=4, extent=2 if kind == "ge" and i % 2 else 0))
    specs += [dataclasses.replace(spec, placement=p) for spec in EXTRA_VARIANTS for p in placements]
    return specs


def archs_covering_every_variant(backbone):
    """As few architectures as put every variant on some stage that has its placement."""
    args, _ = BACKBONES[backbone]
    per_stage = get_backbone(backbone).placements_per_stage(args)
    todo = variants(sorted({p for stage in per_stage for p in stage}))
    archs = []
    while todo:
        stages = []
        for allowed in per_stage:
            spec = next((v for v in todo if v.kind == "none" or v.placement in allowed), BlockSpec("none"))
            if spec in todo:
                todo.remove(spec)
            stages.append(spec)
        archs.append(ArchConfig(backbone, tuple(stages), args, 7, 1))
    return archs


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_variant_builds_runs_and_backpropagates(backbone):
    _, size = BACKBONES[backbone]
    for arch in archs_covering_every_variant(backbone):
        model = build_model(arch)
        x = torch.randn(2, 1, size, size)
        out = model(x)
        assert out.shape == (2, 7)
        out.sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, (arch.arch_id, missing[:3])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_rgb_and_grayscale_inputs(backbone):
    args, size = BACKBONES[backbone]
    placement = "stage" if backbone.startswith("timm:") else "block"
    for in_chans in (1, 3):
        model = build_model(ArchConfig.uniform(backbone, BlockSpec("cbam", placement=placement), args,
                                               num_classes=5, in_chans=in_chans))
        assert model(torch.randn(2, in_chans, size, size)).shape == (2, 5)


def test_none_resnet18_is_torchvisions_resnet18():
    """Same parameters and names, same output: torchvision weights load strictly."""
    ours = build_model(ArchConfig.uniform("resnet18", BlockSpec("none"), num_classes=1000))
    theirs = torchvision.models.resnet18()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))
    with_se = build_model(ArchConfig.uniform("resnet50", BlockSpec("se"), num_classes=1000))
    result = with_se.load_state_dict(torchvision.models.resnet50().state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".attn." in k for k in result.missing_keys)


def _calls(model, module_type):
    order = []
    for name, module in model.named_modules():
        if isinstance(module, module_type):
            module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
    return order


def test_block_placement_is_after_last_norm_before_the_sum():
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 14})).eval()
    unit = model.stages[1][0]  # first unit of stage 2: has a projection shortcut
    seen = {}
    unit.bn2.register_forward_hook(lambda m, i, o: seen.update(bn2=o.clone()))
    unit.attn.register_forward_hook(lambda m, i, o: seen.update(attn_in=i[0].clone(), attn_out=o.clone()))
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        y = unit(x)
        torch.testing.assert_close(seen["attn_in"], seen["bn2"])
        torch.testing.assert_close(y, torch.relu(seen["attn_out"] + unit.shortcut(x)))
    calls = _calls(model, SqueezeExcite)
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    assert len(calls) == 6  # 2 units x 3 stages


@pytest.mark.parametrize("backbone,placement,units_per_stage", [
    ("cifar_resnet", "block", [1, 1, 1]), ("cifar_resnet", "post", [1, 1, 1]),
    ("resnet34", "identity", [3, 4, 6, 3]), ("resnet34", "pre", [3, 4, 6, 3]),
    ("mobilenet_v2", "block", [1, 2, 3, 7, 4, 1]), ("mobilenet_v2", "expand", [1, 2, 3, 7, 4]),
    ("timm:mobilenetv3_small_050", "expand", [0, 1, 2, 5, 3]),
])
def test_unit_placements_put_one_block_in_every_unit(backbone, placement, units_per_stage):
    for i, units in enumerate(units_per_stage):
        stages = [BlockSpec("none")] * len(get_backbone(backbone).placements_per_stage({}))
        if not units:
            continue
        stages[i] = BlockSpec("se", placement=placement)
        args = {"depth": 8} if backbone == "cifar_resnet" else {}
        model = build_model(ArchConfig(backbone, tuple(stages), args))
        assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == units, (backbone, i + 1)


def _branch(unit, x):
    if hasattr(unit, "bn3"):
        out = unit.relu(unit.bn2(unit.conv2(unit.relu(unit.bn1(unit.conv1(x))))))
        return unit.bn3(unit.conv3(out))
    return unit.bn2(unit.conv2(unit.relu(unit.bn1(unit.conv1(x)))))


@pytest.mark.parametrize("backbone,args,unit_of", [
    ("cifar_resnet", {"depth": 8}, lambda m: m.stages[1][0]),
    ("resnet50", {"small_input": True}, lambda m: m.layer2[0]),
    ("resnet18", {"small_input": True}, lambda m: m.layer1[1]),  # identity shortcut
])
@pytest.mark.parametrize("placement", ["block", "pre", "post", "identity"])
def test_residual_placements_are_the_senet_ablation_positions(backbone, args, unit_of, placement):
    """block: branch -> SE -> + x; pre: SE -> branch -> + x; identity: branch + SE(x); post: SE after the ReLU."""
    n = len(ArchConfig.uniform(backbone, BlockSpec("none"), args).stages)
    model = build_model(ArchConfig.uniform(backbone, BlockSpec("se", reduction=4, placement=placement), args)).eval()
    unit = unit_of(model)
    shortcut = getattr(unit, "shortcut", None) or unit.downsample or nn.Identity()
    in_ch = unit.conv1.in_channels
    x = torch.randn(2, in_ch, 8, 8)
    attn = unit.attn
    assert attn.fc.fc1.in_channels == (in_ch if placement == "pre" else _branch(unit, x).shape[1])
    with torch.no_grad():
        expected = {
            "block": lambda: torch.relu(attn(_branch(unit, x)) + shortcut(x)),
            "pre": lambda: torch.relu(_branch(unit, attn(x)) + shortcut(x)),
            "identity": lambda: torch.relu(_branch(unit, x) + attn(shortcut(x))),
            "post": lambda: attn(torch.relu(_branch(unit, x) + shortcut(x))),
        }[placement]()
        torch.testing.assert_close(unit(x), expected)
    assert n >= 3


def test_expand_placement_is_after_the_depthwise_conv_on_the_expanded_width():
    arch = ArchConfig("mobilenet_v2", (BlockSpec("none"), BlockSpec("eca", placement="expand"),
                                       *[BlockSpec("none")] * 4))
    model = build_model(arch)
    for index in (2, 3):
        unit = model.features[index]
        depthwise, project = unit.conv[-3], unit.conv[-2]
        assert isinstance(depthwise[-2], nn.ReLU6)  # conv, bn, relu6, then the block
        assert project.in_channels == 6 * unit.conv[0][0].in_channels  # the expanded width (t = 6)
        assert type(depthwise[-1]).__name__ == "EfficientChannelAttention"
    # torchvision's keys are unchanged: its weights load, only the new blocks are missing
    expand = BlockSpec("se", placement="expand")
    with_expand = build_model(ArchConfig("mobilenet_v2", (expand,) * 5 + (BlockSpec("se"),), num_classes=1000))
    result = with_expand.load_state_dict(torchvision.models.mobilenet_v2().state_dict(), strict=False)
    assert not result.unexpected_keys and result.missing_keys
    assert all(".fc.fc" in k for k in result.missing_keys)


def test_timm_expand_placement_fills_the_se_slot():
    arch = ArchConfig("timm:efficientnet_b0", (BlockSpec("eca", placement="expand"), BlockSpec("none"),
                                               BlockSpec("none"), BlockSpec("none"),
                                               BlockSpec("se", reduction=4, gate="hard_sigmoid", placement="expand")))
    model = build_model(arch)
    assert type(model.blocks[0][0].se).__name__ == "EfficientChannelAttention"
    assert isinstance(model.blocks[1][0].se, torch.nn.Identity)  # the model's own SE stripped: stage 2 is none
    kept = build_model(dataclasses.replace(arch, stages=(arch.stages[0], BlockSpec("own"), *arch.stages[2:])))
    assert type(kept.blocks[1][0].se).__module__ == "timm.models._efficientnet_blocks"  # own: the model's SE kept
    for unit in (*model.blocks[5], *model.blocks[6]):
        assert isinstance(unit.se, SqueezeExcite) and unit.se.fc.fc1.in_channels == unit.conv_dw.out_channels
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("placement", ["stage", "block"])
def test_mobilenet_v2_head_is_stage_six(placement):
    """Stage 6 is the 1×1 conv to 1280 channels: `stage` on its output (what the classifier pools),
    `block` after its norm, before its ReLU6."""
    arch = ArchConfig("mobilenet_v2", (*[BlockSpec("none")] * 5, BlockSpec("se", placement=placement)))
    model = build_model(arch)
    head = model.features[18]
    if placement == "stage":
        assert isinstance(head[1], SqueezeExcite) and head[1].fc.fc1.in_channels == 1280
    else:
        assert [type(m).__name__ for m in head] == ["Conv2d", "BatchNorm2d", "SqueezeExcite", "ReLU6"]
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 1


def test_stage_placement_puts_one_block_on_the_stage_output():
    arch = ArchConfig("resnet18", (BlockSpec("none"), BlockSpec("se", placement="stage"),
                                   BlockSpec("none"), BlockSpec("eca", placement="stage")))
    model = build_model(arch)
    assert isinstance(model.layer2[-1], SqueezeExcite) and model.layer2[-1].fc.fc1.in_channels == 128
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 1
    assert all(isinstance(unit.attn, nn.Identity) for unit in model.layer2[0])
    timm_model = build_model(ArchConfig.uniform("timm:resnet10t", BlockSpec("se", placement="stage")))
    assert isinstance(timm_model.layer3[1], SqueezeExcite)
    assert isinstance(timm_model.act1[1], SqueezeExcite)


def test_mobilenet_v2_stages_group_units_by_resolution():
    for width in (0.35, 1.0):
        features = torchvision.models.mobilenet_v2(width_mult=width).features
        assert mobilenet_v2_stages(features) == [[1], [2, 3], [4, 5, 6], [7, 8, 9, 10, 11, 12, 13],
                                                 [14, 15, 16, 17]]


def test_small_input_keeps_resolution_in_the_stem():
    arch = ArchConfig.uniform("resnet18", BlockSpec("none"), {"small_input": True}, in_chans=1)
    model = build_model(arch)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 1 and isinstance(model.maxpool, nn.Identity)


def test_overrides_and_paths(tmp_path):
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec("eca"), {"depth": 8})
    path = tmp_path / "arch.yaml"
    path.write_text(arch.to_yaml())
    model = build_model(path, num_classes=3, in_chans=1)
    assert model(torch.randn(2, 1, 12, 12)).shape == (2, 3)
    assert model.stem[0].in_channels == 1
