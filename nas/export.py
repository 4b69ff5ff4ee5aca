"""Export: pick one architecture from a study's front and write it as an ArchConfig YAML with
provenance, which `nas.build_model(path)` and `nas train` read directly.

Picks: `knee` (see `nas.front`), `accuracy` (most accurate), `flops` (cheapest), `trial:N`
(that trial, on the front or not, refused if it misses a filter). `max_mflops` / `min_accuracy`
filter the front first. `--refined` picks from `nas refine`'s results instead of the proxy's.
"""

from __future__ import annotations

import importlib.metadata
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml

from nas.arch import ArchConfig
from nas.attrs import StudyAttr, TrialAttr
from nas.errors import ConfigError
from nas.front import Front, FrontRow, knee
from nas.objectives import OBJECTIVES
from nas.storage import masked

if TYPE_CHECKING:
    from torch import nn

    from nas.data import Dataset

PICKS = ("knee", "accuracy", "flops", "trial:N")


def pick(front: Front, rule: str, max_mflops: float | None = None, min_accuracy: float | None = None) -> FrontRow:
    """The row `rule` selects from `front` (proxy or refined results).

    `trial:N` takes that trial, on the front or not, and refuses it when it misses a filter; the
    other rules choose among the front rows that meet the filters.
    """
    filters = {"--max-mflops": max_mflops, "--min-accuracy": min_accuracy}
    given = " / ".join(f"{flag} {value:g}" for flag, value in filters.items() if value is not None)
    match = re.fullmatch(r"trial:(\d+)", rule)
    if match:
        number = int(match.group(1))
        found = [r for r in front.trials if r.number == number]
        if not found:
            raise ConfigError(f"--pick {rule}: trial {number} is not a finished trial of {front.name}; "
                              "see `nas front` for the trials")
        chosen = found[0]
        if not _meets(chosen, max_mflops, min_accuracy):
            raise ConfigError(f"--pick {rule}: trial {number} ({chosen.accuracy:.4f} accuracy, "
                              f"{chosen.mflops:.3f} MFLOPs) does not meet {given}; drop the filter or pick another")
        return chosen
    if rule not in PICKS:
        raise ConfigError(f"--pick {rule!r} is invalid; allowed: {', '.join(PICKS)}")
    candidates = [r for r in front.rows if _meets(r, max_mflops, min_accuracy)]
    if not candidates:
        raise ConfigError(f"--pick {rule}: no front trial meets {given or 'the filters'} in {front.name}; "
                          "see `nas front` for what the study found")
    if rule == "accuracy":
        return max(candidates, key=lambda r: (r.accuracy, -r.mflops))
    if rule == "flops":
        return min(candidates, key=lambda r: (r.mflops, -r.accuracy))
    return knee(candidates)


def _meets(r: FrontRow, max_mflops: float | None, min_accuracy: float | None) -> bool:
    return (max_mflops is None or r.mflops <= max_mflops) and (min_accuracy is None or r.accuracy >= min_accuracy)


def versions() -> dict[str, str]:
    out = {}
    for package in ("nas", "torch", "torchvision", "timm", "optuna", "fvcore"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def export_document(study: optuna.Study, chosen: FrontRow, rule: str, storage: str) -> dict[str, Any]:
    """The YAML document: the ArchConfig's keys, then a `provenance` section."""
    arch = ArchConfig.from_dict(chosen.arch)
    metrics: dict[str, Any] = {OBJECTIVES[name].key: float(v) for name, v in chosen.values.items()}
    metrics.update(mflops=chosen.mflops, params=chosen.params)
    for key in (TrialAttr.REFINED_ACCURACY_MEAN, TrialAttr.REFINED_ACCURACY_STD, TrialAttr.REFINED_SEEDS,
                TrialAttr.REFINED_EPOCHS):
        if key in chosen.user_attrs:
            metrics[key] = chosen.user_attrs[key]
    provenance = {
        "study": study.study_name,
        "study_file": study.user_attrs.get(StudyAttr.STUDY_FILE),
        "storage": masked(storage),
        "trial": chosen.number,
        "pick": rule,
        "arch_id": chosen.arch_id,
        "baseline": chosen.baseline,
        "metrics": metrics,
        "flops_convention": "fvcore: one multiply-add = one flop, at one proxy input image",
        "dataset": study.user_attrs.get(StudyAttr.DATASET),
        "proxy": study.user_attrs.get(StudyAttr.PROXY),
        "versions": versions(),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {**arch.to_dict(), "provenance": provenance}


def write_export(document: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def trained_checkpoint(arch: ArchConfig, model: nn.Module, data: Dataset, metrics: dict[str, Any]) -> dict[str, Any]:
    """What `nas train --save` writes with `torch.save`: the weights and everything needed to use them.

    The weights fit `nas.build_model(ArchConfig.from_dict(checkpoint["arch"]))`; the inputs they
    expect are `preprocessing`: uint8 N×C×H×W images at `image_size`, then
    `(x / 255 - mean) / std` per channel, with the training split's statistics (the model alone,
    fed 0-1 images, scores far worse). Plain types and CPU tensors only, so
    `torch.load(path)` (weights_only) reads it.
    """
    return {
        "arch": arch.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "preprocessing": {
            "image_size": list(data.image_size),
            "in_chans": data.in_chans,
            "mean": list(data.mean),
            "std": list(data.std),
            "recipe": "x = (uint8_images / 255 - mean) / std, per channel; images N x C x H x W at image_size",
        },
        "metrics": metrics,
        "dataset": data.name,
        "classes": list(data.classes) if data.classes else None,
        "versions": versions(),
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
