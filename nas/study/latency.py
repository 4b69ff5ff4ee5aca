"""The latency table a study's `latency` objective predicts from: the one the study file gives
(checked against the study before anything is written), or one built when the study is created,
under its creation lock, before any worker trains, so no timing ever runs beside training.

The table is stored whole in the study (`latency_table` attribute): every worker, on any
machine, predicts from the same measurements, and the front and exports need no file.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

from nas.attrs import StudyAttr
from nas.data import Dataset
from nas.errors import ConfigError
from nas.latency.adapt import (
    Here,
    TransferCheck,
    adapt_table,
    check_transfer,
    describe_check,
    order_warning,
    refuse_mismatch,
)
from nas.latency.builder import LatencyTarget, Progress, build_table, check_conditions
from nas.latency.conditions import LatencyConditions, describe_signature, device_signature
from nas.latency.table import LatencyTable, load_table
from nas.objectives import LATENCY
from nas.studyfile import StudyConfig


def needs_table(config: StudyConfig) -> bool:
    return LATENCY.name in config.objectives


def existing_table(config: StudyConfig, data: Dataset, log: Callable[[str], None] = print) -> LatencyTable | None:
    """The study file's table (or the default file, when it exists), checked against the study;
    None when there is none yet and one must be built. A table from another machine is used with
    a warning; one for another backbone, input, conditions or space is refused."""
    path = config.latency_table_path
    given = config.latency_table is not None
    if not given and not path.exists():
        return None
    field = "latency.table" if given else f"the default latency table {path.name}"
    where = f"{config.path}: {field}"
    table = load_table(path, where=f"{where} = {str(path)!r}" if given else where)
    target = config.latency_target(data)
    problem = table.mismatch(target.key(), list(target.choices()))
    if problem:
        fix = (f"a table built for this study (nas latency-table {config.path.name} -o {path.name})" if given else
               f"run nas latency-table {config.path.name} to measure it again")
        raise ConfigError(f"{where} {problem}; allowed: {fix}")
    here = device_signature(config.latency_conditions)
    if table.signature.get("id") != here["id"]:
        log(f"warning: the latency table {path.name} was measured on {describe_signature(table.signature)}"
            f"{_origin(table)}, not on this machine ({describe_signature(here)}): latencies are predicted for that "
            f"machine; how far they hold here: nas latency-table {config.path.name} --check {path} (and --adapt "
            f"{path} -o NEW.json refits it here in seconds)")
    return table


def new_table(config: StudyConfig, data: Dataset, log: Callable[[str], None] = print) -> LatencyTable:
    """Measure the study's table on this machine and save it to `latency_table_path` (resumable)."""
    check_conditions(config.latency_conditions)
    target = config.latency_target(data)
    path = config.latency_table_path
    total = len(target.choices())
    passes = f"{config.latency.passes} pass{'es' if config.latency.passes > 1 else ''}"
    log(f"measuring the latency table ({total} stage choices, then 2 x {config.latency.check} random architectures "
        f"to calibrate and check it, {passes}; {config.latency_conditions.describe()}) into {path}; interrupted, "
        "it resumes")
    with _progress_bars() as progress:
        table = build_table(target, path, check=config.latency.check, target_ci=config.latency.target,
                            max_seconds=config.latency.max_seconds, progress=progress, log=log,
                            passes=config.latency.passes)
    log(table_summary(table))
    return table


@contextlib.contextmanager
def _progress_bars() -> Iterator[Progress]:
    """A progress callback drawing one tqdm bar per kind of measurement, on stderr (none where it
    is not a terminal), closed at the end."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(done: int, n: int, what: str) -> None:
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=n, desc=what, file=sys.stderr, leave=False, disable=None)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


def _parent_table(config: StudyConfig, data: Dataset, path: Path, allow_runtime_change: bool,
                  option: str) -> tuple[LatencyTable, LatencyTarget]:
    """The table given to `--adapt`/`--check`, refused (one line) unless it can be carried to this
    study, and the study's target; nothing measured yet."""
    check_conditions(config.latency_conditions)
    where = f"{option} {path}"
    parent = load_table(path, where)
    target = config.latency_target(data)
    refuse_mismatch(parent, target, where, allow_runtime_change)
    return parent, target


def adapt_study_table(config: StudyConfig, data: Dataset, parent_path: Path, output: Path, archs: int = 12,
                      allow_runtime_change: bool = False, log: Callable[[str], None] = print) -> LatencyTable:
    """`nas latency-table STUDY --adapt TABLE`: `TABLE` refitted to this machine on `archs`
    architectures measured here, validated on `latency.check` others, written to `output`."""
    parent, target = _parent_table(config, data, parent_path, allow_runtime_change, "--adapt")
    if output.resolve() == parent_path.resolve():
        raise ConfigError(f"the output {output} (-o, else the study's table file) is the table being adapted; "
                          "allowed: another file (-o NEW.json), so the parent stays as it was")
    here = device_signature(config.latency_conditions)
    log(f"adapting {parent_path} (measured on {describe_signature(parent.signature)}, "
        f"{parent.conditions.describe()}) to this machine ({describe_signature(here)}, "
        f"{config.latency_conditions.describe()}): {archs} architectures to refit on, then {config.latency.check} "
        f"to validate, measured here, one pass")
    with _progress_bars() as progress:
        measurer = Here(target, config.latency.target, config.latency.max_seconds, progress)
        table = adapt_table(parent, target, output, archs=archs, check=config.latency.check, measurer=measurer,
                            target_ci=config.latency.target)
    log(table_summary(table))
    warning = order_warning(parent.conditions, config.latency_conditions,
                            f"nas latency-table {config.path.name} -o NEW.json")
    if warning:
        log(warning)
    return table


