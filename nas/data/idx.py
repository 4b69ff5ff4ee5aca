"""Fashion-MNIST and MNIST: the idx files, from the cache, from `path` or Debian's
`dataset-fashion-mnist` package (decompressed once into torchvision's raw layout), else
torchvision's download."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from nas.data.dataset import Pool, Request, Split, first_line
from nas.errors import DataError
from nas.files import atomic_write

# Where Debian's dataset-fashion-mnist installs its gzip idx files; a module constant so that
# tests can point it elsewhere.
SYSTEM_DIRS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read(request: Request) -> Pool:
    """MNIST-layout idx files: cache, else `path` / Debian's package, else torchvision's download.

    Debian's gzip files differ in checksum from torchvision's list (they are recompressed), so they
    are decompressed into torchvision's raw layout rather than handed to its download check.
    """
    from torchvision import datasets

    name, path, cache = request.name, request.path, request.cache
    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    raw = cache / cls.__name__ / "raw"
    source = path if path is not None else SYSTEM_DIRS.get(name)
    if path is not None and not path.is_dir():
        raise DataError(
            f"{name}: path {path} is not a directory; expected a folder holding {IDX_FILES[0]}.gz etc."
        )
    if not _has_idx(raw) and source is not None and source.is_dir():
        _decompress_idx(source, raw, name)
    if not _has_idx(raw):
        if path is not None:
            expected = ", ".join(f + ".gz" for f in IDX_FILES)
            raise DataError(f"{name}: no idx files in {path}; expected {expected}")
        try:
            cls(str(cache), train=True, download=True)
        except Exception as error:  # torchvision raises RuntimeError/URLError/OSError offline
            hint = "apt-get install dataset-fashion-mnist, or " if name == "fashion-mnist" else ""
            looked = f"{SYSTEM_DIRS[name]} and {raw}" if name in SYSTEM_DIRS else str(raw)
            raise DataError(
                f"{name}: not found in {looked} and the download failed ({first_line(error)}); "
                f"get it with {hint}a machine online (torchvision downloads into {cache}), "
                "or pass path= a folder with the idx files"
            ) from None
    try:
        train, test = cls(str(cache), train=True), cls(str(cache), train=False)
    except Exception as error:  # a truncated or foreign file
        raise DataError(f"{name}: cannot read the idx files in {raw}: {first_line(error)}") from None
    return Pool(
        train=Split(train.data.unsqueeze(1).contiguous(), train.targets.long()),
        test=Split(test.data.unsqueeze(1).contiguous(), test.targets.long()),
        classes=tuple(cls.classes) if name == "fashion-mnist" else tuple(str(i) for i in range(10)),
        num_classes=10,
        # No flips for either: a mirrored digit is another symbol, and Fashion-MNIST shows every
        # item in one canonical pose (all shoes point left), so mirrored images lie off the test
        # distribution. In the 2-epoch proxy they never helped (benchmarks/proxy_accuracy.py
        # --flip on: 0.802 against 0.807 over 5 seeds).
        flip=False,
    )



def _has_idx(raw: Path) -> bool:
    return all((raw / f).is_file() for f in IDX_FILES)



def _decompress_idx(source: Path, raw: Path, name: str) -> None:
    """Copy the four idx files (gzip or plain) into `raw`, each written to a temporary name first
    so a killed process never leaves a truncated file that looks complete."""
    raw.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES:
        gz, plain = source / f"{stem}.gz", source / stem
        if not gz.is_file() and not plain.is_file():
            return  # incomplete source: fall through to the download / error
        target = raw / stem
        if target.is_file():
            continue
        try:
            with (gzip.open(gz) if gz.is_file() else open(plain, "rb")) as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as error:
            src_file = gz if gz.is_file() else plain
            raise DataError(f"{name}: cannot decompress {src_file} into {raw}: {error}") from None
