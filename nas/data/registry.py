"""The dataset registry: a name to the reader that yields its pool. A new dataset is its reader's
file (a `read(request: Request) -> Pool` function, see `nas.data.synthetic` for the smallest) and
one line here; `load_dataset`, study files, `nas schema` and the error for an unknown name take
the names from this dict."""

from __future__ import annotations

from collections.abc import Callable

from nas.data import cifar, idx, imagefolder, synthetic, tiny_imagenet
from nas.data.dataset import Pool, Request
from nas.errors import ConfigError

Reader = Callable[[Request], Pool]

READERS: dict[str, Reader] = {
    "fashion-mnist": idx.read,
    "mnist": idx.read,
    "cifar10": cifar.read,
    "cifar100": cifar.read,
    "tiny-imagenet": tiny_imagenet.read,
    "imagefolder": imagefolder.read,
    "synthetic": synthetic.read,
}
DATASETS = tuple(READERS)


def get_reader(name: str) -> Reader:
    """The reader of dataset `name`; a miss lists the valid names."""
    if not isinstance(name, str) or name not in READERS:
        raise ConfigError(f"dataset = {name!r} is not a dataset; allowed: {', '.join(DATASETS)}")
    return READERS[name]
