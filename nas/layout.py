"""Which memory layout (NCHW or channels_last) the trainer uses on this machine's CPU.

channels_last is not a free speed-up on CPUs. With torch 2.14.1 (oneDNN 3.12) on CPUs without
AVX-512, the backward pass of a 1x1, stride-2 convolution with fewer than 8 input channels in
channels_last corrupts the heap (`double free or corruption`, `corrupted size vs. prev_size`,
segfaults: the minimal repro is in README "Known issues"), and on the same CPUs NCHW was faster
(cifar_resnet 8/8 at 28 px: 2,377 vs 1,988 images/s). On AVX-512 CPUs channels_last ran 1.4x
faster for cifar_resnet. So the layout is decided per machine, once per process:

- CUDA: channels_last (cuDNN's tensor-core kernels want it).
- CPU without AVX-512 kernels: NCHW, without asking (known unsafe there, and slower).
- CPU with AVX-512 kernels: a probe in a child process runs the known-crash pattern, then times
  a small convolutional network's training step in both layouts; channels_last only if the
  child survived and channels_last was faster. A crash costs the child, never the worker. The
  verdict is cached in `~/.cache/nas/` per (torch version, CPU capability, CPU model).

`NAS_CPU_MEMORY_FORMAT=channels_last|contiguous` overrides the choice (for benchmarks). The
layout changes only the summation order of float32 arithmetic, not what is computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from nas.files import atomic_write

LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
ENV = "NAS_CPU_MEMORY_FORMAT"

# Run in a child process: the crash pattern first (if it corrupts the heap, the child dies and
# the parent sees a non-zero exit), then a timing of both layouts, printed as JSON.
_PROBE = r"""
import json, time, torch
from torch import nn
torch.manual_seed(0)
conv = nn.Conv2d(4, 8, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
for _ in range(200):
    x = torch.randn(50, 4, 16, 16).to(memory_format=torch.channels_last).requires_grad_()
    conv(x).sum().backward()
def net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
times = {}
for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)) * 2:
    model = net().to(memory_format=fmt)
    x = torch.randn(64, 3, 32, 32).to(memory_format=fmt)
    best = float("inf")
    for i in range(6):
        start = time.perf_counter()
        model(x).sum().backward()
        if i:
            best = min(best, time.perf_counter() - start)
    times[name] = min(times.get(name, best), best)
print(json.dumps(times))
"""


def has_avx512() -> bool:
    """Whether torch dispatches to its AVX-512 CPU kernels here (`AVX512`, `AVX512_BF16`, ...)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout for models and batches on `device` (see the module docstring)."""
    if device.type == "cuda":
        return torch.channels_last
    return cpu_memory_format()


@functools.cache  # once per process
def cpu_memory_format() -> torch.memory_format:
    override = os.environ.get(ENV)
    if override:
        if override not in LAYOUTS:
            from nas.errors import ConfigError

            raise ConfigError(f"{ENV} = {override!r} is invalid; allowed: {', '.join(LAYOUTS)}")
        return LAYOUTS[override]
    return LAYOUTS[choose_cpu_layout(has_avx512(), _cached_probe)]


def choose_cpu_layout(avx512: bool, probe: Callable[[], dict[str, float] | None]) -> str:
    """`contiguous` without AVX-512; with it, `channels_last` only when `probe()` (a dict of
    seconds per layout, or None when the probe crashed) says it is safe and faster."""
    if not avx512:
        return "contiguous"
    times = probe()
    if not times or times.get("channels_last", float("inf")) >= times.get("contiguous", 0.0):
        return "contiguous"
    return "channels_last"


def _cached_probe() -> dict[str, float] | None:
    key = "|".join((torch.__version__, torch.backends.cpu.get_cpu_capability(), _cpu_model()))
    path = _cache_dir() / f"cpu_layout-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
    try:
        return json.loads(path.read_text())["times"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    times = run_probe()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as handle:  # workers probing at once never read half a file
            handle.write(json.dumps({"key": key, "times": times}))
    except OSError:
        pass  # a read-only home only costs a probe per process
    return times


def run_probe(timeout: float = 120.0) -> dict[str, float] | None:
    """Seconds per training step in each layout, or None if the child crashed or hung."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "nas"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
