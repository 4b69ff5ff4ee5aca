"""The names of the user attributes nas stores on Optuna trials and studies, in one place.

They are the stored format: the search and refine write them; the front, export, refine, the
dashboard and users' own scripts read them. A value here never changes (the tests spell the
strings out, to hold the format); add a name, do not rename one.
"""

from __future__ import annotations

from typing import Final


class TrialAttr:
    """A trial's user attributes."""

    # what it evaluates, recorded when it starts
    ARCH: Final = "arch"  # the ArchConfig as a mapping (set when queued, for a baseline)
    ARCH_ID: Final = "arch_id"
    BASELINE: Final = "baseline"  # a queued uniform hand placement's label
    PROXY_KEY: Final = "proxy_key"  # the study's proxy fingerprint: equal keys, comparable results
    SEED: Final = "seed"  # the proxy seed it was trained with; set when queued: the one it must be
    EPOCHS: Final = "epochs"  # the proxy epochs it was trained with; set when queued: the ones it must be
    WORKER: Final = "worker"  # host:pid of the process running it
    # its cost, counted before training
    MFLOPS: Final = "mflops"
    PARAMS: Final = "params"  # a count
    # its training run
    SECONDS: Final = "seconds"
    IMAGES_PER_SECOND: Final = "images_per_second"
    DEVICE: Final = "device"
    EPOCHS_DONE: Final = "epochs_done"
    VAL_LOSS: Final = "val_loss"
    IMAGES_SEEN: Final = "images_seen"  # training images it consumed (0: reused or over budget), for compute accounting
    # how it ended, where it applies
    DUPLICATE_OF: Final = "duplicate_of"  # the earlier trial whose result it reused
    FAIL_REASON: Final = "fail_reason"  # why it failed or was refused as over budget
    RETRIED_AFTER: Final = "retried_after"  # a retry's dead attempt's fail_reason
    NOISE_SEED: Final = "noise_seed"  # 1, 2, ...: an extra seed of the `none` baseline, to measure noise
    # a trial of a multi-fidelity study (nas.study.rung_objective, nas.study.promotion)
    RUNG: Final = "rung"  # 0 = the study the file names; k = the study <name>.rung<k>
    PROMOTED_FROM: Final = "promoted_from"  # its trial number on the rung below
    SEEDS: Final = "seeds"  # the seeds it was trained at (SEED is the first)
    ACCURACIES: Final = "accuracies"  # one per seed, in SEEDS' order; the objective is their mean
    ACCURACY_STD: Final = "accuracy_std"  # sample std over the seeds, with 2 or more
    RUNS: Final = "runs"  # each finished seed's whole result, saved as it finishes
    MODEL_RUNG: Final = "model_rung"  # sampled at rung 0 under `fidelity.model: highest`: what its sampler read
    # its latency, predicted from the study's latency table (nas.latency), never timed in the trial
    LATENCY_MS: Final = "latency_ms"
    LATENCY_CI_MS: Final = "latency_ci_ms"  # 95 % half-width
    LATENCY_RATIO: Final = "latency_ratio"  # to the `none` architecture under the same conditions
    LATENCY_RATIO_CI: Final = "latency_ratio_ci"
    LATENCY_CONDITIONS: Final = "latency_conditions"  # e.g. "onnxruntime, batch 1, 1 thread, cpu"
    LATENCY_DEVICE: Final = "latency_device"  # the table's device signature id
    # a refined trial (in the companion study `nas refine` writes)
    SOURCE_TRIAL: Final = "source_trial"
    PROXY_ACCURACY: Final = "proxy_accuracy"
    REFINED_ACCURACY_MEAN: Final = "refined_accuracy_mean"
    REFINED_ACCURACY_STD: Final = "refined_accuracy_std"
    REFINED_ACCURACIES: Final = "refined_accuracies"  # per seed
    REFINED_EPOCHS: Final = "refined_epochs"
    REFINED_SEEDS: Final = "refined_seeds"
    FRESH: Final = "fresh"  # true: the front retrained at seeds confirmation did not use (confirm.fresh_seeds)


class StudyAttr:
    """A study's user attributes."""

    MARKER: Final = "nas"  # written first when nas creates a study: {"format": 1}
    # the study file's settings, written at creation
    OBJECTIVES: Final = "objectives"
    BACKBONE: Final = "backbone"
    BACKBONE_ARGS: Final = "backbone_args"
    DATASET: Final = "dataset"
    PROXY: Final = "proxy"
    PROXY_KEY: Final = "proxy_key"
    SAMPLER: Final = "sampler"
    CONSTRAINTS: Final = "constraints"
    CREATED: Final = "created"
    OWN_ATTENTION: Final = "own_attention"  # what attention the backbone brings itself, in words
    WEIGHTS: Final = "weights"  # the pretrained file's {file, sha256, identity}; None: trained from scratch
    STUDY_FILE: Final = "study_file"  # written last: the description is complete
    BASELINES_QUEUED: Final = "baselines_queued"
    NOISE_QUEUED: Final = "noise_queued"  # the `none` baseline's extra seeds are queued
    NOISE: Final = "noise"  # the study's measured noise, as nas.noise.noise_record writes it
    VAL_SIZE: Final = "val_size"  # validation images behind every accuracy of the study
    FIDELITY: Final = "fidelity"  # the study file's fidelity section (null: a single-fidelity study)
    LATENCY_TABLE: Final = "latency_table"  # the whole table latency is predicted from
    SUPERNET: Final = "supernet"  # the one-shot supernet that scored the trials (nas.study.oneshot)
    # a rung study of a multi-fidelity study
    RUNG: Final = "rung"
    RUNG_OF: Final = "rung_of"  # the name of its rung-0 study
    # the companion study of `nas refine`
    REFINED_FROM: Final = "refined_from"
    REFINE_SETTINGS: Final = "refine_settings"  # {epochs, seeds, max_seeds, fresh_seeds}
    CONFIRMATION: Final = "confirmation"  # {candidates, finished, search_trials}: how far confirmation got

    @staticmethod
    def refine_run(trial: int, seed: int) -> str:
        """The attribute holding one finished refine run's accuracy (a resumed refine skips it)."""
        return f"run:{trial}:{seed}"
