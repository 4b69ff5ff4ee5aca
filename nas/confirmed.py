"""The confirmed front, read: what confirmation (`nas.refine`) wrote to the companion study
`<name>.refined`, and whether it is finished, without importing torch (`nas front` and `nas
export` read it by default; see `nas.studyref` for why they stay torch-free).

Optuna cannot change a finished trial, so confirmed results live in that companion study (the
dashboard lists it next to the search) and its user attr `confirmation` says how far it got.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from nas.attrs import StudyAttr, TrialAttr
from nas.errors import StudyError
from nas.front import Front, FrontRow, front_of, objectives_of, pareto_front
from nas.storage import open_storage

CONFIRMED_LABEL = "confirmed validation accuracy (mean ± std over seeds)"
FRESH_LABEL = "validation accuracy at fresh seeds (mean ± std; the front chosen on the confirmation's runs)"
OPTIMISM_NOTE = ("the front's accuracies are the runs that chose it, which read high; confirm.fresh_seeds (or "
                 "`nas refine --fresh-seeds N`) trains it again at seeds no selection read")


def refined_name(name: str) -> str:
    """The companion study confirmation writes to (named `refined` before confirmation ran after
    every search; the name is the stored format)."""
    return f"{name}.refined"


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """How far a study's confirmation got: its candidates (source trial numbers), those with a
    confirmed result, and the search's finished trials when it last finished."""

    candidates: tuple[int, ...]
    confirmed: tuple[int, ...]
    finished: bool
    search_trials: int | None
    epochs: int | None
    seeds: int | None
    max_seeds: int | None
    fresh_seeds: int = 0

    def describe(self) -> str:
        """`6 epochs x 2-4 seeds`: the fidelity the confirmed accuracies were measured at (`, the
        front at 3 fresh seeds` when its figures come from seeds confirmation did not use)."""
        more = self.max_seeds is not None and self.seeds is not None and self.max_seeds > self.seeds
        seeds = f"{self.seeds}-{self.max_seeds}" if more else f"{self.seeds}"
        fresh = f", the front at {self.fresh_seeds} fresh seeds" if self.fresh_seeds else ""
        return f"{self.epochs} epochs x {seeds} seeds{fresh}"

    @staticmethod
    def of(study: optuna.Study) -> Confirmation:
        record: dict[str, Any] = study.user_attrs.get(StudyAttr.CONFIRMATION) or {}
        settings: dict[str, Any] = study.user_attrs.get(StudyAttr.REFINE_SETTINGS) or {}
        confirmed = tuple(sorted({t.user_attrs[TrialAttr.SOURCE_TRIAL] for t in study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}))
        return Confirmation(
            candidates=tuple(record.get("candidates", confirmed)), confirmed=confirmed,
            # no record: an older `nas refine`, which added a trial only when all its seeds were done
            finished=bool(record.get("finished", True)), search_trials=record.get("search_trials"),
            epochs=settings.get("epochs"), seeds=settings.get("seeds"),
            max_seeds=settings.get("max_seeds", settings.get("seeds")), fresh_seeds=settings.get("fresh_seeds", 0),
        )


def load_confirmation(storage: str, name: str) -> tuple[optuna.Study, Confirmation] | None:
    """The companion study and its state, or None when the study was never confirmed."""
    try:
        refined = optuna.load_study(study_name=refined_name(name), storage=open_storage(storage, create=False))
    except KeyError:
        return None
    return refined, Confirmation.of(refined)


def confirmed_front(storage: str, name: str) -> Front:
    """Every confirmed architecture and their front, each row numbered by its source trial in the
    search study; refused when the study was never confirmed."""
    return _front_of(_confirmed(load_confirmation(storage, name), name)[0], name)


def _confirmed(loaded: tuple[optuna.Study, Confirmation] | None, name: str) -> tuple[optuna.Study, Confirmation]:
    if loaded is None:
        raise StudyError(f"study {name!r} has not been confirmed yet; `nas search` confirms when it reaches its "
                         "target (confirm.after_search), `nas refine` confirms now")
    return loaded


def chosen_front(refined: optuna.Study) -> list[FrontRow]:
    """The confirmed front as confirmation chose it: the Pareto front of its own runs' means (the
    front's runs at fresh seeds left out), cheapest first."""
    return _chosen(front_of(refined).architectures, refined)


