"""Export: pick one architecture from a study's front and write it as an ArchConfig YAML with
provenance, which `nas.build_model(path)` and `nas train` read directly.

Picks: `knee` (see `nas.front`), `accuracy` (most accurate), `flops` (cheapest), `trial:N`
(that trial, on the front or not, refused if it misses a filter). `max_mflops` / `min_accuracy`
filter the front first. `--refined` picks from `nas refine`'s results instead of the proxy's.

Every export says whether the pick beats the study's uniform `none` baseline beyond noise
(`versus_none`): on stdout, and as `provenance.vs_none` in the file.
"""

from __future__ import annotations

import dataclasses
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
from nas.noise import TIE_FACTOR, compare, difference_std
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
        found = [r for r in front.architectures if number in r.trials]
        if not found:
            raise ConfigError(f"--pick {rule}: trial {number} is not a finished trial of {front.name}; "
                              "see `nas front` for the trials")
        chosen = dataclasses.replace(found[0], number=number)  # its architecture's pooled result
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


VERDICTS = {
    "better": "beats none beyond noise",
    "tie": "tie with none (within noise)",
    "worse": "worse than none beyond noise",
    "unknown": "unknown: no noise is known for these accuracies",
}
IS_NONE = "is the none baseline"
NO_NONE = "no none baseline in the study"
NO_REFINED_NONE = "the none baseline was not confirmed (run `nas refine` with a larger --top)"


def versus_none(front: Front, chosen: FrontRow, refined: bool = False) -> dict[str, Any]:
    """The pick against the study's uniform `none` baseline (its row at the pick's epochs where
    there is one): the difference of mean accuracies, the std of that difference
    sqrt(σa²/na + σb²/nb), and the verdict (within noise is a tie, see `nas.noise.TIE_FACTOR`)."""
    nones = [r for r in front.architectures if r.baseline == "none"]
    if not nones:
        return {"verdict": NO_REFINED_NONE if refined else NO_NONE}
    none = next((r for r in nones if r.epochs == chosen.epochs), nones[0])
    std = difference_std(chosen, none)
    verdict = IS_NONE if chosen.arch_id == none.arch_id else VERDICTS[compare(chosen, none)]
    return {"baseline_trial": none.number, "baseline_accuracy": none.accuracy,
            "baseline_accuracy_std": none.accuracy_std, "baseline_n_evals": none.n_evals,
            "difference": chosen.accuracy - none.accuracy, "difference_std": std, "tie_factor": TIE_FACTOR,
            "verdict": verdict}


def versus_line(comparison: dict[str, Any]) -> str:
    """The one line `nas export` prints about the pick against `none`."""
    if "difference" not in comparison:
        return f"vs none: {comparison['verdict']}"
    if comparison["verdict"] == IS_NONE:
        return f"vs none: the pick is the none baseline (#{comparison['baseline_trial']})"
    std = comparison["difference_std"]
    spread = "± ?" if std is None else f"± {std:.4f} (std of the difference; tie within {TIE_FACTOR:g}×)"
    return (f"vs none (#{comparison['baseline_trial']}): accuracy {comparison['difference']:+.4f} {spread}: "
            f"{comparison['verdict']}")


def latency_line(front: Front, chosen: FrontRow) -> str | None:
    """The pick's latency against `none` under the table's conditions (None without a latency)."""
    p = chosen.latency
    if p is None:
        return None
    verdict = ("the same as none within noise" if abs(p.ratio - 1) <= p.ratio_ci else
               f"{'slower' if p.ratio > 1 else 'faster'} than none beyond noise")
    return (f"latency: {p.ms:.3f} ± {p.ms_ci:.3f} ms, x{p.ratio:.3f} ± {p.ratio_ci:.3f} vs none ({verdict}; 95% "
            f"intervals; {front.latency_conditions or 'conditions unknown'})")


def versions() -> dict[str, str]:
    out = {}
    for package in ("nas", "torch", "torchvision", "timm", "optuna", "fvcore", "onnxruntime"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def export_document(
    study: optuna.Study, chosen: FrontRow, rule: str, storage: str, vs_none: dict[str, Any] | None = None,
    latency_conditions: str | None = None, front_read: str | None = None,
) -> dict[str, Any]:
    """The YAML document: the ArchConfig's keys, then a `provenance` section (with `vs_none`, the
    pick against the `none` baseline, when given, and `front`, which front it was picked from:
    confirmed or the search's, and what ranked it)."""
    arch = ArchConfig.from_dict(chosen.arch)
    metrics: dict[str, Any] = {OBJECTIVES[name].key: float(v) for name, v in chosen.values.items()}
    metrics.update(accuracy_std=chosen.accuracy_std, n_evals=chosen.n_evals, std_source=chosen.std_source,
                   epochs=chosen.epochs, mflops=chosen.mflops, params=chosen.params)
    for key in (TrialAttr.REFINED_ACCURACY_MEAN, TrialAttr.REFINED_ACCURACY_STD, TrialAttr.REFINED_SEEDS,
                TrialAttr.REFINED_EPOCHS):
        if key in chosen.user_attrs:
            metrics[key] = chosen.user_attrs[key]
    if chosen.latency is not None:
        metrics["latency"] = {**dataclasses.asdict(chosen.latency), "conditions": latency_conditions,
                              "interval": "95% half-widths; ratio is to the none architecture"}
    provenance = {
        "study": study.study_name,
        "study_file": study.user_attrs.get(StudyAttr.STUDY_FILE),
        "storage": masked(storage),
        "trial": chosen.number,
        "pick": rule,
        "front": front_read,
        "arch_id": chosen.arch_id,
        "baseline": chosen.baseline,
        "metrics": metrics,
        "vs_none": vs_none,
        "flops_convention": "fvcore: one multiply-add = one flop, at one proxy input image",
        "dataset": study.user_attrs.get(StudyAttr.DATASET),
        "proxy": study.user_attrs.get(StudyAttr.PROXY),
        "weights": study.user_attrs.get(StudyAttr.WEIGHTS),  # the pretrained file (sha256) the candidates started from
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
