"""The conditions a latency is measured under, and the machine it is measured on.

A latency without its conditions cannot be compared with another: ONNX Runtime runs the same
network 3-7x faster than eager PyTorch at batch 1 on a CPU, and ranks attention's cost
differently. Every latency nas prints or stores names them (`describe`) and the device signature.
Torch-free: `nas front` and `nas export` read conditions without loading torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping
from typing import Any

RUNTIMES = ("onnxruntime", "eager")
DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class LatencyConditions:
    """Runtime, batch size, intra-op threads and device of one latency measurement."""

    runtime: str = "onnxruntime"
    batch_size: int = 1
    threads: int = 1
    device: str = "cpu"

    def describe(self) -> str:
        """`onnxruntime, batch 1, 1 thread, cpu`: how every latency figure is labelled."""
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{self.runtime}, batch {self.batch_size}, {threads}, {self.device}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyConditions:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_level() -> str:
    """The widest x86 vector ISA the CPU reports (AVX-512 / AVX2 / AVX / SSE4.2), or the machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return platform.machine()


def device_signature(conditions: LatencyConditions, gpu_name: str | None = None) -> dict[str, Any]:
    """What a latency depends on besides the conditions: the CPU (or GPU), its ISA level, the
    runtime's and torch's versions, the cores. Two tables with the same `id` were measured on
    machines nas cannot tell apart."""
    signature = {
        "cpu": cpu_model(),
        "isa": isa_level(),
        "cores": os.cpu_count(),
        "gpu": gpu_name if conditions.device == "cuda" else None,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime") if conditions.runtime == "onnxruntime" else None,
        "threads": conditions.threads,
    }
    blob = json.dumps(signature, sort_keys=True).encode()
    return {**signature, "id": hashlib.sha1(blob).hexdigest()[:10]}


def describe_signature(signature: Mapping[str, Any]) -> str:
    """One line: `AMD EPYC (AVX2, 2 cores), torch 2.14.1, onnxruntime 1.32.0 [id 1a2b3c4d5e]`."""
    device = signature.get("gpu") or f"{signature.get('cpu')} ({signature.get('isa')}, {signature.get('cores')} cores)"
    versions = ", ".join(f"{k} {signature[k]}" for k in ("torch", "onnxruntime") if signature.get(k))
    return f"{device}, {versions} [id {signature.get('id')}]"
