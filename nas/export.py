"""Export: pick one architecture from a study's front and write it as an ArchConfig YAML with
provenance, which `nas.build_model(path)` and `nas train` read directly.

Picks: `knee` (see `nas.front`), `accuracy` (most accurate), `flops` (cheapest), `trial:N`
(that trial, on the front or not). `max_mflops` / `min_accuracy` filter the front first.
"""

from __future__ import annotations

import importlib.metadata
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from nas.arch import ArchConfig
from nas.errors import ConfigError
from nas.front import FrontRow, front_rows, knee, objectives_of, row
from nas.storage import masked

PICKS = ("knee", "accuracy", "flops", "trial:N")


def pick(
    study: optuna.Study,
    rule: str,
    max_mflops: float | None = None,
    min_accuracy: float | None = None,
    rows: list[FrontRow] | None = None,
) -> FrontRow:
    """The trial `rule` selects; `rows` replaces the front (e.g. the refined front)."""
    match = re.fullmatch(r"trial:(\d+)", rule)
    if match:
        number = int(match.group(1))
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.number == number:
                return row(trial, objectives_of(study))
        raise ConfigError(f"--pick {rule}: trial {number} is not a finished trial of study {study.study_name!r}")
    if rule not in PICKS:
        raise ConfigError(f"--pick {rule!r} is invalid; allowed: {', '.join(PICKS)}")
    candidates = front_rows(study) if rows is None else rows
    if max_mflops is not None:
        candidates = [r for r in candidates if r.mflops <= max_mflops]
    if min_accuracy is not None:
        candidates = [r for r in candidates if r.accuracy >= min_accuracy]
    if not candidates:
        raise ConfigError(
            f"--pick {rule}: no front trial meets --max-mflops {max_mflops} / --min-accuracy {min_accuracy}; "
            "see `nas front` for what the study found"
        )
    if rule == "accuracy":
        return max(candidates, key=lambda r: (r.accuracy, -r.mflops))
    if rule == "flops":
        return min(candidates, key=lambda r: (r.mflops, -r.accuracy))
    return knee(candidates)


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
    units = {"accuracy": "accuracy", "flops": "mflops", "params": "params_millions", "latency": "latency_ms"}
    metrics: dict[str, Any] = {units[name]: float(v) for name, v in chosen.values.items()}
    metrics.update(mflops=chosen.mflops, params=chosen.params)
    for key in ("refined_accuracy_mean", "refined_accuracy_std", "refined_seeds", "refined_epochs"):
        if key in chosen.user_attrs:
            metrics[key] = chosen.user_attrs[key]
    provenance = {
        "study": study.study_name,
        "study_file": study.user_attrs.get("study_file"),
        "storage": masked(storage),
        "trial": chosen.number,
        "pick": rule,
        "arch_id": chosen.arch_id,
        "baseline": chosen.baseline,
        "metrics": metrics,
        "flops_convention": "fvcore: one multiply-add = one flop, at one proxy input image",
        "dataset": study.user_attrs.get("dataset"),
        "proxy": study.user_attrs.get("proxy"),
        "versions": versions(),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {**arch.to_dict(), "provenance": provenance}


def write_export(document: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
