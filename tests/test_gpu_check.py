"""benchmarks/gpu_check.py rehearsed on the CPU (`--quick`, toy sizes), so the device check that a
lent GPU runs cannot rot between the sessions that have one: every part runs, and every field
the device run fills (and docs/gpu.md reads) is there, with values of the right kind."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, require_system

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def gpu_check(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def gpu_check_main(*args: object) -> int:
    """gpu_check's main in this process: for the paths that end before any training."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check as module
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module.main([str(a) for a in args])


def read(folder: Path, part: str) -> dict:
    (path,) = folder.glob(f"gpu_check-*-{part}_quick.json")
    return json.loads(path.read_text())


def test_quick_cpu_rehearsal_fills_every_field(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = gpu_check("--device", "cpu", "--quick", "--out", tmp_path)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # one file per part and the summary, each named after this machine's CPU
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 7 and all(n.startswith("gpu_check-") and n.endswith("_quick.json") for n in names), names

    summary = read(tmp_path, "summary")
    for key in ("date", "device", "device_name", "torch", "python", "quick", "command", "bars", "figures"):
        assert key in summary, key
    assert summary["device"] == "cpu" and summary["quick"] is True
    assert {p: r["status"] for p, r in summary["parts"].items()} == dict.fromkeys(
        ("tests", "throughput", "precision", "search", "evaluators", "latency"), "ok")
    bars = summary["bars"]
    assert not any(b["applies"] for b in bars.values())  # a CPU rehearsal judges no GPU bar
    assert bars["device tests pass, none skipped"]["met"] is True
    assert bars["search: all trials complete without error"]["met"] is True
    for model in ("resnet8", "resnet18"):
        assert isinstance(bars[f"{model}: trainer >= 0.9x bare loop (bf16)"]["met"], bool)
    assert {"latency table batch_1 meets its bar", "latency table batch_4 meets its bar"} <= set(bars)
    assert summary["figures"]["search seconds per trial (median)"] > 0

    tests = read(tmp_path, "tests")
    assert tests["counts"] == {"passed": 2, "failed": 0, "error": 0, "skipped": 0}
    assert all(c["outcome"] == "passed" and c["seconds"] > 0 for c in tests["cases"])

    throughput = read(tmp_path, "throughput")
    assert throughput["trainer_layout"] in ("channels_last", "nchw")
    for model in ("resnet8", "resnet18"):
        m = throughput["models"][model]
        layouts = throughput["layouts_measured"]
        expected = {"trainer_bf16", "trainer_fp32"} | {f"bare_{p}_{lay}" for p in ("bf16", "fp32") for lay in layouts}
        assert set(m["images_per_second"]) == expected
        assert all(v > 0 for v in m["images_per_second"].values())
        assert {"trainer/bare bf16", "trainer/bare fp32", "bf16/fp32 trainer", "bf16/fp32 bare"} <= set(m["ratios"])
        assert all(len(v) == throughput["repeats"] for v in m["runs"].values())

    precision = read(tmp_path, "precision")
    assert set(precision["accuracies"]) == {"bf16", "fp32"}
    assert all(len(v) == precision["task"]["seeds"] for v in precision["accuracies"].values())
    assert isinstance(precision["within_noise"], bool) and precision["allowed_gap"] > 0

    search = read(tmp_path, "search")
    assert search["trials_complete"] == search["study"]["trials"] == 3
    assert 0 < search["seconds_per_trial_median"] <= search["wall_seconds"]
    assert [t["state"] for t in search["trials"]] == ["COMPLETE"] * 3

    supernet = read(tmp_path, "evaluators")["supernet"]
    assert supernet["sharing"] == "choice" and supernet["parameters"] > 0 and len(supernet["scores"]) == 3
    assert all(0 <= a <= 1 for a in supernet["scores"]) and supernet["architectures_per_second"] > 0
    assert supernet["supernet_images_per_second"] > 0 and supernet["supernet/plain"] > 0
    assert summary["figures"]["one-shot architectures scored per second"] > 0
    finetune = read(tmp_path, "evaluators")["finetune"]
    assert set(finetune["seconds_per_trial"]) == {"scratch", "finetune"} and finetune["finetune/scratch"] > 0
    assert summary["figures"]["fine-tune proxy seconds per trial"] > 0

    latency = read(tmp_path, "latency")
    assert set(latency["tables"]) == {"batch_1", "batch_4"}
    for table in latency["tables"].values():
        assert table["conditions"]["runtime"] == "eager" and table["conditions"]["device"] == "cpu"
        assert table["none_ms"] > 0 and table["entries"] == 3 and table["validation"]["n"] == 3
        assert isinstance(table["meets_bar"], bool) and table["table"]["entries"]
    # the rehearsal must stay cheap enough for every CI run (2 shared cores)
    assert seconds < 180, f"the quick rehearsal took {seconds:.0f} s (about 35 s on an idle 2-core machine)"


def test_a_part_cut_by_the_budget_is_reported_not_hidden(tmp_path: Path) -> None:
    assert gpu_check_main("--device", "cpu", "--quick", "--parts", "precision", "--budget", "0", "--out", tmp_path) == 1
    part = read(tmp_path, "precision")
    assert part["status"] == "skipped" and "budget" in part["reason"]
    assert read(tmp_path, "summary")["bars"]["bf16 and fp32 accuracy within seed noise"]["met"] is False


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not torch.cuda.is_available():
        assert gpu_check_main("--device", "cuda", "--quick", "--out", tmp_path) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
    assert gpu_check_main("--device", "cpu", "--data", tmp_path / "none", "--out", tmp_path) == 2
    assert "holds no train-images-idx3-ubyte.gz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        gpu_check_main("--quick", "--parts", "tests,warp", "--out", tmp_path)
    assert exit_.value.code == 2 and "unknown warp" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_pack_data_writes_the_carried_subset_that_nas_reads(tmp_path: Path) -> None:
    from nas.data import SYSTEM_DIRS, load_dataset

    source = SYSTEM_DIRS["fashion-mnist"]
    require_system("Debian's dataset-fashion-mnist", (source / "t10k-images-idx3-ubyte.gz").is_file())
    assert gpu_check_main("--pack-data", tmp_path / "carried") == 0
    folder = tmp_path / "carried" / "fashion-mnist"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 12 * 2**20  # leaves room for the wheels in 64 MiB
    small = load_dataset("fashion-mnist", path=folder, root=tmp_path / "cache", val_fraction=0.1)
    assert len(small.train) + len(small.val) == 20000 and len(small.test) == 2000
    # the first test images and labels of Debian's copy, unchanged (idx: 16- and 8-byte headers)
    images = gzip.decompress((source / "t10k-images-idx3-ubyte.gz").read_bytes())[16:16 + 2000 * 784]
    labels = gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:8 + 2000]
    assert torch.equal(small.test.images.flatten(), torch.frombuffer(bytearray(images), dtype=torch.uint8))
    assert small.test.labels.tolist() == list(labels)
    # the device run's data path (a study file naming the folder, grey images in the latency table), at toy sizes
    out = tmp_path / "out"
    parts = ("--parts", "search,latency")
    assert gpu_check_main("--device", "cpu", "--quick", "--data", folder, *parts, "--out", out) == 0
    search = read(out, "search")
    assert search["data"] == "fashion-mnist (fashion-mnist)" and search["study"]["dataset"]["path"] == str(folder)
    assert search["trials_complete"] == 3
    assert read(out, "latency")["tables"]["batch_1"]["table"]["key"]["in_chans"] == 1


@pytest.mark.parametrize("script", ["device-check", "device-wheels"])
def test_the_device_scripts_are_executable(script: str) -> None:
    path = ROOT / "scripts" / script
    assert os.access(path, os.X_OK)
    if script == "device-check":
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
