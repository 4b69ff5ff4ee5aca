"""Where datasets are cached (`default_root`), and a disk cache of decoded images, so that tens of
thousands of JPEGs are decoded once, not on every worker start (`nas.data.images` uses it for
ImageFolder trees and Tiny-ImageNet).

`load_or_build(folder, name, digest, build)` returns what `build()` returns — a mapping of CPU
tensors plus a small `meta` mapping of plain values — from `folder/<name>.pt` when that file was
written for the same `digest`, else builds it and writes it. The digest describes the source
(`source_digest`: every file's path, size and modification time, plus whatever else decides the
result), so a changed source rebuilds the entry rather than serving stale images.

Safety: the file is written to a temporary name and `os.replace`d into place, so a killed worker
never leaves a half-written entry under the real name; every tensor carries a CRC32 checked on
read, so a damaged or truncated file is ignored and rebuilt; builders take an exclusive `flock`
on `folder/<name>.lock` and look again once they hold it, so workers starting together decode
once and the rest read the result. A folder that cannot be written (read-only, full) costs the
cache, not the load: a warning, and the built value is returned.

Hand-written rather than `joblib.Memory` or `diskcache` (neither is a dependency): those key on
function arguments, not on a file manifest, and write without the checksum this needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from nas.files import atomic_write, exclusive_lock

VERSION = 1  # bump when the stored layout or the decoding that fills it changes


def default_root() -> Path:
    """The cache directory: `$NAS_DATA`, else `~/.cache/nas/datasets`."""
    env = os.environ.get("NAS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas" / "datasets"


def source_digest(files: Iterable[Path], extra: str = "") -> str:
    """sha256 over `extra` and every file's path, size and mtime (ns), in the given order.

    Raises FileNotFoundError for a file that vanished; stat-ing is what the cache costs on a hit
    (about 1 µs a file), far below decoding.
    """
    h = hashlib.sha256(f"v{VERSION}\n{extra}\n".encode())
    for file in files:
        st = os.stat(file)
        h.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_or_build(
    folder: Path, name: str, digest: str, build: Callable[[], Mapping[str, Any]]
) -> Mapping[str, Any]:
    """The cached value of `name` for `digest`, or `build()`'s, stored for the next caller.

    `build()` returns tensors under any keys plus optionally `meta` (str/int/float/list/dict
    values); an exception from it propagates and nothing is written.
    """
    path = folder / f"{name}.pt"
    hit = _read(path, digest)
    if hit is not None:
        return hit
    lock = contextlib.ExitStack()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.enter_context(exclusive_lock(folder / f"{name}.lock"))
    except OSError as error:
        warnings.warn(f"decoded-image cache disabled: cannot write {folder} ({error})", stacklevel=2)
        return build()
    with lock:
        hit = _read(path, digest)  # another worker may have built it while this one waited
        if hit is not None:
            return hit
        for stale in folder.glob(f".{name}.*.tmp"):  # left by a killed writer; the lock is ours
            stale.unlink(missing_ok=True)
        value = build()
        try:
            _write(path, digest, value)
        except OSError as error:
            warnings.warn(f"decoded-image cache not written to {path} ({error})", stacklevel=2)
        return value


def _read(path: Path, digest: str) -> dict[str, Any] | None:
    """The entry at `path` if it is whole and was written for `digest`; None otherwise."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # truncated, damaged or foreign: unpickling raises many types
        return None
    if not isinstance(stored, dict) or stored.get("version") != VERSION or stored.get("digest") != digest:
        return None
    tensors, crcs = stored.get("tensors"), stored.get("crc")
    if not isinstance(tensors, dict) or not isinstance(crcs, dict) or tensors.keys() != crcs.keys():
        return None
    if any(not isinstance(t, torch.Tensor) or _crc(t) != crcs[k] for k, t in tensors.items()):
        return None
    return {**tensors, "meta": stored.get("meta", {})}


def _write(path: Path, digest: str, value: Mapping[str, Any]) -> None:
    tensors = {k: v.contiguous() for k, v in value.items() if k != "meta"}
    record = {"version": VERSION, "digest": digest, "tensors": tensors,
              "crc": {k: _crc(t) for k, t in tensors.items()}, "meta": value.get("meta", {})}
    with atomic_write(path) as handle:
        torch.save(record, handle)


def _crc(tensor: torch.Tensor) -> int:
    """CRC32 of the tensor's bytes (zlib reads the buffer in place: no copy)."""
    return zlib.crc32(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())
