"""The device check: proves and measures the CUDA path in one command (docs/gpu.md).

Built for a lent GPU machine (one H200, 15 minutes of device time per session, one command of at
most 10 minutes), where it must finish in about 7 minutes and leave its figures behind; it runs
the same way on the CPU, where `--quick` makes it a rehearsal of seconds that CI runs
(tests/test_gpu_check.py), so it cannot rot between device sessions. Five parts, each into its
own JSON file named after the device (`gpu_check-<device>-<part>.json`), plus a summary of the
bars:

- tests:      tests/test_device.py run by pytest on the device (reproducibility per seed within a
              stated tolerance, divergence caught at its step, bf16 against fp32, export -> `nas
              train` round trip, latency timed on the device). On CUDA a skipped test counts as a
              failure: each one has something to prove there.
- throughput: the trainer's training images/s against a bare PyTorch loop on the same model and
              batches in the same process (benchmarks/trainer_throughput.py's `bare_loop` and
              interleaved timing), in bf16 and fp32, and the bare loop in channels_last and NCHW,
              for the demo's ResNet-8 (28 px) and ResNet-18 with the small-input stem (32 px).
              Bar on the device: trainer >= 0.90x the bare loop.
- precision:  the demo's proxy task (ResNet-8, 5,000 Fashion-MNIST images, one epoch) over seeds
              in bf16 and in fp32. Bar: the means agree within two standard errors of their
              difference, from the seeds' own spread (plus one validation image).
- search:     a timed search: ResNet-18 (small input) on 10,000 Fashion-MNIST images at 32 px,
              2-epoch proxies, 12 trials (5 uniform baselines + 7 sampled); seconds per trial.
- evaluators: the other ways a trial is scored, on the search part's task: the one-shot
              supernet's (nas.supernet) training images/s against the plain trainer's on the same
              backbone (the `none` architecture) in the same process, and how many architectures
              per second it scores with inherited weights (batch-norm recalibrated for each, as a
              study scores them); and the fine-tuning proxy's seconds per trial (a weights file,
              blocks inserted as the identity) against the same proxy from scratch. One part, not
              one per evaluator: the device returns at most 8 files (7 JSON and the log).
- latency:    the demo space's latency table measured on the device, eager PyTorch at batch 1 and
              64 (`nas.latency.builder.build_table`, as `nas latency-table` does), with its own
              validation on random architectures against benchmarks/latency_table.py's bar.

Data: the full run reads a Fashion-MNIST subset carried along (`--data`, default .gpu-data/
fashion-mnist, which `--pack-data` or scripts/device-wheels writes from Debian's copy); `--quick`
uses the generated synthetic set at tiny sizes. Exit status: 0 when every part ran (a missed bar
is a finding, recorded, not an error), 1 when a part failed or was cut by `--budget`, 2 on bad
arguments.

    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check   # seconds
    scripts/device-check "$OUT"                                                          # on the device
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # the checkout's nas (not an installed copy), and the sibling benchmarks

import torch  # noqa: E402
from harness import RESULTS, device_name, finite, write_json  # noqa: E402
from latency_table import BAR as LATENCY_BAR  # noqa: E402
from torch import nn  # noqa: E402
from trainer_throughput import bare_loop, time_interleaved  # noqa: E402

from nas import ArchConfig, BlockSpec, build_model  # noqa: E402
from nas.data import IDX_FILES, SYSTEM_DIRS, Dataset, Split, load_dataset  # noqa: E402
from nas.errors import ConfigError  # noqa: E402
from nas.latency.builder import LatencyTarget, build_table, check_conditions  # noqa: E402
from nas.latency.conditions import LatencyConditions  # noqa: E402
from nas.layout import memory_format  # noqa: E402
from nas.space import load_space  # noqa: E402
from nas.train import ProxyConfig, resolve_device, train_proxy  # noqa: E402

PARTS = ("tests", "throughput", "precision", "search", "evaluators", "latency")
DEFAULT_DATA = ROOT / ".gpu-data" / "fashion-mnist"
PACK_TRAIN, PACK_TEST = 20000, 2000  # images of the carried subset (about 9 MB gzipped)
TRAINER_BAR = 0.90


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size the parts use; `--quick` swaps in tiny ones so the whole run takes seconds."""

    models: dict[str, dict[str, Any]]  # throughput: backbone, args, image_size, batch
    steps: int  # trainer/bare steps per timed repeat
    repeats: int
    val_images: int  # throughput: the trainer's validation pass (timed with it, as in a trial)
    precision_task: dict[str, Any]  # subset, image_size, width, epochs, batch, seeds
    search: dict[str, Any]  # backbone, args, subset, image_size, epochs, batch, trials, baselines, space
    latency: dict[str, Any]  # batches, check, target_ci, max_seconds, space, image_size
    supernet: dict[str, Any]  # evaluators: epochs, sharing, scored (architectures), recal (images); rest from `search`
    test_selection: str | None  # pytest -k expression; None: the whole file


