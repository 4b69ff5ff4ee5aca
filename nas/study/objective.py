"""One trial: sample an ArchConfig from the space (or take a queued baseline), count its cost
first (cached by arch_id) and refuse it without training when it is over budget, reuse the
result of an identical earlier trial, else train it on the proxy and return its objective values.

A trial is trained with the study's proxy, or at the `epochs` and `seed` it was queued with (user
attributes: a noise seed, a fidelity rung); it records the epochs and seed it used either way.

Trial states: COMPLETE (has a result), PRUNED (over budget: recorded as infeasible with
`trial.set_constraint`, not trained), FAIL (diverged, crashed, interrupted; the reason is in the
`fail_reason` user attr).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchConfig
from nas.attrs import TrialAttr
from nas.build import build_model
from nas.cost import arch_cost
from nas.data import Dataset
from nas.errors import TrainingDiverged, interrupt_reason
from nas.latency.table import LatencyTable
from nas.objectives import ACCURACY, FLOPS, LATENCY, PARAMS
from nas.study.creation import proxy_key
from nas.study.latency import require
from nas.study.progress import TrialReport
from nas.study.workers import WORKER
from nas.studyfile import StudyConfig
from nas.train import ProxyConfig, ProxyResult, estimated_images, train_proxy

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
        self.table: LatencyTable | None = None  # the study's (nas.study.latency), when latency is an objective
        self.last: TrialReport | None = None

    def architecture(self, trial: optuna.Trial) -> ArchConfig:
        queued = trial.user_attrs.get(TrialAttr.ARCH)
        if queued is not None and TrialAttr.BASELINE in trial.user_attrs:
            arch = ArchConfig.from_dict(queued)
            if trial.params:  # queued with the space's parameters: let the sampler record them
                self.config.space.sample(trial, self.template)
            return arch
        return self.config.space.sample(trial, self.template)

    def proxy(self, trial: optuna.Trial) -> ProxyConfig:
        """The study's proxy, at the epochs and seed the trial was queued with, if it was."""
        default, attrs = self.config.proxy, trial.user_attrs
        return dataclasses.replace(default, epochs=attrs.get(TrialAttr.EPOCHS, default.epochs),
                                   seed=attrs.get(TrialAttr.SEED, default.seed))

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
                trial.set_user_attr(TrialAttr.FAIL_REASON, interrupt_reason(interrupt))
            raise
        except Exception as error:
            reason = failure_reason(error, self.step)
            with contextlib.suppress(Exception):  # a storage error may be what failed; FAIL still follows
                trial.set_user_attr(TrialAttr.FAIL_REASON, reason)
            if self.last is not None:
                self.last.note = reason
            raise

    def _evaluate(self, trial: optuna.Trial) -> Sequence[float]:
        start = time.perf_counter()
        trial.set_user_attr(TrialAttr.WORKER, WORKER)
        self.step = "reading the epochs and seed it was queued with"
        proxy = self.proxy(trial)
        self.step = "sampling"
        arch = self.architecture(trial)
        self.step = "building the model and counting its FLOPs"
        arch_id = arch.arch_id
        self.last = TrialReport(trial.number, "RUNNING", arch_id, None, None, 0.0)
        for key, value in ((TrialAttr.ARCH, arch.to_dict()), (TrialAttr.ARCH_ID, arch_id),
                           (TrialAttr.PROXY_KEY, self.proxy_key), (TrialAttr.SEED, proxy.seed),
                           (TrialAttr.EPOCHS, proxy.epochs)):
            trial.set_user_attr(key, value)
        if arch_id not in self.costs:
            cost = arch_cost(arch, self.data.image_size)
            self.costs[arch_id] = (cost.flops, cost.params)
        flops, params = self.costs[arch_id]
        mflops = flops / 1e6
        trial.set_user_attr(TrialAttr.MFLOPS, mflops)
        trial.set_user_attr(TrialAttr.PARAMS, params)
        if self.table is not None:
            self._record_latency(trial, arch_id)
        self.last.mflops = mflops
        over = self._constrain(trial, mflops, params)
        if over:
            trial.set_user_attr(TrialAttr.IMAGES_SEEN, 0)
            trial.set_user_attr(TrialAttr.FAIL_REASON, over)
            self.last.note = over
            raise optuna.TrialPruned(over)

        earlier = self._earlier_result(trial, arch_id, proxy)
        if earlier is not None:
            trial.set_user_attr(TrialAttr.DUPLICATE_OF, earlier.number)
            trial.set_user_attr(TrialAttr.IMAGES_SEEN, 0)  # nothing trained: compute accounting counts none
            for key in (TrialAttr.SECONDS, TrialAttr.IMAGES_PER_SECOND, TrialAttr.DEVICE, TrialAttr.EPOCHS_DONE):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            accuracy = earlier.values[self.config.objectives.index(ACCURACY.name)]
            self.last.accuracy = accuracy
            self.last.note = f"same as #{earlier.number}"
            self.step = "computing the objectives"
            return self._values(arch, accuracy, mflops, params)

        self.step = "training"
        result = self.trainer(arch, self.data, proxy, self.device)
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

    def _earlier_result(self, trial: optuna.Trial, arch_id: str, proxy: ProxyConfig) -> FrozenTrial | None:
        """A finished trial of this architecture at the same proxy, epochs and seed, whose result
        this one can reuse. A trial recorded without `epochs` (made before nas recorded them) was
        trained at its proxy_key's epochs, which are the study's."""
        default = self.config.proxy
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            attrs = other.user_attrs
            if (attrs.get(TrialAttr.ARCH_ID) == arch_id and attrs.get(TrialAttr.PROXY_KEY) == self.proxy_key
                    and attrs.get(TrialAttr.SEED, default.seed) == proxy.seed
                    and attrs.get(TrialAttr.EPOCHS, default.epochs) == proxy.epochs):
                return other
        return None

    def _record(self, trial: optuna.Trial, result: ProxyResult) -> None:
        trial.set_user_attr(TrialAttr.SECONDS, round(result.seconds, 3))
        trial.set_user_attr(TrialAttr.IMAGES_PER_SECOND, round(result.images_per_second, 1))
        trial.set_user_attr(TrialAttr.DEVICE, result.device)
        trial.set_user_attr(TrialAttr.EPOCHS_DONE, result.epochs_done)
        trial.set_user_attr(TrialAttr.VAL_LOSS, result.loss)
        trial.set_user_attr(TrialAttr.IMAGES_SEEN,
                            estimated_images(result, len(self.data.train), self.config.proxy.batch_size))

    def _values(self, arch: ArchConfig, accuracy: float, mflops: float, params: int) -> list[float]:
        """The study's objectives in its order, each measured as `nas.objectives` says, in its unit."""
        measure = {ACCURACY.name: lambda: accuracy, FLOPS.name: lambda: mflops, PARAMS.name: lambda: params / 1e6,
                   LATENCY.name: lambda: latency_table(self).predict(arch.arch_id).ms}
        return [measure[name]() for name in self.config.objectives]

    def _record_latency(self, trial: optuna.Trial, arch_id: str) -> None:
        """The latency the table predicts (no timing here: nothing is timed beside training)."""
        table = latency_table(self)
        prediction = table.predict(arch_id)
        for key, value in ((TrialAttr.LATENCY_MS, prediction.ms), (TrialAttr.LATENCY_CI_MS, prediction.ms_ci),
                           (TrialAttr.LATENCY_RATIO, prediction.ratio),
                           (TrialAttr.LATENCY_RATIO_CI, prediction.ratio_ci),
                           (TrialAttr.LATENCY_CONDITIONS, table.conditions.describe()),
                           (TrialAttr.LATENCY_DEVICE, table.signature.get("id"))):
            trial.set_user_attr(key, value)


def latency_table(objective: Objective) -> LatencyTable:
    return require(objective.table, objective.config)


def failure_reason(error: BaseException, step: str) -> str:
    """One line saying why a trial failed and at which step (`fail_reason`, the trial's line)."""
    if isinstance(error, TrainingDiverged):
        return f"diverged: {error}"
    lines = str(error).strip().splitlines()
    return f"{step} failed: {type(error).__name__}: {lines[0][:300] if lines else '(no message)'}"
