"""The study's sampler: Optuna's TPE, NSGA-II or random sampling, reseeded per trial so that
parallel workers started with one seed do not all draw the same candidate; in a multi-fidelity
study with `fidelity.model: highest`, TPE learning from the highest rung with enough results."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

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


class HighestRungModel(BaseSampler):
    """Rung 0's sampler, its model fitted on the highest rung with `min_trials` or more finished
    trials (rung 0 until one has): BOHB's rule (Falkner et al., 2018). Why: rung 0's results are
    the cheapest and least faithful (benchmarks/rung_fidelity.py), and the model still sees one
    fidelity at a time, never a mix. The proposal is rung 0's trial as always; only the history
    TPE reads is another rung study's, whose trials carry the same parameters (promotions are
    queued with them), in the same storage. Rung studies are loaded afresh per trial: Optuna
    caches a Study object's trials until that object itself asks for a trial, which a rung-k
    object here never does.
    """

    def __init__(self, inner: BaseSampler, upper_rungs: Callable[[], Sequence[optuna.Study]], min_trials: int) -> None:
        self._inner = inner
        self._upper_rungs = upper_rungs
        self._min_trials = min_trials
        self._model: optuna.Study | None = None
        self.model_rung = 0  # the rung the current trial's proposal learned from

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner.before_trial(study, trial)
        self._model, self.model_rung = study, 0  # decided once per trial: the space and every sample agree
        for rung, upper in reversed(list(enumerate(self._upper_rungs(), start=1))):
            if len(upper.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= self._min_trials:
                self._model, self.model_rung = upper, rung
                break

    def _history(self, study: optuna.Study, trial: FrozenTrial) -> tuple[optuna.Study, FrozenTrial]:
        """The study TPE reads, and the trial as it should see it: TPE's constant liar leaves the
        trial being sampled out of the history by its number, which in a rung-k study is another
        trial's; the trial is in no rung-k study, so it gets a number none has."""
        if self._model is None or self._model is study:
            return study, trial
        outsider = copy.copy(trial)
        outsider.number = -1
        return self._model, outsider

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return self._inner.infer_relative_search_space(*self._history(study, trial))

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return self._inner.sample_relative(*self._history(study, trial), search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return self._inner.sample_independent(*self._history(study, trial), param_name, param_distribution)

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        self._model = None
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
