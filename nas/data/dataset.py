"""What a dataset is once loaded: uint8 splits held in memory (`Split`, `Dataset`); what a reader
is asked for (`Request`) and returns before subsetting and splitting (`Pool`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split: `images` uint8 N×C×H×W, `labels` int64 N (class indices)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])



@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset. `mean`/`std` are per channel on the 0–1 scale, measured on `train`.

    `flip` says whether a horizontally flipped image is still a likely image of its class (not
    for digits, nor for Fashion-MNIST's canonically posed items). `test` is None when the source
    has no held-out split.
    """

    name: str
    train: Split
    val: Split
    test: Split | None
    num_classes: int
    in_chans: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    classes: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        test = len(self.test) if self.test is not None else None
        return (
            f"Dataset({self.name!r}, train={len(self.train)}, val={len(self.val)}, test={test}, "
            f"num_classes={self.num_classes}, in_chans={self.in_chans}, image_size={self.image_size})"
        )


@dataclasses.dataclass
class Pool:
    """What a reader yields before subsetting and splitting: the training pool, the held-out test
    split (None when the source has none), the class names, and whether flips keep the class."""

    train: Split
    test: Split | None
    classes: tuple[str, ...] | None
    num_classes: int
    flip: bool

@dataclasses.dataclass(frozen=True)
class Request:
    """What a reader is asked for: the dataset's name (one reader may serve several), the `path`
    the user gave (None: unset), the cache folder, the seed and the image size (H, W) it will be
    resized to (None: as stored; readers that decode image files decode straight to it)."""

    name: str
    path: Path | None
    cache: Path
    seed: int
    size: tuple[int, int] | None


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
