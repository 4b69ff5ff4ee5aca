"""The study's sampler: Optuna's TPE, NSGA-II or random sampling, reseeded per trial so that
parallel workers started with one seed do not all draw the same candidate."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial

from nas.storage import quiet_experimental
from nas.studyfile import StudyConfig


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
