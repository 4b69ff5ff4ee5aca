"""Cost: fvcore FLOPs with attention ops counted, cross-checks, golden numbers, latency."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from nas import (
    ArchConfig,
    BlockSpec,
    ConfigError,
    arch_cost,
    build_model,
    count_flops,
    count_params,
    make_block,
    measure_latency,
)
from nas.blocks import BLOCK_KINDS
from nas.cost import EXTRA_HANDLES, FlopCountAnalysis

GOLDEN = Path(__file__).with_name("golden_flops.json")


def test_resnet18_matches_fvcore_plain_count():
    flops = count_flops(torchvision.models.resnet18(), (1, 3, 224, 224))
    assert abs(flops - 1.819e9) / 1.819e9 < 0.02
    # what we add beyond plain fvcore is the max-pool and the residual adds, nothing else
    assert 0 < flops - 1_819_065_856 < 4e6


def test_conv_and_linear_work_agrees_with_torch_flop_counter():
    """torch counts 2 flops per multiply-add; fvcore (and we) count 1."""
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("cbam", reduction=4), {"depth": 8})).eval()
    x = torch.zeros(1, 3, 32, 32)
    analysis = FlopCountAnalysis(model, x)
    for op, handle in EXTRA_HANDLES.items():
        analysis.set_op_handle(op, handle)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    matmul_like = by_op["conv"] + by_op["linear"]
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == 2 * matmul_like
    assert count_flops(model, x.shape) > matmul_like  # plus norms, pools, gates, rescales


def test_se_costs_at_least_one_flop_per_gated_activation():
    plain = count_flops(build_model(ArchConfig.uniform("resnet18", BlockSpec("none"))), (1, 3, 224, 224))
    se = count_flops(build_model(ArchConfig.uniform("resnet18", BlockSpec("se"))), (1, 3, 224, 224))
    gated = 2 * (64 * 56 * 56 + 128 * 28 * 28 + 256 * 14 * 14 + 512 * 7 * 7)  # 2 units per stage
    assert se - plain >= gated
    # and the excitation MLPs are there too (C*C/16*2 multiply-adds per unit)
    mlp = 2 * sum(2 * c * (c // 16) for c in (64, 128, 256, 512))
    assert se - plain >= gated * 2 + mlp  # pool (1/input) + rescale (1/output) + MLP


@pytest.mark.parametrize("kind", BLOCK_KINDS)
def test_every_block_costs_something(kind):
    base = arch_cost(ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8}), 32)
    cost = arch_cost(ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), {"depth": 8}), 32)
    assert cost.flops > base.flops
    if kind == "ge":  # parameter-free GE-θ⁻
        assert cost.params == base.params


def test_no_op_of_any_block_goes_uncounted():
    """fvcore skips ops it has no handle for; every op a block runs either has one or costs nothing."""
    free = {"aten::cat", "aten::chunk", "aten::split_with_sizes", "aten::transpose", "aten::view", "aten::flatten",
            "aten::unsqueeze", "aten::relu", "aten::relu_", "aten::split"}
    for kind in BLOCK_KINDS:
        for spec in (BlockSpec.paper_default(kind), BlockSpec(kind, pool="mix", gather="conv", extent=2)):
            analysis = FlopCountAnalysis(make_block(spec, 16).eval(), torch.zeros(1, 16, 8, 8))
            for op, handle in EXTRA_HANDLES.items():
                analysis.set_op_handle(op, handle)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert analysis.total() > 0
                assert set(analysis.unsupported_ops()) <= free, spec.block_id


def test_golden_numbers():
    golden = json.loads(GOLDEN.read_text())
    backbones = {entry["arch"]["backbone"].split(":")[0] for entry in golden}
    assert backbones >= {"cifar_resnet", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "timm"}
    placements = {stage.get("placement") for entry in golden for stage in entry["arch"]["stages"]}
    assert placements >= {"block", "stage", "pre", "post", "identity", "expand"}
    for entry in golden:
        arch = ArchConfig.from_dict(entry["arch"])
        assert arch.arch_id == entry["arch_id"]
        cost = arch_cost(arch, entry["image_size"])
        assert (cost.flops, cost.params) == (entry["flops"], entry["params"]), arch.arch_id


def _block_flops(spec, channels, size):
    return count_flops(make_block(spec, channels), (1, channels, size, size))


@pytest.mark.parametrize("spec", [BlockSpec("se", reduction=4), BlockSpec("coord"), BlockSpec("sa"),
                                  BlockSpec("ge", gather="conv", extent=2), BlockSpec("cbam", channel="eca")],
                         ids=lambda s: s.kind)
@pytest.mark.parametrize("placement", ["block", "pre", "post", "identity"])
def test_each_placement_costs_its_blocks_at_their_width_and_resolution(spec, placement):
    """cifar_resnet 8/16 at 28 px: units see 16@28 -> 16@28, 16@28 -> 32@14, 32@14 -> 64@7. A `pre`
    block works on the unit's input; the others on its output."""
    spec = dataclasses.replace(spec, placement=placement)
    arch = ArchConfig.uniform("cifar_resnet", spec, {"depth": 8}, in_chans=1)
    plain = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8}, in_chans=1)
    at = [(16, 28), (16, 28), (32, 14)] if placement == "pre" else [(16, 28), (32, 14), (64, 7)]
    expected = sum(_block_flops(spec, c, h) for c, h in at)
    assert arch_cost(arch, 28).flops - arch_cost(plain, 28).flops == expected


