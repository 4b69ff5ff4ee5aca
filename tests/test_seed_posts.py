"""The five seed posts (shared/seeds/, Chinese, with code): each post's block, as the post describes
it, is reproduced by one `BlockSpec`.

The references below are our own small transcriptions of what each post's code computes, written
from its description (the posts' code is not copied). Weights are copied from the `nas` block into
the reference; outputs agree within 1e-6 in float64, in train and in eval mode. Where a post has a
bug, the test names it and shows that `nas` follows the paper instead.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import ArchConfig, BlockSpec, build_model, make_block
from nas.space import load_space

MODES = pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])


def same(ours: nn.Module, reference, x: torch.Tensor, train: bool) -> None:
    ours.train(train)
    if isinstance(reference, nn.Module):
        reference.train(train)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-6)


def randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial weights and batch-norm statistics, so a wrong copy or order shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *(b for n, b in module.named_buffers() if "running" in n)]:
            tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.8 + 0.2
                         if tensor.ndim == 1 else torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))


def image(channels: int, h: int = 9, w: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randn(3, channels, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- post 000: SE on MobileNetV2's 1280-channel output ---------------------------------------------
# The post: global average pool, Linear(C, C // 16, no bias), ReLU, Linear(C // 16, C, no bias),
# sigmoid, x * y; put on the output of MobileNetV2's `features` (1280 channels), before pooling.

class Post000SE(nn.Module):
    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // ratio, bias=False)
        self.fc2 = nn.Linear(channels // ratio, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * y[:, :, None, None]

    def copy_from(self, ours: nn.Module) -> Post000SE:
        self.fc1.weight.data.copy_(ours.fc.fc1.weight.flatten(1))
        self.fc2.weight.data.copy_(ours.fc.fc2.weight.flatten(1))
        return self


POST_000 = BlockSpec("se", reduction=16, bias=False, placement="stage")  # on mobilenet_v2's stage 6


@MODES
def test_post_000_se_without_biases(train):
    ours = make_block(POST_000, 1280).double()
    randomise(ours, 0)
    assert ours.fc.fc1.out_channels == 1280 // 16 and ours.fc.fc1.bias is None
    same(ours, Post000SE(1280).double().copy_from(ours), image(1280, 7, 7), train)


def test_post_000_placement_is_mobilenet_v2_head_output():
    arch = ArchConfig("mobilenet_v2", (BlockSpec("none"),) * 5 + (POST_000,), num_classes=16)
    model = build_model(arch).double().eval()
    head, se = model.features[18]
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        reference = Post000SE(1280).double().copy_from(se)(head(model.features[:18](x)))
        torch.testing.assert_close(model.features(x), reference, rtol=0, atol=1e-6)


# --- post 001: ECA with avg and max pooling, spatial attention, and the two chained --------------
# ECA: avg- and max-pooled descriptors through one Conv1d(1, 1, k, padding=3, bias) each, summed,
# sigmoid, x * y. SA: channel max and mean maps (in that order), Conv2d(2, 1, k, padding=3, bias),
# sigmoid, x * y, no norm. Its "CBAM" is ECA followed by SA. Both default to k = 7.

class Post001ECA(nn.Module):
    def __init__(self, kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=padding)  # the post hard-codes padding=3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.conv(x.mean((2, 3))[:, None, :])
        mx = self.conv(x.amax((2, 3))[:, None, :])
        return x * torch.sigmoid(avg + mx)[:, 0, :, None, None]

    def copy_from(self, ours: nn.Module) -> Post001ECA:
        self.conv.load_state_dict(ours.conv.state_dict())
        return self


class Post001SA(nn.Module):
    def __init__(self, kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)  # max first
        return x * torch.sigmoid(self.conv(maps))

    def copy_from(self, ours: nn.Module) -> Post001SA:
        self.conv.weight.data.copy_(ours.conv.weight[:, [1, 0]])  # ours stacks mean, then max
        self.conv.bias.data.copy_(ours.conv.bias)
        return self


POST_001_ECA = BlockSpec("eca", kernel_size=7, pool="avgmax", bias=True)
POST_001_SA = BlockSpec("sa", kernel_size=7, bias=True, norm=False)
POST_001_CBAM = BlockSpec("cbam", channel="eca", channel_kernel_size=7, kernel_size=7, pool="avgmax", bias=True,
                          norm=False)


@MODES
def test_post_001_eca_avg_and_max_with_bias(train):
    ours = make_block(POST_001_ECA, 32).double()
    randomise(ours, 1)
    same(ours, Post001ECA().double().copy_from(ours), image(32), train)


@MODES
def test_post_001_spatial_attention(train):
    ours = make_block(POST_001_SA, 16).double()
    randomise(ours, 2)
    same(ours, Post001SA().double().copy_from(ours), image(16), train)


@MODES
def test_post_001_eca_then_sa(train):
    ours = make_block(POST_001_CBAM, 24).double()
    randomise(ours, 3)
    eca, sa = Post001ECA().double().copy_from(ours.channel), Post001SA().double().copy_from(ours.spatial)
    same(ours, lambda x: sa(eca(x)), image(24), train)


@pytest.mark.parametrize("k", [3, 5])
def test_post_001_bug_padding_3_is_hard_coded(k):
    """Bug in post 001: `padding=3` is written for both convs, so only k = 7 keeps the shape; with
    k = 3 the post's ECA returns C + 4 channel weights and its SA a map 4 px too large, and the
    multiplication fails. `nas` pads by k // 2 (the papers' "same" convolution) and runs any odd k."""
    x = image(16)
    with pytest.raises(RuntimeError):
        Post001ECA(k).double()(x)
    with pytest.raises(RuntimeError):
        Post001SA(k).double()(x)
    eca = make_block(BlockSpec("eca", kernel_size=k, pool="avgmax", bias=True), 16).double()
    sa = make_block(BlockSpec("sa", kernel_size=k, bias=True, norm=False), 16).double()
    randomise(eca, 4)
    randomise(sa, 5)
    same(eca, Post001ECA(k, padding=k // 2).double().copy_from(eca), x, False)
    same(sa, Post001SA(k, padding=k // 2).double().copy_from(sa), x, False)


# --- post 002: CBAM in TensorFlow ------------------------------------------------------------------
# Channel half: max- and avg-pooled descriptors through shared dense layers (hidden int(C * ratio),
# ReLU; both with biases), summed, sigmoid, times the input. Spatial half: channel max and mean maps,
# one 7×7 "same" conv with bias, no norm, sigmoid, times the channel-refined map. The code uses
# ratio 0.5 (reduction 2); the text also discusses 0.3 (reduction 3.33).

class Post002CBAM(nn.Module):
    def __init__(self, channels: int, ratio: float, pool_unrefined: bool) -> None:
        super().__init__()
        self.mlp_1 = nn.Linear(channels, int(channels * ratio))
        self.mlp_2 = nn.Linear(int(channels * ratio), channels)
        self.conv = nn.Conv2d(2, 1, 7, padding=3)  # TF padding="same", stride 1
        self.pool_unrefined = pool_unrefined  # the post's code does; the paper does not

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def mlp(d: torch.Tensor) -> torch.Tensor:
            return self.mlp_2(torch.relu(self.mlp_1(d)))

        attention = torch.sigmoid(mlp(x.amax((2, 3))) + mlp(x.mean((2, 3))))
        refined = x * attention[:, :, None, None]
        source = x if self.pool_unrefined else refined
        maps = torch.cat([source.amax(1, keepdim=True), source.mean(1, keepdim=True)], 1)
        return refined * torch.sigmoid(self.conv(maps))

    def copy_from(self, ours: nn.Module) -> Post002CBAM:
        fc = ours.channel.fc
        for dense, conv in ((self.mlp_1, fc.fc1), (self.mlp_2, fc.fc2)):
            dense.weight.data.copy_(conv.weight.flatten(1))
            dense.bias.data.copy_(conv.bias)
        self.conv.weight.data.copy_(ours.spatial.conv.weight[:, [1, 0]])
        self.conv.bias.data.copy_(ours.spatial.conv.bias)
        return self


def post_002(reduction: float) -> BlockSpec:
    return BlockSpec("cbam", reduction=reduction, kernel_size=7, pool="avgmax", bias=True, norm=False)


@MODES
@pytest.mark.parametrize("ratio,reduction", [(0.5, 2), (0.3, 3.33)])
def test_post_002_cbam_with_biases_and_no_norm(train, ratio, reduction):
    ours = make_block(post_002(reduction), 64).double()
    randomise(ours, 6)
    assert ours.channel.fc.fc1.out_channels == int(64 * ratio)  # 32, and 19 = round(64 / 3.33)
    same(ours, Post002CBAM(64, ratio, pool_unrefined=False).double().copy_from(ours), image(64), train)


def test_post_002_bug_spatial_half_pools_the_unrefined_input():
    """Bug in post 002: its spatial half pools `inputs` instead of the channel-refined map, so the
    channel gate never informs where to look. `nas` follows the paper (Woo et al. 2018, Fig. 1 and
    eq. 1: F'' = M_s(F') ⊗ F'): the spatial gate is computed from the refined map."""
    ours = make_block(post_002(2), 64).double().eval()
    randomise(ours, 7)
    x = image(64)
    as_posted = Post002CBAM(64, 0.5, pool_unrefined=True).double().copy_from(ours)
    with torch.no_grad():
        assert (ours(x) - as_posted(x)).abs().max() > 1e-3
    same(ours, Post002CBAM(64, 0.5, pool_unrefined=False).double().copy_from(ours), x, False)


# --- post 003: MobileNetV3-style SE ------------------------------------------------------------------
# Hidden width `make_divisible(C // 4, 8)` (nearest multiple of 8, at least 8, never below 90 %),
# 1×1 convs with biases, ReLU, hard-sigmoid gate, weight * x; MobileNetV3 puts it after the
# depthwise conv, on the expanded width.

def post_003_divisible(v: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


class Post003SE(nn.Module):
    def __init__(self, channels: int, scale_ratio: int = 4) -> None:
        super().__init__()
        squeeze = post_003_divisible(channels // scale_ratio)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))) * x

    def copy_from(self, ours: nn.Module) -> Post003SE:
        self.fc1.load_state_dict(ours.fc.fc1.state_dict())
        self.fc2.load_state_dict(ours.fc.fc2.state_dict())
        return self


POST_003 = BlockSpec("se", reduction=4, divisor=8, gate="hard_sigmoid", placement="expand")


@MODES
@pytest.mark.parametrize("channels,hidden", [(72, 24), (16, 8), (240, 64), (96, 24)])
def test_post_003_se_with_divisor_8_and_hard_sigmoid(train, channels, hidden):
    ours = make_block(POST_003, channels).double()
    randomise(ours, 8)
    assert ours.fc.fc1.out_channels == hidden == post_003_divisible(channels // 4)
    same(ours, Post003SE(channels).double().copy_from(ours), image(channels), train)


def test_post_003_placement_is_after_the_depthwise_conv():
    arch = ArchConfig("mobilenet_v2", (POST_003,) * 5 + (BlockSpec("none"),))
    unit = build_model(arch).features[2]  # 16 -> 24, expanded to 96
    depthwise = unit.conv[1]
    assert depthwise[0].groups == 96 and depthwise[-1].fc.fc1.out_channels == 24


# --- post 004: Gather-Excite (timm's design) -------------------------------------------------------
# Gather: the global mean (extent 0) or a (2e-1)-window average pool with stride e (count_include_pad
# off; the post only asserts e is even); `add_maxpool` averages in the max-pooled map before the MLP;
# `extra_params` gathers with log2(e) depthwise 3×3 stride-2 convs, each with batch norm, ReLU
# between. Excite: an optional 1×1-conv MLP with biases, hidden round(C / 16). Sigmoid, nearest
# resize to the input, x * gate.

class Post004GE(nn.Module):
    def __init__(self, channels: int, extent: int, use_mlp: bool, add_maxpool: bool, extra_params: bool) -> None:
        super().__init__()
        self.extent, self.add_maxpool = extent, add_maxpool
        self.gather = None
        if extra_params:
            steps = int(math.log2(extent))
            layers: list[nn.Module] = []
            for i in range(steps):
                layers += [nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False),
                           nn.BatchNorm2d(channels)]
                if i != steps - 1:
                    layers.append(nn.ReLU())
            self.gather = nn.Sequential(*layers)
        hidden = max(1, int(channels / 16 + 0.5))
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1)) \
            if use_mlp else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gather is not None:
            g = self.gather(x)
        elif self.extent == 0:
            g = x.mean((2, 3), keepdim=True)
            if self.add_maxpool:
                g = 0.5 * g + 0.5 * x.amax((2, 3), keepdim=True)
        else:
            k, s = 2 * self.extent - 1, self.extent
            g = F.avg_pool2d(x, k, s, padding=k // 2, count_include_pad=False)
            if self.add_maxpool:
                g = 0.5 * g + 0.5 * F.max_pool2d(x, k, s, padding=k // 2)
        g = self.mlp(g)
        if g.shape[-1] != 1 or g.shape[-2] != 1:
            g = F.interpolate(g, size=x.shape[-2:])
        return x * torch.sigmoid(g)

    def copy_from(self, ours: nn.Module) -> Post004GE:
        if self.gather is not None:
            self.gather.load_state_dict(ours.convs.state_dict())
        if isinstance(self.mlp, nn.Sequential):
            self.mlp[0].load_state_dict(ours.mlp.fc1.state_dict())
            self.mlp[2].load_state_dict(ours.mlp.fc2.state_dict())
        return self


POST_004_CASES = {  # post's arguments: the spec that reproduces them
    "default": ((0, True, False, False), BlockSpec("ge", extent=0, reduction=16)),
    "add_maxpool": ((0, True, True, False), BlockSpec("ge", extent=0, reduction=16, pool="mix")),
    "extent 2, add_maxpool": ((2, True, True, False), BlockSpec("ge", extent=2, reduction=16, pool="mix")),
    "extent 6, no mlp, add_maxpool": ((6, False, True, False), BlockSpec("ge", extent=6, reduction=None, pool="mix")),
    "extent 8, no mlp": ((8, False, False, False), BlockSpec("ge", extent=8, reduction=None)),
    "extra_params extent 4": ((4, True, False, True), BlockSpec("ge", extent=4, gather="conv", reduction=16)),
    "extra_params extent 2, no mlp": ((2, False, False, True),
                                      BlockSpec("ge", extent=2, gather="conv", reduction=None)),
}


@MODES
@pytest.mark.parametrize("case", POST_004_CASES)
def test_post_004_gather_excite(train, case):
    args, spec = POST_004_CASES[case]
    ours = make_block(spec, 48).double()
    randomise(ours, 9)
    same(ours, Post004GE(48, *args).double().copy_from(ours), image(48, 13, 10), train)


def test_post_004_conv_gather_needs_a_power_of_two_extent():
    """The post's conv gather builds int(log2 e) stride-2 convs, so extent 6 silently gathers with
    stride 4; `nas` refuses it and names what works."""
    with pytest.raises(ValueError, match="extent = 6 is invalid for ge with gather: conv; allowed: a power of two"):
        BlockSpec("ge", extent=6, gather="conv")


# --- search_spaces/seeds.yaml: every point is a post's block ---------------------------------------

def test_seeds_space_is_exactly_the_posts_blocks():
    space = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "seeds.yaml")
    offered = {spec for kind in space.kinds if kind != "none" for spec in space.blocks(kind)}
    posts = {POST_000, POST_001_ECA, POST_001_SA, POST_001_CBAM, post_002(2), post_002(3.33), POST_003,
             *(spec for _, spec in POST_004_CASES.values() if spec.reduction is not None)}
    assert offered == {dataclasses.replace(spec, placement="block") for spec in posts}
    assert set(space.placements) == {"block", "stage", "expand"}  # 000: stage output; 003: expand
