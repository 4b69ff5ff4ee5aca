"""Tiny-ImageNet-200 in its official zip's layout (never downloaded); decoded once per image
size (`nas.data.images`)."""

from __future__ import annotations

import os

from nas.data.dataset import Pool, Request
from nas.data.images import cached_pool
from nas.errors import DataError

TINY_IMAGENET_DIR = "tiny-imagenet-200"  # the official zip's folder, looked for under root when path is unset


def read(request: Request) -> Pool:
    """Tiny-ImageNet-200 in the official zip's layout: classes in `wnids.txt` order, training
    images in `train/<wnid>/images/`, and the labelled `val/` (labels in `val/val_annotations.txt`)
    as the test split; the unlabelled `test/` is not read."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    path = request.path if request.path is not None else request.cache / TINY_IMAGENET_DIR  # the default

    layout = "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt"
    if not path.is_dir():
        raise DataError(
            f"tiny-imagenet: {path} is not a folder; expected the official tiny-imagenet-200 folder "
            f"({layout}); unzip tiny-imagenet-200.zip and pass path= that folder (it is never downloaded)"
        )
    wnids_file, annotations = path / "wnids.txt", path / "val" / "val_annotations.txt"
    for needed in (wnids_file, annotations):
        if not needed.is_file():
            raise DataError(f"tiny-imagenet: {needed} is missing; expected the official layout ({layout})")
    wnids = [line.strip() for line in wnids_file.read_text().splitlines() if line.strip()]
    if len(wnids) < 2 or len(set(wnids)) != len(wnids):
        raise DataError(f"tiny-imagenet: {wnids_file} must list at least 2 distinct class ids, one a line")
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[str, int]] = []
    for wnid, label in index.items():
        folder = path / "train" / wnid / "images"
        files = sorted(f for f in os.listdir(folder) if has_file_allowed_extension(f, IMG_EXTENSIONS)) \
            if folder.is_dir() else []
        if not files:
            raise DataError(f"tiny-imagenet: no training images in {folder} (class {wnid} of {wnids_file})")
        train.extend((str(folder / f), label) for f in files)
    test: list[tuple[str, int]] = []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(
                f"tiny-imagenet: {annotations} line {number} = {line.strip()!r}; expected "
                "'<file>\\t<wnid>\\t...' with a wnid listed in wnids.txt"
            )
        test.append((str(path / "val" / "images" / fields[0]), index[fields[1]]))
    return cached_pool("tiny-imagenet", path, wnids, train, test, request.size, request.cache)
