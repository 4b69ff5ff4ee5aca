"""The latency table a study's `latency` objective predicts from: the one the study file gives
(checked against the study before anything is written), or one built when the study is created,
under its creation lock, before any worker trains, so no timing ever runs beside training.

The table is stored whole in the study (`latency_table` attribute): every worker, on any
machine, predicts from the same measurements, and the front and exports need no file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import optuna

from nas.attrs import StudyAttr
from nas.data import Dataset
from nas.errors import ConfigError
from nas.latency.builder import build_table, check_conditions
from nas.latency.conditions import describe_signature, device_signature
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
        log(f"warning: the latency table {path.name} was measured on {describe_signature(table.signature)}, not on "
            f"this machine ({describe_signature(here)}): latencies are predicted for that machine")
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
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(done: int, n: int, what: str) -> None:
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=n, desc=what, file=sys.stderr, leave=False, disable=None)
        bar.update(done - bar.n)

    try:
        table = build_table(target, path, check=config.latency.check, target_ci=config.latency.target,
                            max_seconds=config.latency.max_seconds, progress=progress, log=log,
                            passes=config.latency.passes)
    finally:
        for bar in bars.values():
            bar.close()
    log(table_summary(table))
    return table


def table_summary(table: LatencyTable) -> str:
    """Two lines: what the table is for and how well it predicts."""
    built = table.built
    head = (f"latency table: {len(table.entries)} stage choices, none {table.none_ms:.3f} ± {table.none_ms_ci:.3f} ms; "
            f"{table.describe()}; built in {built.get('seconds', 0):.0f} s")
    if table.calibration:
        head += (f"\n  prediction: the stages' summed excess over none x {table.scale:.3f} (fitted on "
                 f"{table.calibration['n']} random architectures with 1..n attention stages)")
    v = table.validation
    if not v:
        return head + "\n  not validated on random architectures (latency.check: 0)"
    return (head + f"\n  predicts {v['n']} random architectures measured directly: median |error| "
            f"{100 * v['median_abs_error']:.1f} %, 95th percentile {100 * v['p95_abs_error']:.1f} %, "
            f"max {100 * v['max_abs_error']:.1f} %, Spearman {v['spearman']:.3f}")


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