FULL = Sizes(
    models={"resnet8": {"backbone": "cifar_resnet", "args": {"depth": 8, "width": 16}, "image_size": 28, "batch": 256},
            "resnet18": {"backbone": "resnet18", "args": {"small_input": True}, "image_size": 32, "batch": 512}},
    steps=32, repeats=7,  # 32 x 512 images: the carried subset's 18,000 training images hold one repeat
    val_images=1024,
    precision_task={"subset": 5000, "image_size": 28, "width": 16, "epochs": 1, "batch": 256, "seeds": 5},
    search={"backbone": "resnet18", "args": {"small_input": True}, "subset": 10000, "image_size": 32, "epochs": 2,
            "batch": 512, "trials": 12, "baselines": ["none", "se", "eca", "cbam", "ge"],
            "space": str(ROOT / "search_spaces" / "default.yaml")},
    latency={"batches": [1, 64], "check": 20, "target_ci": 0.02, "max_seconds": 10.0,
             "space": str(ROOT / "search_spaces" / "demo.yaml"), "image_size": 28, "width": 16},
    supernet={"epochs": 1, "sharing": "choice", "scored": 40, "recal": 2048},
    test_selection=None,
)
# The quick rehearsal: the same code paths at toy sizes (synthetic data; a 3-choice space). Its
# device tests are the two quickest: CI runs the whole file on its own (tests/test_device.py).
QUICK = Sizes(
    models={"resnet8": {"backbone": "cifar_resnet", "args": {"depth": 8, "width": 8}, "image_size": 16, "batch": 32},
            "resnet18": {"backbone": "resnet18", "args": {"small_input": True}, "image_size": 8, "batch": 4}},
    steps=2, repeats=1,
    val_images=32,  # bf16 is emulated on a CPU without it (AVX2): ResNet-18 ran 2 images/s
    precision_task={"subset": 300, "image_size": 16, "width": 4, "epochs": 1, "batch": 50, "seeds": 2},
    search={"backbone": "cifar_resnet", "args": {"depth": 8, "width": 4}, "subset": 200, "image_size": 16,
            "epochs": 1, "batch": 50, "trials": 3, "baselines": ["none", "se"],
            "space": {"kinds": ["none", "se", "eca"], "se": {"reduction": [4]}, "eca": {"kernel_size": [3]},
                      "placement": ["block"], "stages": "all"}},
    latency={"batches": [1, 4], "check": 3, "target_ci": 0.25, "max_seconds": 3.0,
             "space": {"kinds": ["none", "se"], "se": {"reduction": [4]}, "placement": ["block"], "stages": "all"},
             "image_size": 16, "width": 4},
    supernet={"epochs": 1, "sharing": "choice", "scored": 3, "recal": 50},
    test_selection="layout or reproduces",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: CUDA when present)")
    parser.add_argument("--quick", action="store_true", help="toy sizes on synthetic data: a rehearsal of seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON files")
    parser.add_argument("--data", type=Path,
                        help=f"a folder of Fashion-MNIST idx files (.gz); default: {DEFAULT_DATA} for the full run, "
                             "the synthetic set for --quick (given with --quick: toy sizes on this data)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds for all parts; a part that would start too late is skipped and reported "
                             "(default 420: the device allows 10 minutes a command)")
    parser.add_argument("--pack-data", type=Path, metavar="DIR",
                        help="write the carried Fashion-MNIST subset into DIR/fashion-mnist from Debian's copy, "
                             "then exit")
    args = parser.parse_args(argv)
    if args.pack_data is not None:
        return pack_data(args.pack_data)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: unknown {', '.join(unknown)}; allowed: {', '.join(PARTS)}")
    try:
        device = resolve_device(args.device)
    except ConfigError as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return 2
    data = args.data if args.data is not None or args.quick else DEFAULT_DATA
    if data is not None and not (data / f"{IDX_FILES[0]}.gz").is_file():
        print(f"gpu_check: error: --data {data} holds no {IDX_FILES[0]}.gz; run `benchmarks/gpu_check.py "
              f"--pack-data {DEFAULT_DATA.parent}` (or scripts/device-wheels) first, or use --quick", file=sys.stderr)
        return 2
    return Check(device, args.quick, args.out, data, args.budget).run(parts)


