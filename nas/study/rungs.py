"""The studies of a multi-fidelity search, one per rung, in one storage.

Why one study per rung: Optuna's samplers learn from every finished trial of their study, and a
1-epoch accuracy and a 9-epoch accuracy are not one objective. So the study the file names is
rung 0, where the sampler (TPE by default) proposes candidates and sees only rung-0 results, all
at `epochs[0]`; rung k >= 1 is the study `<name>.rung<k>`, whose trials are all enqueued
promotions with the candidate's parameters fixed (its sampler, random, never draws a value).
optuna-dashboard thus shows each rung as a study, and each trial's `rung`, `epochs`, `seeds` and
`promoted_from` in its user attributes. Each rung study is a full nas study (marker, objectives,
description with the rung's proxy), so a foreign study of such a name is refused like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optuna
from optuna.samplers import RandomSampler
from optuna.storages import BaseStorage

from nas.attrs import StudyAttr
from nas.data import Dataset
from nas.fidelity import min_model_trials
from nas.study.creation import open_study
from nas.study.sampler import HighestRungModel
from nas.studyfile import StudyConfig


def rung_config(config: StudyConfig, rung: int) -> StudyConfig:
    """The study config of one rung: its study name and the proxy trained at its epochs (the seeds
    a candidate is trained at are `Fidelity.seeds_at`, starting from the proxy's seed)."""
    fidelity = config.fidelity
    assert fidelity is not None, "a single-fidelity study has no rungs"
    return dataclasses.replace(config, name=fidelity.study_name(config.name, rung),
                               proxy=dataclasses.replace(config.proxy, epochs=fidelity.epochs[rung]))


def open_rungs(
    config: StudyConfig, *, create: bool, data: Dataset | None = None, log: Callable[[str], None] = print
) -> tuple[list[optuna.Study], BaseStorage]:
    """The rung studies, rung 0 first (with the study's sampler; with `data`, the baselines queued
    at creation) — created when `create`, else they must exist (`open_study` says which is missing)."""
    assert config.fidelity is not None, "a single-fidelity study has no rungs"
    first, storage = open_study(config, create=create, data=data, log=log)
    rungs = [first]
    for rung in range(1, config.fidelity.top + 1):
        upper = rung_config(config, rung)
        open_study(upper, create=create)  # creates it, or refuses a foreign or different study of that name
        rungs.append(optuna.load_study(study_name=upper.name, storage=storage, sampler=RandomSampler(seed=0)))
    if config.fidelity.model == "highest":
        names = [study.study_name for study in rungs[1:]]
        first.sampler = HighestRungModel(
            first.sampler, lambda: [optuna.load_study(study_name=n, storage=storage, sampler=RandomSampler(seed=0))
                                    for n in names],
            min_model_trials(config.sampler))
    if create:
        for rung, study in enumerate(rungs):
            if study.user_attrs.get(StudyAttr.RUNG) != rung:
                study.set_user_attr(StudyAttr.RUNG, rung)
                study.set_user_attr(StudyAttr.RUNG_OF, config.name)
    return rungs, storage


def top_rung(config: StudyConfig) -> tuple[StudyConfig, optuna.Study]:
    """What `nas front`, `export` and `refine` read of a multi-fidelity study: the top rung's study,
    and the config at the top rung's proxy, its name kept (refine's companion is `<name>.refined`)."""
    rungs, _ = open_rungs(config, create=False)
    assert config.fidelity is not None
    return dataclasses.replace(rung_config(config, config.fidelity.top), name=config.name), rungs[-1]
