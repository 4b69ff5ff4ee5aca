#!/usr/bin/env python3
"""Run a real study and write the sample outputs the README and the docs quote.

    .venv/bin/python scripts/sample_output.py            # the demo (studies/demo.yaml), minutes
    .venv/bin/python scripts/sample_output.py --tiny --out /tmp/s --no-write   # a tiny synthetic study, seconds
    .venv/bin/python scripts/sample_output.py --table docs/samples/demo.latency.json   # reuse its table
    .venv/bin/python scripts/sample_output.py --fill     # only copy docs/samples/*.txt into the pages

It copies the study file and its search space into a fresh folder (so `studies/demo.db` is left
alone), runs the user's three jobs there with the real `nas` command —

    nas check studies/demo.yaml
    nas search studies/demo.yaml --no-progress
    nas front studies/demo.yaml --plot studies/demo_front.png
    nas export studies/demo.yaml --pick knee -o best.yaml

— and `nas search studies/typo.yaml`, a copy with one mistake (exit status 2), and writes each
command's output to `docs/samples/<name>.txt` (the search log shortened by one
rule, `shorten_search`), the machine and commit to `docs/samples/meta.json`, the plot to
`docs/demo_front.png`, and then copies every sample into the blocks of README.md and docs/*.md
that are marked

    <!-- sample: NAME -->
    ```text
    ...
    ```
    <!-- /sample -->

`tests/test_docs.py` checks that every such block equals its file, that no command output is
pasted outside one, and runs this script with `--tiny --in-process` so the script itself cannot rot.
The run folder is shown as /home/you/nas in the samples.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "samples"
SHOWN_AS = "/home/you/nas"  # the run folder as the samples show it
MARKED = re.compile(r"(<!-- sample: (?P<name>[\w-]+) -->\n```text\n)(?P<body>.*?)(```\n<!-- /sample -->)", re.S)

# The tiny study the tests run (synthetic data, FLOPs as the cost: seconds, no latency table).
TINY = {
    "name": "demo",
    "backbone": "cifar_resnet",
    "backbone_args": {"depth": 8, "width": 4},
    "dataset": {"name": "synthetic", "subset": 200, "image_size": 16},
    "search_space": "../search_spaces/demo.yaml",
    "proxy": {"epochs": 1, "batch_size": 50},
    "objectives": ["accuracy", "flops"],
    "sampler": {"name": "tpe", "seed": 0},
    "trials": 6,
    "baselines": ["none", "se"],
    "noise_seeds": 2,
    "confirm": {"top": 3, "epochs": 1, "seeds": 2},
}


TYPO = "studies/typo.yaml"  # the study with one mistake: an even ECA kernel


def jobs(study: str) -> list[tuple[str, list[str], int]]:
    """(sample name, nas arguments, expected exit status): the three jobs, in order, and a mistake."""
    return [
        ("error", ["search", TYPO], 2),
        ("check", ["check", study], 0),
        ("search", ["search", study, "--no-progress"], 0),
        ("front", ["front", study, "--plot", "studies/demo_front.png"], 0),
        ("export", ["export", study, "--pick", "knee", "-o", "best.yaml"], 0),
    ]


def prepare(folder: Path, tiny: bool, table: Path | None = None) -> str:
    """Copy the demo study (or write the tiny one) into folder, and the latency table to reuse if
    one is given (the study finds it as <name>.latency.json beside it); returns the study path."""
    import yaml

    (folder / "studies").mkdir(parents=True, exist_ok=True)
    (folder / "search_spaces").mkdir(exist_ok=True)
    shutil.copy(ROOT / "search_spaces" / "demo.yaml", folder / "search_spaces" / "demo.yaml")
    if tiny:
        (folder / "studies" / "demo.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    else:
        shutil.copy(ROOT / "studies" / "demo.yaml", folder / "studies" / "demo.yaml")
    if table is not None:
        shutil.copy(table, folder / "studies" / "demo.latency.json")
    typo = yaml.safe_load((folder / "studies" / "demo.yaml").read_text())
    typo["name"] = "typo"
    typo["search_space"] = {"kinds": ["none", "eca"], "eca": {"kernel_size": [3, 4]}}
    (folder / TYPO).write_text(yaml.safe_dump(typo, sort_keys=False))
    return "studies/demo.yaml"


def run_nas(args: list[str], cwd: Path, in_process: bool) -> tuple[int, str, float]:
    """(exit status, stdout then stderr, seconds) of `nas ARGS` run in cwd."""
    start = time.perf_counter()
    if in_process:  # the tests: torch is imported once for all commands
        from nas.cli import main

        out, err = io.StringIO(), io.StringIO()
        old = Path.cwd()
        # main() installs its Ctrl-C / SIGTERM handlers and an unraisable hook: put the caller's back
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        hook = sys.unraisablehook
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(args)
        finally:
            os.chdir(old)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            sys.unraisablehook = hook
        text = out.getvalue() + err.getvalue()
    else:
        script = Path(sys.executable).with_name("nas")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "nas.cli"]
        done = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True)
        code, text = done.returncode, done.stdout + done.stderr
    return code, text, time.perf_counter() - start


def shorten_search(lines: list[str]) -> list[str]:
    """The search log without the trials a reader need not see: every line before the first
    trial and after the last, the baselines, the noise seeds, every trial marked on the front
    (`*`) when it printed, duplicates, failures, and the confirmation's lines; `...` where lines
    were left out."""
    trial = re.compile(r"^(r\d+ )?#\d+ ")
    keep = []
    first = next((i for i, line in enumerate(lines) if trial.match(line)), len(lines))
    last = max((i for i, line in enumerate(lines) if trial.match(line)), default=len(lines) - 1)
    for i, line in enumerate(lines):
        interesting = (i < first or i > last or not trial.match(line) or "baseline" in line
                       or "same as" in line or "failed" in line or re.match(r"^(r\d+ )?#\d+\s+\*", line)
                       or " -> confirmed " in line)
        if interesting:
            keep.append(line)
        elif not keep or keep[-1] != "...":
            keep.append("...")
    return keep


def machine() -> dict[str, object]:
    """What the samples ran on (in the words benchmarks/machine.py uses)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from machine import cpu_name  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "neither AVX2 nor AVX-512"
    return {"cpu": cpu_name(), "isa": isa, "cores": os.cpu_count(), "gpu": _gpu(), "python": platform.python_version()}


