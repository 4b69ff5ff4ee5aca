"""The trainer's device path, tested on the device it would run on.

Every test here runs on CUDA when a CUDA device is present and on the CPU otherwise (or on the
device `NAS_TEST_DEVICE` names: `cuda` fails loudly where there is none). CI has no GPU, so in CI
these run on the CPU; `benchmarks/gpu_check.py` runs this file on a lent GPU and records the
outcome. The CUDA path differs from the CPU one in what these tests pin down: bf16 autocast by
default, channels_last, cuDNN autotuning switched on and restored, a divergence check every 16
steps that must still name the exact step, and latency timing that synchronises the device.

Stated tolerances (CUDA only; on the CPU a rerun is bit-identical, and asserted so):
- same seed, same device: validation accuracy within `REPRO_ACCURACY` (absolute) and training
  loss within `REPRO_LOSS` (relative): cuDNN's autotuner and atomics in some backward kernels
  (adaptive pooling) change the order of float sums from run to run.
- CUDA against CPU, first step in fp32: loss within `CROSS_DEVICE_LOSS` (relative): cuDNN runs
  float32 convolutions in TF32 by default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, write_study

from nas import ArchConfig, BlockSpec, build_model
from nas.data import Dataset, load_dataset
from nas.latency.builder import _gpu_name, measure_latency
from nas.latency.conditions import LatencyConditions, device_signature
from nas.train import ProxyConfig, evaluate, resolve_device, train_proxy

DEVICE = resolve_device(os.environ.get("NAS_TEST_DEVICE", "auto"))
CUDA = DEVICE.type == "cuda"
REPRO_ACCURACY = 0.02
REPRO_LOSS = 0.02
CROSS_DEVICE_LOSS = 0.01
# One CPU thread: tiny models gain nothing from more and a shared CI runner's cores are busy.
FAST = ProxyConfig(epochs=2, batch_size=64, lr=0.1, threads=None if CUDA else 1)


@pytest.fixture(scope="module")
def data() -> Dataset:
    # 800 training and 200 validation images at 16 px: 12 steps of 64 per epoch
    return load_dataset("synthetic", image_size=16, val_fraction=0.2)


def arch(data: Dataset, kind: str = "se", width: int = 8) -> ArchConfig:
    return ArchConfig.uniform("cifar_resnet", BlockSpec(kind), {"depth": 8, "width": width},
                              num_classes=data.num_classes, in_chans=data.in_chans)


def child_env() -> dict[str, str]:
    """The environment for a child interpreter: the repository first, then whatever PYTHONPATH
    already holds (on a device image the carried wheels may be installed there)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "NAS_TEST_DEVICE": str(DEVICE)}


