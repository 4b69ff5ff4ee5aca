"""Cost: fvcore FLOPs with attention ops counted, cross-checks, golden numbers, latency."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from nas import ArchConfig, BlockSpec, arch_cost, build_model, count_flops, count_params, measure_latency
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


@pytest.mark.parametrize("kind", ["se", "eca", "cbam", "ge"])
def test_every_block_costs_something(kind):
    base = arch_cost(ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8}), 32)
    cost = arch_cost(ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default(kind), {"depth": 8}), 32)
    assert cost.flops > base.flops
    if kind == "ge":  # parameter-free GE-θ⁻
        assert cost.params == base.params


def test_golden_numbers():
    golden = json.loads(GOLDEN.read_text())
    assert len(golden) >= 2
    for entry in golden:
        arch = ArchConfig.from_dict(entry["arch"])
        assert arch.arch_id == entry["arch_id"]
        cost = arch_cost(arch, entry["image_size"])
        assert (cost.flops, cost.params) == (entry["flops"], entry["params"]), arch.arch_id


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
    model = build_model(ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8}))
    assert count_params(model) == sum(p.numel() for p in model.parameters()) > 0
    latency = measure_latency(model, (1, 3, 32, 32), "cpu", warmup=1, repeats=3)
    assert 0 < latency < 5
    assert model.training  # measured on a copy
