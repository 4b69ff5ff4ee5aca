"""The CPU memory layout: never one that crashes or is slower on this machine."""

from __future__ import annotations

import torch
from conftest import python_child

import nas.layout as layout


def test_no_avx512_means_nchw_without_probing() -> None:
    def probe() -> dict[str, float]:
        raise AssertionError("probed on a CPU where channels_last is known unsafe")

    assert layout.choose_cpu_layout(False, probe) == "contiguous"


def test_avx512_takes_channels_last_only_when_the_probe_survived_and_it_was_faster() -> None:
    assert layout.choose_cpu_layout(True, lambda: {"contiguous": 0.02, "channels_last": 0.01}) == "channels_last"
    assert layout.choose_cpu_layout(True, lambda: {"contiguous": 0.01, "channels_last": 0.02}) == "contiguous"
    assert layout.choose_cpu_layout(True, lambda: None) == "contiguous"  # the probe crashed


def test_a_probe_that_dies_natively_is_reported_as_unsafe(monkeypatch) -> None:
    monkeypatch.setattr(layout, "_PROBE", "import os; os.abort()")
    assert layout.run_probe() is None
    monkeypatch.setattr(layout, "_PROBE", "print('{\"contiguous\": 1.0, \"channels_last\": 0.5}')")
    assert layout.run_probe() == {"contiguous": 1.0, "channels_last": 0.5}


def test_this_machine_gets_a_layout_and_the_override_is_checked() -> None:
    code = (
        "import torch, nas.layout as l; f = l.cpu_memory_format(); "
        "print('channels_last' if f == torch.channels_last else 'contiguous', l.has_avx512())"
    )
    done = python_child(code)
    assert done.returncode == 0, done.stderr
    chosen, avx512 = done.stdout.split()
    if avx512 == "False":
        assert chosen == "contiguous"
    assert layout.memory_format(torch.device("cuda")) == torch.channels_last
    bad = python_child("import os; os.environ['NAS_CPU_MEMORY_FORMAT'] = 'nhwc'; "
                       "import nas.layout as l; l.cpu_memory_format()")
    assert bad.returncode == 1 and "NAS_CPU_MEMORY_FORMAT = 'nhwc' is invalid; allowed: channels_last, contiguous" \
        in bad.stderr


def test_the_narrow_network_that_crashed_avx2_workers_trains() -> None:
    # cifar_resnet width 4 at 16 px: its 1x1 stride-2 shortcut conv has 4 input channels, the
    # pattern whose channels_last backward corrupted the heap. Several epochs, in a child.
    code = """
from nas import ArchConfig, BlockSpec, build_model, load_dataset
from nas.train import ProxyConfig, train_proxy
data = load_dataset("synthetic", subset=400, image_size=16)
for kind in ("none", "cbam"):
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec(kind), {"depth": 8, "width": 4},
                              num_classes=data.num_classes, in_chans=data.in_chans)
    result = train_proxy(lambda: build_model(arch), data, ProxyConfig(epochs=4, batch_size=50, lr=0.2, threads=2),
                         device="cpu", progress=False)
    print(kind, result.accuracy)
"""
    done = python_child(code)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    accuracies = [float(line.split()[1]) for line in done.stdout.splitlines()]
    assert len(accuracies) == 2 and all(a > 0.2 for a in accuracies)  # chance is 0.1
