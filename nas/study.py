"""Running a search study: one worker's loop over Optuna trials until the study reaches its target.

A trial: sample an ArchConfig from the space (or take a queued baseline), count its cost first
(cached by arch_id) and refuse it without training when it is over budget, reuse the result of
an identical earlier trial, else train it on the proxy and report (accuracy, cost...). Many
workers are many processes on one storage (Optuna's own distributed model); see `nas.storage`.

Trial states: COMPLETE (has a result; counts toward `trials`), PRUNED (over budget: recorded as
infeasible with `trial.set_constraint`, not trained), FAIL (diverged, crashed, interrupted; the
reason is in the `fail_reason` user attr).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchConfig
from nas.build import build_model
from nas.cost import arch_cost, measure_latency
from nas.data import Dataset
from nas.errors import ConfigError, StudyError, TrainingDiverged, interrupt_reason
from nas.storage import MAX_RETRY, creation_lock, masked, open_storage, quiet_experimental, storage_errors
from nas.studyfile import StudyConfig, load_study_config
from nas.train import ProxyConfig, ProxyResult, resolve_device, train_proxy

MAX_FAILURES_IN_A_ROW = 5  # trials failing one after another: stop, something is wrong
MAX_INFEASIBLE_IN_A_ROW = 50  # samples over budget one after another: the budget excludes the space
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class TrialSeededSampler(BaseSampler):
    """Wraps a sampler and reseeds it from (seed, trial number) before every trial.

    A single worker thus samples exactly as a plain seeded sampler would on the same history,
    while workers started at the same moment with the same seed do not all draw the same
    candidate. TPE, NSGA-II and random sampling keep no state besides their RNG (they read the
    history from the storage), so a fresh inner sampler per trial changes nothing else.
    """

    def __init__(self, factory: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._factory = factory
        self._seed = seed
        self._inner = factory(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seed = None if self._seed is None else (self._seed * 1_000_003 + trial.number) % 2**31
        self._inner = self._factory(seed)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(config: StudyConfig) -> BaseSampler:
    """TPE (multivariate, grouped: the space is conditional; constant liar for parallel
    workers), NSGA-II or random, as the study file says."""
    options = {k: v for k, v in config.sampler.items() if k not in ("name", "seed")}
    name = config.sampler["name"]

    def factory(seed: int | None) -> BaseSampler:
        if name == "tpe":
            return TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, **options)
        if name == "nsga2":
            return NSGAIISampler(seed=seed, **options)
        return RandomSampler(seed=seed)

    with quiet_experimental():
        factory(0)  # fail now, not in the first trial, if an option is wrong
    return TrialSeededSampler(factory, config.sampler.get("seed"))


def proxy_key(config: StudyConfig) -> str:
    """A short fingerprint of what makes two results comparable: the proxy and the data."""
    blob = json.dumps({"proxy": config.proxy.to_dict(), "dataset": config.dataset}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


MARKER = "nas"  # the study attribute written first when nas creates a study: {"format": 1}


def open_study(
    config: StudyConfig, *, create: bool, data: Dataset | None = None
) -> tuple[optuna.Study, BaseStorage]:
    """Load the study, or with `create` make it (directions, metric names, study attributes,
    baselines queued first) — once, under the storage's creation lock, however many workers.

    A study of that name that nas did not create, or that has other objectives, is refused
    before a byte is written to it (`check_ours`)."""
    storage = open_storage(config.storage, create=create)
    with creation_lock(config.storage), quiet_experimental():
        try:
            study = optuna.load_study(study_name=config.name, storage=storage, sampler=make_sampler(config))
        except KeyError:
            if not create:
                raise StudyError(
                    f"no study named {config.name!r} in {masked(config.storage)}; run `nas search` first"
                ) from None
            study = optuna.create_study(
                study_name=config.name, storage=storage, directions=config.directions,
                sampler=make_sampler(config),
            )
        check_ours(study, config)  # a study just created has no attribute yet: it passes as pristine
        if create:  # each step checks its own mark, so a creation interrupted half-way is completed
            if MARKER not in study.user_attrs:
                study.set_user_attr(MARKER, {"format": 1})
            if study.metric_names is None:
                study.set_metric_names(config.metric_names)
            if "study_file" not in study.user_attrs:
                _describe(study, config)
            if data is not None and not study.user_attrs.get("baselines_queued"):
                _queue_baselines(study, config, data)
                study.set_user_attr("baselines_queued", True)
    return study, storage


def check_ours(study: optuna.Study, config: StudyConfig) -> None:
    """Refuse a foreign study (same name, made by someone else) and one with other objectives.

    Ours: it carries the marker, or `study_file` (studies made before the marker existed). A
    study with no attribute and no trial at all is one whose creation was interrupted right
    after `create_study`: adopted when its directions match, since nothing in it can be lost."""
    attrs = study.user_attrs
    where = f"study {config.name!r} in {masked(config.storage)}"
    ours = MARKER in attrs or "study_file" in attrs
    if not ours and (attrs or study.get_trials(deepcopy=False)):
        raise StudyError(
            f"{where} was not created by nas (it has no {MARKER!r} attribute); nas will not write to or read "
            "another tool's study: use another study name or storage"
        )
    directions = [d.name.lower() for d in study.directions]
    have = attrs.get("objectives") if ours else None
    if directions != list(config.directions) or (have is not None and list(have) != list(config.objectives)):
        shown = f"objectives {list(have)}" if have is not None else f"directions {directions}"
        raise StudyError(
            f"{where} has {shown}, but {config.path.name} asks for objectives {list(config.objectives)} "
            f"({', '.join(config.directions)}); use another study name"
        )


def _describe(study: optuna.Study, config: StudyConfig) -> None:
    attrs = {
        "objectives": list(config.objectives),
        "backbone": config.backbone,
        "backbone_args": dict(config.backbone_args),
        "dataset": {k: str(v) if k in ("path", "root") else v for k, v in config.dataset.items()},
        "proxy": config.proxy.to_dict(),
        "proxy_key": proxy_key(config),
        "sampler": dict(config.sampler),
        "constraints": {"max_mflops": config.max_mflops, "max_params": config.max_params},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "study_file": str(config.path),  # last: its presence marks the description complete
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def _queue_baselines(
    study: optuna.Study, config: StudyConfig, data: Dataset, states: tuple[TrialState, ...] | None = None
) -> list[str]:
    """Queue the uniform hand placements so they are trained first, each marked `baseline`:
    those with no trial in the study (in `states`, when given). Returns the labels queued."""
    present = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False, states=states)}
    queued = []
    for label, spec in config.baselines:
        if label in present:
            continue
        arch = config.baseline_arch(spec, data.num_classes, data.in_chans)
        params = config.space.params_for(arch) or {}
        study.enqueue_trial(params, user_attrs={"baseline": label, "arch": arch.to_dict()})
        queued.append(label)
    return queued


def requeue_lost_baselines(study: optuna.Study, config: StudyConfig, data: Dataset) -> list[str]:
    """Queue again every baseline with no finished, over-budget, queued or running trial: one
    whose worker was killed more often than Optuna retries it. The comparison with hand
    placement is the point of a study, so a baseline is never given up."""
    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    with creation_lock(config.storage):  # two workers starting at once queue it once
        return _queue_baselines(study, config, data, states=alive)


def count_evaluated(study: optuna.Study, proxy: str) -> int:
    """Distinct architectures of the search space with a result at this proxy (finished) or
    refused as over budget; baselines outside the space (queued without parameters) excluded."""
    seen = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = t.user_attrs
        if "arch_id" not in attrs or ("baseline" in attrs and not t.params):
            continue
        if t.state == TrialState.PRUNED or attrs.get("proxy_key") == proxy:
            seen.add(attrs["arch_id"])
    return len(seen)


def count_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def reap_dead_local_trials(study: optuna.Study, storage: BaseStorage) -> list[int]:
    """Fail and re-queue RUNNING trials whose worker process on this host no longer exists.

    Optuna's heartbeat does the same for any host after the grace period; on the worker's own
    host a restart can tell at once, so a killed-and-restarted worker retries its trial
    immediately instead of after the grace period.
    """
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        reason = f"worker {worker} died"
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)  # while still updatable
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            # The retry copies the user attributes; a retry that then finishes must not carry the
            # dead attempt's fail_reason, so the copy keeps it as `retried_after` instead.
            dead = copy.deepcopy(storage.get_trial(trial_id))
            dead.user_attrs = {**{k: v for k, v in dead.user_attrs.items() if k != "fail_reason"},
                               "retried_after": reason}
            with quiet_experimental():
                RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, dead)
            reaped.append(trial.number)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


Trainer = Callable[[ArchConfig, Dataset, ProxyConfig, torch.device], ProxyResult]


def train_architecture(arch: ArchConfig, data: Dataset, proxy: ProxyConfig, device: torch.device) -> ProxyResult:
    """The default trainer: build the candidate after seeding (common random numbers), train it."""
    return train_proxy(lambda: build_model(arch), data, proxy, device, progress=False)


class Objective:
    """The function Optuna calls per trial; keeps the per-worker cost cache."""

    def __init__(self, config: StudyConfig, data: Dataset, device: torch.device,
                 trainer: Trainer | None = None) -> None:
        self.config = config
        self.trainer = trainer or train_architecture
        self.data = data
        self.device = device
        self.template = config.template(data.num_classes, data.in_chans)
        self.proxy_key = proxy_key(config)
        self.costs: dict[str, tuple[int, int]] = {}
        self.latencies: dict[str, float] = {}
        self.last: TrialReport | None = None

    def architecture(self, trial: optuna.Trial) -> ArchConfig:
        queued = trial.user_attrs.get("arch")
        if queued is not None and "baseline" in trial.user_attrs:
            arch = ArchConfig.from_dict(queued)
            if trial.params:  # queued with the space's parameters: let the sampler record them
                self.config.space.sample(trial, self.template)
            return arch
        return self.config.space.sample(trial, self.template)

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        """Evaluate one trial; any failure, at any step, is recorded as its `fail_reason` and
        shown on its progress line before Optuna marks it FAIL."""
        self.step = "sampling"  # what `_evaluate` is doing, named in the reason when it fails
        try:
            return self._evaluate(trial)
        except optuna.TrialPruned:  # over budget: its reason is already recorded
            raise
        except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM, at any step: Optuna then marks it FAIL
            with contextlib.suppress(Exception):  # the reason is a courtesy; the FAIL state is what matters
                trial.set_user_attr("fail_reason", interrupt_reason(interrupt))
            raise
        except Exception as error:
            reason = failure_reason(error, self.step)
            with contextlib.suppress(Exception):  # a storage error may be what failed; FAIL still follows
                trial.set_user_attr("fail_reason", reason)
            if self.last is not None:
                self.last.note = reason
            raise

    def _evaluate(self, trial: optuna.Trial) -> Sequence[float]:
        start = time.perf_counter()
        trial.set_user_attr("worker", WORKER)
        arch = self.architecture(trial)
        self.step = "building the model and counting its FLOPs"
        arch_id = arch.arch_id
        self.last = TrialReport(trial.number, "RUNNING", arch_id, None, None, 0.0)
        for key, value in (("arch", arch.to_dict()), ("arch_id", arch_id), ("proxy_key", self.proxy_key),
                           ("seed", self.config.proxy.seed)):
            trial.set_user_attr(key, value)
        if arch_id not in self.costs:
            cost = arch_cost(arch, self.data.image_size)
            self.costs[arch_id] = (cost.flops, cost.params)
        flops, params = self.costs[arch_id]
        mflops = flops / 1e6
        trial.set_user_attr("mflops", mflops)
        trial.set_user_attr("params", params)
        self.last.mflops = mflops
        over = self._constrain(trial, mflops, params)
        if over:
            trial.set_user_attr("fail_reason", over)
            self.last.note = over
            raise optuna.TrialPruned(over)

        earlier = self._earlier_result(trial, arch_id)
        if earlier is not None:
            trial.set_user_attr("duplicate_of", earlier.number)
            for key in ("seconds", "images_per_second", "device", "epochs_done"):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            accuracy = earlier.values[self.config.objectives.index("accuracy")]
            self.last.accuracy = accuracy
            self.last.note = f"same as #{earlier.number}"
            self.step = "computing the objectives"
            return self._values(arch, accuracy, mflops, params)

        self.step = "training"
        result = self.trainer(arch, self.data, self.config.proxy, self.device)
        self._record(trial, result)
        self.last.accuracy = result.accuracy
        self.last.seconds = time.perf_counter() - start
        self.step = "computing the objectives"
        return self._values(arch, result.accuracy, mflops, params)

    def _constrain(self, trial: optuna.Trial, mflops: float, params: int) -> str:
        """Record constraint values (<= 0 feasible) and say why the trial is over budget, if it is."""
        reasons = []
        if self.config.max_mflops is not None:
            trial.set_constraint("mflops", mflops - self.config.max_mflops)
            if mflops > self.config.max_mflops:
                reasons.append(f"over budget: {mflops:.2f} MFLOPs > max_mflops {self.config.max_mflops}")
        if self.config.max_params is not None:
            trial.set_constraint("params", params - self.config.max_params)
            if params > self.config.max_params:
                reasons.append(f"over budget: {params} params > max_params {self.config.max_params}")
        return "; ".join(reasons)

    def _earlier_result(self, trial: optuna.Trial, arch_id: str) -> FrozenTrial | None:
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            attrs = other.user_attrs
            if attrs.get("arch_id") == arch_id and attrs.get("proxy_key") == self.proxy_key:
                return other
        return None

    def _record(self, trial: optuna.Trial, result: ProxyResult) -> None:
        trial.set_user_attr("seconds", round(result.seconds, 3))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("device", result.device)
        trial.set_user_attr("epochs_done", result.epochs_done)
        trial.set_user_attr("val_loss", result.loss)

    def _values(self, arch: ArchConfig, accuracy: float, mflops: float, params: int) -> list[float]:
        values = []
        for objective in self.config.objectives:
            if objective == "accuracy":
                values.append(accuracy)
            elif objective == "flops":
                values.append(mflops)
            elif objective == "params":
                values.append(params / 1e6)
            else:
                if arch.arch_id not in self.latencies:
                    shape = (1, arch.in_chans, *self.data.image_size)
                    self.latencies[arch.arch_id] = 1e3 * measure_latency(build_model(arch), shape, self.device)
                values.append(self.latencies[arch.arch_id])
        return values


def failure_reason(error: BaseException, step: str) -> str:
    """One line saying why a trial failed and at which step (`fail_reason`, the trial's line)."""
    if isinstance(error, TrainingDiverged):
        return f"diverged: {error}"
    lines = str(error).strip().splitlines()
    return f"{step} failed: {type(error).__name__}: {lines[0][:300] if lines else '(no message)'}"


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
    """Create or resume the study and run trials until it has `trials` COMPLETE ones.

    `trainer(arch, data, proxy, device)` replaces the proxy training (default
    `train_architecture`), for example to share results between studies in a benchmark.

    Stops early, with a StudyError, when it cannot make progress (many failures or over-budget
    samples in a row); stops cleanly after `timeout` seconds (no new trial is started).
    """
    with storage_errors(config.storage):
        return _run(config, data, device, trials, timeout, log, progress, trainer)


def _run(
    config: StudyConfig, data: Dataset, device: str, trials: int | None, timeout: float | None,
    log: Callable[[str], None], progress: bool | None, trainer: Trainer | None,
) -> optuna.Study:
    target = trials if trials is not None else config.trials
    dev = resolve_device(device)
    study, storage = open_study(config, create=True, data=data)
    for number in reap_dead_local_trials(study, storage):
        log(f"trial #{number} was left running by a worker that died; marked failed and queued again")
    lost = requeue_lost_baselines(study, config, data)
    if lost:
        log(f"baseline(s) {', '.join(lost)} never finished (their workers died); queued again")
    done = count_complete(study)
    # queued baselines are trained even past the target: a front needs its hand placements
    target = max(target, done + len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))))
    if done >= target:
        log(f"study {config.name!r} already has {done} finished trials (target {target}); nothing to do")
        return study
    space_size = config.space_size()
    objective = Objective(config, data, dev, trainer)
    log(f"study {config.name!r}: {done}/{target} finished trials, storage {masked(config.storage)}, device {dev}")
    log("FLOPs are fvcore counts: one multiply-add = one flop")
    bar = _bar(progress, target, done)
    started = time.monotonic()
    failures = infeasible = 0
    try:
        while done < target:
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
            report = _report(study, trial, objective.last)
            _write(bar, log, _format(report))
            failures = failures + 1 if trial.state == TrialState.FAIL else 0
            infeasible = infeasible + 1 if trial.state == TrialState.PRUNED else 0
            done = count_complete(study)
            if bar is not None:
                bar.n = min(done, target)
                bar.refresh()
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise StudyError(
                    f"stopping: the last {failures} trials failed (latest: "
                    f"{trial.user_attrs.get('fail_reason', 'see the dashboard')}); finished trials are kept"
                )
            if infeasible >= MAX_INFEASIBLE_IN_A_ROW:
                raise StudyError(
                    f"stopping: the last {infeasible} samples were all over budget "
                    f"({trial.user_attrs.get('fail_reason')}); raise the limit in constraints or shrink the space"
                )
    finally:
        if bar is not None:
            bar.close()
    return study


