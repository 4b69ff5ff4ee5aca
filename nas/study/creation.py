"""Creating or opening a study: once, under the storage's creation lock, however many workers
start at once; a study nas did not make, or one with other objectives, is refused before a byte
is written to it. The uniform baselines are queued at creation and queued again when lost."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timezone

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from nas.attrs import StudyAttr, TrialAttr
from nas.data import Dataset
from nas.errors import ConfigError
from nas.storage import creation_lock, open_storage, quiet_experimental
from nas.study import latency
from nas.study.noise_seeds import queue_noise_seeds
from nas.study.sampler import make_sampler
from nas.studyfile import StudyConfig
from nas.studyref import check_ours, missing


def proxy_key(config: StudyConfig) -> str:
    """A short fingerprint of the study's proxy and data: two results are comparable when they
    have the same one and the same `epochs` and `seed` (which a queued trial may override)."""
    what = {"proxy": config.proxy.key_dict(), "dataset": config.dataset}
    if config.weights is not None:  # another starting point is another experiment
        what["weights"] = {"sha256": config.weights.sha256, "identity": config.weights.identity}
    if config.evaluation.kind != "proxy":  # a one-shot score is not comparable with a proxy run's accuracy
        what["evaluation"] = config.evaluation.model_dump(exclude={"file", "max_mb"})
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def open_study(
    config: StudyConfig, *, create: bool, data: Dataset | None = None, log: Callable[[str], None] = print
) -> tuple[optuna.Study, BaseStorage]:
    """Load the study, or with `create` make it (directions, metric names, study attributes,
    baselines queued first) — once, under the storage's creation lock, however many workers.

    A study of that name that nas did not create, or that has other objectives, is refused
    before a byte is written to it (`check_ours`)."""
    if create and data is not None:
        config.check_weights(data)  # a weights file that does not fit is refused before any write
    measure = create and data is not None and latency.needs_table(config)
    table = latency.existing_table(config, data, log) if measure else None  # a bad table is refused before any write
    if measure and table is None:
        latency.check_conditions(config.latency_conditions)  # conditions this machine cannot measure: likewise
    storage = open_storage(config.storage, create=create)
    with creation_lock(config.storage), quiet_experimental():
        try:
            study = optuna.load_study(study_name=config.name, storage=storage, sampler=make_sampler(config))
        except KeyError:
            if not create:
                raise missing(config.ref) from None
            if measure and table is None:  # under the lock, before the study (and any worker's training) exists
                table = latency.new_table(config, data, log)
            study = optuna.create_study(
                study_name=config.name, storage=storage, directions=config.directions,
                sampler=make_sampler(config),
            )
        check_ours(study, config.ref)  # a study just created has no attribute yet: it passes as pristine
        _check_same_weights(study, config)
        if create:  # each step checks its own mark, so a creation interrupted half-way is completed
            if StudyAttr.MARKER not in study.user_attrs:
                study.set_user_attr(StudyAttr.MARKER, {"format": 1})
            if study.metric_names is None:
                study.set_metric_names(config.metric_names)
            if measure and StudyAttr.LATENCY_TABLE not in study.user_attrs:
                latency.store(study, table or latency.new_table(config, data, log))
            if StudyAttr.STUDY_FILE not in study.user_attrs:
                _describe(study, config)
            if data is not None and not study.user_attrs.get(StudyAttr.BASELINES_QUEUED):
                _queue_baselines(study, config, data)
                study.set_user_attr(StudyAttr.BASELINES_QUEUED, True)
            if data is not None:
                queue_noise_seeds(study, config, data)  # after the baselines: `none` first at the proxy seed
    return study, storage


def weights_attr(config: StudyConfig) -> dict[str, object] | None:
    """What the study records of its pretrained weights (None: candidates train from scratch)."""
    return None if config.weights is None else config.weights.to_dict()


def _check_same_weights(study: optuna.Study, config: StudyConfig) -> None:
    """A study resumes only from the weights file it was created with (the same sha256)."""
    if StudyAttr.STUDY_FILE not in study.user_attrs:
        return  # pristine, or its description was interrupted: written now
    stored = study.user_attrs.get(StudyAttr.WEIGHTS)
    mine = weights_attr(config)
    if (stored or {}).get("sha256") == (mine or {}).get("sha256") and (stored or {}).get("identity") == (
            mine or {}).get("identity"):
        return
    def say(w: dict | None) -> str:
        return "no weights (a fresh initialisation)" if not w else (
            f"{w['file']} (sha256 {w['sha256'][:12]}…, identity {str(w['identity']).lower()})")
    given = "none" if config.weights is None else repr(config.weights.file)
    raise ConfigError(f"{config.path}: weights = {given} is {say(mine)}, but study {config.name!r} was created with "
                      f"{say(stored)}; allowed: the same weights file and identity, or a new study name")


def _describe(study: optuna.Study, config: StudyConfig) -> None:
    attrs = {
        StudyAttr.OBJECTIVES: list(config.objectives),
        StudyAttr.BACKBONE: config.backbone,
        StudyAttr.BACKBONE_ARGS: dict(config.backbone_args),
        StudyAttr.DATASET: {k: str(v) if k in ("path", "root") else v for k, v in config.dataset.items()},
        StudyAttr.PROXY: config.proxy.to_dict(),
        StudyAttr.PROXY_KEY: proxy_key(config),
        StudyAttr.SAMPLER: dict(config.sampler),
        StudyAttr.CONSTRAINTS: {"max_mflops": config.max_mflops, "max_params": config.max_params},
        StudyAttr.FIDELITY: config.fidelity.to_dict() if config.fidelity is not None else None,
        StudyAttr.OWN_ATTENTION: config.own_attention(),
        StudyAttr.WEIGHTS: weights_attr(config),
        StudyAttr.CREATED: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        StudyAttr.STUDY_FILE: str(config.path),  # last: its presence marks the description complete
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def _queue_baselines(
    study: optuna.Study, config: StudyConfig, data: Dataset, states: tuple[TrialState, ...] | None = None
) -> list[str]:
    """Queue the uniform hand placements so they are trained first, each marked `baseline`:
    those with no trial in the study (in `states`, when given). Returns the labels queued."""
    present = {t.user_attrs.get(TrialAttr.BASELINE) for t in study.get_trials(deepcopy=False, states=states)}
    queued = []
    for label, spec in config.baselines:
        if label in present:
            continue
        arch = config.baseline_arch(spec, data.num_classes, data.in_chans)
        params = config.space.params_for(arch) or {}
        study.enqueue_trial(params, user_attrs={TrialAttr.BASELINE: label, TrialAttr.ARCH: arch.to_dict()})
        queued.append(label)
    return queued


def requeue_lost_baselines(study: optuna.Study, config: StudyConfig, data: Dataset) -> list[str]:
    """Queue again every baseline with no finished, over-budget, queued or running trial: one
    whose worker was killed more often than Optuna retries it. The comparison with hand
    placement is the point of a study, so a baseline is never given up."""
    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    with creation_lock(config.storage):  # two workers starting at once queue it once
        return _queue_baselines(study, config, data, states=alive)
