"""The fidelity schedule of a multi-fidelity study: its rungs (epochs and seeds per candidate),
the fraction promoted from each, the rung studies' names, and the training a study will cost.

A study file's `fidelity: {epochs: [1, 3, 9], keep: 0.34, seeds: [1, 1, 2]}` makes three rungs.
Every candidate is trained at rung 0 (1 epoch, 1 seed); at each rung the best `keep` of its
finished candidates by Pareto rank go up to the next (`nas.study.promotion`), and the front is
read at the top rung (9 epochs, each candidate trained at 2 seeds, their mean reported).

One Optuna study per rung keeps the sampler honest: the study the file names is rung 0, where
candidates are proposed; rung k >= 1 is the study `<name>.rung<k>` in the same storage, holding
only promotions (`nas.study.rungs`). Which one rung's results the sampler's model learns from is
`model`: rung0 (the default: the cheapest, least faithful results, of every candidate) or highest
(BOHB's rule: the highest rung with enough finished trials, `nas.study.sampler.HighestRungModel`).
Either way the model sees one fidelity, never a mix.

Torch- and Optuna-free, so study files validate without loading either.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

QUOTA_SLACK = 1e-9  # so that keep 1/3 written as 0.3333333333333333 of 9 candidates promotes 3, not 2
PROMOTIONS = ("asha", "quota")  # nas.study.promotion says what each does
MODELS = ("rung0", "highest")  # which rung the sampler learns from (module docstring)
TPE_STARTUP_TRIALS = 10  # TPESampler's n_startup_trials default: with fewer results it samples at random


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """A validated `fidelity` section: `epochs` and `seeds` (a count) per rung, `keep` a fraction,
    `promotion` the rule that applies it (one of PROMOTIONS), `model` the rung the sampler learns
    from (one of MODELS)."""

    epochs: tuple[int, ...]
    keep: float
    seeds: tuple[int, ...]
    promotion: str = "asha"
    model: str = "rung0"

    @classmethod
    def from_settings(cls, epochs: list[int], keep: float, seeds: list[int] | None,
                      promotion: str = "asha", model: str = "rung0") -> Fidelity:
        return cls(tuple(epochs), float(keep), tuple(seeds) if seeds is not None else (1,) * len(epochs),
                   promotion, model)

    @property
    def top(self) -> int:
        """The highest rung's index: the front is read there."""
        return len(self.epochs) - 1

    def to_dict(self) -> dict[str, Any]:
        """As the study attribute `fidelity` records it (plain lists, so JSON round-trips compare equal).
        `promotion` and `model` only when not the defaults: studies made before those choices existed
        recorded neither, and they were asha and rung0 studies, so they resume as such."""
        recorded: dict[str, Any] = {"epochs": list(self.epochs), "keep": self.keep, "seeds": list(self.seeds)}
        if self.promotion != "asha":
            recorded["promotion"] = self.promotion
        if self.model != "rung0":
            recorded["model"] = self.model
        return recorded

    def study_name(self, name: str, rung: int) -> str:
        """Rung 0 is the study the file names; rung k >= 1 is `<name>.rung<k>`."""
        return name if rung == 0 else f"{name}.rung{rung}"

    def seeds_at(self, rung: int, first_seed: int) -> list[int]:
        """The seeds a candidate is trained at on `rung`: the proxy's seed and the next ones, the same
        for every candidate (common random numbers), so rung 0 at one seed trains exactly as a
        single-fidelity study does."""
        return [first_seed + i for i in range(self.seeds[rung])]

    def quota(self, finished: int) -> int:
        """How many of a rung's `finished` searched candidates qualify for the next rung:
        floor(keep x finished), rounded down as ASHA does (a candidate goes up only once `keep`
        of the finished ones is at least one whole candidate)."""
        return math.floor(self.keep * finished + QUOTA_SLACK)

    def rule(self) -> str:
        """How candidates go up, as `nas check` and a search's first line say it."""
        if self.promotion == "quota":
            return (f"exactly the best {self.keep:g} of each rung's finished searched candidates by Pareto rank go up "
                    "(promotion: quota), the baselines always")
        return (f"a searched candidate goes up while it is in the best {self.keep:g} of its rung's finished ones "
                "by Pareto rank (promotion: asha; more than that fraction while a rung is small), the baselines always")

    def learns_from(self, sampler: Mapping[str, Any]) -> str:
        """Which results the study's `sampler` learns from, as `nas check` and a search's first line say it."""
        if self.model == "highest":
            return (f"the sampler learns from the highest rung with {min_model_trials(sampler)} or more finished "
                    "trials (model: highest, BOHB's rule), rung 0 until one has")
        return "the sampler learns from rung 0 (model: rung0)"

    def describe(self, rung: int) -> str:
        """'rung 2 (9 epochs x 2 seeds)', as titles and progress lines say it."""
        e, s = self.epochs[rung], self.seeds[rung]
        return f"rung {rung} ({e} epoch{'s' if e != 1 else ''} x {s} seed{'s' if s != 1 else ''})"

    def projected_candidates(self, trials: int, baselines: int) -> list[int]:
        """Candidates trained per rung when rung 0 finishes `trials`, of which `baselines` are the hand
        placements (always promoted); duplicates and over-budget samples are not deducted. Exact for
        quota promotion; asha promotion passes on more while rungs are small (nas.study.promotion)."""
        searched = max(trials - baselines, 0)
        counts = [trials]
        for _ in range(self.top):
            searched = self.quota(searched)
            counts.append(searched + min(baselines, trials))
        return counts

    def projected_images(self, trials: int, baselines: int, images_per_epoch: int) -> list[int]:
        """Training images per rung: candidates x epochs x seeds x images per epoch."""
        counts = self.projected_candidates(trials, baselines)
        return [n * e * s * images_per_epoch for n, e, s in zip(counts, self.epochs, self.seeds, strict=True)]


def min_model_trials(sampler: Mapping[str, Any]) -> int:
    """How many finished trials a rung needs before `model: highest` learns from it: as many as TPE
    needs before it models at all (the study's `sampler.n_startup_trials`)."""
    return int(sampler.get("n_startup_trials") or TPE_STARTUP_TRIALS)


def fidelity_mismatch(recorded: Mapping[str, Any] | None, fidelity: Fidelity | None) -> str | None:
    """Why a study made with fidelity `recorded` (its `fidelity` attribute; None: a single-fidelity
    study) cannot be run with the study file's `fidelity`, or None when they agree. Changing the
    rungs of a study would mix results trained differently under one rung."""
    wanted = fidelity.to_dict() if fidelity is not None else None
    have = dict(recorded) if recorded is not None else None
    if have == wanted:
        return None
    made = f"with fidelity {have}" if have is not None else "at a single fidelity"
    asks = f"fidelity {wanted}" if wanted is not None else "a single fidelity (no fidelity section)"
    return f"was searched {made}, but the study file asks for {asks}; use another study name"
