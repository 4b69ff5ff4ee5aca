"""`load_dataset`: a named dataset to uint8 train / validation / test splits held in memory.

The proxy trainer keeps whole splits on its device and augments them there in batches, so a
dataset here is plain tensors (N×C×H×W uint8 images, N int64 labels), read and resized once. The
validation split is carved from the training set with the seed; the test split (where the dataset
has one) is kept apart, for `nas train` only — the search never sees it.

Sources: Fashion-MNIST from Debian's `dataset-fashion-mnist` (decompressed once into the cache in
torchvision's raw layout) or torchvision's download; MNIST and CIFAR-10/100 through torchvision,
downloading only when the files are absent; Tiny-ImageNet-200 in its official zip's layout (never
downloaded); any ImageFolder tree; and a small generated set for tests and quick benchmarks.
Image files (ImageFolder, Tiny-ImageNet) are decoded once per (source, image size) and kept as
uint8 arrays in the cache folder (`nas.datacache`); the next load reads those instead.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nas.errors import ConfigError, DataError
from nas.files import atomic_write
from nas.validation import DatasetSettings, validate

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "tiny-imagenet", "imagefolder", "synthetic")
TINY_IMAGENET_DIR = "tiny-imagenet-200"  # the official zip's folder, looked for under root when path is unset

# Where Debian's dataset-fashion-mnist installs its gzip idx files; a module constant so that
# tests can point it elsewhere.
SYSTEM_DIRS: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# The generated set: enough images for a few hundred training steps to mean something, small
# enough to generate in milliseconds.
SYNTHETIC_TRAIN = 1000
SYNTHETIC_TEST = 200
SYNTHETIC_CLASSES = 10
SYNTHETIC_SHAPE = (3, 32, 32)

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes read as one channel


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
class _Pool:
    """What a source yields before subsetting and splitting."""

    train: Split
    test: Split | None
    classes: tuple[str, ...] | None
    num_classes: int
    flip: bool


def default_root() -> Path:
    """The cache directory: `$NAS_DATA`, else `~/.cache/nas/datasets`."""
    env = os.environ.get("NAS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas" / "datasets"


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
    if name not in DATASETS:
        raise ConfigError(f"dataset = {name!r} is not a dataset; allowed: {', '.join(DATASETS)}")
    size = check_settings(subset=subset, val_fraction=val_fraction, image_size=image_size, seed=seed,
                          in_chans=in_chans, classes=classes)
    cache = Path(root).expanduser() if root is not None else default_root()

    pool = _read_pool(name, None if path is None else Path(path).expanduser(), cache, seed, size)
    if classes is not None:
        pool = _first_classes(pool, classes, name)
    generator = torch.Generator().manual_seed(seed)
    train = pool.train
    if subset is not None:
        if subset > len(train):
            raise ConfigError(
                f"subset = {subset} is larger than the {len(train)} training images of {name}; "
                f"allowed: 2..{len(train)}"
            )
        train = _take(train, _balanced_sample(train.labels, subset, pool.num_classes, generator))
    val_idx, train_idx = _stratified_split(train.labels, val_fraction, pool.num_classes, generator, name)
    train, val = _take(train, train_idx), _take(train, val_idx)
    test = pool.test
    if size is not None:
        n = len(train) + len(val) + (len(test) if test is not None else 0)
        check_memory(n, int(train.images.shape[1]), size, name)
        train, val = _resize(train, size), _resize(val, size)
        test = _resize(test, size) if test is not None else None
    if in_chans is not None:
        train, val = _to_chans(train, in_chans), _to_chans(val, in_chans)
        test = _to_chans(test, in_chans) if test is not None else None
    mean, std = _channel_stats(train.images)
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


# ---------------------------------------------------------------------------------------------
# Sources


def _read_pool(name: str, path: Path | None, cache: Path, seed: int, size: tuple[int, int] | None) -> _Pool:
    if name == "imagefolder":
        if path is None:
            raise ConfigError("path is required for dataset imagefolder: a folder of class folders")
        return _read_imagefolder(path, size, cache)
    if name == "tiny-imagenet":
        return _read_tiny_imagenet(path if path is not None else cache / TINY_IMAGENET_DIR, size, cache)
    if name == "synthetic":
        if path is not None:
            raise ConfigError(f"path = '{path}' is not used by dataset synthetic; leave it unset")
        return _synthetic(seed)
    if name in ("fashion-mnist", "mnist"):
        return _read_mnist(name, path, cache)
    if path is not None:
        raise ConfigError(
            f"path = '{path}' is not used by dataset {name}; its files live under root ({cache})"
        )
    return _read_cifar(name, cache)


def _read_mnist(name: str, path: Path | None, cache: Path) -> _Pool:
    """MNIST-layout idx files: cache, else `path` / Debian's package, else torchvision's download.

    Debian's gzip files differ in checksum from torchvision's list (they are recompressed), so they
    are decompressed into torchvision's raw layout rather than handed to its download check.
    """
    from torchvision import datasets

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
                f"{name}: not found in {looked} and the download failed ({_first_line(error)}); "
                f"get it with {hint}a machine online (torchvision downloads into {cache}), "
                "or pass path= a folder with the idx files"
            ) from None
    try:
        train, test = cls(str(cache), train=True), cls(str(cache), train=False)
    except Exception as error:  # a truncated or foreign file
        raise DataError(f"{name}: cannot read the idx files in {raw}: {_first_line(error)}") from None
    return _Pool(
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


def _read_cifar(name: str, cache: Path) -> _Pool:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        try:
            train, test = cls(str(cache), train=True), cls(str(cache), train=False)
        except RuntimeError:  # absent or corrupt: torchvision downloads (and re-checks md5) only now
            train, test = cls(str(cache), train=True, download=True), cls(str(cache), train=False)
    except Exception as error:
        raise DataError(
            f"{name}: not found in {cache / cls.base_folder} and the download failed ({_first_line(error)}); "
            f"run once on a machine online (torchvision downloads it into {cache}) or copy "
            f"{cls.filename} there"
        ) from None

    def split(ds: object) -> Split:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # type: ignore[attr-defined]
        return Split(images, torch.tensor(ds.targets, dtype=torch.int64))  # type: ignore[attr-defined]

    return _Pool(split(train), split(test), tuple(train.classes), len(train.classes), flip=True)


def _read_imagefolder(path: Path, size: tuple[int, int] | None, cache: Path) -> _Pool:
    """`path/<class>/*.png` (validation carved from it), or `path/train` + `path/val` (val held out)."""
    if not path.exists():
        raise DataError(f"imagefolder: path {path} does not exist")
    if not path.is_dir():
        raise DataError(f"imagefolder: path {path} is not a directory")
    if (path / "train").is_dir() and (path / "val").is_dir():
        classes, train = _list_class_tree(path / "train", None)
        _, test = _list_class_tree(path / "val", classes)
    else:
        classes, train = _list_class_tree(path, None)
        test = None
    return _cached_pool("imagefolder", path, classes, train, test, size, cache)


def _list_class_tree(root: Path, known: list[str] | None) -> tuple[list[str], list[tuple[str, int]]]:
    """The class names and (file, label) samples of a tree of class folders, in torchvision
    ImageFolder's order (sorted classes, sorted files)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        classes, _ = find_classes(root)
    except FileNotFoundError:
        raise DataError(
            f"imagefolder: no class folders in {root}; expected one sub-folder per class holding "
            f"images (e.g. {root}/cat/0001.png)"
        ) from None
    if known is None and len(classes) < 2:
        raise DataError(
            f"imagefolder: {root} has a single class folder ({classes[0]}); a classifier needs at least 2"
        )
    if known is not None:
        extra = [c for c in classes if c not in known]
        if extra:
            raise DataError(
                f"imagefolder: {root} has class folder {extra[0]!r}, which the training folder lacks; "
                f"training classes: {', '.join(known)}"
            )
    class_to_idx = {c: i for i, c in enumerate(known if known is not None else classes)}
    try:
        mapping = {c: class_to_idx[c] for c in classes}
        samples = make_dataset(str(root), mapping, extensions=IMG_EXTENSIONS, allow_empty=known is not None)
    except FileNotFoundError as error:  # names the empty class folder(s)
        raise DataError(f"imagefolder: {root}: {_first_line(error)}") from None
    if not samples:
        raise DataError(f"imagefolder: no images in {root} (looked for {', '.join(IMG_EXTENSIONS)})")
    return classes, samples


