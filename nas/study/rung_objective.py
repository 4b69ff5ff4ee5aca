"""One trial of a multi-fidelity study: a candidate trained at its rung's epochs, at each of the
rung's seeds in turn, reporting the mean accuracy (the costs do not depend on the seed).

One trial per candidate and rung, not one per seed: the rung study's Pareto front (Optuna's
`best_trials`, what the dashboard and `nas front` show) then compares candidates by their mean,
never one lucky seed against another's unlucky one; promotion ranks candidates, so a promotion is
one queued trial, claimed once; and each finished seed is saved in the trial at once (`runs`),
which Optuna's retry of a killed trial copies, so the retry trains only the seeds still missing.
The price: a candidate's seeds run one after another in one worker.

User attrs, besides the single-fidelity ones (`nas.study.objective`): `rung`, `epochs`, `seeds`
(the seeds used), `accuracies` (one per seed, in that order; the objective value is their mean),
`accuracy_std` (sample std over the seeds, with 2 or more) and `runs` (each seed's full result);
a sampled rung-0 trial under `fidelity.model: highest`, `model_rung` (what its sampler learned from).
`seconds` and `images_seen` are the sums over the seeds.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch

from nas.arch import ArchConfig
from nas.attrs import TrialAttr
from nas.data import Dataset
from nas.errors import StudyError
from nas.study.objective import Objective, Trainer, train_architecture
from nas.study.sampler import HighestRungModel
from nas.studyfile import StudyConfig
from nas.train import ProxyConfig, ProxyResult, estimated_images


class RungObjective(Objective):
    """The objective of one rung's study (`config` is the rung's: `nas.study.rungs.rung_config`)."""

    def __init__(self, config: StudyConfig, data: Dataset, device: torch.device, trainer: Trainer | None,
                 *, rung: int, seeds: Sequence[int]) -> None:
        super().__init__(config, data, device, self._train_seeds)
        self.inner = trainer or train_architecture
        self.rung = rung
        self.seeds = list(seeds)
        self.number: int | None = None  # the trial being (or last) run
        # Called once the trial is popped: the loop holds the promotion lock until then, so the
        # waiting promotion it saw is the one this worker runs (nas.study.asha).
        self.release: Callable[[], None] | None = None
        self._trial: optuna.Trial | None = None

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        if self.release is not None:
            release, self.release = self.release, None
            release()
        self._trial, self.number = trial, trial.number
        return super().__call__(trial)

    def architecture(self, trial: optuna.Trial) -> ArchConfig:
        if self.rung > 0 and TrialAttr.PROMOTED_FROM not in trial.user_attrs:
            raise StudyError(f"rung {self.rung} runs only promotions, and trial #{trial.number} is none")
        trial.set_user_attr(TrialAttr.RUNG, self.rung)
        sampler = trial.study.sampler
        if (isinstance(sampler, HighestRungModel) and TrialAttr.ARCH not in trial.user_attrs
                and TrialAttr.MODEL_RUNG not in trial.user_attrs):  # sampled now, not queued nor a retry
            trial.set_user_attr(TrialAttr.MODEL_RUNG, sampler.model_rung)
        return super().architecture(trial)

    def _train_seeds(self, arch: ArchConfig, data: Dataset, proxy: ProxyConfig, device: torch.device) -> ProxyResult:
        """Train at each seed not yet done (a killed attempt's finished seeds come with its retry),
        saving each result at once; the mean of them all."""
        trial = self._trial
        assert trial is not None
        # an extra seed of the `none` baseline (nas.study.noise_seeds) trains at its own seed only
        seeds = [proxy.seed] if TrialAttr.NOISE_SEED in trial.user_attrs else self.seeds
        runs = [r for r in trial.user_attrs.get(TrialAttr.RUNS, []) if r.get("seed") in seeds]
        for seed in seeds:
            if any(r["seed"] == seed for r in runs):
                continue
            result = self.inner(arch, data, dataclasses.replace(proxy, seed=seed), device)
            images = estimated_images(result, len(data.train), proxy.batch_size)
            runs.append({**dataclasses.replace(result, images_seen=images).to_dict(), "seed": seed})
            trial.set_user_attr(TrialAttr.RUNS, runs)  # saved at once: a retry after a kill trains only what is missing
        runs.sort(key=lambda r: seeds.index(r["seed"]))
        accuracies = [r["accuracy"] for r in runs]
        trial.set_user_attr(TrialAttr.SEEDS, [r["seed"] for r in runs])
        trial.set_user_attr(TrialAttr.ACCURACIES, accuracies)
        if len(accuracies) > 1:
            trial.set_user_attr(TrialAttr.ACCURACY_STD, statistics.stdev(accuracies))
        return mean_result(runs)


def mean_result(runs: Sequence[dict[str, Any]]) -> ProxyResult:
    """One result for several seeds: accuracy and losses averaged, times and images summed."""
    train_seconds = sum(r["train_seconds"] for r in runs)
    images = sum(r["images_seen"] for r in runs)
    return ProxyResult(
        accuracy=statistics.fmean(r["accuracy"] for r in runs),
        loss=statistics.fmean(r["loss"] for r in runs),
        train_loss=statistics.fmean(r["train_loss"] for r in runs),
        seconds=sum(r["seconds"] for r in runs),
        train_seconds=train_seconds,
        images_per_second=images / train_seconds if train_seconds > 0 else 0.0,
        epochs_done=min(r["epochs_done"] for r in runs),
        stopped_early=any(r["stopped_early"] for r in runs),
        device=runs[-1]["device"],
        images_seen=images,
    )
