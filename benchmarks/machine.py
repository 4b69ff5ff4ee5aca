"""What the benchmarks ran on, in the words their JSON results record.

Importing this does not import torch (benchmarks/cli_startup.py times start-ups without it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_name(device: str | torch.device = "cpu") -> str:
    """The GPU's name, or the CPU's model name."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def describe(device: str | torch.device = "cpu") -> str:
    """For example `cpu: AMD EPYC 9R14 (2 cores, 2 torch threads, AVX2 kernels, NCHW)`: the
    vector kernels torch dispatches to and the layout the trainer uses decide CPU speed."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {device_name(device)}"
    from nas.layout import cpu_memory_format

    layout = "channels_last" if cpu_memory_format() == torch.channels_last else "NCHW"
    return (f"cpu: {device_name(device)} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels, {layout})")
