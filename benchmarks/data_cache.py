"""Does the decoded-image cache pay? First (cold) and second load of CIFAR-10 from JPEGs (issue 8, part 1).

Loads the 60,000 CIFAR-10 JPEGs that shared/data/stage-datasets.sh stages (train/ and val/ class
folders) as an `imagefolder` twice in one process, with a fresh, empty cache folder: the first
load decodes every file and writes the cache, the second finds the same files (paths, sizes,
mtimes) and reads the decoded arrays. Bar: second load <= 20% of the first. The files' own bytes
are in the OS page cache for both loads after any earlier read, so the first figure is decoding,
not disk: the honest lower bound of what the cache saves.

    .venv/bin/python benchmarks/data_cache.py --data /work/data      # about 30 s on 2 CPU cores

Writes benchmarks/results/data_cache.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from harness import ROOT, describe, write_json

from nas import load_dataset

BAR = 0.20  # second load / first load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"),
                        help="the folder stage-datasets.sh filled (holds cifar10/train and cifar10/val)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_cache.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    source = args.data / "cifar10"
    if not (source / "train").is_dir():
        parser.error(f"--data: {source / 'train'} is missing; run shared/data/stage-datasets.sh DEST MIRRORS cifar10")

    import torchvision.datasets.folder  # noqa: F401 - imported before timing: the first load times decoding
    import torchvision.transforms.v2.functional  # noqa: F401

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nas-cache-") as cache:
        times, shapes = [], []
        for _ in range(2):
            start = time.perf_counter()
            data = load_dataset("imagefolder", path=source, root=cache)
            times.append(time.perf_counter() - start)
            shapes.append((len(data.train), len(data.val), len(data.test)))
        cache_bytes = sum(p.stat().st_size for p in (Path(cache) / "decoded").glob("*.pt"))
    if shapes[0] != shapes[1]:
        raise SystemExit(f"the two loads differ: {shapes}")
    ratio = times[1] / times[0]
    result = {
        "dataset": f"imagefolder {source} (CIFAR-10 JPEG q75 copy: 50,000 train + 10,000 test)",
        "images": sum(shapes[0]),
        "first_load_s": round(times[0], 3),
        "second_load_s": round(times[1], 3),
        "ratio": round(ratio, 4),
        "bar": f"second <= {BAR:.0%} of first",
        "met": ratio <= BAR,
        "cache_mb": round(cache_bytes / 1e6, 1),
        "machine": describe("cpu"),
        "load_average_1min_before": round(load_before, 2),  # the machine is shared: other work slows both loads
        "torch": torch.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result, indent=2)
    print(f"{result['images']:,} images ({shapes[0][0]:,} train, {shapes[0][1]:,} val, {shapes[0][2]:,} test)")
    print(f"first load (cold cache) {times[0]:.2f} s, second load {times[1]:.2f} s: ratio {ratio:.3f} "
          f"(bar <= {BAR}: {'met' if ratio <= BAR else 'missed'}); cache {result['cache_mb']} MB")
    print(f"{result['machine']}; written to {args.out}")


if __name__ == "__main__":
    main()