def test_expand_placement_costs_the_expanded_width():
    """MobileNetV2 at 64 px, stage 2: units 16->24 (t=6: 96 wide, depthwise stride 2 -> 16 px) and
    24->24 (144 wide at 16 px); `block` gates the 24-channel outputs instead."""
    def cost(spec):
        stages = [BlockSpec("none")] * 6
        stages[1] = spec
        return arch_cost(ArchConfig("mobilenet_v2", tuple(stages)), 64).flops

    plain = cost(BlockSpec("none"))
    se = BlockSpec("se", reduction=4, divisor=8)
    expand = dataclasses.replace(se, placement="expand")
    assert cost(expand) - plain == _block_flops(se, 96, 16) + _block_flops(se, 144, 16)
    assert cost(se) - plain == 2 * _block_flops(se, 24, 16)
    head = [BlockSpec("none")] * 5 + [dataclasses.replace(se, placement="stage")]
    assert arch_cost(ArchConfig("mobilenet_v2", tuple(head)), 64).flops - plain == _block_flops(se, 1280, 2)


def test_counting_is_quiet_and_leaves_the_model_alone(capfd):
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("ge", extent=2), {"depth": 8}))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count_flops(model, (2, 3, 32, 32))
    assert not caught
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_flops_scale_with_batch_and_resolution():
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8}))
    one = count_flops(model, (1, 3, 32, 32))
    assert count_flops(model, (4, 3, 32, 32)) == 4 * one
    assert count_flops(model, (1, 3, 16, 16)) < one / 3


def test_params_and_latency():
    """`nas.measure_latency`: architectures timed against `none` under named conditions (ONNX
    Runtime, batch 1, 1 thread by default); CBAM everywhere is far slower than none (x2-3)."""
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8}))
    assert count_params(model) == sum(p.numel() for p in model.parameters()) > 0
    archs = [ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(k), {"depth": 8, "width": 4}) for k in
             ("none", "cbam")]
    measured = measure_latency(archs, 16, target=0.25, max_seconds=5)
    assert set(measured) == {a.arch_id for a in archs}
    cbam = measured[archs[1].arch_id]
    assert cbam.ratio > 1.2 and 0 < cbam.reference_ms < cbam.ms and cbam.ratio_ci > 0
    with pytest.raises(ConfigError, match="another network"):
        measure_latency([archs[0], ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 14})], 16)
