"""An architecture made runnable under named conditions: ONNX Runtime (what ships) or eager PyTorch.

ONNX Runtime gets the TorchScript-based exporter (`dynamo=False`): it exports these small CNNs
in about 0.1 s, where the dynamo exporter takes seconds, and a table builds hundreds of them.
An export that fails, a graph ONNX Runtime cannot run, or outputs that disagree with eager
beyond `TOLERANCE` are refused with one line naming the op, since a latency of a different
network is no latency of this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError
from nas.latency.conditions import LatencyConditions

TOLERANCE = 1e-4  # max |ONNX Runtime - eager| on the logits, absolute, at the conditions' batch
OPSET = 17


@dataclasses.dataclass
class Runner:
    """One forward pass under the conditions, as a no-argument callable (what a timer calls)."""

    run: Callable[[], object]
    conditions: LatencyConditions


def _op_named(message: str) -> str:
    """The op an exporter or runtime error is about, as it names it (`aten::foo`, `node Foo`)."""
    for pattern in (r"(aten::\w+)", r"operator '?([\w:]+)'?", r"implementation for (\w+)", r"node[^(]*\(?(\w+)"):
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    lines = message.strip().splitlines()
    return lines[0][:200] if lines else "(no message)"


def onnx_bytes(model: nn.Module, x: torch.Tensor, what: str, instead: str = "latency.runtime: eager") -> bytes:
    """The model exported to ONNX (eval mode, fixed input shape)."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"])
    except Exception as error:  # the exporter raises many types; all mean "cannot ship as ONNX"
        raise ConfigError(f"{what}: the ONNX export fails at {_op_named(str(error))}; allowed: an architecture "
                          f"whose ops ONNX exports, or {instead}") from None
    return buffer.getvalue()


def checked_onnx(model: nn.Module, x: torch.Tensor, what: str, instead: str) -> tuple[bytes, float]:
    """`model` exported to ONNX and run once by ONNX Runtime on the CPU, refused unless its output
    matches eager PyTorch within `TOLERANCE`: (the ONNX file's bytes, the largest difference).
    The same export and check a latency table's runners get (`nas train --onnx` uses it)."""
    import copy

    model = copy.deepcopy(model).cpu().eval()
    conditions = LatencyConditions("onnxruntime", int(x.shape[0]), 1, "cpu")
    blob = onnx_bytes(model, x, what, instead)
    _, gap = _session_checked(blob, model, x, conditions, what, instead)
    return blob, gap


def make_runner(model: nn.Module, input_shape: Sequence[int], conditions: LatencyConditions,
                what: str = "architecture") -> Runner:
    """`model` (not modified: a copy is put in eval mode) ready to time at `input_shape`."""
    import copy

    model = copy.deepcopy(model).eval()
    torch.manual_seed(0)
    x = torch.randn(*input_shape)
    if conditions.runtime == "eager":
        device = torch.device("cuda" if conditions.device == "cuda" else "cpu")
        model, x = model.to(device), x.to(device)

        def run_eager() -> object:
            with torch.inference_mode():
                out = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return out

        return Runner(run_eager, conditions)
    return Runner(_onnxruntime(model, x, conditions, what), conditions)


def _onnxruntime(model: nn.Module, x: torch.Tensor, conditions: LatencyConditions, what: str) -> Callable[[], object]:
    blob = onnx_bytes(model, x, what)
    session, _ = _session_checked(blob, model, x, conditions, what, "latency.runtime: eager")
    feed = {"input": x.numpy()}
    return lambda: session.run(None, feed)


def _session_checked(blob: bytes, model: nn.Module, x: torch.Tensor, conditions: LatencyConditions, what: str,
                     instead: str) -> tuple[object, float]:
    """An ONNX Runtime session of `blob` under `conditions`, and its output's largest difference
    from eager `model` on `x`; refused beyond `TOLERANCE`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = conditions.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if conditions.device == "cuda" else ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(blob, options, providers=providers)
        feed = {"input": x.numpy()}
        got = session.run(None, feed)[0]
    except Exception as error:  # onnxruntime raises its own exception types per failure
        raise ConfigError(f"{what}: ONNX Runtime cannot run {_op_named(str(error))}; allowed: an architecture "
                          f"whose ops ONNX Runtime implements, or {instead}") from None
    with torch.inference_mode():
        expected = model(x).numpy()
    gap = float(np.max(np.abs(got - expected)))
    if not gap <= TOLERANCE:
        raise ConfigError(f"{what}: ONNX Runtime's output differs from eager PyTorch by {gap:.2e} > {TOLERANCE:g} "
                          f"(an op exported with other semantics); allowed: {instead}")
    return session, gap
