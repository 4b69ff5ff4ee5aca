"""A study measures its own noise: the `none` baseline is trained at `noise_seeds` seeds (the
study's proxy seed, then seed + 1, + 2, ... queued right after the baselines), and once they
have all finished, their spread is written as the study attribute `noise` (`nas.noise.noise_record`).

The front then gives every architecture evaluated once that std (rows at several seeds carry
their own), and calls a difference within it a tie. The extra seeds are ordinary trials at the
study's proxy: the front pools them with the `none` baseline into one row (mean ± std, n), and
the sampler sees the same architecture at several values, which is what the proxy does.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas.attrs import StudyAttr, TrialAttr
from nas.data import Dataset
from nas.noise import noise_record
from nas.studyfile import StudyConfig

NONE = "none"


def queue_noise_seeds(study: optuna.Study, config: StudyConfig, data: Dataset) -> int:
    """Queue the `none` baseline's extra seeds once (the caller holds the creation lock); returns how many."""
    if StudyAttr.NOISE_QUEUED in study.user_attrs:
        return 0
    queued = 0
    if _measures_noise(config):
        arch = config.baseline_arch(dict(config.baselines)[NONE], data.num_classes, data.in_chans)
        params = config.space.params_for(arch) or {}
        for extra in range(1, config.noise_seeds):
            study.enqueue_trial(params, user_attrs={TrialAttr.ARCH: arch.to_dict(), TrialAttr.NOISE_SEED: extra,
                                                    TrialAttr.SEED: config.proxy.seed + extra})
            queued += 1
    study.set_user_attr(StudyAttr.VAL_SIZE, len(data.val))
    study.set_user_attr(StudyAttr.NOISE_QUEUED, True)
    return queued


def record_noise(study: optuna.Study, config: StudyConfig, proxy_key: str) -> dict | None:
    """Write the `noise` attribute when every seed of the `none` baseline has a result at this
    proxy; returns it (None while seeds are missing, or when it is already written)."""
    if StudyAttr.NOISE in study.user_attrs or not _measures_noise(config):
        return None
    runs: dict[int, float] = {}
    arch_id = None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        is_none = attrs.get(TrialAttr.BASELINE) == NONE or TrialAttr.NOISE_SEED in attrs
        if not is_none or attrs.get(TrialAttr.PROXY_KEY) != proxy_key:
            continue
        if attrs.get(TrialAttr.EPOCHS, config.proxy.epochs) != config.proxy.epochs:
            continue
        arch_id = attrs.get(TrialAttr.ARCH_ID)
        runs.setdefault(attrs.get(TrialAttr.SEED, config.proxy.seed), trial.values[config.objectives.index("accuracy")])
    if len(runs) < config.noise_seeds:
        return None
    val_size = study.user_attrs.get(StudyAttr.VAL_SIZE)
    if not isinstance(val_size, int):
        return None
    record = noise_record(list(runs.values()), val_size, arch_id=arch_id or "?",
                          epochs=config.proxy.epochs, proxy_key=proxy_key)
    study.set_user_attr(StudyAttr.NOISE, record)
    return record


def _measures_noise(config: StudyConfig) -> bool:
    return config.noise_seeds > 1 and NONE in dict(config.baselines)


def noise_line(noise: dict) -> str:
    """The progress line that says the study's noise is measured."""
    return (f"noise: `none` at {noise['n']} seeds: accuracy {noise['accuracy']:.4f} ± {noise['accuracy_std']:.4f} "
            f"(of which evaluation, {noise['val_size']} validation images: {noise['eval_std']:.4f}); the front's "
            "ties use it")
