"""build_model: every block variant on every backbone, in the right place, as a plain module."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision
from torch import nn

from nas import ArchConfig, BlockSpec, build_model
from nas.backbones.tv import mobilenet_v2_stages
from nas.blocks import GATES, KINDS, POOLS, SqueezeExcite

BACKBONES = {  # name: (backbone_args, input size)
    "cifar_resnet": ({"depth": 8, "width": 8}, 16),
    "resnet18": ({"small_input": True}, 16),
    "resnet34": ({}, 32),
    "resnet50": ({}, 32),
    "mobilenet_v2": ({"width_mult": 0.35}, 32),
    "timm:resnet10t": ({}, 32),
}


def variants(placements):
    specs = [BlockSpec("none")]
    for kind, pool, gate, placement in itertools.product(KINDS[1:], POOLS, GATES, placements):
        specs.append(BlockSpec(kind, pool=pool, gate=gate, placement=placement, reduction=4,
                               extent=2 if kind == "ge" and pool == "max" else 0))
    return specs


def archs_covering_every_variant(backbone):
    """As few architectures as cover every (kind, pool, gate, placement) on some stage."""
    args, _ = BACKBONES[backbone]
    placements = ("stage",) if backbone.startswith("timm:") else ("block", "stage")
    specs = variants(placements)
    n = len(ArchConfig.uniform(backbone, BlockSpec("none"), args).stages)
    chunks = [specs[i:i + n] for i in range(0, len(specs), n)]
    return [ArchConfig(backbone, tuple(c + [BlockSpec("se")] * (n - len(c))), args, 7, 1) for c in chunks]


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


@pytest.mark.parametrize("backbone,units_per_stage", [
    ("cifar_resnet", [1, 1, 1]), ("resnet34", [3, 4, 6, 3]), ("mobilenet_v2", [1, 2, 3, 7, 4]),
])
def test_block_placement_puts_one_block_in_every_unit(backbone, units_per_stage):
    for i in range(len(units_per_stage)):
        stages = [BlockSpec("none")] * len(units_per_stage)
        stages[i] = BlockSpec("se")
        args = {"depth": 8} if backbone == "cifar_resnet" else {}
        model = build_model(ArchConfig(backbone, tuple(stages), args))
        assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == units_per_stage[i]


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
