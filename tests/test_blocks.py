"""Attention blocks: every variant runs, gates behave as the papers define, timm parity, the registry."""

from __future__ import annotations

import dataclasses
import inspect
import itertools

import pytest
import torch
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.gather_excite import GatherExcite
from timm.layers.squeeze_excite import SEModule

from nas import BlockSpec, ConfigError, NasError, make_block, reduced_width
from nas.blocks import (
    BLOCK_KINDS,
    CBAM,
    GATES,
    KINDS,
    POOLS,
    REGISTRY,
    CoordinateAttention,
    EfficientChannelAttention,
    SpatialAttention,
    SqueezeExcite,
    adaptive_kernel_size,
)
from nas.blocks import GatherExcite as OurGatherExcite
from nas.blocks.spec import SETTING_FIELDS


def all_specs() -> list[BlockSpec]:
    specs = {BlockSpec("none")}
    for kind, pool, gate in itertools.product(BLOCK_KINDS, POOLS, GATES):
        extents = (0, 2, 6) if kind == "ge" else (0,)
        for extent in extents:
            specs.add(BlockSpec(kind, pool=pool, gate=gate, extent=extent, reduction=4))
    specs |= {
        BlockSpec("ge", reduction=None, extent=4, pool="avgmax"),
        BlockSpec("ge", gather="conv", extent=2, reduction=None),
        BlockSpec("ge", gather="conv", extent=4, reduction=2.5, divisor=2, bias=False),
        BlockSpec("se", reduction=3.33, divisor=8, bias=False),
        BlockSpec("eca", kernel_size=5, bias=True),
        BlockSpec("cbam", channel="eca", channel_kernel_size=3, kernel_size=3, bias=True, norm=False),
        BlockSpec("cbam", channel="eca", pool="mix"),
        BlockSpec("sa", kernel_size=3, bias=True, norm=False),
        BlockSpec("coord", reduction=32, divisor=8, bias=False),
    }
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


@pytest.mark.parametrize("spec", [
    BlockSpec("cbam"), BlockSpec("ge", extent=2), BlockSpec("sa"), BlockSpec("coord"),
    BlockSpec("ge", extent=2, gather="conv"),
], ids=lambda s: s.block_id)
def test_spatial_gates_vary_over_space(spec):
    assert spatial_spread_of_gate(make_block(spec, 16)) > 1e-3


