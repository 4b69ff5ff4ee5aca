"""Noise: how far one architecture's proxy accuracy moves between evaluations, and when two
accuracies are a tie.

A proxy accuracy is one draw: another seed (initialisation, data order, augmentation) or another
validation sample gives another number. Every accuracy the tool shows therefore comes with the
std of one evaluation and the number of evaluations behind its mean (`Estimate`), and two
architectures whose accuracies differ by less than `TIE_FACTOR` standard errors of the difference
are a tie, never a win (`ties`, `compare`).

Where an architecture was evaluated once, its std is the study's measured noise: the study user
attr `noise` (`NOISE_ATTR`), written by whoever trains the `none` baseline at several seeds, as
`noise_record(...)` returns it:

    {"accuracy_std": 0.0304,  # sample std over the seeds of one evaluation's accuracy
     "n": 48,                 # seeds (evaluations) it was measured from
     "accuracy": 0.6664,      # their mean
     "arch_id": "s1:none|s2:none|s3:none",  # the architecture trained
     "epochs": 1,             # the fidelity it holds for: rows at other epochs do not use it
     "proxy_key": "ab12cd34ef" or None,     # the proxy fingerprint (nas.study.proxy_key), when known
     "val_size": 500,         # validation images each accuracy was measured on
     "eval_std": 0.0211}      # binomial std of one accuracy on val_size images: the evaluation part

(the figures: the demo's proxy, `benchmarks/proxy_fidelity.py --noise`).

Without it, the fallback is the validation split's binomial std sqrt(p(1-p)/n_val) — evaluation
noise only, so a lower bound — when the validation size is known: the trial or study user attr
`val_size` (`VAL_SIZE_ATTR`; `nas search` should record it), else derived from the study's
`dataset` attr when it names a `subset` (the split is round(subset × val_fraction)).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nas.attrs import StudyAttr
from nas.errors import StudyError

TIE_FACTOR = 2.0
"""Standard errors of a difference within which two accuracies tie: |Δ| <= 2·sqrt(σa²/na + σb²/nb)
is a two-sided ~95% bound for normally distributed evaluation noise."""

NOISE_ATTR = StudyAttr.NOISE
VAL_SIZE_ATTR = StudyAttr.VAL_SIZE  # on a study, or on a trial

# where an Estimate's std came from
SEEDS = "seeds"  # the sample std of this architecture's own evaluations (2 or more)
POOLED = "pooled"  # the seed std pooled over the architectures evaluated 2 or more times at its fidelity
NOISE = "noise"  # the study's measured noise (a single evaluation)
BINOMIAL = "binomial"  # the validation split's binomial std only: a lower bound
UNKNOWN = "unknown"  # nothing known: no tie can be told


class Estimate(Protocol):
    """An accuracy with its uncertainty: the mean of `n_evals` evaluations and the std of one."""

    @property
    def accuracy(self) -> float: ...

    @property
    def accuracy_std(self) -> float | None: ...

    @property
    def n_evals(self) -> int: ...


def difference_std(a: Estimate, b: Estimate) -> float | None:
    """The std of `a.accuracy - b.accuracy`: sqrt(σa²/na + σb²/nb); None when a std is unknown."""
    if a.accuracy_std is None or b.accuracy_std is None:
        return None
    return math.sqrt(a.accuracy_std**2 / a.n_evals + b.accuracy_std**2 / b.n_evals)


def pooled_std(evaluations: Sequence[Sequence[float]]) -> float | None:
    """The std of one evaluation pooled over architectures evaluated at the same fidelity:
    sqrt(sum (n - 1) s² / sum (n - 1)) over those with 2 or more evaluations; None with none.

    Two or three seeds make a poor std (its own relative error is 50-70 %), and |Δ|/SE with such
    stds is Student-t with 2-4 degrees of freedom, so the 2-SE tie bound called an equal pair
    apart in 19 % (2 seeds) and 12 % (3 seeds) of draws instead of about 5 %; pooled over 8
    architectures, 8 % and 6 %, and no less often told a real gap (benchmarks/tie_calibration.py)."""
    many = [list(e) for e in evaluations if len(e) >= 2]
    if not many:
        return None
    return math.sqrt(sum((len(e) - 1) * statistics.variance(e) for e in many) / sum(len(e) - 1 for e in many))


def ties(a: Estimate, b: Estimate) -> bool | None:
    """Whether `a` and `b` differ by no more than noise (see TIE_FACTOR); None when it cannot be told."""
    std = difference_std(a, b)
    return None if std is None else abs(a.accuracy - b.accuracy) <= TIE_FACTOR * std


def compare(a: Estimate, b: Estimate) -> str:
    """`better`, `tie`, `worse` (a against b, beyond or within noise), or `unknown`."""
    tie = ties(a, b)
    if tie is None:
        return "unknown"
    if tie:
        return "tie"
    return "better" if a.accuracy > b.accuracy else "worse"


def binomial_std(accuracy: float, val_size: int) -> float:
    """The std of an accuracy measured on `val_size` images: sqrt(p(1-p)/n), evaluation noise only."""
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / val_size)


def noise_record(
    accuracies: Sequence[float], val_size: int, *, arch_id: str, epochs: int, proxy_key: str | None = None
) -> dict[str, Any]:
    """The `noise` study attr from one architecture's accuracies at several seeds on a validation
    split of `val_size` images (see the module docstring for the format)."""
    if len(accuracies) < 2:
        raise ValueError(f"noise needs accuracies at 2 or more seeds, got {len(accuracies)}")
    if val_size < 1:
        raise ValueError(f"val_size = {val_size} is invalid; allowed: an integer >= 1")
    mean = statistics.fmean(accuracies)
    return {
        "accuracy_std": statistics.stdev(accuracies),
        "n": len(accuracies),
        "accuracy": mean,
        "arch_id": arch_id,
        "epochs": epochs,
        "proxy_key": proxy_key,
        "val_size": val_size,
        "eval_std": binomial_std(mean, val_size),
    }


def read_noise(study_attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The study's `noise` attr, checked; None when the study has none."""
    noise = study_attrs.get(NOISE_ATTR)
    if noise is None:
        return None
    std, n = (noise.get("accuracy_std"), noise.get("n")) if isinstance(noise, Mapping) else (None, None)
    if not (isinstance(std, (int, float)) and std >= 0 and isinstance(n, int) and n >= 2):
        raise StudyError(f"the study's {NOISE_ATTR!r} attribute is malformed ({noise!r}); expected at least "
                         "{'accuracy_std': float >= 0, 'n': int >= 2, ...} as nas.noise.noise_record writes it")
    return dict(noise)


