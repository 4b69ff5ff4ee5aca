"""How long the `nas` command takes to start: the commands that should answer at once.

Each command runs in a fresh process (the installed console script), median of `--repeats`
runs, wall clock. `import nas` is timed the same way, since every command pays it.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--out benchmarks/results/cli_startup.json]

Writes the JSON given by --out; prints one line per command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from harness import ROOT, cpu_name, write_json

SCRIPT = Path(sys.executable).with_name("nas")


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli_startup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "broken.yaml").write_text("name: broken\ndataset: {name: synthetic\n")
        # a finished study to read: two trials on the generated set (about 20 s, not timed)
        (folder / "tiny.yaml").write_text(
            "name: tiny\nbackbone: cifar_resnet\nbackbone_args: {depth: 8, width: 4}\n"
            "dataset: {name: synthetic, subset: 200, image_size: 16}\nsearch_space: {kinds: [none, se]}\n"
            "proxy: {epochs: 1, batch_size: 64, threads: 1}\nbaselines: [none, se]\ntrials: 2\n")
        subprocess.run([str(SCRIPT), "search", "tiny.yaml", "--no-progress"], cwd=folder, capture_output=True,
                       check=True)
        commands = {
            "import nas": [sys.executable, "-c", "import nas"],
            "nas --help": [str(SCRIPT), "--help"],
            "nas --version": [str(SCRIPT), "--version"],
            "nas search --help": [str(SCRIPT), "search", "--help"],
            "nas check <malformed YAML>": [str(SCRIPT), "check", "broken.yaml"],
            "nas front <finished study>": [str(SCRIPT), "front", "tiny.yaml"],
        }
        timed(commands["import nas"], folder)  # warm the page cache once
        results = {}
        for name, command in commands.items():
            times = [timed(command, folder) for _ in range(args.repeats)]
            results[name] = {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
            print(f"{name:<28} {statistics.median(times):6.2f} s  (median of {args.repeats})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    record = {
        "machine": f"{cpu_name()} ({os.cpu_count()} cores)",
        "commit": commit.stdout.strip(),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min": round(os.getloadavg()[0], 2),  # the machine is shared: timings scale with load
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