def _read_tiny_imagenet(path: Path, size: tuple[int, int] | None, cache: Path) -> _Pool:
    """Tiny-ImageNet-200 in the official zip's layout: classes in `wnids.txt` order, training
    images in `train/<wnid>/images/`, and the labelled `val/` (labels in `val/val_annotations.txt`)
    as the test split; the unlabelled `test/` is not read."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

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
    return _cached_pool("tiny-imagenet", path, wnids, train, test, size, cache)


def _cached_pool(
    kind: str,
    path: Path,
    classes: list[str],
    train: list[tuple[str, int]],
    test: list[tuple[str, int]] | None,
    size: tuple[int, int] | None,
    cache: Path,
) -> _Pool:
    """Decode the samples, or read them from the decoded-image cache when the same files (paths,
    sizes, modification times) were decoded at the same size before."""
    from nas import datacache

    files = [f for f, _ in train] + ([f for f, _ in test] if test is not None else [])
    labels = [label for _, label in train] + ([label for _, label in test] if test is not None else [])
    try:
        digest = datacache.source_digest(files, f"{kind}\n{classes}\n{size}\n{len(train)}\n{labels}")
    except OSError as error:  # a listed file vanished or cannot be read
        raise DataError(f"{kind}: cannot read {getattr(error, 'filename', None) or path}: {error.strerror}") from None

    def build() -> dict[str, Any]:
        out: dict[str, Any] = {"train_images": _decode(train, size, kind),
                               "train_labels": torch.tensor(labels[: len(train)], dtype=torch.int64)}
        if test is not None:
            out["test_images"] = _decode(test, size, kind)
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
    return _Pool(Split(value["train_images"], value["train_labels"]), pool_test, tuple(classes), len(classes),
                 flip=True)


# Images decoded per chunk: resizing a chunk as one batch is ~8x faster than image by image
# (torchvision's uint8 path), and the chunk bounds the memory held at the source size.
DECODE_CHUNK = 4096


def _decode(samples: list[tuple[str, int]], size: tuple[int, int] | None, kind: str) -> torch.Tensor:
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
                raise DataError(f"{kind}: cannot read image {file}: {_first_line(error)}") from None
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


def _first_classes(pool: _Pool, n: int, name: str) -> _Pool:
    """The pool restricted to its first `n` classes (labels keep their values: 0..n-1)."""
    if n > pool.num_classes:
        raise ConfigError(
            f"classes = {n} is more than the {pool.num_classes} classes of {name}; allowed: 2..{pool.num_classes}"
        )

    def keep(split: Split) -> Split:
        return _take(split, (split.labels < n).nonzero().flatten())

    return _Pool(keep(pool.train), keep(pool.test) if pool.test is not None else None,
                 pool.classes[:n] if pool.classes is not None else None, n, pool.flip)


def _synthetic(seed: int) -> _Pool:
    """Class prototypes (smooth random fields, mirror-symmetric so flips keep the label) shown
    with random contrast, a small shift and pixel noise: learnable by a small CNN in a few
    hundred steps, not by a single pixel."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = SYNTHETIC_SHAPE
    coarse = torch.rand(SYNTHETIC_CLASSES, c, 4, 4, generator=g)
    coarse = (coarse + coarse.flip(-1)) / 2
    protos = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    protos = (protos - protos.mean(dim=(1, 2, 3), keepdim=True)) * 3.0  # contrast around mid-grey

    def draw(n: int) -> Split:
        labels = torch.arange(n) % SYNTHETIC_CLASSES
        labels = labels[torch.randperm(n, generator=g)]
        contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
        x = protos[labels] * contrast
        shift = torch.randint(-2, 3, (2,), generator=g).tolist()  # one shift per draw keeps it vectorised
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        x = 0.5 + x + 0.15 * torch.randn(n, c, h, w, generator=g)
        return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), labels.long())

    train, test = draw(SYNTHETIC_TRAIN), draw(SYNTHETIC_TEST)
    classes = tuple(f"class{i}" for i in range(SYNTHETIC_CLASSES))
    return _Pool(train, test, classes, SYNTHETIC_CLASSES, flip=True)


