"""Progress: one line per finished trial (number, front mark, accuracy, MFLOPs, seconds, arch_id,
why it failed or whose result it reused), under a bar of finished trials on a terminal."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.attrs import TrialAttr


@dataclasses.dataclass
class TrialReport:
    """One finished trial as the progress log shows it."""

    number: int
    state: str
    arch_id: str
    accuracy: float | None
    mflops: float | None
    seconds: float
    note: str = ""
    on_front: bool = False
    latency_ms: float | None = None  # predicted by the study's latency table, when it has one


def trial_report(study: optuna.Study, trial: FrozenTrial, last: TrialReport | None) -> TrialReport:
    """The line's content once Optuna has settled the trial: `last` (what the objective saw, None
    when it never started) completed with the trial's state, duration and front membership."""
    attrs = trial.user_attrs
    seconds = (trial.duration.total_seconds() if trial.duration else 0.0)
    report = last or TrialReport(trial.number, "", attrs.get(TrialAttr.ARCH_ID, "?"), None, attrs.get(TrialAttr.MFLOPS),
                                 seconds)
    report.state = trial.state.name
    report.seconds = seconds
    report.latency_ms = attrs.get(TrialAttr.LATENCY_MS)
    if trial.state == TrialState.COMPLETE:
        report.on_front = trial.number in {t.number for t in study.best_trials}
        if TrialAttr.BASELINE in attrs:
            report.note = (report.note + f" baseline {attrs[TrialAttr.BASELINE]}").strip()
    elif trial.state == TrialState.FAIL and not report.note:
        report.note = attrs.get(TrialAttr.FAIL_REASON, "failed")
    return report


def format_report(r: TrialReport, label: str = "acc") -> str:
    """`label`: `acc` for a proxy's validation accuracy, `score` for a one-shot score (`nas.supernet`)."""
    acc = f"{label} {r.accuracy:.4f}" if r.accuracy is not None else f"{r.state.lower():>10}"
    mf = f"{r.mflops:8.2f} MFLOPs" if r.mflops is not None else " " * 15
    star = "*" if r.on_front else " "
    ms = f"  {r.latency_ms:7.3f} ms" if r.latency_ms is not None else ""
    return f"#{r.number:<4d} {star} {acc}  {mf}{ms}  {r.seconds:6.1f} s  {r.arch_id}  {r.note}".rstrip()


def progress_bar(progress: bool | None, total: int, initial: int) -> Any:
    """A tqdm bar of finished trials on stderr (by default only when it is a terminal), or None."""
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    from tqdm import tqdm  # optuna's own dependency

    return tqdm(total=total, initial=initial, desc="finished trials", unit="trial", file=sys.stderr, leave=False)


def write_line(bar: Any, log: Callable[[str], None], line: str) -> None:
    """One trial's line: above the bar when there is one (so it is not overdrawn), else to `log`."""
    if bar is not None:
        bar.write(line, file=sys.stdout)
    else:
        log(line)
