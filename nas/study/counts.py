"""How far a study is: its trials counted by state, the distinct architectures it has evaluated,
and its target (how many finished trials a worker runs it to, the same for every worker; a reused
duplicate is not one).

Both worker loops read these (`nas.study.loop`, and `nas.study.asha` for multi-fidelity studies,
which `loop` hands them to), so they live below both."""

from __future__ import annotations

import dataclasses

import optuna
from optuna.trial import TrialState

from nas.attrs import TrialAttr


def count(study: optuna.Study, state: TrialState) -> int:
    """Trials of the study in `state`."""
    return len(study.get_trials(deepcopy=False, states=(state,)))


def count_complete(study: optuna.Study) -> int:
    return count(study, TrialState.COMPLETE)


def count_waiting(study: optuna.Study) -> int:
    return count(study, TrialState.WAITING)


def count_finished(study: optuna.Study) -> int:
    """What the target counts: COMPLETE trials, less the sampled ones that reused an earlier result
    (`duplicate_of`). A sampler that proposes an architecture again gets its result for free, and
    the study still owes the user the evaluations asked for: measured on the tpe4papers searches
    (benchmarks/end_to_end.py), 6 and 7 of 24 sampled trials repeated one, `none` most often.
    A queued trial counts however it ended: the target counts it among the queued."""
    return sum(TrialAttr.DUPLICATE_OF not in t.user_attrs or QUEUED in t.system_attrs
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def count_evaluated(study: optuna.Study, proxy: str) -> int:
    """Distinct architectures of the search space with a result at this proxy (finished) or
    refused as over budget; baselines outside the space (queued without parameters) excluded."""
    seen = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = t.user_attrs
        if TrialAttr.ARCH_ID not in attrs or (TrialAttr.BASELINE in attrs and not t.params):
            continue
        if t.state == TrialState.PRUNED or attrs.get(TrialAttr.PROXY_KEY) == proxy:
            seen.add(attrs[TrialAttr.ARCH_ID])
    return len(seen)


QUEUED = "fixed_params"  # Optuna's system attribute on a trial made by `enqueue_trial`
RETRY_OF = "failed_trial"  # ... and on the copy its retry callback queues for a failed trial


@dataclasses.dataclass(frozen=True)
class Target:
    """How many finished (COMPLETE) trials a worker runs the study to: the `trials` asked for,
    raised to the number of queued trials (baselines, the `none` baseline's extra seeds, trials
    queued by hand), which are all trained, even past `trials`.

    It is read from what the study holds, not from what is still waiting, so every worker of the
    study states the same target whenever it starts: a queued trial another worker has already
    taken, finished, or queued again after a dead worker (a retry, a lost baseline), counts once."""

    trials: int  # the study file's `trials`, or the command's `--trials`
    queued: int  # queued trials, each counted once
    baselines: int = 0  # of which baselines
    seeds: int = 0  # of which extra seeds of the `none` baseline

    @property
    def count(self) -> int:
        return max(self.trials, self.queued)

    def why(self) -> str:
        """The reason for the target, for the worker's first line: `trials: 6` or how it was raised."""
        if self.queued <= self.trials:
            return f"trials: {self.trials}"
        parts = [f"{self.baselines} baseline{'s' * (self.baselines != 1)}"] if self.baselines else []
        if self.seeds:
            parts.append(f"{self.seeds} extra seed{'s' * (self.seeds != 1)} of `none`")
        others = self.queued - self.baselines - self.seeds
        if others:
            parts.append(f"{others} queued by hand")
        return (f"trials: {self.trials}, raised to the {self.queued} queued trials ({', '.join(parts)}), "
                "which are all trained")


def study_target(study: optuna.Study, trials: int) -> Target:
    """The study's `Target` for `trials` asked (see there): the same for every worker."""
    items: set[tuple[str, object]] = set()
    for t in study.get_trials(deepcopy=False):
        if QUEUED not in t.system_attrs or RETRY_OF in t.system_attrs:
            continue  # sampled, or the retry of a trial counted already
        attrs = t.user_attrs
        if TrialAttr.BASELINE in attrs:  # a lost baseline queued again is the same baseline
            items.add(("baseline", attrs[TrialAttr.BASELINE]))
        elif TrialAttr.NOISE_SEED in attrs:
            items.add(("seed", attrs[TrialAttr.NOISE_SEED]))
        else:
            items.add(("trial", t.number))
    kinds = [kind for kind, _ in items]
    return Target(trials, len(items), kinds.count("baseline"), kinds.count("seed"))
