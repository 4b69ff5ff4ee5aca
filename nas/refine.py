"""Confirmation: retrain the Pareto trials and their near-front neighbours standalone at the long
fidelity (the study file's `confirm` section) over seeds, and keep mean ± std per architecture.

Short proxies (and one-shot scores) are noisy and biased near the front, where the architectures
differ least; DESIGN.md: the answer a user sees is confirmed at long training over seeds. `nas
search` confirms when the study reaches its target; `nas refine` confirms on demand. Runs are
spent by successive halving: with a `screen`, that many candidates get one run each and the `top`
of them by that run (non-domination rank with the other objectives, then accuracy) go on, since
the proxy's error about long training is larger than one seed's (benchmarks/confirm_rules.py);
every candidate kept gets `seeds`, then those still tied with the most accurate
(`nas.noise.ties`) get twice as many, until none ties or `max_seeds`. With `fresh_seeds`, the
front so chosen trains again at that many seeds none of those runs used (`FRESH_SEED` on), and
`nas front` shows those: a front read on the runs that chose it reads high (its gain over the hand
placements 1.6-1.8 times the true one, benchmarks/confirm_rules.py).

Results go to the companion study `<name>.refined` in the same storage (`nas.confirmed` reads
it), so the dashboard shows the confirmed front next to the search, with per-trial user attrs
`refined_accuracy_mean`, `refined_accuracy_std`, `refined_accuracies` (per seed), `seeds`,
`refined_epochs`, `refined_seeds` and `source_trial`.

Resumable and safe with many workers: every finished (trial, seed) run is saved at once in the
companion study's user attrs (`run:<trial>:<seed>`), a restarted confirmation trains only what is
missing, and one worker confirms at a time (`nas.storage.named_lock`); a worker that finishes
later confirms what the others' last trials added.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchConfig
from nas.attrs import StudyAttr, TrialAttr
from nas.build import build_model
from nas.confirmed import Confirmation, chosen_front, refined_name
from nas.data import Dataset
from nas.errors import StudyError
from nas.front import non_dominated, objectives_of
from nas.noise import pooled_std, ties
from nas.objectives import ACCURACY
from nas.storage import creation_lock, named_lock, open_storage, quiet_experimental
from nas.studyfile import StudyConfig
from nas.train import resolve_device, train_proxy
from nas.validation import FRESH_SEED


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


def screened(study: optuna.Study, chosen: Mapping[int, FrozenTrial], first: Mapping[int, float],
             top: int) -> list[int]:
    """The `top` candidates by their first long run: its accuracy in place of the search's, the
    other objectives as searched, in `candidates`' order (non-domination rank, then accuracy)."""
    numbers = list(chosen)
    signs = [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    where = objectives_of(study).index(ACCURACY.name)
    points = [[s * (first[n] if i == where else v) for i, (s, v) in enumerate(zip(signs, chosen[n].values,
                                                                                    strict=True))]
              for n in numbers]
    ranks = pareto_ranks(points)
    order = sorted(range(len(numbers)), key=lambda i: (ranks[i], -first[numbers[i]], numbers[i]))
    return [numbers[i] for i in order[:top]]


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


@dataclasses.dataclass(frozen=True)
class _Runs:
    """One candidate's confirmed accuracies so far, as `nas.noise.Estimate`."""

    accuracies: tuple[float, ...]
    pooled: float | None  # the seed std pooled over the candidates (None until one has 2 runs)

    @property
    def accuracy(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def accuracy_std(self) -> float | None:
        return self.pooled if len(self.accuracies) > 1 else None

    @property
    def n_evals(self) -> int:
        return len(self.accuracies)


def tied_at_top(runs: Mapping[int, Sequence[float]]) -> list[int]:
    """The most accurate candidate (by mean) and every candidate that ties with it within noise
    (the seed std pooled over the candidates), most accurate first; only the leader when nothing
    ties (or ties cannot be told)."""
    std = pooled_std(list(runs.values()))  # a std of 2-3 seeds is too rough for ties (nas.noise.pooled_std)
    estimates = {k: _Runs(tuple(v), std) for k, v in runs.items() if v}
    if not estimates:
        return []
    order = sorted(estimates, key=lambda k: -estimates[k].accuracy)
    best = estimates[order[0]]
    return [order[0], *(k for k in order[1:] if ties(estimates[k], best))]


def run_refine(
    config: StudyConfig,
    study: optuna.Study,
    data: Dataset,
    *,
    top: int | None = None,
    screen: int | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    max_seeds: int | None = None,
    fresh_seeds: int | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> optuna.Study:
    """Confirm up to `top` front and near-front architectures: `epochs` per run, `seeds` seeds
    (added to the proxy seed), up to `max_seeds` for those tied at the top; with a `screen`, the
    `top` of that many candidates by one run each; then the confirmed front at `fresh_seeds` more.
    Each argument left out is the study file's (`confirm`: epochs default 3x the proxy's). Returns
    the companion study."""
    settings = config.confirm
    top = top if top is not None else settings.top
    screen = screen if screen is not None else settings.screen
    if screen is not None and screen < top:
        raise StudyError(f"confirm: screen = {screen} is fewer than top = {top}; allowed: an integer >= {top}")
    epochs = epochs if epochs is not None else (settings.epochs or 3 * config.proxy.epochs)
    seeds = seeds if seeds is not None else settings.seeds
    max_seeds = max(seeds, max_seeds if max_seeds is not None else (
        settings.most_seeds if settings.seeds == seeds else 2 * seeds))
    fresh_seeds = fresh_seeds if fresh_seeds is not None else settings.fresh_seeds
    if max_seeds >= FRESH_SEED:
        raise StudyError(f"confirm: max_seeds = {max_seeds} reaches the fresh seeds, which start at {FRESH_SEED}; "
                         f"allowed: at most {FRESH_SEED - 1}")
    proxy = dataclasses.replace(config.proxy, epochs=epochs)
    dev = resolve_device(device)
    storage = open_storage(config.storage, create=False)
    with named_lock(config.storage, f"{config.name}.confirm"):
        refined = open_refined(config, study, storage)
        earlier = refined.user_attrs.get(StudyAttr.REFINE_SETTINGS)
        if earlier is not None and (earlier.get("epochs"), earlier.get("seeds")) != (epochs, seeds):
            raise StudyError(
                f"study {config.name!r} was confirmed with {earlier}; confirm again with the same epochs and seeds "
                f"(confirm section or --epochs/--seeds; more top is fine), or delete study {refined.study_name!r} "
                "(optuna delete-study) to start over"
            )
        refined.set_user_attr(StudyAttr.REFINE_SETTINGS, {"epochs": epochs, "seeds": seeds, "max_seeds": max_seeds,
                                                          "fresh_seeds": fresh_seeds})
        chosen = {t.number: t for t in candidates(study, max(top, screen or 0))}
        state = Confirmation.of(refined)
        refined.set_user_attr(StudyAttr.CONFIRMATION, {
            "candidates": sorted({*state.candidates, *chosen}), "finished": False, "search_trials": None})
        screening = screen is not None and len(chosen) > top  # else every candidate goes on: no screen
        fresh = f", then the confirmed front at {fresh_seeds} fresh seeds" if fresh_seeds else ""
        log(f"confirming {f'the {top} best of {len(chosen)} by one run each, ' if screening else ''}"
            f"{min(top, len(chosen))} architectures of study {config.name!r}: {epochs} "
            f"epochs x {seeds} seeds (up to {max_seeds} while tied at the top){fresh}, on {dev}; results in study "
            f"{refined.study_name!r}")

        def accuracies(number: int, arch: ArchConfig, seed_indices: range) -> list[float]:
            """Candidate `number`'s accuracy at each seed (added to the proxy seed), training the missing ones."""
            saved_runs = refined.user_attrs
            out = []
            for s in seed_indices:
                key = StudyAttr.refine_run(number, s)
                saved = saved_runs.get(key)
                if saved is None:
                    result = train_proxy(lambda arch=arch: build_model(arch), data,
                                         dataclasses.replace(proxy, seed=config.proxy.seed + s), dev, progress=False)
                    saved = result.accuracy
                    refined.set_user_attr(key, saved)  # saved at once: a killed confirmation keeps it
                out.append(saved)
            return out

        def runs(number: int, n: int) -> list[float]:
            """The first `n` seeds' accuracies of candidate `number`."""
            return accuracies(number, ArchConfig.from_dict(chosen[number].user_attrs[TrialAttr.ARCH]), range(n))

        kept = list(chosen)
        if screening:
            first = {number: runs(number, 1)[0] for number in chosen}
            kept = screened(study, chosen, first, top)
            log(f"screened at one run each: {', '.join(f'#{k} {first[k]:.4f}' for k in kept)} go on")
        results = {number: runs(number, seeds) for number in kept}
        n = seeds
        while n < max_seeds:
            tied = tied_at_top(results)
            if len(tied) < 2:
                break
            n = min(2 * n, max_seeds)
            log(f"{len(tied)} architectures tie at the top ({', '.join(f'#{k}' for k in tied)}): {n} seeds each")
            results.update({number: runs(number, max(n, len(results[number]))) for number in tied})
        for number, found in results.items():
            _add_refined_trial(refined, study, chosen[number], found, epochs)
        fresh_results = {}
        if fresh_seeds:
            front, searched = chosen_front(refined), study.get_trials(deepcopy=False)  # numbers are indices
            log(f"the confirmed front ({', '.join(f'#{r.user_attrs[TrialAttr.SOURCE_TRIAL]}' for r in front)}) at "
                f"{fresh_seeds} fresh seeds: the figures shown are not the runs that chose it")
            for r in front:
                number = r.user_attrs[TrialAttr.SOURCE_TRIAL]
                found = accuracies(number, ArchConfig.from_dict(r.arch), range(FRESH_SEED, FRESH_SEED + fresh_seeds))
                _add_refined_trial(refined, study, searched[number], found, epochs, fresh=True)
                fresh_results[number] = (r, found)
        refined.set_user_attr(StudyAttr.CONFIRMATION, {  # a screened-out candidate is not one any more
            "candidates": sorted({*Confirmation.of(refined).confirmed, *kept}), "finished": True,
            "search_trials": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))})
    for number in kept:
        trial, found = chosen[number], results[number]
        log(f"#{number:<4d} search {trial.values[0]:.4f} -> confirmed {_text(found)}  "
            f"{trial.user_attrs.get(TrialAttr.MFLOPS, 0):.2f} MFLOPs  {trial.user_attrs.get(TrialAttr.ARCH_ID)}")
    for number, (r, found) in fresh_results.items():
        log(f"#{number:<4d} confirmed {r.accuracy_text()} -> fresh seeds {_text(found)}  {r.arch_id}")
    return refined


def _text(accuracies: Sequence[float]) -> str:
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return f"{statistics.fmean(accuracies):.4f} ± {std:.4f} ({len(accuracies)})"


def _add_refined_trial(refined: optuna.Study, study: optuna.Study, source: FrozenTrial, accuracies: list[float],
                       epochs: int, fresh: bool = False) -> None:
    """Add (once per number of seeds) the confirmed trial of `source`: a candidate confirmed
    again with more seeds gets a second trial, pooled with the first by seed (`nas.front`). A
    `fresh` trial holds a front member's runs at the fresh seeds, pooled apart."""
    done = [t for t in refined.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(TrialAttr.SOURCE_TRIAL) == source.number and bool(t.user_attrs.get(TrialAttr.FRESH))
            == fresh]
    if any(len(t.user_attrs.get(TrialAttr.REFINED_ACCURACIES, ())) >= len(accuracies) for t in done):
        return
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    values = list(source.values)
    values[objectives_of(study).index(ACCURACY.name)] = mean
    attrs = {
        **source.user_attrs,
        TrialAttr.SOURCE_TRIAL: source.number,
        TrialAttr.PROXY_ACCURACY: source.values[objectives_of(study).index(ACCURACY.name)],
        TrialAttr.REFINED_ACCURACY_MEAN: mean,
        TrialAttr.REFINED_ACCURACY_STD: std,
        TrialAttr.REFINED_ACCURACIES: accuracies,
        TrialAttr.SEEDS: list(range(FRESH_SEED, FRESH_SEED + len(accuracies)) if fresh else range(len(accuracies))),
        TrialAttr.REFINED_EPOCHS: epochs,
        TrialAttr.REFINED_SEEDS: len(accuracies),
        **({TrialAttr.FRESH: True} if fresh else {}),
    }
    refined.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))
