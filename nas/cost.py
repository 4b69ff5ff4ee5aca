"""Cost of a model: FLOPs (fvcore, with the attention ops counted) and parameters (latency: `nas.latency`).

Convention: one multiply-add counts as one flop, as fvcore counts (torch's `FlopCounterMode`
counts two). fvcore skips elementwise and pooling ops by default; attention blocks are mostly
such ops (pool, gate, rescale), so `count_flops` registers handles for them. Elementwise ops
count one flop per output element, reductions one per input element, window pools one per window
element per output element.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fvcore scripts a function at import
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

from nas.arch import ArchConfig
from nas.build import build_model


def _numel(value: Any) -> int:
    return math.prod(get_shape(value) or [])


def _per_output(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(outputs[0])


def _per_input(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(inputs[0])


def _window_pool(inputs: list[Any], outputs: list[Any]) -> int:
    kernel = inputs[1].toIValue()
    if kernel is None:  # traced as a ListConstruct of constants
        kernel = [value.toIValue() for value in inputs[1].node().inputs()]
    return _numel(outputs[0]) * math.prod(kernel if len(kernel) == 2 else kernel * 2)


# The ops attention blocks use that fvcore ignores by default (see the module docstring).
EXTRA_HANDLES = {
    **{op: _per_output for op in (
        "aten::sigmoid", "aten::sigmoid_", "aten::hardsigmoid", "aten::hardsigmoid_",
        "aten::hardswish", "aten::hardswish_",
        "aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::upsample_nearest2d",
    )},
    **{op: _per_input for op in ("aten::mean", "aten::amax", "aten::adaptive_max_pool2d")},
    "aten::avg_pool2d": _window_pool,
    "aten::max_pool2d": _window_pool,
}


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs (multiply-adds) of one forward pass at `input_shape` (N×C×H×W), in eval mode.

    The model is deep-copied to the CPU, so its mode, device and batch-norm statistics are
    untouched.
    """
    probe = copy.deepcopy(model).cpu().eval()
    analysis = FlopCountAnalysis(probe, torch.zeros(*input_shape))
    for op, handle in EXTRA_HANDLES.items():
        analysis.set_op_handle(op, handle)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and torch.jit deprecation warnings
        return int(analysis.total())


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


@dataclasses.dataclass(frozen=True)
class Cost:
    flops: int
    params: int

    @property
    def mflops(self) -> float:
        return self.flops / 1e6


def arch_cost(arch: ArchConfig, image_size: int | Sequence[int]) -> Cost:
    """FLOPs and parameters of an architecture at one image of `image_size` (H or (H, W))."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    model = build_model(arch, load_weights=False)  # the structure is the cost; pretrained values change nothing
    return Cost(count_flops(model, (1, arch.in_chans, h, w)), count_params(model))
