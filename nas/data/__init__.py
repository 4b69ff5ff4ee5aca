"""Datasets: a named dataset to uint8 train / validation / test splits held in memory.

The proxy trainer keeps whole splits on its device and augments them there in batches, so a
dataset here is plain tensors (N×C×H×W uint8 images, N int64 labels), read and resized once. The
validation split is carved from the training set with the seed; the test split (where the dataset
has one) is kept apart, for `nas train` only — the search never sees it.

One job per module:

- `dataset`: `Split`, `Dataset`; a reader's `Request` and its `Pool`;
- `registry`: dataset name -> reader (a new dataset is its reader's file and one line there);
- one reader per source: `idx` (Fashion-MNIST from Debian's `dataset-fashion-mnist`, or MNIST,
  else torchvision's download), `cifar` (CIFAR-10/100 through torchvision, downloading only when
  absent), `tiny_imagenet` (the official zip's layout, never downloaded), `imagefolder` (any
  ImageFolder tree), `synthetic` (a small generated set for tests and quick benchmarks);
- `images`: image files decoded once per (source, image size) into the cache;
- `cache`: the cache folder and its decoded-image store;
- `split`: first classes, class-balanced subset, stratified validation split;
- `convert`: resizing, channel count, per-channel statistics;
- `checks`: the settings and the memory a size needs, refused before anything is read;
- `load`: `load_dataset`, the steps above in order.
"""

from nas.data.cache import default_root
from nas.data.checks import MEMORY_FACTOR, available_memory, check_memory, check_settings
from nas.data.dataset import Dataset, Pool, Request, Split
from nas.data.idx import IDX_FILES, SYSTEM_DIRS
from nas.data.images import DECODE_CHUNK, GRAY_MODES
from nas.data.load import load_dataset
from nas.data.registry import DATASETS, READERS, get_reader
from nas.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_SHAPE, SYNTHETIC_TEST, SYNTHETIC_TRAIN
from nas.data.tiny_imagenet import TINY_IMAGENET_DIR

# every public name the single-module nas.data had, so that `from nas.data import X` keeps working

__all__ = [
    "DATASETS",
    "DECODE_CHUNK",
    "GRAY_MODES",
    "IDX_FILES",
    "MEMORY_FACTOR",
    "READERS",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_SHAPE",
    "SYNTHETIC_TEST",
    "SYNTHETIC_TRAIN",
    "SYSTEM_DIRS",
    "TINY_IMAGENET_DIR",
    "Dataset",
    "Pool",
    "Request",
    "Split",
    "available_memory",
    "check_memory",
    "check_settings",
    "default_root",
    "get_reader",
    "load_dataset",
]
