"""Any ImageFolder tree: `path/<class>/*.png` (validation carved from it), or `path/train` +
`path/val` (val held out as the test split); decoded once per image size (`nas.data.images`)."""

from __future__ import annotations

from pathlib import Path

from nas.data.dataset import Pool, Request, first_line
from nas.data.images import cached_pool
from nas.errors import ConfigError, DataError


def read(request: Request) -> Pool:
    """`path/<class>/*.png` (validation carved from it), or `path/train` + `path/val` (val held out)."""
    path = request.path
    if path is None:
        raise ConfigError("path is required for dataset imagefolder: a folder of class folders")
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
    return cached_pool("imagefolder", path, classes, train, test, request.size, request.cache)


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
        raise DataError(f"imagefolder: {root}: {first_line(error)}") from None
    if not samples:
        raise DataError(f"imagefolder: no images in {root} (looked for {', '.join(IMG_EXTENSIONS)})")
    return classes, samples
