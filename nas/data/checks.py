"""Checking `load_dataset`'s settings before anything is read, and refusing an image size whose
decoded dataset would not fit in memory."""

from __future__ import annotations

import math
import os
from pathlib import Path

from nas.errors import ConfigError
from nas.validation import DatasetSettings, validate


def check_settings(
    *, subset: object = None, val_fraction: object = 0.1, image_size: object = None, seed: object = 0,
    in_chans: object = None, classes: object = None,
) -> tuple[int, int] | None:
    """Check `load_dataset`'s settings with the same model study files use (nas.validation);
    returns the image size as (H, W) or None."""
    settings = validate(DatasetSettings, {"name": "-", "subset": subset, "val_fraction": val_fraction,
                                          "image_size": image_size, "seed": seed, "in_chans": in_chans,
                                          "classes": classes})
    return settings.size



def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), else physical RAM."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Peak bytes per decoded byte while resizing: the resized splits plus the chunk being resized,
# plus the float batches and activations training needs beside them. A margin, not a measurement.
MEMORY_FACTOR = 2


def check_memory(n_images: int, chans: int, size: tuple[int, int], name: str) -> None:
    """Refuse an image size whose decoded dataset (uint8) cannot fit in the memory available now,
    before allocating it: a typo such as 100000 must not take the machine down."""
    need = MEMORY_FACTOR * n_images * chans * size[0] * size[1]
    have = available_memory()
    if need > have:
        side = int(math.sqrt(have / (MEMORY_FACTOR * n_images * chans)))
        value = size[0] if size[0] == size[1] else list(size)
        raise ConfigError(
            f"image_size = {value!r} is too large: {n_images:,} images of {name} at {chans}x{size[0]}x{size[1]} "
            f"need about {_bytes(need)} of memory and {_bytes(have)} is available; allowed: at most about "
            f"{side} px here (or a smaller subset)"
        )



def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"