def test_avgmax_sums_the_excitation_of_both_descriptors():
    torch.manual_seed(2)
    x = torch.randn(2, 16, 5, 5)
    se = make_block(BlockSpec("se", pool="avgmax", reduction=4), 16)
    fc = se.fc
    expected = x * torch.sigmoid(fc(x.mean((2, 3), keepdim=True)) + fc(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(se(x), expected)


def test_mix_pools_before_the_excitation():
    torch.manual_seed(2)
    x = torch.randn(2, 16, 5, 5)
    se = make_block(BlockSpec("se", pool="mix", reduction=4), 16)
    expected = x * torch.sigmoid(se.fc(0.5 * (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))))
    torch.testing.assert_close(se(x), expected)


def test_reduced_width_rule_never_reaches_zero():
    assert reduced_width(16, 16) == 1
    assert reduced_width(4, 16) == 1
    assert reduced_width(20, 8) == 3  # 2.5 rounds half up
    assert reduced_width(64, 16) == 4
    assert reduced_width(256, 4) == 64
    se = make_block(BlockSpec("se", reduction=16), 8)
    assert se.fc.fc1.out_channels == 1


def test_divisor_rounds_to_a_multiple_and_never_below_ninety_percent():
    assert reduced_width(72, 4, 8) == 24  # 18 -> 16 would lose 11 %, so 24 (MobileNetV3's rule)
    assert reduced_width(96, 4, 8) == 24
    assert reduced_width(240, 4, 8) == 64  # 60 -> 64
    assert reduced_width(16, 4, 8) == 8  # at least the divisor
    assert make_block(BlockSpec("se", reduction=4, divisor=8), 72).fc.fc1.out_channels == 24


def test_fractional_reduction_uses_the_same_rule():
    assert reduced_width(64, 1 / 0.3) == 19  # ratio 0.3: 19.2 rounds to 19
    assert reduced_width(64, 2.5) == 26  # 25.6
    assert make_block(BlockSpec("cbam", reduction=3.33), 64).channel.fc.fc1.out_channels == 19
    assert BlockSpec("se", reduction=4.0) == BlockSpec("se", reduction=4)
    assert BlockSpec("se", reduction=4.0).block_id == "se-r4-avg"
    assert BlockSpec("se", reduction=3.33).block_id == "se-r3.33-avg"


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


@pytest.mark.parametrize("extent", [0, 2, 4, 6, 8])
@pytest.mark.parametrize("pool", ["avg", "mix"])
def test_parameter_free_ge_matches_timm(extent, pool):
    """`mix` is timm's `add_maxpool`; any even extent (6 too) is timm's window 2e-1, stride e."""
    ours = make_block(BlockSpec("ge", extent=extent, reduction=None, pool=pool), 16)
    theirs = GatherExcite(16, extent=extent, use_mlp=False, add_maxpool=pool == "mix")
    assert_same_output(ours, theirs, 16, size=(13, 10))


def test_bias_and_norm_switch_the_layers():
    assert make_block(BlockSpec("se"), 32).fc.fc1.bias is not None  # the paper's SE has biases
    assert make_block(BlockSpec("se", bias=False), 32).fc.fc1.bias is None
    assert make_block(BlockSpec("eca"), 32).conv.bias is None  # the paper's ECA has none
    assert make_block(BlockSpec("eca", bias=True), 32).conv.bias is not None
    cbam = make_block(BlockSpec("cbam"), 32)
    assert cbam.channel.fc.fc1.bias is None and cbam.spatial.conv.bias is None
    assert isinstance(cbam.spatial.bn, torch.nn.BatchNorm2d)
    cbam = make_block(BlockSpec("cbam", bias=True, norm=False), 32)
    assert cbam.channel.fc.fc1.bias is not None and cbam.spatial.conv.bias is not None
    assert isinstance(cbam.spatial.bn, torch.nn.Identity)


def test_cbam_channel_half_can_be_eca():
    cbam = make_block(BlockSpec("cbam", channel="eca", channel_kernel_size=5, kernel_size=3), 64)
    assert isinstance(cbam.channel, EfficientChannelAttention) and cbam.channel.conv.kernel_size == (5,)
    assert cbam.spatial.conv.kernel_size == (3, 3)
    assert make_block(BlockSpec("cbam", channel="eca"), 256).channel.conv.kernel_size == (5,)  # adaptive
    # settings of the other half are normalised away
    assert BlockSpec("cbam", channel="eca", reduction=4, divisor=8) == BlockSpec("cbam", channel="eca")
    assert BlockSpec("cbam", channel_kernel_size=3) == BlockSpec("cbam")


def test_ge_conv_gather_is_strided_depthwise_convs_with_norm():
    ge = make_block(BlockSpec("ge", gather="conv", extent=8, reduction=None), 16)
    convs = [m for m in ge.convs if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3  # log2(8) stride-2 steps
    assert all(c.groups == 16 and c.stride == (2, 2) and c.bias is None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in ge.convs) == 3
    assert sum(isinstance(m, torch.nn.ReLU) for m in ge.convs) == 2  # between the steps, not after
    x = torch.randn(2, 16, 17, 11)
    assert ge(x).shape == x.shape
    assert BlockSpec("ge", gather="conv", extent=2, pool="max") == BlockSpec("ge", gather="conv", extent=2)


def coordinate_attention_reference(x, conv1, bn1, conv_h, conv_w):
    """Hou et al. 2021, Fig. 2(c) as the paper describes it: X/Y average pools, concat, shared 1×1
    conv + BN + h-swish, split, per-axis 1×1 conv + sigmoid, multiply both into the input."""
    n, c, h, w = x.shape
    x_h = x.mean(dim=3, keepdim=True)  # N×C×H×1
    x_w = x.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)  # N×C×W×1
    y = torch.cat([x_h, x_w], dim=2)
    y = bn1(conv1(y))
    y = y * torch.nn.functional.relu6(y + 3) / 6
    y_h, y_w = torch.split(y, [h, w], dim=2)
    a_h = torch.sigmoid(conv_h(y_h))
    a_w = torch.sigmoid(conv_w(y_w.permute(0, 1, 3, 2)))
    return x * a_w * a_h


@pytest.mark.parametrize("train", [False, True])
def test_coordinate_attention_matches_the_paper(train):
    torch.manual_seed(5)
    block = make_block(BlockSpec.paper_default("coord"), 64).double()
    assert block.encode[0].out_channels == 8  # r = 32 with at least 8 hidden units
    with torch.no_grad():
        block.encode[1].running_mean.uniform_(-0.5, 0.5)
        block.encode[1].running_var.uniform_(0.5, 2.0)
    conv1, bn1 = block.encode[0], block.encode[1]
    ref_bn = torch.nn.BatchNorm2d(8).double()
    ref_bn.load_state_dict(bn1.state_dict())
    block.train(train)
    ref_bn.train(train)
    x = torch.randn(3, 64, 9, 6, dtype=torch.float64)
    expected = coordinate_attention_reference(x, conv1, ref_bn, block.conv_h, block.conv_w)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-6)


