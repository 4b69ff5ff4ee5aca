"""Attention blocks: every variant runs, gates behave as the papers define, timm parity."""

from __future__ import annotations

import itertools

import pytest
import torch
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.gather_excite import GatherExcite
from timm.layers.squeeze_excite import SEModule

from nas import BlockSpec, ConfigError, NasError, make_block, reduced_width
from nas.blocks import GATES, KINDS, POOLS, adaptive_kernel_size


def all_specs() -> list[BlockSpec]:
    specs = {BlockSpec("none")}
    for kind, pool, gate in itertools.product(KINDS[1:], POOLS, GATES):
        extents = (0, 2) if kind == "ge" else (0,)
        for extent in extents:
            specs.add(BlockSpec(kind, pool=pool, gate=gate, extent=extent, reduction=4))
    specs.add(BlockSpec("ge", reduction=None, extent=4, pool="avgmax"))
    return sorted(specs, key=lambda s: s.block_id)


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.block_id)
def test_every_variant_keeps_shape_and_backpropagates(spec):
    torch.manual_seed(0)
    block = make_block(spec, 24)
    x = torch.randn(3, 24, 9, 7, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_none_is_parameter_free_identity():
    block = make_block(BlockSpec("none"), 32)
    x = torch.randn(2, 32, 4, 4)
    assert torch.equal(block(x), x)
    assert sum(p.numel() for p in block.parameters()) == 0


def spatial_spread_of_gate(block, channels=16):
    """How much the per-channel gate y/x varies over H×W (0 for a pure channel gate)."""
    torch.manual_seed(1)
    x = torch.rand(2, channels, 8, 8) + 0.5  # positive, so y / x is the gate
    with torch.no_grad():
        gate = block.eval()(x) / x
    return gate.std(dim=(2, 3)).max().item()


@pytest.mark.parametrize("spec", [
    BlockSpec("se", pool="avgmax"), BlockSpec("eca", pool="max"), BlockSpec("ge", extent=0),
    BlockSpec("ge", extent=0, reduction=None, pool="avgmax"),
], ids=lambda s: s.block_id)
def test_channel_gates_are_constant_over_space(spec):
    assert spatial_spread_of_gate(make_block(spec, 16)) < 1e-6


@pytest.mark.parametrize("spec", [BlockSpec("cbam"), BlockSpec("ge", extent=2)], ids=lambda s: s.block_id)
def test_spatial_gates_vary_over_space(spec):
    assert spatial_spread_of_gate(make_block(spec, 16)) > 1e-3


def test_avgmax_sums_the_excitation_of_both_descriptors():
    torch.manual_seed(2)
    x = torch.randn(2, 16, 5, 5)
    se = make_block(BlockSpec("se", pool="avgmax", reduction=4), 16)
    fc = se.fc
    expected = x * torch.sigmoid(fc(x.mean((2, 3), keepdim=True)) + fc(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(se(x), expected)


def test_reduced_width_rule_never_reaches_zero():
    assert reduced_width(16, 16) == 1
    assert reduced_width(4, 16) == 1
    assert reduced_width(20, 8) == 3  # 2.5 rounds half up
    assert reduced_width(64, 16) == 4
    assert reduced_width(256, 4) == 64
    se = make_block(BlockSpec("se", reduction=16), 8)
    assert se.fc.fc1.out_channels == 1


def test_eca_adaptive_kernel_follows_the_paper():
    assert [adaptive_kernel_size(c) for c in (16, 64, 256, 512, 2048)] == [3, 3, 5, 5, 7]
    eca = make_block(BlockSpec("eca"), 256)
    assert eca.conv.kernel_size == (5,)
    assert make_block(BlockSpec("eca", kernel_size=9), 256).conv.kernel_size == (9,)


# --- parity with timm, weights copied -------------------------------------------------------

def assert_same_output(ours, theirs, channels, size=(6, 5)):
    torch.manual_seed(3)
    ours.eval()
    theirs.eval()
    x = torch.randn(4, channels, *size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels,reduction,gate", [(64, 16, "sigmoid"), (20, 8, "hard_sigmoid"), (8, 16, "sigmoid")])
def test_se_matches_timm(channels, reduction, gate):
    ours = make_block(BlockSpec("se", reduction=reduction, gate=gate), channels)
    theirs = SEModule(channels, rd_ratio=1 / reduction, rd_divisor=1, gate_layer=gate)
    theirs.load_state_dict({k.replace("fc.", ""): v for k, v in ours.state_dict().items()})
    assert_same_output(ours, theirs, channels)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_eca_matches_timm(k):
    ours = make_block(BlockSpec("eca", kernel_size=k), 32)
    theirs = EcaModule(channels=None, kernel_size=k)
    theirs.load_state_dict(ours.state_dict())
    assert_same_output(ours, theirs, 32)


@pytest.mark.parametrize("channels,reduction,k", [(64, 16, 7), (32, 8, 3)])
def test_cbam_matches_timm(channels, reduction, k):
    torch.manual_seed(4)
    ours = make_block(BlockSpec("cbam", reduction=reduction, kernel_size=k, pool="avgmax"), channels)
    with torch.no_grad():  # non-trivial batch-norm statistics
        ours.spatial.bn.running_mean.fill_(0.3)
        ours.spatial.bn.running_var.fill_(2.0)
        ours.spatial.bn.weight.fill_(1.5)
    theirs = CbamModule(channels, rd_ratio=1 / reduction, spatial_kernel_size=k)
    renamed = {}
    for key, value in ours.state_dict().items():
        key = key.replace("channel.fc.", "channel.").replace("spatial.conv.", "spatial.conv.conv.")
        renamed[key.replace("spatial.bn.", "spatial.conv.bn.")] = value
    theirs.load_state_dict(renamed)
    assert_same_output(ours, theirs, channels, size=(9, 11))


@pytest.mark.parametrize("extent", [0, 2, 4, 8])
def test_parameter_free_ge_matches_timm(extent):
    ours = make_block(BlockSpec("ge", extent=extent, reduction=None), 16)
    theirs = GatherExcite(16, extent=extent, use_mlp=False)
    assert_same_output(ours, theirs, 16, size=(13, 10))


# --- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,needles", [
    ({"kind": "sse"}, ["kind", "'sse'", "none, se, eca, cbam, ge"]),
    ({"kind": "se", "reduction": 0}, ["reduction", "0", ">= 1"]),
    ({"kind": "se", "reduction": 2.5}, ["reduction", "2.5"]),
    ({"kind": "se", "reduction": None}, ["reduction", "None"]),
    ({"kind": "eca", "kernel_size": 4}, ["kernel_size", "4", "odd"]),
    ({"kind": "cbam", "kernel_size": 0}, ["kernel_size", "0", "odd"]),
    ({"kind": "se", "pool": "mean"}, ["pool", "'mean'", "avg, max, avgmax"]),
    ({"kind": "eca", "gate": "tanh"}, ["gate", "'tanh'", "sigmoid, hard_sigmoid"]),
    ({"kind": "ge", "extent": 3}, ["extent", "3", "power of two"]),
    ({"kind": "ge", "extent": 1}, ["extent", "1", "power of two"]),
    ({"kind": "cbam", "placement": "head"}, ["placement", "'head'", "block, stage"]),
])
def test_bad_specs_are_refused_at_construction_naming_field_value_and_choices(kwargs, needles):
    with pytest.raises(ConfigError) as info:
        BlockSpec(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, NasError)
    for needle in needles:
        assert needle in str(info.value)


def test_settings_that_do_not_apply_are_normalised_away():
    assert BlockSpec("eca", reduction=8) == BlockSpec("eca")
    assert BlockSpec("none", pool="max", placement="stage") == BlockSpec("none")
    assert BlockSpec("cbam").kernel_size == 7
    assert BlockSpec("se").to_dict() == {
        "kind": "se", "reduction": 16, "pool": "avg", "gate": "sigmoid", "placement": "block"}
    assert BlockSpec("none").to_dict() == {"kind": "none"}


def test_from_dict_round_trip_and_strictness():
    for spec in all_specs():
        assert BlockSpec.from_dict(spec.to_dict()) == spec
    assert BlockSpec.from_dict("eca") == BlockSpec("eca")
    with pytest.raises(ConfigError, match=r"stages\[2\]\.reduction is not a setting of eca; allowed: "):
        BlockSpec.from_dict({"kind": "eca", "reduction": 8}, where="stages[2]")
    with pytest.raises(ConfigError, match=r"stages\[1\]\.kind is missing"):
        BlockSpec.from_dict({"pool": "avg"}, where="stages[1]")
    with pytest.raises(ConfigError, match=r"stages\[3\]\.reduction = 0 is invalid for se"):
        BlockSpec.from_dict({"kind": "se", "reduction": 0}, where="stages[3]")


def test_block_ids_are_short_and_distinct():
    assert BlockSpec("se", reduction=8).block_id == "se-r8-avg"
    assert BlockSpec("cbam", reduction=16, pool="avgmax").block_id == "cbam-r16-k7-avgmax"
    assert BlockSpec("eca").block_id == "eca-kauto-avg"
    assert BlockSpec("ge", extent=4, reduction=None, gate="hard_sigmoid").block_id == "ge-x4-nomlp-avg-hs"
    assert BlockSpec("se", placement="stage").block_id == "se-r16-avg@stage"
    specs = all_specs()
    assert len({s.block_id for s in specs}) == len(specs)


def test_paper_defaults():
    assert BlockSpec.paper_default("cbam") == BlockSpec("cbam", reduction=16, kernel_size=7, pool="avgmax")
    assert BlockSpec.paper_default("ge").reduction is None
    assert BlockSpec.paper_default("se", placement="stage").placement == "stage"