def run_nas(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """The real `nas` command (python -m nas.cli) in a child process."""
    return subprocess.run([sys.executable, "-m", "nas.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=child_env())


def test_training_runs_on_the_device_in_its_layout_and_restores_cudnn(data: Dataset) -> None:
    torch.manual_seed(0)
    model = build_model(arch(data))
    before = torch.backends.cudnn.benchmark
    result = train_proxy(model, data, FAST, device=DEVICE, progress=False)
    assert torch.backends.cudnn.benchmark == before
    assert torch.device(result.device).type == DEVICE.type
    assert all(p.device.type == DEVICE.type for p in model.parameters())
    conv = model.stem[0].weight
    if CUDA:  # channels_last on CUDA, whatever the CPU's verdict
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert result.accuracy > 0.5 and result.images_per_second > 0  # chance is 0.1
    acc, _ = evaluate(model, data.val, data, device=DEVICE)
    # the trainer's own score, evaluated again in the default (bf16 on CUDA) precision: one image apart at most
    assert abs(acc - result.accuracy) <= 1 / len(data.val) + 1e-9


def test_same_seed_reproduces_within_the_stated_tolerance(data: Dataset) -> None:
    build = arch(data)
    a = train_proxy(lambda: build_model(build), data, FAST, device=DEVICE, progress=False)
    b = train_proxy(lambda: build_model(build), data, FAST, device=DEVICE, progress=False)
    c = train_proxy(lambda: build_model(build), data, dataclasses.replace(FAST, seed=1), device=DEVICE,
                    progress=False)
    if CUDA:
        assert abs(a.accuracy - b.accuracy) <= REPRO_ACCURACY, (a, b)
        assert abs(a.train_loss - b.train_loss) <= REPRO_LOSS * a.train_loss, (a, b)
    else:
        assert (a.accuracy, a.loss, a.train_loss) == (b.accuracy, b.loss, b.train_loss)
    # another seed is another run (initialisation, order, augmentation), not the same one
    assert abs(c.train_loss - a.train_loss) > 0


def test_cuda_and_cpu_see_the_same_initialisation_and_data(data: Dataset) -> None:
    if not CUDA:
        pytest.skip("compares CUDA with the CPU: needs a CUDA device (runs in benchmarks/gpu_check.py)")
    # one step over the whole training split, no augmentation: the training loss is the initial
    # network's loss, so both devices must build the same network from the seed and feed it the same images
    config = ProxyConfig(epochs=1, batch_size=len(data.train), lr=1e-6, augment=False, bn_recal=0,
                         precision="fp32", label_smoothing=0.0)
    build = arch(data)
    on_cuda = train_proxy(lambda: build_model(build), data, config, device=DEVICE, progress=False)
    on_cpu = train_proxy(lambda: build_model(build), data, dataclasses.replace(config, threads=1), device="cpu",
                         progress=False)
    assert on_cuda.train_loss == pytest.approx(on_cpu.train_loss, rel=CROSS_DEVICE_LOSS)


DIVERGE = """
import re, sys
import torch
from nas import ArchConfig, BlockSpec, TrainingDiverged, build_model, load_dataset
from nas.train import ProxyConfig, train_proxy
data = load_dataset("synthetic", image_size=16, val_fraction=0.2)
arch = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8, "width": 8},
                          num_classes=data.num_classes, in_chans=data.in_chans)
device = sys.argv[1]
threads = None if device.startswith("cuda") else 1
try:
    # 25 steps per epoch: more than the 16 the CUDA path lets pass between two loss checks
    train_proxy(lambda: build_model(arch), data, ProxyConfig(epochs=2, batch_size=32, lr=1e6, warmup=0.0,
                threads=threads), device=device, progress=False)
    sys.exit("no TrainingDiverged")
except TrainingDiverged as error:
    print(error)
# the same process trains normally afterwards: nothing of the diverged run is left behind
ok = train_proxy(lambda: build_model(arch), data, ProxyConfig(epochs=2, batch_size=64, lr=0.1, threads=threads),
                 device=device, progress=False)
print(f"after: accuracy {ok.accuracy:.4f}, cudnn.benchmark {torch.backends.cudnn.benchmark}")
"""


def test_divergence_is_caught_at_its_step_and_the_process_recovers() -> None:
    # in a child: exploding activations are what native kernels handle worst, so a crash fails this test only
    done = subprocess.run([sys.executable, "-c", DIVERGE, str(DEVICE)], capture_output=True, text=True,
                          timeout=600, env=child_env())
    assert done.returncode == 0, f"child exited {done.returncode}: {done.stderr[-3000:]}"
    first, after = done.stdout.strip().splitlines()[-2:]
    match = re.search(r"training diverged: loss (\S+) at epoch 1, step (\d+) of 25 \(lr ", first)
    assert match, first
    # the first bad step itself, not the end of the 16-step window the CUDA path checks at once
    assert int(match.group(2)) < 16, first
    loss = float(match.group(1))
    assert not math.isfinite(loss) or loss > 230  # 100 x ln(10)
    accuracy = float(re.search(r"accuracy (\S+),", after).group(1))
    assert accuracy > 0.5, after
    assert after.endswith("cudnn.benchmark False"), after  # restored after both runs


def test_bf16_and_fp32_agree_within_seed_noise(data: Dataset) -> None:
    build = arch(data)
    seeds = range(3)
    scores: dict[str, list[float]] = {}
    for precision in ("fp32", "bf16"):
        config = dataclasses.replace(FAST, precision=precision)
        scores[precision] = [train_proxy(lambda: build_model(build), data, dataclasses.replace(config, seed=s),
                                         device=DEVICE, progress=False).accuracy for s in seeds]
    fp32, bf16 = scores["fp32"], scores["bf16"]
    assert min(fp32) > 0.5 and min(bf16) > 0.5, scores  # both learn the task (chance 0.1)
    # two standard errors of the difference of the means, from the seeds' own spread, plus two
    # validation images: a tie by the measured noise
    noise = 2 * math.sqrt((statistics.variance(fp32) + statistics.variance(bf16)) / len(seeds))
    gap = abs(statistics.fmean(bf16) - statistics.fmean(fp32))
    assert gap <= noise + 2 / len(data.val), scores


def test_export_then_nas_train_round_trip_on_the_device(tmp_path: Path) -> None:
    study = write_study(tmp_path, trials=3, baselines=["none", "se"])
    searched = run_nas("search", study.name, "--device", DEVICE, "--no-progress", cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr[-3000:]
    exported = run_nas("export", study.name, "--pick", "accuracy", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    trained = run_nas("train", "best.yaml", "--dataset", "synthetic", "--image-size", "16", "--epochs", "2",
                      "--device", DEVICE, "--save", "best.pt", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert re.search(rf"for 2 epochs on {re.escape(str(DEVICE))}", trained.stdout), trained.stdout
    reported = float(re.search(r"^test accuracy (\d\.\d{4})", trained.stdout, re.M).group(1))

    # the README's recipe, on the CPU: the checkpoint holds CPU tensors, so a machine without a GPU loads it
    checkpoint = torch.load(tmp_path / "best.pt")
    assert all(t.device.type == "cpu" for t in checkpoint["state_dict"].values())
    from nas import ArchConfig as Arch

    model = build_model(Arch.from_dict(checkpoint["arch"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    pre = checkpoint["preprocessing"]
    mean, std = torch.tensor(pre["mean"]).view(1, -1, 1, 1), torch.tensor(pre["std"]).view(1, -1, 1, 1)
    test = load_dataset("synthetic", image_size=16).test
    with torch.no_grad():
        accuracy = (model((test.images.float() / 255 - mean) / std).argmax(1) == test.labels).float().mean().item()
    # reported: evaluated on the device (bf16 autocast on CUDA); here float32 on the CPU
    images = 3 if CUDA else 1.5
    assert accuracy == pytest.approx(reported, abs=images / len(test.labels))


def test_latency_is_measured_on_the_device_against_itself() -> None:
    none = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), {"depth": 8, "width": 8}, 10, 3)
    se = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8, "width": 8}, 10, 3)
    conditions = LatencyConditions(runtime="eager", batch_size=8, threads=1, device=DEVICE.type)
    measured = measure_latency([se, none], 16, conditions, target=0.05, max_seconds=20)
    assert set(measured) == {se.arch_id, none.arch_id}
    for m in measured.values():
        assert 0 < m.ms < 1000 and math.isfinite(m.ratio_ci) and m.rounds >= 6
    # `none` timed as a candidate against `none` the reference: a ratio of 1 within its interval
    # (wider by 3 % for two runners' warm-up and placement on one device)
    self_ratio = measured[none.arch_id]
    assert abs(self_ratio.ratio - 1) <= self_ratio.ratio_ci + 0.03, self_ratio
    signature = device_signature(conditions, _gpu_name(conditions))
    assert signature["gpu"] == (torch.cuda.get_device_name() if CUDA else None)
