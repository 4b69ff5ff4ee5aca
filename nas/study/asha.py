"""Running a multi-fidelity study (MO-ASHA): one worker's loop over the rung studies.

Optuna cannot prune a multi-objective study (`trial.report` raises; RFC optuna#3450), so the
rungs are studies of their own (`nas.study.rungs`) and promotion is ours (`nas.study.promotion`).
Whenever this worker is free it takes, in this order:

1. under the promotion lock, a promotion waiting at rung k >= 1, highest rung first (claimed by a
   worker that died before running it, or a killed promotion Optuna queued again);
2. under the same lock, the first candidate that now qualifies for promotion, top rungs first,
   claimed and run at once;
3. a new candidate at rung 0 (a queued baseline first), until rung 0 has `trials` finished ones;
4. when rung 0 is done but another worker is still running a trial below the top rung, whose
   result may earn a promotion: it waits for it, polling;
5. else it stops: every promotion the study's candidates earned has been trained.

Workers never wait for a rung to fill (asynchronous, as ASHA): a rung's quota is taken over
whatever has finished there so far. The lock is held until Optuna has popped the waiting trial
(`RungObjective.release`), so the promotion this worker saw is the one it runs; were another
worker to pop it in between, Optuna would make the rung sample a fresh, unpromoted trial instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.attrs import TrialAttr
from nas.data import Dataset
from nas.errors import StudyError
from nas.storage import creation_lock, masked, quiet_experimental
from nas.study.counts import count, count_evaluated, count_finished, study_target
from nas.study.creation import requeue_lost_baselines
from nas.study.latency import table_of
from nas.study.noise_seeds import noise_line, record_noise
from nas.study.objective import Trainer
from nas.study.progress import TrialReport, format_report, progress_bar, trial_report, write_line
from nas.study.promotion import claim_promotion
from nas.study.rung_objective import RungObjective
from nas.study.rungs import open_rungs, rung_config
from nas.study.workers import reap_dead_local_trials
from nas.studyfile import StudyConfig
from nas.train import resolve_device

POLL_SECONDS = 2.0  # how often a worker with nothing to do looks again while others still train
MAX_FAILURES_IN_A_ROW = 5  # as nas.study.loop
MAX_INFEASIBLE_IN_A_ROW = 50
MAX_REPEATS_IN_A_ROW = 50  # as nas.study.loop: reused duplicates at rung 0 in a row end the sampling


def run_multi_fidelity(
    config: StudyConfig,
    data: Dataset,
    *,
    device: str = "auto",
    trials: int | None = None,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
    progress: bool | None = None,
    trainer: Trainer | None = None,
) -> optuna.Study:
    """Create or resume the rung studies and run until rung 0 has `trials` finished candidates and
    every promotion they earned is trained (module docstring). Returns the top rung's study, whose
    `best_trials` is the front. Stops cleanly after `timeout` seconds (no new trial is started)."""
    fidelity = config.fidelity
    assert fidelity is not None, "a single-fidelity study runs in nas.study.loop"
    dev = resolve_device(device)
    rungs, storage = open_rungs(config, create=True, data=data, log=log)
    for rung, study in enumerate(rungs):
        for number in reap_dead_local_trials(study, storage):
            log(f"r{rung} trial #{number} was left running by a worker that died; marked failed and queued again")
    lost = requeue_lost_baselines(rungs[0], config, data)
    if lost:
        log(f"baseline(s) {', '.join(lost)} never finished (their workers died); queued again")
    done = count_finished(rungs[0])
    # queued trials are trained even past the target (a front needs its hand placements): the
    # target counts them all, and a trial queued again (a retry, a lost baseline) runs past it
    goal = study_target(rungs[0], trials if trials is not None else config.trials)
    target = goal.count
    objectives = [RungObjective(rung_config(config, k), data, dev, trainer, rung=k,
                                seeds=fidelity.seeds_at(k, config.proxy.seed)) for k in range(fidelity.top + 1)]
    for objective in objectives:  # every rung predicts from the table stored in rung 0's study
        objective.table = table_of(rungs[0])
    log(f"study {config.name!r}: {fidelity.top + 1} rungs, "
        f"{', '.join(fidelity.describe(k) for k in range(fidelity.top + 1))}; {fidelity.rule()}; "
        f"{fidelity.learns_from(config.sampler)}; "
        f"{done}/{target} candidates finished at rung 0 ({goal.why()}), storage {masked(config.storage)}, device {dev}")
    log("FLOPs are fvcore counts: one multiply-add = one flop")
    worker = _Worker(config, rungs, objectives, log)
    bar = progress_bar(progress, target, done)
    started = time.monotonic()
    trials_run = 0
    sampling, timed_out = True, False
    try:
        while True:
            if timeout is not None and time.monotonic() - started > timeout:
                log(f"timeout: {timeout:g} s passed; stopping with {done}/{target} candidates finished at rung 0 "
                    "(the same command resumes, promotions included)")
                timed_out = True
                break
            for study in rungs:
                reap_dead_local_trials(study, storage)
            wanted = done < target or count(rungs[0], TrialState.WAITING) > 0
            if sampling and wanted and (worker.exhausted(done, target) or worker.settled(done, target)):
                sampling = False
            ran = worker.promote()
            if ran is None and sampling and wanted:
                ran = worker.run(0)
            if ran is None:
                if not worker.others_below_top():
                    break
                worker.wait()
                continue
            trials_run += 1
            write_line(bar, log, worker.line(ran))
            noise = record_noise(rungs[0], config, objectives[0].proxy_key)  # measured at rung 0
            if noise is not None:
                write_line(bar, log, noise_line(noise))
            worker.check_progress(ran)
            done = count_finished(rungs[0])
            if bar is not None:
                bar.n = min(done, target)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"r{k} {count_finished(study)}" for k, study in enumerate(rungs))
    if trials_run == 0 and not timed_out:
        log(f"study {config.name!r} already has {done} finished candidates at rung 0 (target {target}) and every "
            f"promotion they earned is trained; nothing to do (finished trials per rung: {counts})")
    else:
        log(f"finished trials per rung: {counts}; the front is read at {fidelity.describe(fidelity.top)}")
    return rungs[-1]


@dataclasses.dataclass
class Ran:
    """A trial this worker ran: its rung, the trial as Optuna settled it, and its progress line's content."""

    rung: int
    trial: FrozenTrial
    report: TrialReport


