"""load_dataset on data the tests make (ImageFolder PNGs, a Tiny-ImageNet tree of JPEGs, idx files, the
synthetic set) and on Debian's Fashion-MNIST when installed; the decoded-image cache."""

from __future__ import annotations

import gzip
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas import ConfigError, DataError
from nas import data as nas_data
from nas.data import idx, images, load_dataset

SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-image caches of these tests go to a temporary folder, not the user's home."""
    monkeypatch.setenv("NAS_DATA", str(tmp_path_factory.mktemp("nas-data")))


# ---------------------------------------------------------------------------------------------
# Helpers: trees of PNGs whose pixels encode the image's id, so splits can be checked by content.


def _write_png(path: Path, ident: int, size: tuple[int, int] = (8, 8), mode: str = "L") -> None:
    h, w = size
    pixels = np.full((h, w), 7, dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = ident % 256, ident // 256
    if mode == "RGB":
        pixels = np.stack([pixels, pixels, np.full_like(pixels, 200)], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


def make_tree(root: Path, counts: dict[str, int], start: int = 0, **kwargs: object) -> int:
    ident = start
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            _write_png(root / cls / f"{ident:05d}.png", ident, **kwargs)  # type: ignore[arg-type]
            ident += 1
    return ident


def ids(split: nas_data.Split) -> list[int]:
    return (split.images[:, 0, 0, 0].long() + 256 * split.images[:, 0, 0, 1].long()).tolist()


# ---------------------------------------------------------------------------------------------
# Synthetic


def test_synthetic_default_shape_and_splits() -> None:
    data = load_dataset("synthetic")
    assert (len(data.train), len(data.val), len(data.test)) == (900, 100, 200)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert tuple(data.train.images.shape[1:]) == (3, 32, 32)
    assert (data.num_classes, data.in_chans, data.image_size) == (10, 3, (32, 32))
    assert len(data.mean) == len(data.std) == 3 and all(0 < s < 1 for s in data.std)
    assert data.flip and data.classes is not None and len(data.classes) == 10
    # stratified validation split: 10 images of each class
    assert torch.bincount(data.val.labels, minlength=10).tolist() == [10] * 10


def test_synthetic_is_generated_from_the_seed() -> None:
    a, b, c = load_dataset("synthetic"), load_dataset("synthetic"), load_dataset("synthetic", seed=1)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.train.images, c.train.images)


def test_synthetic_subset_size_and_channels() -> None:
    data = load_dataset("synthetic", subset=200, image_size=16, in_chans=1)
    assert (len(data.train), len(data.val)) == (180, 20)
    assert tuple(data.train.images.shape[1:]) == (1, 16, 16)
    assert tuple(data.test.images.shape[1:]) == (1, 16, 16)
    assert data.in_chans == 1 and data.image_size == (16, 16)
    assert torch.bincount(torch.cat([data.train.labels, data.val.labels])).tolist() == [20] * 10


def test_mean_and_std_are_measured_on_train() -> None:
    data = load_dataset("synthetic")
    x = data.train.images.double() / 255
    assert data.mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    assert data.std == pytest.approx(x.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# ImageFolder


def test_imagefolder_reads_classes_and_val_is_disjoint(tmp_path: Path) -> None:
    total = make_tree(tmp_path, {"cat": 20, "dog": 20, "eel": 20})
    data = load_dataset("imagefolder", path=tmp_path, val_fraction=0.25, seed=3)
    assert data.classes == ("cat", "dog", "eel") and data.num_classes == 3
    assert (data.in_chans, data.image_size) == (1, (8, 8)) and data.test is None
    train_ids, val_ids = ids(data.train), ids(data.val)
    assert len(val_ids) == 15 and len(train_ids) == 45
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == list(range(total))
    # labels follow the folder each image came from (ids 0-19 cat, 20-39 dog, 40-59 eel)
    assert all(label == i // 20 for i, label in zip(train_ids, data.train.labels.tolist(), strict=True))
    # another seed carves another validation split
    other = load_dataset("imagefolder", path=tmp_path, val_fraction=0.25, seed=4)
    assert set(ids(other.val)) != set(val_ids)


def test_imagefolder_train_val_layout_holds_val_out_as_test(tmp_path: Path) -> None:
    n = make_tree(tmp_path / "train", {"a": 10, "b": 10})
    make_tree(tmp_path / "val", {"b": 4}, start=n)  # a val tree may lack a class
    data = load_dataset("imagefolder", path=tmp_path, val_fraction=0.2)
    assert data.classes == ("a", "b")
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 4)
    assert set(ids(data.test)) == set(range(n, n + 4))
    assert data.test.labels.tolist() == [1, 1, 1, 1]  # "b" keeps the training index
    assert not set(ids(data.test)) & set(ids(data.train) + ids(data.val))


def test_imagefolder_subset_is_class_balanced(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": 10, "b": 30, "c": 40})
    data = load_dataset("imagefolder", path=tmp_path, subset=30, val_fraction=0.2)
    pool = torch.cat([data.train.labels, data.val.labels])
    assert torch.bincount(pool).tolist() == [10, 10, 10]
    # a class too small gives all it has; the others share the rest equally
    data = load_dataset("imagefolder", path=tmp_path, subset=50, val_fraction=0.2)
    counts = torch.bincount(torch.cat([data.train.labels, data.val.labels])).tolist()
    assert counts == [10, 20, 20]
    data = load_dataset("imagefolder", path=tmp_path, subset=31, val_fraction=0.2)
    counts = torch.bincount(torch.cat([data.train.labels, data.val.labels])).tolist()
    assert counts[0] == 10 and sorted(counts[1:]) == [10, 11]


def test_imagefolder_image_size_and_colour(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": 3}, size=(8, 8))
    make_tree(tmp_path, {"b": 3}, start=3, size=(12, 10), mode="RGB")
    with pytest.raises(DataError, match="differ in size.*pass image_size"):
        load_dataset("imagefolder", path=tmp_path, val_fraction=0.5)
    data = load_dataset("imagefolder", path=tmp_path, val_fraction=0.5, image_size=(6, 5))
    assert tuple(data.train.images.shape[1:]) == (3, 6, 5) and data.in_chans == 3
    gray = {i: data.train.images[k] for k, i in enumerate(data.train.labels.tolist()) if i == 0}
    for image in gray.values():  # a grayscale image among colour ones is replicated to 3 channels
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("empty", "no class folders"),
        ("single", "single class folder"),
        ("empty_class", "Found no valid file for the classes b"),
        ("corrupt", "cannot read image"),
    ],
)
def test_imagefolder_refuses_bad_trees(tmp_path: Path, layout: str, message: str) -> None:
    path = tmp_path / "data"
    if layout == "file":
        path.write_text("not a folder")
    elif layout == "empty":
        path.mkdir()
    elif layout == "single":
        make_tree(path, {"only": 4})
    elif layout == "empty_class":
        make_tree(path, {"a": 4})
        (path / "b").mkdir()
    elif layout == "corrupt":
        make_tree(path, {"a": 2, "b": 2})
        (path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message) as info:
        load_dataset("imagefolder", path=path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Tiny-ImageNet (a generated tree in the official zip's layout) and the decoded-image cache

# wnids.txt lists the classes unsorted, as the official file does: the order must come from it.
TIN_WNIDS = ["n03000003", "n01000001", "n02000002"]
TIN_TRAIN = 6  # images per class
TIN_VAL = [("n01000001", 2), ("n02000002", 3), ("n03000003", 1)]  # (class, val images)


def _class_colour(label: int) -> int:
    return 30 + 80 * label  # flat grey levels JPEG keeps within a few steps, far apart


def _write_jpeg(path: Path, level: int, mode: str = "RGB", size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), level if mode == "L" else (level, level, level)).save(path, quality=90)


def make_tiny_imagenet(root: Path) -> Path:
    """A Tiny-ImageNet-200 tree: class order from wnids.txt, pixels = that class's grey level."""
    (root / "test" / "images").mkdir(parents=True)
    _write_jpeg(root / "test" / "images" / "test_0.JPEG", 255)  # unlabelled: never read
    (root / "wnids.txt").write_text("".join(w + "\n" for w in TIN_WNIDS))
    (root / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in TIN_WNIDS))
    for label, wnid in enumerate(TIN_WNIDS):
        folder = root / "train" / wnid
        for i in range(TIN_TRAIN):  # one grayscale JPEG per class, as the real set has some
            _write_jpeg(folder / "images" / f"{wnid}_{i}.JPEG", _class_colour(label), "L" if i == 0 else "RGB")
        (folder / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t15\t15\n")
    lines, n = [], 0
    for wnid, count in TIN_VAL:
        for _ in range(count):
            _write_jpeg(root / "val" / "images" / f"val_{n}.JPEG", _class_colour(TIN_WNIDS.index(wnid)))
            lines.append(f"val_{n}.JPEG\t{wnid}\t0\t0\t15\t15\n")
            n += 1
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    return root


def colour_labels(split: nas_data.Split) -> list[int]:
    """The class each image was drawn as, read back from its mean grey level."""
    means = split.images.float().mean(dim=(1, 2, 3))
    return [min(range(len(TIN_WNIDS)), key=lambda k: abs(_class_colour(k) - m)) for m in means.tolist()]


def test_tiny_imagenet_layout_labels_and_test_split(tmp_path: Path) -> None:
    path = make_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    data = load_dataset("tiny-imagenet", path=path, root=tmp_path / "cache", val_fraction=1 / 6)
    assert data.classes == tuple(TIN_WNIDS) and data.num_classes == 3  # wnids.txt order, not sorted
    assert (len(data.train), len(data.val), len(data.test)) == (15, 3, 6)  # test = the labelled val
    assert (data.in_chans, data.image_size) == (3, (16, 16)) and data.flip
    for split in (data.train, data.val, data.test):
        assert split.labels.tolist() == colour_labels(split)
    # val/val_annotations.txt gives the test labels: class index in wnids.txt order
    assert sorted(data.test.labels.tolist()) == [0, 1, 1, 2, 2, 2]
    # ImageNet32-style downsampling, and root/tiny-imagenet-200 found when path is unset
    small = load_dataset("tiny-imagenet", root=tmp_path, image_size=8, val_fraction=1 / 6)
    assert tuple(small.train.images.shape[1:]) == (3, 8, 8) and tuple(small.test.images.shape[1:]) == (3, 8, 8)
    assert small.test.labels.tolist() == colour_labels(small.test)


def test_first_classes_keep_their_order_in_every_split(tmp_path: Path) -> None:
    path = make_tiny_imagenet(tmp_path / "tin")
    data = load_dataset("tiny-imagenet", path=path, classes=2, val_fraction=0.25)
    assert data.classes == tuple(TIN_WNIDS[:2]) and data.num_classes == 2
    assert (len(data.train) + len(data.val), len(data.test)) == (12, 3)
    assert set(data.test.labels.tolist()) == {0, 1} and data.test.labels.tolist() == colour_labels(data.test)
    with pytest.raises(ConfigError, match="classes = 4 is more than the 3 classes of tiny-imagenet; allowed: 2..3"):
        load_dataset("tiny-imagenet", path=path, classes=4)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_folder", "is not a folder; expected the official tiny-imagenet-200 folder"),
        ("no_wnids", "wnids.txt is missing"),
        ("unknown_wnid", "val_annotations.txt line 2 = 'val_1.JPEG\\tn09999999'"),
        ("empty_class", "no training images in"),
        ("missing_val_image", "cannot read"),
    ],
)
def test_tiny_imagenet_refuses_a_broken_tree(tmp_path: Path, damage: str, message: str) -> None:
    path = make_tiny_imagenet(tmp_path / "tin")
    if damage == "no_folder":
        path = tmp_path / "absent"
    elif damage == "no_wnids":
        (path / "wnids.txt").unlink()
    elif damage == "unknown_wnid":
        lines = (path / "val" / "val_annotations.txt").read_text().splitlines()
        lines[1] = "val_1.JPEG\tn09999999"
        (path / "val" / "val_annotations.txt").write_text("\n".join(lines))
    elif damage == "empty_class":
        for file in (path / "train" / TIN_WNIDS[1] / "images").iterdir():
            file.unlink()
    elif damage == "missing_val_image":
        (path / "val" / "images" / "val_4.JPEG").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("tiny-imagenet", path=path)
    assert message in str(info.value) and "\n" not in str(info.value)


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = images.decode

    def counting(samples, size, kind):  # type: ignore[no-untyped-def]
        calls.append(len(samples))
        return real(samples, size, kind)

    monkeypatch.setattr(images, "decode", counting)
    return calls


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "decoded").glob("*.pt"))


