"""Creating or opening a study: once, under the storage's creation lock, however many workers
start at once; a study nas did not make, or one with other objectives, is refused before a byte
is written to it. The uniform baselines are queued at creation and queued again when lost."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from nas.attrs import StudyAttr, TrialAttr
from nas.data import Dataset
from nas.errors import StudyError
from nas.fidelity import fidelity_mismatch
from nas.storage import creation_lock, masked, open_storage, quiet_experimental
from nas.study.sampler import make_sampler
from nas.studyfile import StudyConfig


def proxy_key(config: StudyConfig) -> str:
    """A short fingerprint of the study's proxy and data: two results are comparable when they
    have the same one and the same `epochs` and `seed` (which a queued trial may override)."""
    blob = json.dumps({"proxy": config.proxy.to_dict(), "dataset": config.dataset}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


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
            if StudyAttr.MARKER not in study.user_attrs:
                study.set_user_attr(StudyAttr.MARKER, {"format": 1})
            if study.metric_names is None:
                study.set_metric_names(config.metric_names)
            if StudyAttr.STUDY_FILE not in study.user_attrs:
                _describe(study, config)
            if data is not None and not study.user_attrs.get(StudyAttr.BASELINES_QUEUED):
                _queue_baselines(study, config, data)
                study.set_user_attr(StudyAttr.BASELINES_QUEUED, True)
    return study, storage


def check_ours(study: optuna.Study, config: StudyConfig) -> None:
    """Refuse a foreign study (same name, made by someone else) and one with other objectives.

    Ours: it carries the marker, or `study_file` (studies made before the marker existed). A
    study with no attribute and no trial at all is one whose creation was interrupted right
    after `create_study`: adopted when its directions match, since nothing in it can be lost."""
    attrs = study.user_attrs
    where = f"study {config.name!r} in {masked(config.storage)}"
    ours = StudyAttr.MARKER in attrs or StudyAttr.STUDY_FILE in attrs
    if not ours and (attrs or study.get_trials(deepcopy=False)):
        raise StudyError(
            f"{where} was not created by nas (it has no {StudyAttr.MARKER!r} attribute); nas will not write to or read "
            "another tool's study: use another study name or storage"
        )
    directions = [d.name.lower() for d in study.directions]
    have = attrs.get(StudyAttr.OBJECTIVES) if ours else None
    if directions != list(config.directions) or (have is not None and list(have) != list(config.objectives)):
        shown = f"objectives {list(have)}" if have is not None else f"directions {directions}"
        raise StudyError(
            f"{where} has {shown}, but {config.path.name} asks for objectives {list(config.objectives)} "
            f"({', '.join(config.directions)}); use another study name"
        )
    # a study described before fidelity existed has no such attribute: it is a single-fidelity one
    described = StudyAttr.STUDY_FILE in attrs
    mismatch = fidelity_mismatch(attrs.get(StudyAttr.FIDELITY), config.fidelity) if described else None
    if mismatch:
        raise StudyError(f"{where} {mismatch}")


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