# --- blocks on their own, and the registry ---------------------------------------------------

def test_blocks_are_constructible_from_plain_arguments():
    torch.manual_seed(6)
    se = SqueezeExcite(64, reduction=8, divisor=8, gate="hard_sigmoid", bias=False)
    assert se.fc.fc1.out_channels == 8 and se.fc.fc1.bias is None
    for block in (se, EfficientChannelAttention(64, kernel_size=3), CBAM(64, channel="eca"),
                  OurGatherExcite(64, extent=4, gather="conv"), SpatialAttention(64), CoordinateAttention(64)):
        assert block(torch.randn(2, 64, 8, 8)).shape == (2, 64, 8, 8)
    with pytest.raises(ConfigError, match="pool = 'mean' is invalid; allowed: avg, max, avgmax, mix"):
        SqueezeExcite(64, pool="mean")
    with pytest.raises(ConfigError, match="gate = 'tanh' is invalid"):
        SpatialAttention(64, gate="tanh")


@pytest.mark.parametrize("kind", BLOCK_KINDS)
def test_constructor_defaults_are_the_spec_defaults(kind):
    """One default per setting: `SqueezeExcite(C)` builds what `BlockSpec("se")` builds."""
    info = REGISTRY[kind]
    parameters = inspect.signature(info.module).parameters
    spec = BlockSpec(kind)
    for name, value in spec.settings().items():
        assert parameters[name].default == value, (kind, name)
    assert list(parameters)[0] == "channels"
    assert set(parameters) - {"channels"} == set(info.names)


def test_registry_is_the_one_home_of_kinds():
    assert KINDS == tuple(REGISTRY) and KINDS[0] == "none"
    assert set(KINDS) >= {"none", "se", "eca", "cbam", "ge", "sa", "coord"}
    for kind in REGISTRY.values():
        assert set(kind.names) <= set(SETTING_FIELDS), kind.name  # every setting is a BlockSpec field
        BlockSpec.paper_default(kind.name)  # the paper default is a valid spec
    assert {f.name for f in dataclasses.fields(BlockSpec)} == {"kind", "placement", *SETTING_FIELDS}


