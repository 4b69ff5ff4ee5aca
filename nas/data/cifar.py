"""CIFAR-10 and CIFAR-100 through torchvision, downloading only when the files are absent."""

from __future__ import annotations

import torch

from nas.data.dataset import Pool, Request, Split, first_line
from nas.errors import ConfigError, DataError


def read(request: Request) -> Pool:
    """The training set as the pool, the test set as the held-out split."""
    from torchvision import datasets

    name, cache = request.name, request.cache
    if request.path is not None:
        raise ConfigError(
            f"path = '{request.path}' is not used by dataset {name}; its files live under root ({cache})"
        )

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        try:
            train, test = cls(str(cache), train=True), cls(str(cache), train=False)
        except RuntimeError:  # absent or corrupt: torchvision downloads (and re-checks md5) only now
            train, test = cls(str(cache), train=True, download=True), cls(str(cache), train=False)
    except Exception as error:
        raise DataError(
            f"{name}: not found in {cache / cls.base_folder} and the download failed ({first_line(error)}); "
            f"run once on a machine online (torchvision downloads it into {cache}) or copy "
            f"{cls.filename} there"
        ) from None

    def split(ds: object) -> Split:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # type: ignore[attr-defined]
        return Split(images, torch.tensor(ds.targets, dtype=torch.int64))  # type: ignore[attr-defined]

    return Pool(split(train), split(test), tuple(train.classes), len(train.classes), flip=True)