# ---------------------------------------------------------------------------------------------
# Sampling, splitting, resizing


def _balanced_sample(labels: torch.Tensor, n: int, num_classes: int, g: torch.Generator) -> torch.Tensor:
    """Indices of `n` images, as equal per class as the class sizes allow (a class too small gives
    all it has and the others share its remainder), random within each class."""
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    quota = _water_fill(counts, n, g)
    order = torch.randperm(len(labels), generator=g)
    ordered = labels[order]
    picked = [order[ordered == k][:q] for k, q in enumerate(quota) if q]
    return torch.cat(picked).sort().values


def _water_fill(counts: list[int], n: int, g: torch.Generator) -> list[int]:
    """Per-class quotas summing to `n` (<= sum(counts)): the highest common level every class
    can fill (capped by its size), plus one each for a random few of the classes above it."""
    lo, hi = 0, max(counts)
    while lo < hi:  # the largest level whose capped total does not exceed n
        mid = (lo + hi + 1) // 2
        if sum(min(c, mid) for c in counts) <= n:
            lo = mid
        else:
            hi = mid - 1
    quota = [min(c, lo) for c in counts]
    room = [k for k, c in enumerate(counts) if c > lo]
    for j in torch.randperm(len(room), generator=g)[: n - sum(quota)].tolist():
        quota[room[j]] += 1
    return quota