# --- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,needles", [
    ({"kind": "sse"}, ["kind", "'sse'", "none, se, eca, cbam, ge, sa, coord"]),
    ({"kind": "se", "reduction": 0}, ["reduction", "0", ">= 1"]),
    ({"kind": "se", "reduction": 0.5}, ["reduction = 0.5 is invalid for se", "a number >= 1"]),
    ({"kind": "se", "reduction": float("nan")}, ["reduction = nan"]),
    ({"kind": "se", "reduction": None}, ["reduction", "None"]),
    ({"kind": "se", "reduction": True}, ["reduction = True"]),
    ({"kind": "se", "divisor": 0}, ["divisor = 0 is invalid for se", "an integer >= 1"]),
    ({"kind": "coord", "divisor": 2.0}, ["divisor = 2.0 is invalid for coord"]),
    ({"kind": "se", "bias": "yes"}, ["bias = 'yes' is invalid for se", "true or false"]),
    ({"kind": "sa", "norm": 1}, ["norm = 1 is invalid for sa", "true or false"]),
    ({"kind": "eca", "kernel_size": 4}, ["kernel_size", "4", "odd"]),
    ({"kind": "cbam", "kernel_size": 0}, ["kernel_size", "0", "odd"]),
    ({"kind": "sa", "kernel_size": 4}, ["kernel_size = 4 is invalid for sa", "odd"]),
    ({"kind": "cbam", "channel": "sk"}, ["channel = 'sk' is invalid for cbam", "se, eca"]),
    ({"kind": "cbam", "channel": "eca", "channel_kernel_size": 2}, ["channel_kernel_size = 2", "odd"]),
    ({"kind": "se", "pool": "mean"}, ["pool", "'mean'", "avg, max, avgmax, mix"]),
    ({"kind": "eca", "gate": "tanh"}, ["gate", "'tanh'", "sigmoid, hard_sigmoid"]),
    ({"kind": "ge", "extent": 3}, ["extent = 3 is invalid for ge", "0 (global) or an even integer >= 2"]),
    ({"kind": "ge", "extent": 1}, ["extent", "1", "even"]),
    ({"kind": "ge", "gather": "fft"}, ["gather = 'fft' is invalid for ge", "pool, conv"]),
    ({"kind": "ge", "gather": "conv", "extent": 0}, ["extent = 0 is invalid for ge with gather: conv",
                                                     "a power of two >= 2"]),
    ({"kind": "ge", "gather": "conv", "extent": 6}, ["extent = 6", "a power of two >= 2"]),
    ({"kind": "cbam", "placement": "head"}, ["placement", "'head'", "block, stage, pre, post, identity, expand"]),
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
    assert BlockSpec("sa").kernel_size == 7
    assert BlockSpec("se").to_dict() == {
        "kind": "se", "reduction": 16, "divisor": 1, "pool": "avg", "gate": "sigmoid", "bias": True,
        "placement": "block"}
    assert BlockSpec("none").to_dict() == {"kind": "none"}
    assert BlockSpec("ge", reduction=None).to_dict() == {  # no MLP: no divisor, no bias
        "kind": "ge", "extent": 0, "gather": "pool", "reduction": None, "pool": "avg", "gate": "sigmoid",
        "placement": "block"}


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
    with pytest.raises(ConfigError, match=r"stages\[1\]\.channel is not a setting of se; allowed: "):
        BlockSpec.from_dict({"kind": "se", "channel": "eca"}, where="stages[1]")


def test_block_ids_are_short_and_distinct():
    assert BlockSpec("se", reduction=8).block_id == "se-r8-avg"
    assert BlockSpec("cbam", reduction=16, pool="avgmax").block_id == "cbam-r16-k7-avgmax"
    assert BlockSpec("eca").block_id == "eca-kauto-avg"
    assert BlockSpec("ge", extent=4, reduction=None, gate="hard_sigmoid").block_id == "ge-x4-nomlp-avg-hs"
    assert BlockSpec("se", placement="stage").block_id == "se-r16-avg@stage"
    assert BlockSpec("se", reduction=4, divisor=8, gate="hard_sigmoid").block_id == "se-r4-d8-avg-hs"
    assert BlockSpec("se", bias=False, placement="pre").block_id == "se-r16-avg-nobias@pre"
    assert BlockSpec("eca", bias=True, pool="avgmax", placement="expand").block_id == "eca-kauto-avgmax-bias@expand"
    assert BlockSpec("cbam", channel="eca", channel_kernel_size=7, bias=True, norm=False,
                     pool="avgmax").block_id == "cbam-eca-ek7-k7-avgmax-bias-nonorm"
    assert BlockSpec("ge", extent=6, pool="mix").block_id == "ge-x6-r16-mix"
    assert BlockSpec("ge", extent=4, gather="conv", reduction=None).block_id == "ge-x4-conv-nomlp"
    assert BlockSpec("sa", bias=True, norm=False, placement="identity").block_id == "sa-k7-bias-nonorm@identity"
    assert BlockSpec.paper_default("coord").block_id == "coord-r32-d8"
    specs = all_specs()
    assert len({s.block_id for s in specs}) == len(specs)


def test_paper_defaults():
    assert BlockSpec.paper_default("cbam") == BlockSpec("cbam", reduction=16, kernel_size=7, pool="avgmax")
    assert BlockSpec.paper_default("ge").reduction is None
    assert BlockSpec.paper_default("se", placement="stage").placement == "stage"
    assert BlockSpec.paper_default("sa") == BlockSpec("sa", kernel_size=7, bias=False, norm=True)
    assert BlockSpec.paper_default("coord") == BlockSpec("coord", reduction=32, divisor=8, bias=True)
