"""Running a search study: one worker's loop over Optuna trials until the study reaches its
target (COMPLETE trials), or cannot make progress, or runs out of time. Many workers are many
processes on one storage (Optuna's own distributed model); see `nas.storage`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas import interrupts
from nas.attrs import TrialAttr
from nas.data import Dataset
from nas.errors import ConfigError, StudyError
from nas.refine import run_refine
from nas.storage import masked, quiet_experimental, storage_errors
from nas.study.asha import run_multi_fidelity
from nas.study.counts import count_evaluated, count_finished, count_waiting, study_target
from nas.study.creation import open_study, requeue_lost_baselines
from nas.study.latency import table_of
from nas.study.noise_seeds import noise_line, record_noise
from nas.study.objective import Objective, Trainer
from nas.study.oneshot import SupernetTrainer, prepare_supernet, record_supernet
from nas.study.progress import format_report, progress_bar, trial_report, write_line
from nas.study.rungs import top_rung
from nas.study.workers import reap_dead_local_trials
from nas.studyfile import StudyConfig, load_study_config
from nas.train import resolve_device

MAX_FAILURES_IN_A_ROW = 5  # trials failing one after another: stop, something is wrong
MAX_INFEASIBLE_IN_A_ROW = 50  # samples over budget one after another: the budget excludes the space
MAX_REPEATS_IN_A_ROW = 50  # reused duplicates one after another: the sampler has settled; stop, no error


def run_search(
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
    """Create or resume the study and run trials until it has `trials` finished ones (COMPLETE, a
    reused duplicate not counted: `count_finished`); a study with a
    `fidelity` section runs its rungs instead (`nas.study.asha`: `trials` finished at rung 0, then
    the promotions they earn; returns the top rung's study). Then, unless `confirm.after_search` is
    false or `timeout` passed, confirms the front (`nas.refine`: resumable, one worker at a time).

    `trainer(arch, data, proxy, device)` replaces the proxy training (default
    `train_architecture`), for example to share results between studies in a benchmark.

    Stops early, with a StudyError, when it cannot make progress (many failures or over-budget
    samples in a row); stops cleanly after `timeout` seconds (no new trial is started).
    """
    started = time.monotonic()
    with storage_errors(config.storage):
        if config.fidelity is not None:  # rungs, promotions: its own loop
            study = run_multi_fidelity(config, data, device=device, trials=trials, timeout=timeout, log=log,
                                       progress=progress, trainer=trainer)
        else:
            study = _run(config, data, device, trials, timeout, log, progress, trainer)
        if config.confirm.after_search:
            if timeout is not None and time.monotonic() - started > timeout:
                log("confirmation not started (timeout); `nas search` again, or `nas refine`, confirms the front")
            else:
                confirm_config = top_rung(config)[0] if config.fidelity is not None else config
                run_refine(confirm_config, study, data, device=device, log=log)
    return study


def _run(
    config: StudyConfig, data: Dataset, device: str, trials: int | None, timeout: float | None,
    log: Callable[[str], None], progress: bool | None, trainer: Trainer | None,
) -> optuna.Study:
    dev = resolve_device(device)
    supernet = None
    if config.evaluation.kind == "supernet" and trainer is None:  # trained (or refused) before the study is made
        supernet = prepare_supernet(config, data, dev, log, progress)
        trainer = SupernetTrainer(supernet, config.evaluation.recal)
    study, storage = open_study(config, create=True, data=data, log=log)
    if supernet is not None:
        record_supernet(study, config, supernet)
    for number in reap_dead_local_trials(study, storage):
        log(f"trial #{number} was left running by a worker that died; marked failed and queued again")
    lost = requeue_lost_baselines(study, config, data)
    if lost:
        log(f"baseline(s) {', '.join(lost)} never finished (their workers died); queued again")
    done = count_finished(study)
    # queued trials are trained even past the target (a front needs its hand placements): the
    # target counts them all, and a trial queued again (a retry, a lost baseline) runs past it
    goal = study_target(study, trials if trials is not None else config.trials)
    target = goal.count
    if done >= target and not count_waiting(study):
        log(f"study {config.name!r} already has {done} finished trials (target {target}; {goal.why()}); "
            "nothing to do")
        return study
    space_size = config.space_size()
    objective = Objective(config, data, dev, trainer)
    objective.table = table_of(study)
    log(f"study {config.name!r}: {done}/{target} finished trials ({goal.why()}), storage {masked(config.storage)}, "
        f"device {dev}")
    log("FLOPs are fvcore counts: one multiply-add = one flop")
    label = "acc"
    if supernet is not None:
        label = "score"
        log("score: validation accuracy with the supernet's inherited weights, a ranking only; the front is "
            "confirmed by standalone training at the end (confirm section)")
    bar = progress_bar(progress, target, done)
    started = time.monotonic()
    failures = infeasible = repeats = 0
    try:
        while done < target or count_waiting(study):
            interrupts.stop_if_swallowed()
            if timeout is not None and time.monotonic() - started > timeout:
                log(f"timeout: {timeout:g} s passed; stopping with {done}/{target} finished trials")
                break
            reap_dead_local_trials(study, storage)
            evaluated = count_evaluated(study, objective.proxy_key)
            if evaluated >= space_size and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                log(f"stopping: all {space_size:,} distinct architectures of the search space have been evaluated "
                    f"at this proxy ({done}/{target} finished trials); more trials would only repeat them")
                break
            objective.last = None
            with quiet_experimental():
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
            number = objective.last.number if objective.last is not None else study.trials[-1].number
            trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
            write_line(bar, log, format_report(trial_report(study, trial, objective.last), label))
            noise = record_noise(study, config, objective.proxy_key)
            if noise is not None:
                write_line(bar, log, noise_line(noise))
            failures = failures + 1 if trial.state == TrialState.FAIL else 0
            infeasible = infeasible + 1 if trial.state == TrialState.PRUNED else 0
            repeats = repeats + 1 if TrialAttr.DUPLICATE_OF in trial.user_attrs else 0
            done = count_finished(study)
            if bar is not None:
                bar.n = min(done, target)
                bar.refresh()
            if repeats >= MAX_REPEATS_IN_A_ROW:
                log(f"stopping: the sampler proposed only architectures already evaluated for {repeats} trials in a "
                    f"row ({done}/{target} finished trials, repeats not counted); the search has settled")
                break
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise StudyError(
                    f"stopping: the last {failures} trials failed (latest: "
                    f"{trial.user_attrs.get(TrialAttr.FAIL_REASON, 'see the dashboard')}); finished trials are kept"
                )
            if infeasible >= MAX_INFEASIBLE_IN_A_ROW:
                raise StudyError(
                    f"stopping: the last {infeasible} samples were all over budget "
                    f"({trial.user_attrs.get(TrialAttr.FAIL_REASON)}); raise the limit in constraints or shrink "
                    "the space"
                )
    finally:
        if bar is not None:
            bar.close()
    return study


def search(
    study: str | Path | StudyConfig,
    *,
    trainer: Trainer | None = None,
    data: Dataset | None = None,
    trials: int | None = None,
    device: str = "auto",
    timeout: float | None = None,
    log: Callable[[str], None] = print,
    progress: bool | None = False,
) -> optuna.Study:
    """Run a study from Python (a notebook, your own script): what `nas search FILE` does.

    `study` is a study file or a `StudyConfig` (`nas.studyfile.load_study_config(path, storage)`
    to override its storage). `trainer(arch, data, proxy, device) -> ProxyResult` replaces the
    proxy training with your own loop; `data` replaces the study's dataset with one already
    loaded. Returns the Optuna study (`study.best_trials` is the Pareto front).
    """
    config = study if isinstance(study, StudyConfig) else load_study_config(study)
    if trials is not None and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise ConfigError(f"trials = {trials!r} is invalid; allowed: an integer >= 1")
    resolve_device(device)  # refuse a bad device before loading the data
    if data is None:
        data = config.load_data()
    verbosity = optuna.logging.get_verbosity()
    # `log` gets one line per trial, with a failure's reason; Optuna's own lines would repeat them
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.ERROR))
    try:
        return run_search(config, data, device=device, trials=trials, timeout=timeout, log=log, progress=progress,
                          trainer=trainer)
    finally:
        optuna.logging.set_verbosity(verbosity)