class Check:
    """One run: the device, the sizes, the output folder and the clock every part is timed on."""

    def __init__(self, device: torch.device, quick: bool, out: Path, data_dir: Path | None, budget: float) -> None:
        self.device, self.quick, self.out, self.data_dir, self.budget = device, quick, out, data_dir, budget
        self.sizes = QUICK if quick else FULL
        self.cuda = device.type == "cuda"
        self.name = device_name(device)
        self.slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:48] or "device"
        self.start = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="nas-gpu-check-"))
        self.threads = None if self.cuda else (1 if quick else None)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def path(self, part: str) -> Path:
        return self.out / f"gpu_check-{self.slug}-{part}{'_quick' if self.quick else ''}.json"

    def header(self) -> dict[str, Any]:
        return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "device": str(self.device), "device_name": self.name, "quick": self.quick,
                "data": "synthetic" if self.data_dir is None else f"fashion-mnist ({self.data_dir.name})",
                "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                "cpu_count": os.cpu_count(), "install": os.environ.get("NAS_DEVICE_INSTALL"),
                "command": " ".join([Path(sys.executable).name, *sys.argv])}

    def run(self, parts: list[str]) -> int:
        threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            return self._run(parts)
        finally:
            torch.set_num_threads(threads)

    def _run(self, parts: list[str]) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        print(f"gpu_check on {self.device} ({self.name}), torch {torch.__version__}, "
              f"{'quick' if self.quick else 'full'} sizes, budget {self.budget:.0f} s", flush=True)
        # the least time each part needs to be worth starting, at full sizes
        need = {"tests": 60, "throughput": 30, "precision": 15, "search": 60, "evaluators": 45, "latency": 40}
        results: dict[str, dict[str, Any]] = {}
        for part in parts:
            began = time.perf_counter()
            if self.left() < (0 if self.quick else need[part]):
                result = {"status": "skipped", "reason": f"{self.left():.0f} s of the {self.budget:.0f} s budget left"}
            else:
                print(f"\n== {part}", flush=True)
                try:
                    result = {"status": "ok", **getattr(self, part)()}
                except Exception as error:  # noqa: BLE001 - one part's failure is recorded; the others still run
                    result = {"status": "failed", "error": f"{type(error).__name__}: {error}",
                              "traceback": traceback.format_exc()[-4000:]}
                    print(result["traceback"], file=sys.stderr, flush=True)
            result["seconds"] = round(time.perf_counter() - began, 2)
            results[part] = result
            write_json(self.path(part), finite({**self.header(), "part": part, **result}))
            print(f"== {part}: {result['status']} in {result['seconds']:.1f} s -> {self.path(part).name}", flush=True)
        summary = {**self.header(), "part": "summary", "budget_seconds": self.budget,
                   "seconds": round(time.perf_counter() - self.start, 2),
                   "parts": {p: {"status": r["status"], "seconds": r["seconds"]} for p, r in results.items()},
                   "bars": bars(results, self.cuda and not self.quick), "figures": figures(results)}
        write_json(self.path("summary"), finite(summary))
        print(f"\nsummary -> {self.path('summary')}")
        for name, bar in summary["bars"].items():
            verdict = "n/a" if bar["met"] is None else ("met" if bar["met"] else "NOT met")
            print(f"  bar {name}: {verdict} ({bar['value']}){'' if bar['applies'] else ' [not judged here]'}")
        for name, value in summary["figures"].items():
            print(f"  {name}: {value}")
        return 0 if all(r["status"] == "ok" for r in results.values()) else 1

    # -----------------------------------------------------------------------------------------
    # Data

    def dataset(self, subset: int | None, image_size: int, val_fraction: float = 0.1) -> Dataset:
        """The carried Fashion-MNIST (`data_dir`) or, without one, the synthetic set, at `image_size`."""
        if self.data_dir is None:
            return load_dataset("synthetic", subset=subset, image_size=image_size, val_fraction=val_fraction)
        return load_dataset("fashion-mnist", path=self.data_dir, root=self.tmp / "cache", subset=subset,
                            image_size=image_size, val_fraction=val_fraction)

    def space(self, spec: str | dict[str, Any], name: str) -> Any:
        """A search space from a file path, or from a mapping (the quick sizes) written to `name`."""
        if isinstance(spec, dict):
            import yaml

            written = self.tmp / name
            written.write_text(yaml.safe_dump(spec))
            spec = str(written)
        return load_space(Path(spec))

    # -----------------------------------------------------------------------------------------
    # Parts

    def tests(self) -> dict[str, Any]:
        """tests/test_device.py under pytest in a child, on this device; the outcome of each test."""
        junit = self.tmp / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                   str(ROOT / "tests" / "test_device.py"), f"--junitxml={junit}"]
        if self.sizes.test_selection:
            command += ["-k", self.sizes.test_selection]
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "NAS_TEST_DEVICE": str(self.device), "PYTHONPATH": path}
        if not self.cuda:
            env["OMP_NUM_THREADS"] = "1"
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=max(90.0, self.left() - 200) if not self.quick else 300)
        print(done.stdout[-3000:], done.stderr[-2000:], sep="", flush=True)
        cases = parse_junit(junit) if junit.exists() else []
        counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
        if done.returncode != 0 or not cases:
            raise RuntimeError(f"pytest exited {done.returncode}: {counts}; {done.stdout[-600:]}")
        return {"selection": self.sizes.test_selection, "returncode": done.returncode, "counts": counts,
                "cases": cases}

    def throughput(self) -> dict[str, Any]:
        """Trainer against the bare loop, per model: bf16 and fp32, channels_last and NCHW."""
        s = self.sizes
        trainer_fmt = memory_format(self.device)
        layouts = {"channels_last": torch.channels_last, "nchw": torch.contiguous_format}
        trainer_layout = "channels_last" if trainer_fmt == torch.channels_last else "nchw"
        # On a CPU, channels_last is measured only where nas.layout chose it: elsewhere its backward can corrupt
        # the heap (README, Known issues). On CUDA both layouts are measured.
        compared = list(layouts) if (self.cuda or trainer_layout == "channels_last") else [trainer_layout]
        out: dict[str, Any] = {"trainer_layout": trainer_layout, "layouts_measured": compared, "steps": s.steps,
                               "repeats": s.repeats, "models": {}}
        if len(compared) < len(layouts):
            out["layouts_note"] = "channels_last not measured: nas.layout keeps this CPU on NCHW (unsafe or slower)"
        for name, m in s.models.items():
            base = self.dataset(None, m["image_size"])
            n = s.steps * m["batch"]
            if len(base.train) < n:
                raise RuntimeError(f"{name}: {len(base.train)} training images, {n} needed")
            data = dataclasses.replace(base, train=Split(base.train.images[:n].clone(), base.train.labels[:n].clone()),
                                       val=Split(base.val.images[:s.val_images].clone(),
                                                 base.val.labels[:s.val_images].clone()))
            arch = ArchConfig.uniform(m["backbone"], BlockSpec("se"), m["args"], num_classes=data.num_classes,
                                      in_chans=data.in_chans)

            def builder(arch: ArchConfig = arch) -> nn.Module:
                return build_model(arch)

            methods: dict[str, Callable[[], float]] = {}
            for precision in ("bf16", "fp32"):
                config = ProxyConfig(epochs=1, batch_size=m["batch"], precision=precision, threads=self.threads,
                                     bn_recal=min(1024, n))
                methods[f"trainer_{precision}"] = (
                    lambda c=config, d=data, bd=builder: train_proxy(bd, d, c, self.device,
                                                                     progress=False).images_per_second)
                for layout in compared:
                    methods[f"bare_{precision}_{layout}"] = (
                        lambda p=precision, f=layouts[layout], d=data, b=m["batch"], bd=builder:
                        bare_loop(bd, d, b, s.steps, self.device, f, p == "bf16"))
            print(f"{name}: {arch.arch_id}, {data.image_size[0]} px, batch {m['batch']}, {n} images per repeat",
                  flush=True)
            runs = time_interleaved(methods, s.repeats, log=lambda line: print(f"  {line}", flush=True))
            med = {k: statistics.median(v) for k, v in runs.items()}
            ratios = {f"trainer/bare {p}": med[f"trainer_{p}"] / med[f"bare_{p}_{trainer_layout}"]
                      for p in ("bf16", "fp32")}
            ratios["bf16/fp32 trainer"] = med["trainer_bf16"] / med["trainer_fp32"]
            ratios["bf16/fp32 bare"] = med[f"bare_bf16_{trainer_layout}"] / med[f"bare_fp32_{trainer_layout}"]
            if len(compared) == 2:
                for p in ("bf16", "fp32"):
                    ratios[f"channels_last/nchw bare {p}"] = med[f"bare_{p}_channels_last"] / med[f"bare_{p}_nchw"]
            for k, v in ratios.items():
                print(f"  {k}: {v:.3f}", flush=True)
            out["models"][name] = {"arch": arch.to_dict(), "image_size": m["image_size"], "batch": m["batch"],
                                   "images_per_repeat": n, "images_per_second": med, "runs": runs, "ratios": ratios}
        return out

    def precision(self) -> dict[str, Any]:
        """bf16 and fp32 proxy accuracy over seeds on the demo's task: equal within seed noise?"""
        t = self.sizes.precision_task
        data = self.dataset(t["subset"], t["image_size"])
        arch = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 8, "width": t["width"]},
                                  num_classes=data.num_classes, in_chans=data.in_chans)
        scores: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        for precision in ("fp32", "bf16"):
            for seed in range(t["seeds"]):
                config = ProxyConfig(epochs=t["epochs"], batch_size=t["batch"], precision=precision, seed=seed,
                                     threads=self.threads)
                r = train_proxy(lambda: build_model(arch), data, config, self.device, progress=False)
                scores.setdefault(precision, []).append(r.accuracy)
                seconds.setdefault(precision, []).append(r.seconds)
            print(f"  {precision}: accuracies {', '.join(f'{a:.4f}' for a in scores[precision])}", flush=True)
        n = t["seeds"]
        std = {p: statistics.stdev(v) for p, v in scores.items()}
        mean = {p: statistics.fmean(v) for p, v in scores.items()}
        se = math.sqrt(std["fp32"] ** 2 / n + std["bf16"] ** 2 / n)
        gap = mean["bf16"] - mean["fp32"]
        allowed = 2 * se + 1 / len(data.val)
        return {"task": {**t, "arch": arch.arch_id, "train_images": len(data.train), "val_images": len(data.val),
                         "dataset": data.name}, "accuracies": scores, "mean": mean, "std": std,
                "seconds_per_run": {p: statistics.fmean(v) for p, v in seconds.items()},
                "gap_bf16_minus_fp32": gap, "standard_error_of_gap": se, "allowed_gap": allowed,
                "welch_t": gap / se if se > 0 else None, "within_noise": abs(gap) <= allowed,
                "rule": "|mean bf16 - mean fp32| <= 2 standard errors of the difference (seeds' spread) "
                        "+ one validation image"}

    def search(self) -> dict[str, Any]:
        """A small search timed end to end and per trial, through `nas.search` (what `nas search` runs)."""
        import yaml

        import nas

        sz = self.sizes.search
        folder = self.tmp / "search"
        folder.mkdir()
        dataset: dict[str, Any] = {"subset": sz["subset"], "image_size": sz["image_size"], "val_fraction": 0.1}
        if self.data_dir is None:
            dataset["name"] = "synthetic"
        else:
            dataset.update(name="fashion-mnist", path=str(self.data_dir), root=str(self.tmp / "cache"))
        study = {"name": "gpu_check", "backbone": sz["backbone"], "backbone_args": sz["args"], "dataset": dataset,
                 "search_space": sz["space"], "proxy": {"epochs": sz["epochs"], "batch_size": sz["batch"]},
                 "objectives": ["accuracy", "flops"], "sampler": {"name": "tpe", "seed": 0}, "trials": sz["trials"],
                 "baselines": sz["baselines"], "noise_seeds": 1,
                 "confirm": {"after_search": False}}  # the trials alone are timed
        path = folder / "gpu_check.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        lines: list[str] = []

        def log(line: str) -> None:
            lines.append(line)
            print(f"  {line}", flush=True)

        timeout = None if self.quick else max(30.0, self.left() - 100)
        began = time.perf_counter()
        result = nas.search(path, device=str(self.device), timeout=timeout, log=log)
        wall = time.perf_counter() - began
        trials = []
        for t in result.get_trials(deepcopy=False):
            seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                       if t.datetime_complete and t.datetime_start else None)
            trials.append({"number": t.number, "state": t.state.name, "seconds": seconds,
                           "arch_id": t.user_attrs.get("arch_id"), "baseline": t.user_attrs.get("baseline"),
                           "values": t.values, "train_seconds": t.user_attrs.get("seconds"),
                           "images_per_second": t.user_attrs.get("images_per_second")})
        done = [t for t in trials if t["state"] == "COMPLETE" and t["seconds"] is not None]
        if len(done) < sz["trials"]:
            raise RuntimeError(f"{len(done)} of {sz['trials']} trials finished in {wall:.0f} s: {lines[-5:]}")
        per = [t["seconds"] for t in done]
        return {"study": study, "trials_complete": len(done),
                "trials_other": [t for t in trials if t["state"] != "COMPLETE"], "wall_seconds": wall,
                "seconds_per_trial_mean": statistics.fmean(per), "seconds_per_trial_median": statistics.median(per),
                "seconds_first_trial": per[0], "seconds_outside_trials": wall - sum(per),
                "wall_seconds_per_trial": wall / len(done), "trials": trials, "log": lines[-40:]}

    def evaluators(self) -> dict[str, Any]:
        """Each evaluator besides the proxy, measured on the search part's task."""
        return {"supernet": self.supernet(), "finetune": self.finetune()}

    def finetune(self) -> dict[str, Any]:
        """Seconds per trial of the fine-tuning proxy (every candidate starts from a weights file,
        its blocks inserted as the identity) against the same proxy from scratch."""
        from nas import Pretrained

        sz = self.sizes.search
        data = self.dataset(sz["subset"], sz["image_size"])
        plain = ArchConfig.uniform(sz["backbone"], BlockSpec("none"), sz["args"], num_classes=data.num_classes,
                                   in_chans=data.in_chans)
        path = self.tmp / "pretrained.pt"
        torch.save(build_model(plain).state_dict(), path)  # stands in for a user's pretrained file
        config = ProxyConfig(epochs=sz["epochs"], batch_size=sz["batch"], threads=self.threads)
        runs: dict[str, float] = {}
        for label, weights in (("scratch", None), ("finetune", Pretrained.of(path))):
            arch = dataclasses.replace(ArchConfig.uniform(sz["backbone"], BlockSpec("se"), sz["args"],
                                                          num_classes=data.num_classes, in_chans=data.in_chans),
                                       weights=weights)
            began = time.perf_counter()
            train_proxy(lambda arch=arch: build_model(arch), data, config, self.device, progress=False)
            runs[label] = time.perf_counter() - began
        print(f"  fine-tune proxy: {runs['finetune']:.2f} s per trial against {runs['scratch']:.2f} s from scratch",
              flush=True)
        return {"arch": "se everywhere, identity insertion", "epochs": sz["epochs"], "train_images": len(data.train),
                "seconds_per_trial": runs, "finetune/scratch": runs["finetune"] / runs["scratch"]}

    def supernet(self) -> dict[str, Any]:
        """The supernet's training throughput against the plain trainer's, and its scoring rate."""
        from nas.supernet import Supernet, score_architecture, train_supernet

        sz, sn = self.sizes.search, self.sizes.supernet
        space = self.space(sz["space"], "supernet_space.yaml")
        data = self.dataset(sz["subset"], sz["image_size"])
        template = ArchConfig.uniform(sz["backbone"], BlockSpec("none"), sz["args"], num_classes=data.num_classes,
                                      in_chans=data.in_chans)
        net = Supernet(template, space, sharing=sn["sharing"], seed=0)
        config = ProxyConfig(epochs=sn["epochs"], batch_size=sz["batch"], threads=self.threads, bn_recal=sn["recal"])
        trained = train_supernet(net, data, config, self.device, progress=False)
        plain = train_proxy(lambda: build_model(template), data, config, self.device, progress=False)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # as a random search samples
        archs = [space.sample(sampler.ask(), template) for _ in range(sn["scored"])]
        began = time.perf_counter()
        scores = [score_architecture(net, arch, data, config, self.device)[0] for arch in archs]
        scoring = time.perf_counter() - began
        ratio = trained.images_per_second / plain.images_per_second
        parameters = sum(p.numel() for p in net.parameters())
        print(f"  supernet ({sn['sharing']} sharing, {parameters:,} parameters): "
              f"{trained.images_per_second:.0f} img/s training, {ratio:.2f}x the plain trainer's "
              f"{plain.images_per_second:.0f}; {len(archs) / scoring:.2f} architectures/s scored", flush=True)
        return {"backbone": sz["backbone"], "args": sz["args"], "image_size": sz["image_size"],
                "train_images": len(data.train), "val_images": len(data.val), **sn,
                "parameters": parameters,
                "supernet_images_per_second": trained.images_per_second,
                "plain_images_per_second": plain.images_per_second, "supernet/plain": ratio,
                "supernet_seconds": trained.seconds, "scored": len(archs), "scoring_seconds": scoring,
                "architectures_per_second": len(archs) / scoring, "scores": scores}

    def latency(self) -> dict[str, Any]:
        """The demo space's latency table at each batch size, eager on this device, with its validation."""
        lat = self.sizes.latency
        space = self.space(lat["space"], "latency_space.yaml")
        in_chans = 3 if self.data_dir is None else 1  # synthetic: RGB; Fashion-MNIST: grey
        tables: dict[str, Any] = {}
        for batch in lat["batches"]:
            conditions = LatencyConditions(runtime="eager", batch_size=batch, threads=1, device=self.device.type)
            check_conditions(conditions)  # what `nas latency-table` refuses first
            target = LatencyTarget("cifar_resnet", {"depth": 8, "width": lat["width"]}, space,
                                   (lat["image_size"], lat["image_size"]), in_chans, 10, conditions)
            table = build_table(target, self.tmp / f"latency-b{batch}.json", check=lat["check"],
                                calibrate=lat["check"], target_ci=lat["target_ci"], max_seconds=lat["max_seconds"],
                                passes=1, log=lambda line: print(f"  {line}", flush=True))
            v = table.validation or {}
            keys = ("n", "median_abs_error", "p95_abs_error", "max_abs_error", "spearman")
            validation = {k: v.get(k) for k in keys}
            meets = (v.get("median_abs_error", math.inf) <= LATENCY_BAR["median_abs_error"]
                     and v.get("p95_abs_error", math.inf) <= LATENCY_BAR["p95_abs_error"]
                     and v.get("spearman", -math.inf) >= LATENCY_BAR["spearman"])
            print(f"  batch {batch}: none {table.none_ms:.3f} ± {table.none_ms_ci:.3f} ms, {len(table.entries)} "
                  f"choices in {table.built.get('seconds')} s; validation {validation}", flush=True)
            tables[f"batch_{batch}"] = {"conditions": conditions.to_dict(), "none_ms": table.none_ms,
                                        "none_ms_ci": table.none_ms_ci, "entries": len(table.entries),
                                        "build_seconds": table.built.get("seconds"), "scale": table.scale,
                                        "validation": validation, "meets_bar": meets, "table": table.to_dict()}
        return {"backbone": "cifar_resnet", "width": lat["width"], "image_size": lat["image_size"],
                "space": lat["space"], "bar": LATENCY_BAR, "target_ci": lat["target_ci"], "tables": tables}


