"""Image files (ImageFolder trees, Tiny-ImageNet) to a `Pool`: every image decoded once with PIL
per (source, image size) and kept as uint8 arrays in the cache (`nas.data.cache`); the next load
reads those instead."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from nas.data import cache as datacache
from nas.data.checks import check_memory
from nas.data.dataset import Pool, Split, first_line
from nas.errors import DataError

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes read as one channel


def cached_pool(
    kind: str,
    path: Path,
    classes: list[str],
    train: list[tuple[str, int]],
    test: list[tuple[str, int]] | None,
    size: tuple[int, int] | None,
    cache: Path,
) -> Pool:
    """Decode the samples, or read them from the decoded-image cache when the same files (paths,
    sizes, modification times) were decoded at the same size before."""
    files = [f for f, _ in train] + ([f for f, _ in test] if test is not None else [])
    labels = [label for _, label in train] + ([label for _, label in test] if test is not None else [])
    try:
        digest = datacache.source_digest(files, f"{kind}\n{classes}\n{size}\n{len(train)}\n{labels}")
    except OSError as error:  # a listed file vanished or cannot be read
        raise DataError(f"{kind}: cannot read {getattr(error, 'filename', None) or path}: {error.strerror}") from None

    def build() -> dict[str, Any]:
        out: dict[str, Any] = {"train_images": decode(train, size, kind),
                               "train_labels": torch.tensor(labels[: len(train)], dtype=torch.int64)}
        if test is not None:
            out["test_images"] = decode(test, size, kind)
            out["test_labels"] = torch.tensor(labels[len(train):], dtype=torch.int64)
            if out["train_images"].shape[1:] != out["test_images"].shape[1:]:
                raise DataError(
                    f"{kind}: {path} test images are {tuple(out['test_images'].shape[1:])} but training "
                    f"images are {tuple(out['train_images'].shape[1:])}; pass image_size"
                )
        return out

    resolved = path.resolve()
    name = f"{kind}-{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}-" + (
        f"{size[0]}x{size[1]}" if size is not None else "native")
    value = datacache.load_or_build(cache / "decoded", name, digest, build)
    pool_test = Split(value["test_images"], value["test_labels"]) if test is not None else None
    return Pool(Split(value["train_images"], value["train_labels"]), pool_test, tuple(classes), len(classes),
                 flip=True)


# Images decoded per chunk: resizing a chunk as one batch is ~8x faster than image by image
# (torchvision's uint8 path), and the chunk bounds the memory held at the source size.
DECODE_CHUNK = 4096


def decode(samples: list[tuple[str, int]], size: tuple[int, int] | None, kind: str) -> torch.Tensor:
    """Decode every image once with PIL (it reads every format torchvision's ImageFolder lists)
    into one uint8 N×C×H×W tensor; alpha is dropped, and grayscale stays one channel unless a
    colour image is present (then it is replicated to 3)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    if size is not None:
        check_memory(len(samples), 3, size, kind)  # 3: colour until decoded
    chunks: list[torch.Tensor] = []
    first: tuple[int, int] | None = None
    for start in range(0, len(samples), DECODE_CHUNK):
        images: list[torch.Tensor] = []
        for file, _ in samples[start: start + DECODE_CHUNK]:
            try:
                with Image.open(file) as img:
                    mode = "L" if img.mode in GRAY_MODES else "RGB"
                    images.append(TF.pil_to_tensor(img.convert(mode)))
            except (OSError, UnidentifiedImageError, ValueError) as error:
                raise DataError(f"{kind}: cannot read image {file}: {first_line(error)}") from None
        if any(im.shape[0] == 3 for im in images):
            images = [im.expand(3, -1, -1) if im.shape[0] == 1 else im for im in images]
        shapes = [tuple(im.shape[1:]) for im in images]
        first = first or shapes[0]
        if size is None and any(s != first for s in shapes):
            other = next(i for i, s in enumerate(shapes) if s != first)
            raise DataError(
                f"{kind}: images differ in size ({first[0]}x{first[1]} at {samples[0][0]}, "
                f"{shapes[other][0]}x{shapes[other][1]} at {samples[start + other][0]}); pass image_size"
            )
        if size is not None and len(set(shapes)) > 1:  # mixed sizes: one by one
            images = [im if tuple(im.shape[1:]) == size else TF.resize(im, list(size), antialias=True)
                      for im in images]
        chunk = torch.stack(images)
        if size is not None and tuple(chunk.shape[2:]) != size:
            chunk = TF.resize(chunk, list(size), antialias=True)
        chunks.append(chunk)
    if len({c.shape[1] for c in chunks}) > 1:
        chunks = [c.expand(-1, 3, -1, -1) for c in chunks]
    return torch.cat(chunks).contiguous()
