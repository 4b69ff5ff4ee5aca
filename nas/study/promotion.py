"""Promotion in a multi-fidelity study (MO-ASHA): which finished candidates of a rung go up to the
next rung, and claiming one promotion, atomically across workers.

The order (`promotion_order`): a rung's searched candidates (one per architecture: its first
finished trial, since a reused duplicate is the same result) are ordered by Pareto rank
(non-dominated sorting on the rung's objective values), within a rank by crowding distance,
largest first (NSGA-II's tie-break: it keeps what goes up spread along the front), then by trial
number. The uniform baselines always go up, outside any quota and regardless of rank, so that the
top rung's front is compared with hand placement at the same fidelity. A promotion is never taken
back. Two rules (`fidelity.promotion`) say who goes up while a rung fills (`next_promotion`):

- asha (ASHA's, Li et al. 2020): a candidate goes up while it is among the first floor(keep x n)
  of the n finished so far (`qualifying`, `Fidelity.quota`). One promoted while in the top
  fraction stays promoted when later results push it out, so more than `keep` goes up while a
  rung is small, and much more when the sampler improves (later candidates enter the top on
  arrival): 17 and 20 of 32 on benchmarks/equal_compute.py's task at 40 trials, against 10.
- quota: the best candidate not yet promoted goes up only while the rung has promoted fewer than
  floor(keep x n): exactly `keep` in the end (what `nas check` projects), still without waiting
  for a rung to fill; a late, excellent candidate waits until the quota next grows.

Claiming (`claim_promotion`) runs under `nas.storage.creation_lock` (a folder lock for SQLite, an
advisory lock on database servers): the rungs are checked from the top down, and the first
qualifying candidate with no trial yet at the next rung, in any state (waiting, running, finished,
failed), is enqueued there. Reading and enqueueing under one lock is what makes two workers
unable to promote one candidate twice. One failure does not count: a promotion interrupted by
Ctrl-C or SIGTERM says nothing about the candidate, so it is promoted again, with the seeds its
interrupted attempt finished (a killed worker's promotion is retried by Optuna's retry instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.attrs import TrialAttr
from nas.errors import Terminated, interrupt_reason
from nas.fidelity import Fidelity
from nas.refine import pareto_ranks

INTERRUPTED = (interrupt_reason(KeyboardInterrupt()), Terminated.reason)  # the fail_reasons of Ctrl-C and SIGTERM


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance (Deb et al. 2002) of points on one front: per objective, the gap
    between a point's two neighbours over the front's range, summed; the extremes get infinity.

    Written here because Optuna's own (`optuna.samplers.nsgaii._crowding_distance`) is private API."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for j in range(1, n - 1):
            distance[order[j]] += (points[order[j + 1]][m] - points[order[j - 1]][m]) / (high - low)
    return distance


def promotion_order(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """`trials` best first: Pareto rank, then crowding distance within the rank (largest first),
    then trial number (earliest first)."""
    signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions]
    points = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials]
    ranks = pareto_ranks(points)
    crowding = [0.0] * len(trials)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for i, d in zip(members, crowding_distances([points[i] for i in members]), strict=True):
            crowding[i] = d
    order = sorted(range(len(trials)), key=lambda i: (ranks[i], -crowding[i], trials[i].number))
    return [trials[i] for i in order]


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    """A rung's finished candidates: the first COMPLETE trial of each architecture."""
    return first_per_arch(sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                                 key=lambda t: t.number))