def _chosen(rows: list[FrontRow], refined: optuna.Study) -> list[FrontRow]:
    selection = [r for r in rows if not r.user_attrs.get(TrialAttr.FRESH)]
    return pareto_front(selection, objectives_of(refined), refined.directions)


def _front_of(refined: optuna.Study, name: str) -> Front:
    """The confirmed front; where its members were trained again at fresh seeds, those rows: the
    front chosen on the confirmation's runs, shown at runs no selection read (a member the fresh
    runs put below a cheaper one leaves the front)."""
    def by_source(rows: list[FrontRow]) -> list[FrontRow]:
        return [dataclasses.replace(r, number=r.user_attrs[TrialAttr.SOURCE_TRIAL],
                                    trials=(r.user_attrs[TrialAttr.SOURCE_TRIAL],)) for r in rows]

    front = front_of(refined, f"confirmed study {name!r}", CONFIRMED_LABEL)
    fresh = {r.arch_id: r for r in front.architectures if r.user_attrs.get(TrialAttr.FRESH)}
    if fresh:
        chosen = _chosen(front.architectures, refined)
        shown = [fresh.get(r.arch_id, r) for r in chosen]
        members = {r.arch_id for r in chosen}
        others = [r for r in front.architectures if r.arch_id not in members and not r.user_attrs.get(TrialAttr.FRESH)]
        front = dataclasses.replace(front, architectures=[*shown, *others], accuracy_label=FRESH_LABEL,
                                    rows=pareto_front(shown, objectives_of(refined), refined.directions))
    return dataclasses.replace(front, architectures=by_source(front.architectures), rows=by_source(front.rows))


def evaluator_of(study: optuna.Study) -> str:
    """What ranked the search study's trials, in words: a one-shot supernet or the proxy."""
    supernet = study.user_attrs.get(StudyAttr.SUPERNET)
    if supernet:
        return f"one-shot scores of a supernet ({supernet.get('sharing', '?')} sharing)"
    epochs = (study.user_attrs.get(StudyAttr.PROXY) or {}).get("epochs")
    return f"{epochs}-epoch proxy" if epochs else "the proxy"


@dataclasses.dataclass(frozen=True)
class Reading:
    """The front `nas front` and `nas export` read, and in words which one and why."""

    front: Front
    confirmed: bool
    heading: str  # e.g. "confirmed front (6 epochs x 2-4 seeds; ranked by a 2-epoch proxy)"
    note: str | None = None  # why not the confirmed one, or that it is out of date


def read_front(storage: str, name: str, study: optuna.Study, want: str = "auto", at: str = "") -> Reading:
    """`want`: `confirmed` (refused when never confirmed), `search` (the search's own scores), or
    `auto`: the confirmed front once confirmation has finished, else the search's with a note.
    `at` names a multi-fidelity study's top rung."""
    evaluator = evaluator_of(study)
    loaded = None if want == "search" else load_confirmation(storage, name)
    if want == "confirmed" or (loaded is not None and loaded[1].finished and loaded[1].confirmed):
        refined, state = _confirmed(loaded, name)
        front = _front_of(refined, name)
        heading = f"confirmed front ({state.describe()}; candidates ranked by {evaluator}{at})"
        note = None
        searched = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if not state.finished:
            note = (f"confirmation unfinished: {len(state.confirmed)} of {len(state.candidates)} candidates "
                    "confirmed; `nas search` or `nas refine` finishes it")
        elif state.search_trials is not None and searched > state.search_trials:
            note = (f"the search has {searched - state.search_trials} finished trials more than when it was "
                    "confirmed; `nas refine` confirms the new front")
        elif not state.fresh_seeds:
            note = OPTIMISM_NOTE
        return Reading(front, True, heading, note)
    front = front_of(study)
    if at:
        front = dataclasses.replace(front, name=f"study {name!r}{at}")
    note = None
    if loaded is not None and want == "auto":
        state = loaded[1]
        note = (f"not the confirmed front: confirmation unfinished ({len(state.confirmed)} of "
                f"{len(state.candidates)} candidates); `nas search` or `nas refine` finishes it")
    elif want == "auto":
        note = "not confirmed: `nas refine` retrains the front at the long fidelity over seeds"
    return Reading(front, False, f"search front ({evaluator}{at}; not confirmed)", note)
