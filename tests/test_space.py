"""Search spaces: parsing, sizes, stable conditional parameter names, sampling round trips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
import yaml

from nas import ArchConfig, BlockSpec, ConfigError
from nas.backbones import get_backbone
from nas.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8})


def test_shipped_spaces_load_and_count():
    default = load_space(ROOT / "search_spaces" / "default.yaml")
    # se 3 r x 2 divisors x 2 pools x 2 gates, eca 4 k x 2 x 2, cbam 2 x 2 x 2 gates, ge 9, sa 2, coord 1
    per_placement = 24 + 16 + 8 + 9 + 2 + 1
    assert default.stage_choices() == 1 + 5 * per_placement
    residual = get_backbone("cifar_resnet").placements_per_stage({})
    assert default.stage_choices(residual[0]) == 1 + 4 * per_placement  # block, pre, post, identity
    assert default.size(3, residual) == (1 + 4 * per_placement) ** 3
    assert default.blocks("eca") >= {BlockSpec("eca", kernel_size=None), BlockSpec("eca", gate="hard_sigmoid")}
    assert BlockSpec("se", reduction=4, divisor=8) in default.blocks("se")
    assert load_space(ROOT / "search_spaces" / "small.yaml").size(3) == 125
    placement = load_space(ROOT / "search_spaces" / "placement.yaml")
    assert placement.stage_choices() == 1 + 2 * (2 + 2 + 1)
    seeds = load_space(ROOT / "search_spaces" / "seeds.yaml")
    assert seeds.stage_choices(residual[0]) == 1 + 2 * (2 + 1 + 1 + 3 + 4)  # block and stage, on a ResNet
    papers = load_space(ROOT / "search_spaces" / "papers.yaml")
    for kind in ("se", "eca", "cbam", "ge"):  # each block exactly as its paper (and the hand placements) set it
        assert papers.blocks(kind) == {BlockSpec.paper_default(kind)}
    assert papers.choose_stages
    assert papers.size(3, residual) == (1 + 4 * 4) ** 3  # 4 kinds x block, pre, post, identity


def test_variants_are_chosen_whole():
    se = [{"reduction": 16, "bias": False}, {"reduction": 4, "divisor": 8, "gate": "hard_sigmoid"}]
    space = SearchSpace.from_dict({"kinds": ["se", "ge"], "se": se, "ge": [{"extent": 2, "gather": "conv"}]})
    assert space.blocks("se") == {BlockSpec("se", bias=False), BlockSpec("se", reduction=4, divisor=8,
                                                                          gate="hard_sigmoid")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        arch = space.sample(trial, TEMPLATE)
        for s, spec in enumerate(arch.stages, 1):
            seen.add(spec)
            assert dataclasses.replace(spec, placement="block") in space.blocks(spec.kind)
            if spec.kind == "se":
                assert trial.params[f"stage{s}.se.variant"] == spec.block_id
            assert f"stage{s}.ge.variant" not in trial.params  # one variant: fixed
        params = space.params_for(arch)
        assert space.sample(optuna.trial.FixedTrial(params), TEMPLATE) == arch
        study.tell(trial, 0.0)
    assert len(seen) == 3
    assert space.params_for(ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8})) is None


@pytest.mark.parametrize("variants,needle", [
    ([{"reduction": 0}], "search_space.se[0].reduction = 0 is invalid for se"),
    ([{"kernel_size": 3}], "search_space.se[0].kernel_size is not a setting of se"),
    ([{"reduction": 8}, {"reduction": 8.0}], "search_space.se[1] is the same block as an earlier variant (se-r8-avg)"),
    ([{"reduction": 8, "placement": "pre"}], "search_space.se[0] = {'reduction': 8, 'placement': 'pre'} is invalid"),
    ([], "search_space.se = [] is invalid"),
])
def test_bad_variants_are_refused(variants, needle):
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict({"kinds": ["se"], "se": variants})
    assert needle in str(info.value)


def test_parameter_names_are_stable_and_conditional():
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = set()
    for _ in range(60):
        trial = study.ask()
        arch = space.sample(trial, TEMPLATE)
        for s, spec in enumerate(arch.stages, 1):
            assert trial.params[f"stage{s}.kind"] == spec.kind
            own = {k for k in trial.params if k.startswith(f"stage{s}.")} - {f"stage{s}.kind", f"stage{s}.placement"}
            assert all(k.startswith(f"stage{s}.{spec.kind}.") for k in own)  # only the chosen kind's settings
        names |= set(trial.params)
        study.tell(trial, 0.0)
    assert "stage2.se.reduction" in names and "stage3.ge.extent" in names
    assert "stage1.coord.reduction" not in names  # single choice: fixed, not a parameter
    assert "stage1.placement" in names and "stage1.se.divisor" in names


def test_params_for_round_trips_through_a_fixed_trial():
    space = load_space(ROOT / "search_spaces" / "placement.yaml")
    arch = ArchConfig("cifar_resnet", (BlockSpec("se", reduction=8, placement="stage"), BlockSpec("none"),
                                       BlockSpec("cbam", reduction=16, pool="avgmax")), {"depth": 8})
    params = space.params_for(arch)
    assert params == {"stage1.kind": "se", "stage1.se.reduction": 8, "stage1.placement": "stage",
                      "stage2.kind": "none", "stage3.kind": "cbam", "stage3.placement": "block"}
    trial = optuna.trial.FixedTrial(params)
    assert space.sample(trial, arch) == arch
    assert space.params_for(ArchConfig.uniform("cifar_resnet", BlockSpec("se", reduction=4), {"depth": 8})) is None
    assert space.params_for(ArchConfig.uniform("cifar_resnet", BlockSpec("ge"), {"depth": 8})) is None


def _draws(space: SearchSpace, n: int) -> list[ArchConfig]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    archs = []
    for _ in range(n):
        trial = study.ask()
        archs.append(space.sample(trial, TEMPLATE))
        if space.choose_stages:
            for s, spec in enumerate(archs[-1].stages, 1):  # kind asked only where the stage attends
                assert trial.params[f"stage{s}.attend"] == (spec.kind != "none")
                assert trial.params.get(f"stage{s}.kind") == (None if spec.kind == "none" else spec.kind)
        study.tell(trial, 0.0)
    return archs


def test_choose_stages_makes_cheap_placements_common_draws_of_the_same_space():
    document = (ROOT / "search_spaces" / "default.yaml").read_text()
    plain = SearchSpace.from_dict(yaml.safe_load(document))
    gated = SearchSpace.from_dict({**yaml.safe_load(document), "choose_stages": True})
    residual = get_backbone("cifar_resnet").placements_per_stage({})
    assert gated.size(3, residual) == plain.size(3, residual)  # the same architectures
    share = {}
    for name, space in (("plain", plain), ("gated", gated)):
        archs = _draws(space, 400)
        stages = [spec.kind for arch in archs for spec in arch.stages]
        share[name] = (stages.count("none") / len(stages),
                       sum(sum(spec.kind != "none" for spec in arch.stages) == 1 for arch in archs) / len(archs))
    assert share["plain"][0] < 0.2 and 0.42 < share["gated"][0] < 0.58  # 1/7 against 1/2
    assert share["plain"][1] < 0.1 and share["gated"][1] > 0.28  # one stage alone: ~0.05 against 3/8


def test_choose_stages_round_trips_an_architecture_with_stages_off():
    space = SearchSpace.from_dict({"kinds": ["none", "se", "eca"], "eca": {"kernel_size": [3, 5]},
                                   "placement": ["block", "pre"], "choose_stages": True})
    arch = ArchConfig("cifar_resnet", (BlockSpec("none"), BlockSpec("eca", kernel_size=3, placement="pre"),
                                       BlockSpec("none")), {"depth": 8})
    params = space.params_for(arch)
    assert params == {"stage1.attend": False, "stage2.attend": True, "stage2.kind": "eca",
                      "stage2.eca.kernel_size": 3, "stage2.placement": "pre", "stage3.attend": False}
    assert space.sample(optuna.trial.FixedTrial(params), TEMPLATE) == arch


def test_stage_subset_leaves_other_stages_none():
    space = SearchSpace.from_dict({"kinds": ["se"], "stages": [2]})
    arch = space.sample(optuna.trial.FixedTrial({"stage2.kind": "se"}), TEMPLATE)
    assert [s.kind for s in arch.stages] == ["none", "se", "none"]
    assert space.size(3) == 1
    with pytest.raises(ConfigError, match="stage 4 is out of range; cifar_resnet has stages 1..3"):
        SearchSpace.from_dict({"kinds": ["se"], "stages": [4]}).check_stages(3, "cifar_resnet")


@pytest.mark.parametrize("data,needle", [
    ({"kinds": ["se", "sk"]},
     "search_space.kinds: 'sk' is not a block kind; allowed: none, se, eca, cbam, ge, sa, coord"),
    ({"kinds": ["se"], "se": {"reduction": [0, 8]}}, "search_space.se.reduction[0]: reduction = 0 is invalid"),
    ({"kinds": ["eca"], "eca": {"kernel_size": [4]}}, "kernel_size = 4 is invalid for eca; allowed: an odd"),
    ({"kinds": ["se"], "se": {"pool": ["mean"]}}, "pool = 'mean' is invalid for se; allowed: avg, max, avgmax, mix"),
    ({"kinds": ["se"], "se": {"divisor": [8, 0]}}, "search_space.se.divisor[1]: divisor = 0 is invalid for se"),
    ({"kinds": ["se"], "se": {"bias": ["no"]}},
     "search_space.se.bias[0]: bias = 'no' is invalid for se; allowed: true"),
    ({"kinds": ["cbam"], "cbam": {"channel_kernel_size": [4]}}, "search_space.cbam.channel_kernel_size[0]"),
    ({"kinds": ["ge"], "ge": {"gather": ["conv"], "extent": [0, 2]}},
     "search_space.ge: extent = 0 is invalid for ge with gather: conv"),
    ({"kinds": ["sa"], "sa": {"norm": [True, "off"]}}, "search_space.sa.norm[1]: norm = 'off' is invalid for sa"),
    ({"kinds": ["se"], "se": {"kernel_size": [3]}}, "search_space.se.kernel_size is not a setting of se"),
    ({"kinds": ["se"], "eca": {"kernel_size": [3]}}, "search_space.eca has settings but eca is not in"),
    ({"kinds": ["se"], "layers": "all"}, "search_space.layers is not a search-space key"),
    ({"kinds": []}, "search_space.kinds = [] is invalid; expected a non-empty list"),
    ({"kinds": ["se", "se"]}, "lists a choice twice"),
    ({"kinds": ["se"], "placement": ["head"]},
     "'head' is not a placement; allowed: block, stage, pre, post, identity, expand"),
    ({"kinds": ["se"], "stages": [0]}, "0 is not a stage index"),
    ({"kinds": ["none", "se"], "choose_stages": "yes"},
     "search_space.choose_stages = 'yes' is invalid; expected true or false"),
    ({"kinds": ["se", "eca"], "choose_stages": True},
     "search_space.choose_stages: true needs none and at least one other kind in search_space.kinds; "
     "got kinds [se, eca]"),
])
def test_bad_spaces_are_refused_with_the_field_named(data, needle):
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict(data)
    assert needle in str(info.value)


def test_timm_backbones_refuse_block_placement_in_the_space():
    with pytest.raises(ConfigError, match="block is not supported by timm:resnet10t at stage 1; allowed there: stage"):
        SearchSpace.from_dict({"kinds": ["se"]}).check_stages(5, "timm:resnet10t")


def test_each_stage_samples_the_placements_it_has():
    """A space's placements are offered where the backbone has them: ResNet units have no `expand`,
    MobileNetV2 has no `pre`, and its head (stage 6) neither."""
    space = SearchSpace.from_dict({"kinds": ["se"], "placement": ["block", "pre", "post", "identity", "expand"]})
    space.check_stages(3, "cifar_resnet")
    space.check_stages(6, "mobilenet_v2")
    mobile = ArchConfig.uniform("mobilenet_v2", BlockSpec("none"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen: dict[int, set[str]] = {}
    for _ in range(40):
        trial = study.ask()
        arch = space.sample(trial, mobile)
        for s, spec in enumerate(arch.stages, 1):
            seen.setdefault(s, set()).add(spec.placement)
        assert "stage6.placement" not in trial.params  # only `block` is both in the space and at the head
        study.tell(trial, 0.0)
    assert all(seen[s] == {"block", "expand"} for s in range(1, 6)) and seen[6] == {"block"}
    assert space.size(6, get_backbone("mobilenet_v2").placements_per_stage({})) == 2**5 * 1
    assert space.stage_choices(("block", "pre", "post", "identity", "stage")) == 4
    with pytest.raises(ConfigError, match="search_space.placement: expand is not supported by cifar_resnet at stage 1"):
        SearchSpace.from_dict({"kinds": ["se"], "placement": ["expand"]}).check_stages(3, "cifar_resnet")
    expand_only = SearchSpace.from_dict({"kinds": ["none", "se"], "placement": ["expand"], "stages": [2, 3, 4, 5]})
    expand_only.check_stages(5, "timm:efficientnet_b0")  # stage 1 (the stem's DS conv) has an se slot too
    with pytest.raises(ConfigError, match="at stage 1; allowed there: stage"):
        SearchSpace.from_dict({"kinds": ["se"], "placement": ["expand"]}).check_stages(5, "timm:resnet10t")


def test_conditional_settings_are_suggested_only_where_they_apply():
    space = SearchSpace.from_dict({
        "kinds": ["cbam", "ge"],
        "cbam": {"channel": ["se", "eca"], "reduction": [8, 16], "channel_kernel_size": [3, None]},
        "ge": {"gather": ["pool", "conv"], "extent": [2, 4], "pool": ["avg", "mix"], "reduction": [None, 8],
               "divisor": [1, 8]},
    })
    # cbam: se x 2 reductions + eca x 2 kernels; ge: extent 2 x (pool: 2 pools, conv) x (no MLP, r8 x 2 divisors)
    assert len(space.blocks("cbam")) == 4
    assert len(space.blocks("ge")) == 2 * 3 * 3
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(40):
        trial = study.ask()
        arch = space.sample(trial, TEMPLATE)
        for s, spec in enumerate(arch.stages, 1):
            names = {k.split(".")[-1] for k in trial.params if k.startswith(f"stage{s}.{spec.kind}.")}
            if spec.kind == "cbam":
                own = {"reduction"} if spec.channel == "se" else {"channel_kernel_size"}
                assert names == {"channel", *own}
            else:
                assert ("pool" in names) == (spec.gather == "pool")
                assert ("divisor" in names) == (spec.reduction is not None)
            params = space.params_for(arch)
            assert params is not None and space.sample(optuna.trial.FixedTrial(params), TEMPLATE) == arch
        study.tell(trial, 0.0)