def val_size_of(trial_attrs: Mapping[str, Any], study_attrs: Mapping[str, Any]) -> int | None:
    """Validation images behind a trial's accuracy: its `val_size`, the study's, or derived from the
    study's dataset settings when they name a subset; None when unknown."""
    for attrs in (trial_attrs, study_attrs):
        if isinstance(attrs.get(VAL_SIZE_ATTR), int):
            return attrs[VAL_SIZE_ATTR]
    dataset = study_attrs.get("dataset") or {}
    if isinstance(dataset.get("subset"), int):
        return round(dataset["subset"] * dataset.get("val_fraction", 0.1))  # as nas.data splits it
    return None


def noise_applies(noise: Mapping[str, Any] | None, epochs: int | None, proxy_key: str | None) -> bool:
    """Whether the study's noise was measured at this fidelity (same epochs and proxy, where recorded)."""
    if noise is None:
        return False
    same_epochs = noise.get("epochs") is None or epochs is None or noise["epochs"] == epochs
    same_proxy = noise.get("proxy_key") is None or proxy_key is None or noise["proxy_key"] == proxy_key
    return same_epochs and same_proxy


def single_std(accuracy: float, noise: Mapping[str, Any] | None, val_size: int | None) -> tuple[float | None, str]:
    """The std of a single evaluation and its source: the study's noise (when it applies), else the
    binomial lower bound (when the validation size is known), else unknown."""
    if noise is not None:
        return float(noise["accuracy_std"]), NOISE
    if val_size:
        return binomial_std(accuracy, val_size), BINOMIAL
    return None, UNKNOWN
