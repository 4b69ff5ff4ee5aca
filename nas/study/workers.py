"""Workers: each trial names the process that runs it, so that a worker restarted on the same
host fails and re-queues the trials a dead process left RUNNING at once, instead of waiting for
Optuna's heartbeat grace period."""

from __future__ import annotations

import copy
import os
import socket

import optuna
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from nas.attrs import TrialAttr
from nas.storage import MAX_RETRY, quiet_experimental

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # this process, as a trial's `worker` attribute names it


def reap_dead_local_trials(study: optuna.Study, storage: BaseStorage) -> list[int]:
    """Fail and re-queue RUNNING trials whose worker process on this host no longer exists.

    Optuna's heartbeat does the same for any host after the grace period; on the worker's own
    host a restart can tell at once, so a killed-and-restarted worker retries its trial
    immediately instead of after the grace period.
    """
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(TrialAttr.WORKER, "")
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        reason = f"worker {worker} died"
        storage.set_trial_user_attr(trial_id, TrialAttr.FAIL_REASON, reason)  # while still updatable
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            # The retry copies the user attributes; a retry that then finishes must not carry the
            # dead attempt's fail_reason, so the copy keeps it as `retried_after` instead.
            dead = copy.deepcopy(storage.get_trial(trial_id))
            dead.user_attrs = {**{k: v for k, v in dead.user_attrs.items() if k != TrialAttr.FAIL_REASON},
                               TrialAttr.RETRIED_AFTER: reason}
            with quiet_experimental():
                RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, dead)
            reaped.append(trial.number)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
