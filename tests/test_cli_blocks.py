"""The block settings, placements and timm arguments of issue 9, refused from the real command:
one line naming the file, the field, the value and what is allowed; exit 2; nothing written.

The cases run through `nas.cli.main` in this process (`nas_in_process`: a fresh interpreter per case
spends seconds importing torch); the last test runs two of them through the real command and
requires the very same exit status and output."""

from __future__ import annotations

import pytest
from conftest import nas, nas_in_process, write_study

CASES = {  # name: (study overrides, phrases the one-line message must contain)
    "choose_stages without none": ({"search_space": {"kinds": ["se", "eca"], "choose_stages": True}},
                                   ["search_space.choose_stages: true needs none", "got kinds [se, eca]"]),
    "divisor 0": ({"search_space": {"kinds": ["se"], "se": {"divisor": [8, 0]}}},
                  ["search_space.se.divisor[1]", "divisor = 0 is invalid for se", "an integer >= 1"]),
    "fractional reduction below 1": ({"search_space": {"kinds": ["cbam"], "cbam": {"reduction": [0.5]}}},
                                     ["search_space.cbam.reduction[0]", "reduction = 0.5", "a number >= 1"]),
    "bias not a bool": ({"search_space": {"kinds": ["eca"], "eca": {"bias": ["yes"]}}},
                        ["search_space.eca.bias[0]", "bias = 'yes'", "true or false"]),
    "unknown cbam channel half": ({"search_space": {"kinds": ["cbam"], "cbam": {"channel": ["se", "sk"]}}},
                                  ["search_space.cbam.channel[1]", "'sk'", "allowed: se, eca"]),
    "conv gather with a global extent": ({"search_space": {"kinds": ["ge"], "ge": {"gather": ["conv"]}}},
                                         ["search_space.ge: extent = 0 is invalid for ge with gather: conv",
                                          "a power of two >= 2"]),
    "odd GE extent": ({"search_space": {"kinds": ["ge"], "ge": {"extent": [3]}}},
                      ["search_space.ge.extent[0]", "extent = 3", "an even integer >= 2"]),
    "expand on a ResNet": ({"search_space": {"kinds": ["se"], "placement": ["expand"]}},
                           ["search_space.placement: expand is not supported by cifar_resnet at stage 1",
                            "allowed there: block, pre, post, identity, stage"]),
    "bad variant": ({"search_space": {"kinds": ["se"], "se": [{"reduction": 16, "bias": "no"}]}},
                    ["search_space.se[0].bias = 'no' is invalid for se"]),
    "bad baseline setting": ({"baselines": ["none", {"kind": "sa", "norm": "maybe"}]},
                             ["baselines[1].norm = 'maybe' is invalid for sa", "true or false"]),
    "timm checkpoint_path": ({"backbone": "timm:resnet18", "backbone_args": {"checkpoint_path": "x.pth"},
                              "search_space": {"kinds": ["none", "se"], "placement": ["stage"]}},
                             ["backbone_args.checkpoint_path is refused for timm:resnet18",
                              "never loads weights or files"]),
    "timm pretrained_cfg_overlay": ({"backbone": "timm:resnet18",
                                     "backbone_args": {"pretrained_cfg_overlay": {"file": "w.pth"}},
                                     "search_space": {"kinds": ["none", "se"], "placement": ["stage"]}},
                                    ["backbone_args.pretrained_cfg_overlay is refused for timm:resnet18"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_block_settings_are_refused_before_anything_is_written(tmp_path, case):
    overrides, phrases = CASES[case]
    study = write_study(tmp_path, **overrides)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = nas_in_process("search", study.name, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert study.name in lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no .db, no journal, nothing
    assert not list(tmp_path.glob("*.db"))


@pytest.mark.parametrize("case", ["divisor 0", "timm checkpoint_path"])
def test_the_real_command_refuses_exactly_as_main_does_in_process(tmp_path, case):
    study = write_study(tmp_path, **CASES[case][0])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    real, here = nas("search", study.name, cwd=tmp_path), nas_in_process("search", study.name, cwd=tmp_path)
    assert real.returncode == 2 and (real.stdout, real.stderr) == (here.stdout, here.stderr), real.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
