"""Running a search study, one module per job:

- `sampler`: Optuna's sampler, reseeded per trial (parallel workers draw different candidates);
- `creation`: creating or opening the study (refusing a foreign one), queueing the baselines;
- `workers`: naming each trial's worker, failing and re-queueing the trials of a dead one;
- `objective`: one trial (sample, cost, budget, reuse or train, objective values);
- `counts`: how far a study is (trials by state, distinct architectures evaluated, its target);
- `progress`: one line per finished trial;
- `loop`: a worker's loop until the study reaches its target (`run_search`, `search`);

and for a study with a `fidelity` section (multi-fidelity, MO-ASHA):

- `rungs`: one Optuna study per rung (`<name>`, `<name>.rung1`, ...), and the top rung for reading;
- `promotion`: who qualifies for the next rung (Pareto rank, crowding distance), claimed once;
- `rung_objective`: one trial at a rung (its epochs, each of its seeds, the mean);
- `asha`: a worker's loop over the rungs (`run_multi_fidelity`, which `run_search` hands it to).

Code inside nas imports from the module that defines a name; this package re-exports the public
names for users (`from nas.study import open_study, run_search`).
"""

from nas.study.counts import count_complete, count_evaluated
from nas.study.creation import check_ours, open_study, proxy_key, requeue_lost_baselines
from nas.study.loop import run_search, search
from nas.study.objective import Objective, Trainer, failure_reason, train_architecture
from nas.study.progress import TrialReport
from nas.study.sampler import TrialSeededSampler, make_sampler
from nas.study.workers import WORKER, reap_dead_local_trials

__all__ = [
    "WORKER",
    "Objective",
    "Trainer",
    "TrialReport",
    "TrialSeededSampler",
    "check_ours",
    "count_complete",
    "count_evaluated",
    "failure_reason",
    "make_sampler",
    "open_study",
    "proxy_key",
    "reap_dead_local_trials",
    "requeue_lost_baselines",
    "run_search",
    "search",
    "train_architecture",
]