class _Worker:
    """The loop's steps, sharing the rung studies, their objectives and the failure counts."""

    def __init__(self, config: StudyConfig, rungs: Sequence[optuna.Study], objectives: Sequence[RungObjective],
                 log: Callable[[str], None]) -> None:
        assert config.fidelity is not None
        self.config, self.fidelity, self.rungs, self.objectives, self.log = (
            config, config.fidelity, rungs, objectives, log)
        self.space_size = config.space_size()
        self.failures = self.infeasible = self.repeats = 0
        self.waiting_said = False

    def promote(self) -> Ran | None:
        """Steps 1 and 2 of the module docstring: run a waiting or newly claimed promotion."""
        with contextlib.ExitStack() as lock:
            lock.enter_context(creation_lock(self.config.storage))
            rung = next((k for k in range(self.fidelity.top, 0, -1)
                         if count(self.rungs[k], TrialState.WAITING)), None)
            if rung is None:
                claimed = claim_promotion(self.rungs, self.fidelity, self.config.proxy.seed)
                rung = claimed[0] if claimed is not None else None
            ran = self.run(rung, release=lock.close) if rung is not None else None
        return ran

    def run(self, rung: int, release: Callable[[], None] | None = None) -> Ran:
        """One trial of `rung`'s study; `release` is called once Optuna has popped it."""
        objective = self.objectives[rung]
        objective.last, objective.number, objective.release = None, None, release
        try:
            with quiet_experimental():
                self.rungs[rung].optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
        finally:
            objective.release = None
        number = objective.number
        trial = next(t for t in self.rungs[rung].get_trials(deepcopy=False) if t.number == number)
        self.waiting_said = False
        return Ran(rung, trial, trial_report(self.rungs[rung], trial, objective.last))

    def exhausted(self, done: int, target: int) -> bool:
        """Whether rung 0 has evaluated every architecture of the space (nothing new to sample)."""
        if count(self.rungs[0], TrialState.WAITING):
            return False
        evaluated = count_evaluated(self.rungs[0], self.objectives[0].proxy_key)
        if evaluated < self.space_size:
            return False
        self.log(f"no more sampling: all {self.space_size:,} distinct architectures of the search space have been "
                 f"evaluated at rung 0 ({done}/{target} finished trials); finishing the promotions they earned")
        return True

    def settled(self, done: int, target: int) -> bool:
        """Whether the sampler has proposed only evaluated architectures at rung 0 many times in a row."""
        if self.repeats < MAX_REPEATS_IN_A_ROW:
            return False
        self.log(f"no more sampling: the sampler proposed only architectures already evaluated for {self.repeats} "
                 f"trials in a row ({done}/{target} finished trials, repeats not counted); finishing the promotions "
                 "they earned")
        return True

    def others_below_top(self) -> bool:
        """Whether another worker is running a trial whose result may still earn a promotion."""
        return any(count(study, TrialState.RUNNING) for study in self.rungs[:-1])

    def wait(self) -> None:
        if not self.waiting_said:
            self.log("waiting for other workers' trials below the top rung: their results may earn promotions")
            self.waiting_said = True
        with quiet_experimental():
            for study in self.rungs:  # a dead worker on another machine: re-queued after the heartbeat's grace
                optuna.storages.fail_stale_trials(study)
        time.sleep(POLL_SECONDS)

    @staticmethod
    def line(ran: Ran) -> str:
        """The trial's progress line, prefixed by its rung: `r1 #4  * acc ...  from r0 #12, 2 seeds ± 0.0123`."""
        rung, trial, report = ran.rung, ran.trial, ran.report
        attrs = trial.user_attrs
        notes = []
        if TrialAttr.PROMOTED_FROM in attrs:
            notes.append(f"from r{rung - 1} #{attrs[TrialAttr.PROMOTED_FROM]}")
        accuracies = attrs.get(TrialAttr.ACCURACIES, ())
        if len(accuracies) > 1:
            notes.append(f"{len(accuracies)} seeds ± {attrs.get(TrialAttr.ACCURACY_STD, 0.0):.4f}")
        report.note = "; ".join(filter(None, [", ".join(notes), report.note]))
        return f"r{rung} {format_report(report)}"

    def check_progress(self, ran: Ran) -> None:
        """Stop, with a StudyError, after many failures (any rung) or over-budget samples in a row."""
        rung, trial = ran.rung, ran.trial
        self.failures = self.failures + 1 if trial.state == TrialState.FAIL else 0
        if rung == 0:
            self.infeasible = self.infeasible + 1 if trial.state == TrialState.PRUNED else 0
            self.repeats = self.repeats + 1 if TrialAttr.DUPLICATE_OF in trial.user_attrs else 0
        if self.failures >= MAX_FAILURES_IN_A_ROW:
            raise StudyError(
                f"stopping: the last {self.failures} trials failed (latest: "
                f"{trial.user_attrs.get(TrialAttr.FAIL_REASON, 'see the dashboard')}); finished trials are kept"
            )
        if self.infeasible >= MAX_INFEASIBLE_IN_A_ROW:
            raise StudyError(
                f"stopping: the last {self.infeasible} samples were all over budget "
                f"({trial.user_attrs.get(TrialAttr.FAIL_REASON)}); raise the limit in constraints or shrink the space"
            )