def _stratified_split(
    labels: torch.Tensor, fraction: float, num_classes: int, g: torch.Generator, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(val, train) indices: `round(N * fraction)` validation images spread over the classes in
    proportion to their size (largest remainders first), random within each class."""
    n = len(labels)
    n_val = round(n * fraction)
    if n_val < 1 or n_val >= n:
        raise ConfigError(
            f"val_fraction = {fraction} leaves {n_val} validation and {n - n_val} training images of "
            f"the {n} in {name}; choose a fraction that leaves at least one of each"
        )
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    exact = [c * n_val / n for c in counts]
    quota = [math.floor(e) for e in exact]
    by_remainder = sorted(range(num_classes), key=lambda k: quota[k] - exact[k])
    for k in by_remainder[: n_val - sum(quota)]:
        quota[k] += 1
    order = torch.randperm(n, generator=g)
    ordered = labels[order]  # gathered once, not once per class (200 classes for Tiny-ImageNet)
    val = torch.cat([order[ordered == k][:q] for k, q in enumerate(quota)])
    mask = torch.ones(n, dtype=torch.bool)
    mask[val] = False
    return val.sort().values, mask.nonzero().flatten()


def _take(split: Split, idx: torch.Tensor) -> Split:
    return Split(split.images[idx].contiguous(), split.labels[idx].contiguous())


def _resize(split: Split, size: tuple[int, int]) -> Split:
    """Resize uint8 images in chunks (antialiased bilinear, torchvision's uint8 fast path)."""
    from torchvision.transforms.v2 import functional as TF

    if tuple(split.images.shape[2:]) == size:
        return split
    chunks = [TF.resize(chunk, list(size), antialias=True) for chunk in split.images.split(4096)]
    return Split(torch.cat(chunks).contiguous(), split.labels)


def _to_chans(split: Split, chans: int) -> Split:
    from torchvision.transforms.v2 import functional as TF

    have = split.images.shape[1]
    if have == chans:
        return split
    if chans == 3:
        return Split(split.images.expand(-1, 3, -1, -1).contiguous(), split.labels)
    return Split(TF.rgb_to_grayscale(split.images, num_output_channels=1).contiguous(), split.labels)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std on the 0–1 scale from a 256-bin histogram per channel:
    no float copy of the whole split."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)  # uint8: no int64 copy
        total = hist.sum()
        mean = float((hist * values).sum() / total)
        var = float((hist * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(max(math.sqrt(var), 1e-3))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


# ---------------------------------------------------------------------------------------------
# Validation helpers


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