def _report(study: optuna.Study, trial: FrozenTrial, last: TrialReport | None) -> TrialReport:
    attrs = trial.user_attrs
    seconds = (trial.duration.total_seconds() if trial.duration else 0.0)
    report = last or TrialReport(trial.number, "", attrs.get("arch_id", "?"), None, attrs.get("mflops"), seconds)
    report.state = trial.state.name
    report.seconds = seconds
    if trial.state == TrialState.COMPLETE:
        report.on_front = trial.number in {t.number for t in study.best_trials}
        if "baseline" in attrs:
            report.note = (report.note + f" baseline {attrs['baseline']}").strip()
    elif trial.state == TrialState.FAIL and not report.note:
        report.note = attrs.get("fail_reason", "failed")
    return report


def _format(r: TrialReport) -> str:
    acc = f"acc {r.accuracy:.4f}" if r.accuracy is not None else f"{r.state.lower():>10}"
    mf = f"{r.mflops:8.2f} MFLOPs" if r.mflops is not None else " " * 15
    star = "*" if r.on_front else " "
    return f"#{r.number:<4d} {star} {acc}  {mf}  {r.seconds:6.1f} s  {r.arch_id}  {r.note}".rstrip()


def _bar(progress: bool | None, total: int, initial: int) -> Any:
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    from tqdm import tqdm  # optuna's own dependency

    return tqdm(total=total, initial=initial, desc="finished trials", unit="trial", file=sys.stderr, leave=False)


def _write(bar: Any, log: Callable[[str], None], line: str) -> None:
    if bar is not None:
        bar.write(line, file=sys.stdout)
    else:
        log(line)


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