def first_per_arch(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The first of `trials` of each architecture (a reused duplicate is the same result)."""
    first: dict[str, FrozenTrial] = {}
    for trial in trials:
        first.setdefault(_arch(trial) or f"#{trial.number}", trial)
    return list(first.values())


def qualifying(
    rung: Sequence[FrozenTrial], directions: Sequence[StudyDirection], fidelity: Fidelity
) -> list[FrozenTrial]:
    """The candidates of one rung that qualify for the next under the asha rule, in the order they
    are promoted: the baselines, then the best `fidelity.quota(n)` of the n searched candidates."""
    baselines = [t for t in rung if TrialAttr.BASELINE in t.user_attrs]
    searched = [t for t in rung if TrialAttr.BASELINE not in t.user_attrs]
    return baselines + promotion_order(searched, directions)[: fidelity.quota(len(searched))]


def next_promotion(rung: Sequence[FrozenTrial], taken: set[str], directions: Sequence[StudyDirection],
                   fidelity: Fidelity) -> FrozenTrial | None:
    """The candidate of `rung` to promote now, or None: a baseline not yet promoted first, then the
    searched candidate the rule picks (module docstring); `taken`, the architectures already
    promoted out of `rung`."""
    if fidelity.promotion == "asha":
        return next((t for t in qualifying(rung, directions, fidelity) if _arch(t) not in taken), None)
    baselines = [t for t in rung if TrialAttr.BASELINE in t.user_attrs and _arch(t) not in taken]
    if baselines:
        return baselines[0]
    searched = [t for t in rung if TrialAttr.BASELINE not in t.user_attrs]
    if sum(_arch(t) in taken for t in searched) >= fidelity.quota(len(searched)):
        return None
    return next((t for t in promotion_order(searched, directions) if _arch(t) not in taken), None)


def _arch(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(TrialAttr.ARCH_ID)


def claim_promotion(
    rungs: Sequence[optuna.Study], fidelity: Fidelity, first_seed: int
) -> tuple[int, FrozenTrial] | None:
    """Enqueue the next promotion (`next_promotion`), checking the top rungs first; returns (the
    rung it goes to, the candidate), or None when no rung has one.
    Call it under `nas.storage.creation_lock` (see the module docstring)."""
    for rung in range(fidelity.top - 1, -1, -1):
        upper = rungs[rung + 1]
        taken, interrupted = set(), {}
        for trial in upper.get_trials(deepcopy=False):
            arch_id = _arch(trial)
            if trial.state == TrialState.FAIL and trial.user_attrs.get(TrialAttr.FAIL_REASON) in INTERRUPTED:
                interrupted[arch_id] = trial.user_attrs.get(TrialAttr.RUNS, [])
            else:
                taken.add(arch_id)
        candidate = next_promotion(candidates(rungs[rung]), taken, rungs[rung].directions, fidelity)
        if candidate is not None:
            enqueue_promotion(upper, candidate, rung + 1, fidelity, first_seed, interrupted.get(_arch(candidate), []))
            return rung + 1, candidate
    return None


def enqueue_promotion(upper: optuna.Study, candidate: FrozenTrial, rung: int, fidelity: Fidelity,
                      first_seed: int, runs: list[dict] | None = None) -> None:
    """Queue `candidate` at `rung` with its parameters fixed, so the dashboard shows the same
    parameters at every rung, and user attrs saying what it is: `arch`, `arch_id`, `rung`,
    `promoted_from` (its trial number on the rung below), `epochs`, `seed` and `seeds`, and
    `baseline` for a hand placement; `runs`, the seeds an interrupted attempt finished, if any."""
    seeds = fidelity.seeds_at(rung, first_seed)
    kept = (TrialAttr.ARCH, TrialAttr.ARCH_ID, TrialAttr.BASELINE)
    attrs = {key: candidate.user_attrs[key] for key in kept if key in candidate.user_attrs}
    # epochs and seed: what nas.study.objective trains a queued trial with (the first seed; the rest follow)
    attrs.update({TrialAttr.RUNG: rung, TrialAttr.PROMOTED_FROM: candidate.number,
                  TrialAttr.EPOCHS: fidelity.epochs[rung], TrialAttr.SEED: seeds[0], TrialAttr.SEEDS: seeds})
    if runs:
        attrs[TrialAttr.RUNS] = runs
    upper.enqueue_trial(dict(candidate.params), user_attrs=attrs)
