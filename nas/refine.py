"""Refining the front: retrain the Pareto trials and their near-front neighbours at a higher
fidelity (more epochs) over several seeds, and keep mean ± std per architecture.

Short proxies are noisy near the front, where the architectures differ least. Results go to a
companion study `<name>.refined` in the same storage (same directions and metric names), so the
dashboard shows the refined front next to the search, with per-trial user attrs
`refined_accuracy_mean`, `refined_accuracy_std`, `refined_accuracies` (per seed), `refined_epochs`,
`refined_seeds` and `source_trial`. Optuna cannot change a finished trial, hence the companion.

Resumable: every finished (trial, seed) run is saved at once in the companion study's user attrs
(`run:<trial>:<seed>`); a restarted refine skips those and trains only what is missing. The
refined trial is added when all its seeds are done.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchConfig
from nas.attrs import StudyAttr, TrialAttr
from nas.build import build_model
from nas.data import Dataset
from nas.errors import StudyError
from nas.front import Front, FrontRow, front_of, non_dominated, objectives_of
from nas.objectives import ACCURACY
from nas.storage import creation_lock, open_storage, quiet_experimental
from nas.studyfile import StudyConfig
from nas.studyref import StudyRef
from nas.train import resolve_device, train_proxy


def refined_name(name: str) -> str:
    return f"{name}.refined"


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-domination rank (0 = on the front) of points to be minimised in every coordinate.

    Optuna's own non-dominated sort is private API; this is the textbook O(n² · ranks) peel,
    fine for the few hundred trials of a study.
    """
    remaining = list(range(len(points)))
    ranks = [0] * len(points)
    rank = 0
    while remaining:
        front = {remaining[i] for i in non_dominated([points[j] for j in remaining])}
        for i in front:
            ranks[i] = rank
        remaining = [i for i in remaining if i not in front]
        rank += 1
    return ranks


def candidates(study: optuna.Study, top: int) -> list[FrozenTrial]:
    """The front, then the next non-domination ranks, up to `top` distinct architectures.

    Within a rank, more accurate trials come first. Over-budget trials are never COMPLETE, so
    they are never candidates.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    signs = [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    ranks = pareto_ranks([[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials])
    order = sorted(range(len(trials)), key=lambda i: (ranks[i], -trials[i].values[0], trials[i].number))
    chosen: dict[str, FrozenTrial] = {}
    for i in order:
        arch_id = trials[i].user_attrs.get(TrialAttr.ARCH_ID)
        if arch_id not in chosen and len(chosen) < top:
            chosen[arch_id] = trials[i]
    return list(chosen.values())


def open_refined(config: StudyConfig, study: optuna.Study, storage: optuna.storages.BaseStorage) -> optuna.Study:
    with creation_lock(config.storage), quiet_experimental():
        refined = optuna.create_study(
            study_name=refined_name(config.name), storage=storage, directions=list(study.directions),
            load_if_exists=True,
        )
        if refined.metric_names is None and study.metric_names is not None:
            refined.set_metric_names(study.metric_names)
            for key, value in study.user_attrs.items():
                refined.set_user_attr(key, value)
            refined.set_user_attr(StudyAttr.REFINED_FROM, config.name)
    return refined


def run_refine(
    config: StudyConfig,
    study: optuna.Study,
    data: Dataset,
    *,
    top: int = 8,
    epochs: int | None = None,
    seeds: int = 3,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> optuna.Study:
    """Retrain up to `top` front and near-front architectures for `epochs` (default: 3× the
    proxy's) with seeds 0..seeds-1 (added to the proxy seed); returns the refined study."""
    epochs = epochs if epochs is not None else 3 * config.proxy.epochs
    proxy = dataclasses.replace(config.proxy, epochs=epochs)
    dev = resolve_device(device)
    storage = open_storage(config.storage, create=False)
    refined = open_refined(config, study, storage)
    settings = {"epochs": epochs, "seeds": seeds}
    earlier = refined.user_attrs.get(StudyAttr.REFINE_SETTINGS)
    if earlier is not None and earlier != settings:
        raise StudyError(
            f"study {config.name!r} was refined with {earlier}; refine again with the same --epochs/--seeds "
            f"(more --top is fine), or delete study {refined.study_name!r} (optuna delete-study) to start over"
        )
    refined.set_user_attr(StudyAttr.REFINE_SETTINGS, settings)
    done_sources = {t.user_attrs.get(TrialAttr.SOURCE_TRIAL) for t in refined.get_trials(states=(TrialState.COMPLETE,))}
    chosen = candidates(study, top)
    log(f"refining {len(chosen)} architectures of study {config.name!r}: {epochs} epochs x {seeds} seeds, "
        f"on {dev}; results in study {refined.study_name!r}")
    for trial in chosen:
        if trial.number in done_sources:
            continue
        arch = ArchConfig.from_dict(trial.user_attrs[TrialAttr.ARCH])
        accuracies = []
        for s in range(seeds):
            key = StudyAttr.refine_run(trial.number, s)
            saved = refined.user_attrs.get(key)
            if saved is None:
                result = train_proxy(lambda arch=arch: build_model(arch), data,
                                     dataclasses.replace(proxy, seed=config.proxy.seed + s), dev, progress=False)
                saved = result.accuracy
                refined.set_user_attr(key, saved)  # saved at once: a killed refine keeps it
            accuracies.append(saved)
        mean = statistics.fmean(accuracies)
        std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        _add_refined_trial(refined, study, trial, mean, std, accuracies, epochs, seeds)
        log(f"#{trial.number:<4d} proxy {trial.values[0]:.4f} -> refined {mean:.4f} ± {std:.4f}  "
            f"{trial.user_attrs.get(TrialAttr.MFLOPS, 0):.2f} MFLOPs  {trial.user_attrs.get(TrialAttr.ARCH_ID)}")
    return refined


def _add_refined_trial(
    refined: optuna.Study, study: optuna.Study, source: FrozenTrial, mean: float, std: float,
    accuracies: list[float], epochs: int, seeds: int,
) -> None:
    values = list(source.values)
    values[objectives_of(study).index(ACCURACY.name)] = mean
    attrs = {
        **source.user_attrs,
        TrialAttr.SOURCE_TRIAL: source.number,
        TrialAttr.PROXY_ACCURACY: source.values[objectives_of(study).index(ACCURACY.name)],
        TrialAttr.REFINED_ACCURACY_MEAN: mean,
        TrialAttr.REFINED_ACCURACY_STD: std,
        TrialAttr.REFINED_ACCURACIES: accuracies,
        TrialAttr.REFINED_EPOCHS: epochs,
        TrialAttr.REFINED_SEEDS: seeds,
    }
    refined.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))


def refined_front(config: StudyConfig | StudyRef) -> Front:
    """The refined results: every refined architecture and their front, each row numbered by its
    source trial in the search study."""
    storage = open_storage(config.storage, create=False)
    try:
        refined = optuna.load_study(study_name=refined_name(config.name), storage=storage)
    except KeyError:
        raise StudyError(f"study {config.name!r} has not been refined yet; run `nas refine` first") from None

    def by_source(rows: list[FrontRow]) -> list[FrontRow]:
        return [dataclasses.replace(r, number=r.user_attrs[TrialAttr.SOURCE_TRIAL],
                                    trials=(r.user_attrs[TrialAttr.SOURCE_TRIAL],)) for r in rows]

    front = front_of(refined, f"refined study {config.name!r}", "refined validation accuracy (mean ± std over seeds)")
    return dataclasses.replace(front, architectures=by_source(front.architectures), rows=by_source(front.rows))
