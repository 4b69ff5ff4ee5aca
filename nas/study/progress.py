"""Progress: the study's target (the same for every worker, with its reason), one line per finished
trial (number, front mark, accuracy, MFLOPs, seconds, arch_id, why it failed or whose result it
reused), under a bar of finished trials on a terminal."""

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


QUEUED = "fixed_params"  # Optuna's system attribute on a trial made by `enqueue_trial`
RETRY_OF = "failed_trial"  # ... and on the copy its retry callback queues for a failed trial


@dataclasses.dataclass(frozen=True)
class Target:
    """How many finished (COMPLETE) trials a worker runs the study to: the `trials` asked for,
    raised to the number of queued trials (baselines, the `none` baseline's extra seeds, trials
    queued by hand), which are all trained, even past `trials`.

    It is read from what the study holds, not from what is still waiting, so every worker of the
    study states the same target whenever it starts: a queued trial another worker has already
    taken, finished, or queued again after a dead worker (a retry, a lost baseline), counts once."""

    trials: int  # the study file's `trials`, or the command's `--trials`
    queued: int  # queued trials, each counted once
    baselines: int = 0  # of which baselines
    seeds: int = 0  # of which extra seeds of the `none` baseline

    @property
    def count(self) -> int:
        return max(self.trials, self.queued)

    def why(self) -> str:
        """The reason for the target, for the worker's first line: `trials: 6` or how it was raised."""
        if self.queued <= self.trials:
            return f"trials: {self.trials}"
        parts = [f"{self.baselines} baseline{'s' * (self.baselines != 1)}"] if self.baselines else []
        if self.seeds:
            parts.append(f"{self.seeds} extra seed{'s' * (self.seeds != 1)} of `none`")
        others = self.queued - self.baselines - self.seeds
        if others:
            parts.append(f"{others} queued by hand")
        return (f"trials: {self.trials}, raised to the {self.queued} queued trials ({', '.join(parts)}), "
                "which are all trained")


def study_target(study: optuna.Study, trials: int) -> Target:
    """The study's `Target` for `trials` asked (see there): the same for every worker."""
    items: set[tuple[str, object]] = set()
    for t in study.get_trials(deepcopy=False):
        if QUEUED not in t.system_attrs or RETRY_OF in t.system_attrs:
            continue  # sampled, or the retry of a trial counted already
        attrs = t.user_attrs
        if TrialAttr.BASELINE in attrs:  # a lost baseline queued again is the same baseline
            items.add(("baseline", attrs[TrialAttr.BASELINE]))
        elif TrialAttr.NOISE_SEED in attrs:
            items.add(("seed", attrs[TrialAttr.NOISE_SEED]))
        else:
            items.add(("trial", t.number))
    kinds = [kind for kind, _ in items]
    return Target(trials, len(items), kinds.count("baseline"), kinds.count("seed"))


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


def format_report(r: TrialReport) -> str:
    acc = f"acc {r.accuracy:.4f}" if r.accuracy is not None else f"{r.state.lower():>10}"
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
