"""`load_dataset`: a named dataset to uint8 train / validation / test splits, in steps: read the
source's pool (`nas.data.registry`), keep its first classes, draw the subset, carve the
validation split (`nas.data.split`), resize and convert (`nas.data.convert`), measure the
per-channel statistics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from nas.data.cache import default_root
from nas.data.checks import check_memory, check_settings
from nas.data.convert import channel_stats, resize, to_chans
from nas.data.dataset import Dataset, Request
from nas.data.registry import get_reader
from nas.data.split import balanced_sample, first_classes, stratified_split, take
from nas.errors import ConfigError


def load_dataset(
    name: str,
    *,
    path: str | Path | None = None,
    subset: int | None = None,
    val_fraction: float = 0.1,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    in_chans: int | None = None,
    classes: int | None = None,
) -> Dataset:
    """Load `name` and split it: train and val from the training pool, test kept apart.

    `path`: the ImageFolder tree (class folders, or `train/` + `val/`, where `val/` becomes the
    held-out test split); for fashion-mnist/mnist optionally a folder holding the four idx files.
    `subset`: a class-balanced sample of the training pool, drawn before the validation split.
    `image_size`: resize every split once, here (an int for square images, or (H, W)).
    `seed`: draws the subset and the validation split (and generates the synthetic set).
    `in_chans`: convert to 1 (luminance) or 3 (replicated) channels; default: as stored.
    `classes`: keep only the first N classes (in the dataset's class order, e.g. Tiny-ImageNet's
    wnids.txt) in every split, before the subset: a smaller task of the same images.
    `root`: the cache for downloads, decompressed files and decoded images (see `default_root`).
    For tiny-imagenet, `path` is the `tiny-imagenet-200` folder (default: `root/tiny-imagenet-200`).
    """
    reader = get_reader(name)
    size = check_settings(subset=subset, val_fraction=val_fraction, image_size=image_size, seed=seed,
                          in_chans=in_chans, classes=classes)
    cache = Path(root).expanduser() if root is not None else default_root()

    pool = reader(Request(name, None if path is None else Path(path).expanduser(), cache, seed, size))
    if classes is not None:
        pool = first_classes(pool, classes, name)
    generator = torch.Generator().manual_seed(seed)
    train = pool.train
    if subset is not None:
        if subset > len(train):
            raise ConfigError(
                f"subset = {subset} is larger than the {len(train)} training images of {name}; "
                f"allowed: 2..{len(train)}"
            )
        train = take(train, balanced_sample(train.labels, subset, pool.num_classes, generator))
    val_idx, train_idx = stratified_split(train.labels, val_fraction, pool.num_classes, generator, name)
    train, val = take(train, train_idx), take(train, val_idx)
    test = pool.test
    if size is not None:
        n = len(train) + len(val) + (len(test) if test is not None else 0)
        check_memory(n, int(train.images.shape[1]), size, name)
        train, val = resize(train, size), resize(val, size)
        test = resize(test, size) if test is not None else None
    if in_chans is not None:
        train, val = to_chans(train, in_chans), to_chans(val, in_chans)
        test = to_chans(test, in_chans) if test is not None else None
    mean, std = channel_stats(train.images)
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=pool.num_classes,
        in_chans=int(train.images.shape[1]),
        image_size=(int(train.images.shape[2]), int(train.images.shape[3])),
        mean=mean,
        std=std,
        flip=pool.flip,
        classes=pool.classes,
    )
