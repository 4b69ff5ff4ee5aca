"""Pretrained weights as a local file: where it is, its hash, and the state dict it holds.

Nothing is downloaded: the machines this runs on are often air-gapped, and a study must say
exactly which weights its numbers come from. A value that is no file but a hub name
(`IMAGENET1K_V1`, `DEFAULT`, `imagenet`) is refused with where torchvision or timm would fetch it
from and where to put the file.

Files read: a `nas train --save` checkpoint (its `arch` says which network the weights are for), a
safetensors file, or a PyTorch state dict, also wrapped the ways timm's training scripts and
Lightning write them (`state_dict`, `model`, `state_dict_ema`, a `module.` prefix): everything but
the nas checkpoint is read by timm's `load_state_dict`, which handles all of those.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nas.errors import ConfigError

SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".tar")


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """Which weights an architecture starts from: a file, its sha256, and whether the inserted
    blocks start as the identity (`nas.blocks.identity`)."""

    file: str
    sha256: str
    identity: bool = True

    @classmethod
    def of(cls, file: str | Path, identity: bool = True, backbone: str | None = None,
           field: str = "weights.file", base: Path | None = None) -> Pretrained:
        """The weights in `file` (relative to `base`, hashed now); a missing file or a hub name is refused."""
        path = locate(file, backbone, field, base)
        return cls(str(path), file_sha256(path), identity)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, base: Path | None = None) -> Pretrained:
        """From an architecture file's `weights:` (file relative to `base`, the file's folder)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("file"), str) or not isinstance(
                data.get("sha256"), str):
            raise ConfigError(f"weights = {data!r} is invalid; allowed: a mapping of file, sha256 and identity")
        unknown = sorted(set(data) - {"file", "sha256", "identity"})
        if unknown:
            raise ConfigError(f"weights.{unknown[0]} is not a weights setting; allowed: file, sha256, identity")
        identity = data.get("identity", True)
        if not isinstance(identity, bool):
            raise ConfigError(f"weights.identity = {identity!r} is invalid; allowed: true, false")
        file = Path(data["file"]).expanduser()
        if base is not None and not file.is_absolute():
            file = base / file
        return cls(str(file), data["sha256"], identity)

    def check_file(self) -> Path:
        """The file, refused when it is gone or is not the file the architecture was made with."""
        path = locate(self.file, None, "weights.file")
        found = file_sha256(path)
        if found != self.sha256:
            raise ConfigError(f"weights.file = {self.file!r} has sha256 {found[:12]}…, but the architecture was made "
                              f"with {self.sha256[:12]}…; allowed: the file it names (same sha256)")
        return path


def locate(value: str | Path, backbone: str | None = None, field: str = "weights.file",
           base: Path | None = None) -> Path:
    """The weights file `value` names (relative to `base`); one line when there is none (a hub
    name: where torchvision or timm would fetch it)."""
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_file():
        return path.resolve()
    if path.exists():
        raise ConfigError(f"{field} = {str(value)!r} is not a file ({path.resolve()})")
    hub = isinstance(value, str) and "/" not in value and Path(value).suffix.lower() not in SUFFIXES
    if hub and backbone is not None:
        raise ConfigError(f"{field} = {value!r}: no such file, and nas never downloads weights; "
                          f"{hub_hint(backbone, value)}")
    raise ConfigError(f"{field} = {str(value)!r}: no such file ({path.resolve()}); allowed: a local state dict, "
                      "safetensors file or `nas train --save` checkpoint")


def hub_hint(backbone: str, tag: str) -> str:
    """Where torchvision or timm would fetch `backbone`'s `tag` weights, and how to hand them to nas."""
    if backbone.startswith("timm:"):
        import timm.models

        name = backbone[len("timm:"):]
        cfg_name = name if tag.lower() in ("default", "pretrained", "true", "imagenet") else f"{name}.{tag}"
        try:
            cfg = timm.models.get_pretrained_cfg(cfg_name)
        except Exception:  # noqa: BLE001 - any failure of timm's lookup just means no hint
            cfg = None
        if cfg is not None and cfg.hf_hub_id:
            source = (f"the Hugging Face Hub repo {cfg.hf_hub_id} (model.safetensors, cached under "
                      "~/.cache/huggingface/hub)")
        elif cfg is not None and cfg.url:
            source = f"{cfg.url} (cached under {torch.hub.get_dir()}/checkpoints)"
        else:
            source = f"the Hugging Face Hub (timm/{name})"
        return (f"timm would fetch it from {source}; download that file where the internet is reachable and set "
                f"weights: <path to it>")
    try:
        from torchvision.models import get_model_weights

        enum = get_model_weights(backbone)
        weights = enum[tag if tag in enum.__members__ else "DEFAULT"]
        url = weights.url
    except (ValueError, KeyError):
        return ("set weights: <path> to a local state dict, safetensors file or the `nas train --save` checkpoint of "
                f"a none {backbone}")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return (f"torchvision would fetch {url} into {cached}; download it where the internet is reachable "
            f"(torchvision.models.get_model_weights({backbone!r}).{weights.name}.get_state_dict()) and set "
            "weights: <path to the .pth>")


def file_sha256(path: str | Path) -> str:
    """The file's sha256, cached per (path, size, modification time): a study hashes once per worker."""
    path = Path(path)
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """What a weights file holds: tensors by key, and for a nas checkpoint its architecture."""

    path: Path
    state: Mapping[str, torch.Tensor]
    arch: Mapping[str, Any] | None  # a `nas train --save` checkpoint's `arch`; None for a plain state dict


def read_weights(path: str | Path) -> WeightsFile:
    """The tensors of a weights file (cached per path, size and modification time); a truncated or
    foreign file is one line naming it."""
    path = Path(path)
    stat = path.stat()
    return _read(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read(path: str, size: int, mtime_ns: int) -> WeightsFile:
    from timm.models import load_state_dict

    what = "a PyTorch state dict, safetensors file or `nas train --save` checkpoint"
    try:
        if not path.endswith(".safetensors"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(loaded, Mapping) and isinstance(loaded.get("arch"), Mapping) and "state_dict" in loaded:
                return WeightsFile(Path(path), _tensors(loaded["state_dict"], path), loaded["arch"])
        state = load_state_dict(path, use_ema=True, weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError,
            AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"weights.file = {path!r} cannot be read as {what} (truncated or another format?): "
                          f"{reason[:160]}") from None
    except Exception as error:  # safetensors raises its own SafetensorError
        if type(error).__name__ != "SafetensorError":
            raise
        raise ConfigError(f"weights.file = {path!r} cannot be read as a safetensors file (truncated?): "
                          f"{str(error)[:160]}") from None
    return WeightsFile(Path(path), _tensors(state, path), None)


def _tensors(state: Any, path: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise ConfigError(f"weights.file = {path!r} holds no state dict (got {type(state).__name__}); allowed: a "
                          "mapping of parameter names to tensors")
    bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ConfigError(f"weights.file = {path!r}: key {bad!r} holds {type(state[bad]).__name__}, not a tensor; "
                          "allowed: a state dict of tensors")
    return dict(state)