def _gpu() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - no torch, no GPU to name
        return None


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def generate(out: Path, *, tiny: bool, in_process: bool, folder: Path | None = None,
             table: Path | None = None) -> dict[str, object]:
    """Run the jobs in `folder` (a fresh temporary one by default) and write the samples to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    load_start = round(os.getloadavg()[0], 2)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nas-sample-")))
        study = prepare(folder, tiny, table)
        seconds = {}
        for name, args, expected in jobs(study):
            code, text, took = run_nas(args, folder, in_process)
            if code != expected:
                raise SystemExit(f"`nas {' '.join(args)}` exited {code}:\n{text}")
            text = text.replace(str(folder.resolve()), SHOWN_AS).replace(str(folder), SHOWN_AS)
            lines = text.rstrip("\n").splitlines()
            if name == "search":
                lines = shorten_search(lines)
            (out / f"{name}.txt").write_text(f"$ nas {' '.join(args)}\n" + "\n".join(lines) + "\n")
            seconds[name] = round(took, 1)
        plot = folder / "studies" / "demo_front.png"
        if plot.exists():
            shutil.copy(plot, out / "demo_front.png")
    meta = {"study": "tiny (synthetic)" if tiny else "studies/demo.yaml", "commit": commit(),
            "date": time.strftime("%Y-%m-%d"), "machine": machine(), "seconds": seconds,
            "in_process": in_process, "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
            "cores": os.cpu_count()}
    if table is not None:
        built = json.loads(table.read_text())
        where = table.resolve()
        meta["latency_table"] = {"reused": str(where.relative_to(ROOT) if where.is_relative_to(ROOT) else where),
                                 "built": built.get("built"), "signature": built.get("signature")}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(sample name, block body) for every marked sample block in a page."""
    return [(m["name"], m["body"]) for m in MARKED.finditer(text)]


def fill(text: str, samples: Path) -> str:
    """The page with every marked block replaced by its sample file."""
    return MARKED.sub(lambda m: m.group(1) + (samples / f"{m['name']}.txt").read_text() + m.group(4), text)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny synthetic study (seconds) instead of the demo")
    parser.add_argument("--out", type=Path, default=SAMPLES, help="where the samples go (default: docs/samples)")
    parser.add_argument("--no-write", action="store_true", help="do not copy the samples into README.md and docs/")
    parser.add_argument("--in-process", action="store_true", help="run nas in this process (the tests)")
    parser.add_argument("--table", type=Path, help="reuse this latency table (measured earlier on this machine by "
                        "`nas search` or `nas latency-table`) instead of measuring one: a loaded machine refuses to")
    parser.add_argument("--fill", action="store_true", help="run nothing: copy the samples in --out into the pages")
    args = parser.parse_args(argv)
    meta = None if args.fill else generate(args.out, tiny=args.tiny, in_process=args.in_process,
                                          table=args.table)
    if not args.no_write:
        png = args.out / "demo_front.png"
        if png.exists() and args.out.resolve() == SAMPLES.resolve():
            shutil.move(png, ROOT / "docs" / "demo_front.png")
        for page in pages():
            text = page.read_text()
            filled = fill(text, args.out)
            if filled != text:
                page.write_text(filled)
                print(f"updated {page.relative_to(ROOT)}")
    if meta is not None:
        print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