def parse_junit(path: Path) -> list[dict[str, Any]]:
    """Each test case's name, outcome and seconds from pytest's JUnit XML."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", None
        for kind in ("failure", "error", "skipped"):
            child = case.find(kind)
            if child is not None:
                outcome = "failed" if kind == "failure" else kind
                message = (child.get("message") or "")[:500]
                break
        cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                      "message": message})
    return cases


def bars(results: dict[str, dict[str, Any]], judged: bool) -> dict[str, dict[str, Any]]:
    """The issue's bars, each with its value; `applies` is False off the device (quick or CPU),
    where a value is recorded but says nothing about a GPU."""
    out: dict[str, dict[str, Any]] = {}

    def bar(name: str, met: bool | None, value: Any) -> None:
        out[name] = {"met": met, "value": value, "applies": judged}

    tests = results.get("tests", {})
    if tests.get("status") == "ok":
        counts = tests["counts"]
        bar("device tests pass, none skipped", counts["failed"] + counts["error"] + counts["skipped"] == 0, counts)
    elif "tests" in results:
        bar("device tests pass, none skipped", False, tests.get("error") or tests.get("reason"))
    throughput = results.get("throughput", {})
    for name, m in throughput.get("models", {}).items():
        ratio = m["ratios"]["trainer/bare bf16"]
        bar(f"{name}: trainer >= {TRAINER_BAR}x bare loop (bf16)", ratio >= TRAINER_BAR, round(ratio, 3))
    if "throughput" in results and throughput.get("status") != "ok":
        bar(f"trainer >= {TRAINER_BAR}x bare loop (bf16)", False, throughput.get("error") or throughput.get("reason"))
    precision = results.get("precision", {})
    if precision.get("status") == "ok":
        bar("bf16 and fp32 accuracy within seed noise", precision["within_noise"],
            f"gap {precision['gap_bf16_minus_fp32']:+.4f}, allowed ±{precision['allowed_gap']:.4f}")
    elif "precision" in results:
        bar("bf16 and fp32 accuracy within seed noise", False, precision.get("error") or precision.get("reason"))
    search = results.get("search", {})
    if "search" in results:
        ok = search.get("status") == "ok"
        bar("search: all trials complete without error", ok,
            f"{search.get('trials_complete')} trials" if ok else (search.get("error") or search.get("reason")))
    latency = results.get("latency", {})
    for key, table in latency.get("tables", {}).items():
        bar(f"latency table {key} meets its bar", table["meets_bar"], table["validation"])
    if "latency" in results and latency.get("status") != "ok":
        bar("latency tables meet their bar", False, latency.get("error") or latency.get("reason"))
    return out


def figures(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The few numbers a README sentence would quote."""
    out: dict[str, Any] = {}
    search = results.get("search", {})
    if search.get("status") == "ok":
        out["search seconds per trial (median)"] = round(search["seconds_per_trial_median"], 2)
        out["search wall seconds per trial"] = round(search["wall_seconds_per_trial"], 2)
    for name, m in results.get("throughput", {}).get("models", {}).items():
        out[f"{name} images/s"] = {k: round(v) for k, v in m["images_per_second"].items()}
        out[f"{name} ratios"] = {k: round(v, 3) for k, v in m["ratios"].items()}
    precision = results.get("precision", {})
    if precision.get("status") == "ok":
        out["accuracy bf16 / fp32 (mean ± std)"] = (
            f"{precision['mean']['bf16']:.4f} ± {precision['std']['bf16']:.4f} / "
            f"{precision['mean']['fp32']:.4f} ± {precision['std']['fp32']:.4f}")
    for key, table in results.get("latency", {}).get("tables", {}).items():
        out[f"latency none ms ({key})"] = round(table["none_ms"], 4)
    supernet = results.get("evaluators", {}).get("supernet")
    if supernet:
        out["supernet training images/s vs the plain trainer's"] = round(supernet["supernet/plain"], 3)
        out["one-shot architectures scored per second"] = round(supernet["architectures_per_second"], 2)
    finetune = results.get("evaluators", {}).get("finetune")
    if finetune:
        out["fine-tune proxy seconds per trial"] = round(finetune["seconds_per_trial"]["finetune"], 2)
    return out


def pack_data(dest: Path) -> int:
    """The carried subset: the first PACK_TRAIN training and PACK_TEST test images of Debian's
    Fashion-MNIST as gzipped idx files (the four files nas.data reads from a `path`)."""
    source = SYSTEM_DIRS["fashion-mnist"]
    if not (source / f"{IDX_FILES[0]}.gz").is_file():
        print(f"gpu_check: error: {source} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)",
              file=sys.stderr)
        return 2
    folder = dest / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        keep = PACK_TRAIN if name.startswith("train") else PACK_TEST
        raw = gzip.decompress((source / f"{name}.gz").read_bytes())
        dims = raw[3]  # idx: 0, 0, type, number of dimensions, then one big-endian int32 per dimension
        shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
        item = math.prod(shape[1:])
        header = raw[:4] + keep.to_bytes(4, "big") + raw[8: 4 + 4 * dims]
        body = raw[4 + 4 * dims: 4 + 4 * dims + keep * item]
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + body, compresslevel=9, mtime=0))
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    print(f"wrote {folder}: {PACK_TRAIN} training and {PACK_TEST} test images, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