def check_study_table(config: StudyConfig, data: Dataset, path: Path, archs: int = 12,
                      allow_runtime_change: bool = False, log: Callable[[str], None] = print) -> TransferCheck:
    """`nas latency-table STUDY --check TABLE`: how far `TABLE` holds on this machine, measured on
    `archs` random architectures, printed with what to do about it."""
    parent, target = _parent_table(config, data, path, allow_runtime_change, "--check")
    here = device_signature(config.latency_conditions)
    log(f"checking {path} on this machine:\n  the table: {parent.conditions.describe()} on "
        f"{describe_signature(parent.signature)}{_origin(parent)}\n  here:      "
        f"{config.latency_conditions.describe()} on {describe_signature(here)}")
    with _progress_bars() as progress:
        result = check_transfer(parent, target, archs,
                                Here(target, config.latency.target, config.latency.max_seconds, progress))
    study = config.path.name
    flag = " --allow-runtime-change" if parent.conditions.runtime != config.latency_conditions.runtime else ""
    for line in describe_check(result, adapt=f"nas latency-table {study} --adapt {path} -o NEW.json{flag}",
                               build=f"nas latency-table {study} -o NEW.json"):
        log(line)
    warning = order_warning(parent.conditions, config.latency_conditions, f"nas latency-table {study} -o NEW.json")
    if warning:
        log(warning)
    return result


def _origin(table: LatencyTable) -> str:
    """`, adapted from a table measured on ...` for an adapted table; nothing for a built one."""
    if not table.parent:
        return ""
    return f" (adapted from a table measured on {describe_signature(table.parent['signature'])})"


def table_summary(table: LatencyTable) -> str:
    """Two lines: what the table is for and how well it predicts."""
    built = table.built
    head = (f"latency table: {len(table.entries)} stage choices, none {table.none_ms:.3f} ± {table.none_ms_ci:.3f} ms; "
            f"{table.describe()}; built in {built.get('seconds', 0):.0f} s")
    if table.parent:
        parent = table.parent
        there = LatencyConditions.from_dict(parent.get("conditions") or {}).describe()
        head += (f"\n  adapted from {parent.get('path')} ({there} on {describe_signature(parent['signature'])}): its "
                 f"entries, with none and the scale measured here (scale {parent.get('scale', 1.0):.3f} there, "
                 f"{table.scale:.3f} here)")
    if table.calibration:
        head += (f"\n  prediction: the stages' summed excess over none x {table.scale:.3f} (fitted on "
                 f"{table.calibration['n']} random architectures with 1..n attention stages)")
    v = table.validation
    if not v:
        return head + "\n  not validated on random architectures (latency.check: 0)"
    return (head + f"\n  predicts {v['n']} random architectures measured directly: median |error| "
            f"{100 * v['median_abs_error']:.1f} %, 95th percentile {100 * v['p95_abs_error']:.1f} %, "
            f"max {100 * v['max_abs_error']:.1f} %, Spearman {v['spearman']:.3f}" + _untouched(v))


def _untouched(validation: dict[str, Any]) -> str:
    """An adapted table's validation also holds how its parent, untouched, predicted the same."""
    u = validation.get("untouched")
    if not u:
        return ""
    return (f"\n  the parent, untouched, on the same architectures: median |error| "
            f"{100 * u['median_abs_error']:.1f} %, 95th percentile {100 * u['p95_abs_error']:.1f} %, "
            f"Spearman {u['spearman']:.3f}")


def table_of(study: optuna.Study) -> LatencyTable | None:
    """The table stored in the study, if any."""
    data = study.user_attrs.get(StudyAttr.LATENCY_TABLE)
    return None if data is None else LatencyTable.from_dict(data, f"study {study.study_name!r}'s latency table")


def store(study: optuna.Study, table: LatencyTable) -> None:
    if StudyAttr.LATENCY_TABLE not in study.user_attrs:
        study.set_user_attr(StudyAttr.LATENCY_TABLE, table.to_dict())


def require(table: LatencyTable | None, config: StudyConfig) -> LatencyTable:
    if table is None:
        raise ConfigError(f"{config.path}: study {config.name!r} optimises latency but has no latency table; run "
                          f"nas search {config.path.name} (it measures one) or nas latency-table")
    return table