def test_cache_hit_returns_identical_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, root = make_tiny_imagenet(tmp_path / "tin"), tmp_path / "cache"
    decodes = _count_decodes(monkeypatch)
    first = load_dataset("tiny-imagenet", path=path, root=root, image_size=8, val_fraction=1 / 6)
    assert decodes == [18, 6] and len(_cache_files(root)) == 1  # train and test decoded once, one entry
    again = load_dataset("tiny-imagenet", path=path, root=root, image_size=8, val_fraction=1 / 6, subset=12)
    same = load_dataset("tiny-imagenet", path=path, root=root, image_size=8, val_fraction=1 / 6)
    assert decodes == [18, 6]  # both read the cache: a subset is drawn from the cached pool
    assert len(again.train) + len(again.val) == 12
    for a, b in ((first.train, same.train), (first.val, same.val), (first.test, same.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert first.mean == same.mean and first.classes == same.classes
    # another image size is another entry; so is another source folder
    load_dataset("tiny-imagenet", path=path, root=root, image_size=4, val_fraction=1 / 6)
    assert decodes == [18, 6, 18, 6] and len(_cache_files(root)) == 2


def test_cache_is_rebuilt_when_a_source_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, root = tmp_path / "folder", tmp_path / "cache"
    make_tree(path, {"a": 4, "b": 4})
    decodes = _count_decodes(monkeypatch)
    before = load_dataset("imagefolder", path=path, root=root, val_fraction=0.25)
    changed = path / "b" / "00005.png"
    size = changed.stat().st_size
    _write_png(changed, 250)  # new content of the same size: only the mtime tells
    assert changed.stat().st_size == size
    stat = changed.stat()  # mtime moved on explicitly for coarse-clock file systems
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_dataset("imagefolder", path=path, root=root, val_fraction=0.25)
    assert len(decodes) == 2 and len(_cache_files(root)) == 1  # decoded again, same entry replaced
    assert 5 in ids(before.train) + ids(before.val) and 250 in ids(after.train) + ids(after.val)
    make_tree(path, {"a": 1}, start=50)  # an added file
    added = load_dataset("imagefolder", path=path, root=root, val_fraction=0.25)
    assert len(decodes) == 3 and 50 in ids(added.train) + ids(added.val)
    load_dataset("imagefolder", path=path, root=root, val_fraction=0.25)
    assert len(decodes) == 3  # and unchanged again: a hit


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "garbage", "empty"])
def test_a_damaged_cache_file_is_ignored_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    path, root = make_tiny_imagenet(tmp_path / "tin"), tmp_path / "cache"
    decodes = _count_decodes(monkeypatch)
    good = load_dataset("tiny-imagenet", path=path, root=root, val_fraction=1 / 6)
    (entry,) = _cache_files(root)
    raw = entry.read_bytes()
    if damage == "truncated":  # what a writer killed mid-write would leave, had it written in place
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped_byte":  # inside the image bytes, where only the checksum notices
        at = raw.index(good.test.images.flatten()[:64].numpy().tobytes()) + 10
        entry.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])
    elif damage == "garbage":
        entry.write_bytes(b"not a cache file" * 100)
    else:
        entry.write_bytes(b"")
    stale = entry.with_name(f".{entry.stem}.12345.tmp")  # a killed writer's temporary file
    stale.write_bytes(b"partial")
    rebuilt = load_dataset("tiny-imagenet", path=path, root=root, val_fraction=1 / 6)
    assert len(decodes) == 4 and not stale.exists()
    for a, b in ((good.train, rebuilt.train), (good.test, rebuilt.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    load_dataset("tiny-imagenet", path=path, root=root, val_fraction=1 / 6)
    assert len(decodes) == 4  # the rebuilt entry is whole


def test_workers_loading_at_once_decode_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, root = make_tiny_imagenet(tmp_path / "tin"), tmp_path / "cache"
    decodes: list[int] = []
    real = images.decode

    def slow(samples, size, kind):  # type: ignore[no-untyped-def]
        decodes.append(len(samples))
        time.sleep(0.5)  # long enough that the other worker arrives while this one decodes
        return real(samples, size, kind)

    monkeypatch.setattr(images, "decode", slow)
    with ThreadPoolExecutor(3) as pool:  # flock excludes separately opened files, threads included
        loads = list(pool.map(lambda _: load_dataset("tiny-imagenet", path=path, root=root), range(3)))
    assert decodes == [18, 6]
    assert all(torch.equal(d.test.images, loads[0].test.images) for d in loads)
    assert sorted(p.name for p in (root / "decoded").iterdir() if p.suffix == ".pt") == [_cache_files(root)[0].name]


def test_unwritable_cache_folder_still_loads(tmp_path: Path) -> None:
    path = make_tiny_imagenet(tmp_path / "tin")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match="decoded-image cache disabled"):
        data = load_dataset("tiny-imagenet", path=path, root=blocker)
    assert len(data.test) == 6


# ---------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "imagenet"}, "dataset = 'imagenet' is not a dataset; allowed: fashion-mnist, mnist, cifar"),
        ({"name": "synthetic", "val_fraction": 0}, "val_fraction = 0 is invalid; allowed: a number strictly"),
        ({"name": "synthetic", "val_fraction": 1.0}, "val_fraction = 1.0 is invalid"),
        ({"name": "synthetic", "val_fraction": 0.0001}, "leaves 0 validation"),
        ({"name": "synthetic", "subset": 5000}, "subset = 5000 is larger than the 1000 training images"),
        ({"name": "synthetic", "subset": 1}, "subset = 1 is invalid"),
        ({"name": "synthetic", "image_size": 0}, "image_size = 0 is invalid"),
        ({"name": "synthetic", "image_size": (8, 8, 3)}, "image_size = (8, 8, 3) is invalid"),
        ({"name": "synthetic", "in_chans": 2}, "in_chans = 2 is invalid; allowed: 1, 3"),
        ({"name": "synthetic", "seed": -1}, "seed = -1 is invalid"),
        ({"name": "synthetic", "classes": 1}, "classes = 1 is invalid; allowed: an integer >= 2"),
        ({"name": "synthetic", "classes": 11}, "classes = 11 is more than the 10 classes of synthetic"),
        ({"name": "synthetic", "path": "x"}, "path = 'x' is not used by dataset synthetic"),
        ({"name": "imagefolder"}, "path is required for dataset imagefolder"),
        ({"name": "cifar10", "path": "x"}, "path = 'x' is not used by dataset cifar10"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict, message: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ConfigError) as info:
        load_dataset(name, **kwargs)
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------------
# MNIST-layout idx files (the project's own, tiny) and the offline errors


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_dir(root: Path, n_train: int = 60, n_test: int = 20) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def test_mnist_from_a_folder_of_idx_files(tmp_path: Path) -> None:
    source = make_idx_dir(tmp_path / "idx")
    data = load_dataset("mnist", path=source, root=tmp_path / "cache", val_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (48, 12, 20)
    assert (data.in_chans, data.image_size, data.num_classes) == (1, (28, 28), 10)
    assert data.flip is False  # digits: a mirrored 2 is not a 2
    assert (tmp_path / "cache" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    raw = gzip.open(source / "t10k-images-idx3-ubyte.gz").read()[16:]
    assert torch.equal(data.test.images.flatten(), torch.frombuffer(bytearray(raw), dtype=torch.uint8))


def test_missing_fashion_mnist_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(self: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error no network>")

    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", tmp_path / "absent")
    monkeypatch.setattr(datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "cache")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "absent") in message and str(tmp_path / "cache" / "FashionMNIST" / "raw") in message
    assert "\n" not in message


def test_missing_cifar_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(self: object) -> None:
        raise RuntimeError("<urlopen error no network>")

    monkeypatch.setattr(datasets.CIFAR10, "download", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
    assert "cifar-10-python.tar.gz" in str(info.value)


def test_default_root_follows_nas_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAS_DATA", str(tmp_path))
    assert nas_data.default_root() == tmp_path
    monkeypatch.delenv("NAS_DATA")
    assert nas_data.default_root() == Path.home() / ".cache" / "nas" / "datasets"


# ---------------------------------------------------------------------------------------------
# Debian's Fashion-MNIST


@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SYSTEM_FMNIST.is_dir():
        reason = f"{SYSTEM_FMNIST} is absent (apt-get install dataset-fashion-mnist)"
        if os.environ.get("NAS_REQUIRE_SYSTEM_TESTS"):
            pytest.fail(f"NAS_REQUIRE_SYSTEM_TESTS is set but {reason}")
        pytest.skip(reason)
    return tmp_path_factory.mktemp("fmnist-cache")


def test_fashion_mnist_from_the_debian_package(fmnist_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("fashion-mnist", root=fmnist_root)
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert tuple(data.train.images.shape[1:]) == (1, 28, 28) and data.in_chans == 1
    assert data.classes is not None and data.classes[0] == "T-shirt/top" and not data.flip
    assert data.mean[0] == pytest.approx(0.286, abs=0.002) and data.std[0] == pytest.approx(0.353, abs=0.002)
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    # the decompressed cache is reused: no second decompression
    monkeypatch.setattr(idx, "_decompress_idx", lambda *a: pytest.fail("decompressed twice"))
    again = load_dataset("fashion-mnist", root=fmnist_root, subset=10000)
    assert (len(again.train), len(again.val)) == (9000, 1000)
    assert torch.bincount(again.train.labels).tolist() == [900] * 10
    assert torch.bincount(again.val.labels).tolist() == [100] * 10
    # disjoint by content: no validation image equals a training image of the same subset
    train_rows = {bytes(row) for row in again.train.images.flatten(1).numpy()}
    assert not any(bytes(row) in train_rows for row in again.val.images.flatten(1).numpy())


def test_a_new_dataset_is_its_reader_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry is the one place a dataset name is looked up: a reader added there loads
    through `load_dataset` (subset, split, resize like any other) and is listed in the error for
    an unknown name; study files take the same names."""
    from nas.data import registry
    from nas.data.dataset import Pool, Split
    from nas.studyfile import DATASETS as STUDY_DATASETS

    assert STUDY_DATASETS == nas_data.DATASETS == tuple(registry.READERS)

    def stripes(request: nas_data.Request) -> Pool:
        images = torch.zeros(40, 1, 8, 8, dtype=torch.uint8)
        labels = torch.arange(40) % 2
        images[labels == 1, :, ::2] = 255
        return Pool(Split(images, labels), None, ("plain", "striped"), 2, flip=False)

    monkeypatch.setitem(registry.READERS, "stripes", stripes)
    data = load_dataset("stripes", subset=20, val_fraction=0.25, image_size=4)
    assert (len(data.train), len(data.val), data.test, data.classes) == (15, 5, None, ("plain", "striped"))
    assert tuple(data.train.images.shape[1:]) == (1, 4, 4)
    monkeypatch.delitem(registry.READERS, "stripes")
    with pytest.raises(ConfigError, match=r"dataset = 'stripes' is not a dataset; allowed: fashion-mnist, mnist, "):
        load_dataset("stripes")


def test_the_package_keeps_every_public_name_of_the_former_module() -> None:
    """nas.data was one module; code written against it (`from nas.data import IDX_FILES`) still runs."""
    former = ("DATASETS", "DECODE_CHUNK", "GRAY_MODES", "IDX_FILES", "MEMORY_FACTOR", "SYNTHETIC_CLASSES",
              "SYNTHETIC_SHAPE", "SYNTHETIC_TEST", "SYNTHETIC_TRAIN", "SYSTEM_DIRS", "TINY_IMAGENET_DIR", "Dataset",
              "Split", "available_memory", "check_memory", "check_settings", "default_root", "load_dataset")
    assert [name for name in former if not hasattr(nas_data, name)] == []
