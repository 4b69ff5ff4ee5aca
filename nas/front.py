"""The Pareto front of a study: pooled rows, ties, the knee, a table, JSON, a near-chance warning,
and a plot.

Rows: one per architecture and fidelity, its evaluations at different seeds pooled into a mean,
the std of one evaluation and a count (`pooled_rows`; a reused duplicate result is no extra
evaluation). The front is Optuna's `study.best_trials` (feasible COMPLETE trials that no other
dominates) computed on those rows, so an architecture evaluated at several seeds competes with
its mean. Every accuracy carries its noise (`nas.noise`), and a front row that ties with its
cheaper neighbour is marked: it costs more for no accuracy that can be told from noise.

The knee: normalise accuracy and the first cost objective to [0, 1] over the front, draw the
line through the front's two extremes (the cheapest point and the most accurate one), and take
the point farthest from that line on the side of the ideal corner (accuracy 1, cost 0). That is
where one more unit of cost stops buying much accuracy. With fewer than three points on the
front there is no bend, and the knee is the most accurate point. A knee that ties with a cheaper
front point is no win over it: the knee moves down to the cheapest point it ties with, and on
from there while that one ties with a cheaper one still.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.attrs import StudyAttr, TrialAttr
from nas.errors import ConfigError
from nas.latency.table import LatencyTable, Prediction
from nas.noise import (
    BINOMIAL,
    NOISE,
    POOLED,
    SEEDS,
    TIE_FACTOR,
    UNKNOWN,
    noise_applies,
    pooled_std,
    read_noise,
    single_std,
    ties,
    val_size_of,
)
from nas.objectives import ACCURACY, COSTS, DEFAULT_OBJECTIVES, FLOPS, LATENCY, OBJECTIVES, PARAMS

ALWAYS_SHOWN = (ACCURACY.name, FLOPS.name, PARAMS.name)  # every row has these; other objectives are extra columns


@dataclasses.dataclass(frozen=True)
class FrontRow:
    """One architecture at one fidelity, its evaluations pooled (see `pooled_rows`).

    `values` maps objective name to value, accuracy being the mean over `n_evals` evaluations;
    `accuracy_std` is the std of one evaluation (None when unknown; `std_source` says where it
    came from, see `nas.noise`); `epochs` the fidelity; `trials` every finished trial of this
    architecture, reused duplicates included; `number` is the first one evaluated, whose
    `user_attrs` the row keeps.
    """

    number: int
    values: dict[str, float]
    mflops: float
    params: int
    arch_id: str
    arch: dict[str, Any]
    baseline: str | None
    user_attrs: dict[str, Any]
    accuracy_std: float | None = None
    n_evals: int = 1
    epochs: int | None = None
    std_source: str = UNKNOWN
    trials: tuple[int, ...] = ()
    latency: Prediction | None = None  # predicted by the study's latency table (or `nas front --latency`)

    @property
    def accuracy(self) -> float:
        return self.values[ACCURACY.name]

    def accuracy_text(self) -> str:
        """`mean ± std (n)`; `± ≥std` where the std is only the binomial lower bound, `± ?` unknown."""
        if self.accuracy_std is None:
            return f"{self.accuracy:.4f} ± ? ({self.n_evals})"
        bound = "≥" if self.std_source == BINOMIAL else ""
        return f"{self.accuracy:.4f} ± {bound}{self.accuracy_std:.4f} ({self.n_evals})"


def objectives_of(study: optuna.Study) -> list[str]:
    """The objective names the study was created with (recorded in its user attrs)."""
    return list(study.user_attrs.get(StudyAttr.OBJECTIVES) or DEFAULT_OBJECTIVES)


def row(trial: FrozenTrial, objectives: Sequence[str]) -> FrontRow:
    """One trial as it stands, a single evaluation."""
    attrs = trial.user_attrs
    return FrontRow(
        number=trial.number,
        values=dict(zip(objectives, trial.values, strict=True)),
        mflops=float(attrs.get(TrialAttr.MFLOPS, math.nan)),
        params=int(attrs.get(TrialAttr.PARAMS, 0)),
        arch_id=attrs.get(TrialAttr.ARCH_ID, "?"),
        arch=attrs.get(TrialAttr.ARCH, {}),
        baseline=attrs.get(TrialAttr.BASELINE),
        user_attrs=dict(attrs),
        trials=(trial.number,),
        latency=stored_latency(attrs),
    )


def stored_latency(attrs: Mapping[str, Any]) -> Prediction | None:
    """The latency a trial recorded (a study with the latency objective), else None."""
    if TrialAttr.LATENCY_MS not in attrs:
        return None
    return Prediction(attrs[TrialAttr.LATENCY_MS], attrs[TrialAttr.LATENCY_CI_MS], attrs[TrialAttr.LATENCY_RATIO],
                      attrs[TrialAttr.LATENCY_RATIO_CI])


def latency_ties(a: FrontRow, b: FrontRow) -> bool | None:
    """Whether two rows' latencies are within noise: |Δ| no more than the 95 % half-width of the
    difference, sqrt(ci_a² + ci_b²). None when a row has no latency."""
    if a.latency is None or b.latency is None:
        return None
    return abs(a.latency.ms - b.latency.ms) <= math.hypot(a.latency.ms_ci, b.latency.ms_ci)


def with_latency(front: Front, table: LatencyTable) -> Front:
    """The front with every row's latency predicted by `table` (`nas front --latency`)."""
    def add(rows: Sequence[FrontRow]) -> list[FrontRow]:
        return [dataclasses.replace(r, latency=table.predict(r.arch_id)) for r in rows]

    return dataclasses.replace(front, architectures=add(front.architectures), rows=add(front.rows),
                               latency_conditions=table.describe())


def evaluations(trial: FrozenTrial, accuracy: float) -> list[tuple[Any, float]]:
    """(seed or None, accuracy) per evaluation a trial reports: its per-seed list (`accuracies`, or
    a refined trial's `refined_accuracies`; seeds from `seeds` when it lists them), else its
    `accuracy` at its `seed`."""
    attrs = trial.user_attrs
    many = attrs.get(TrialAttr.REFINED_ACCURACIES) or attrs.get(TrialAttr.ACCURACIES)
    if many:
        seeds = attrs.get("seeds")
        seeds = seeds if isinstance(seeds, list) and len(seeds) == len(many) else [None] * len(many)
        return [(s, float(a)) for s, a in zip(seeds, many, strict=True)]
    return [(attrs.get(TrialAttr.SEED), accuracy)]


def pooled_rows(
    trials: Sequence[FrozenTrial], objectives: Sequence[str], study_attrs: Mapping[str, Any]
) -> list[FrontRow]:
    """One row per (arch_id, proxy_key, epochs, fresh) — a trial's `epochs` (a refined trial's
    `refined_epochs`), else the study's proxy epochs; a confirmed front's runs at fresh seeds
    apart from those it was chosen on — pooling its evaluations at distinct seeds:
    mean, sample std, count. A reused duplicate (`duplicate_of`) is no evaluation, nor is a
    second result at a seed already counted. A single evaluation's std is the study's noise
    (see `nas.noise`); where two or more architectures have 2 or more evaluations at one fidelity,
    theirs is the seed std pooled over them (`nas.noise.pooled_std`: a std of 2-3 seeds is too
    rough for the tie rule)."""
    noise = read_noise(study_attrs)
    proxy_epochs = (study_attrs.get("proxy") or {}).get("epochs")
    groups: dict[tuple[Any, ...], list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        attrs = t.user_attrs
        epochs = attrs.get(TrialAttr.REFINED_EPOCHS, attrs.get(TrialAttr.EPOCHS, proxy_epochs))
        key = (attrs.get(TrialAttr.ARCH_ID), attrs.get(TrialAttr.PROXY_KEY), epochs, bool(attrs.get(TrialAttr.FRESH)))
        groups.setdefault(key, []).append(t)
    index = list(objectives).index(ACCURACY.name)
    rows, runs = [], []
    for (_, proxy, epochs, _), group in groups.items():
        evaluated = [t for t in group if TrialAttr.DUPLICATE_OF not in t.user_attrs] or group[:1]
        accuracies = _distinct_seeds([e for t in evaluated for e in evaluations(t, t.values[index])])
        first = row(evaluated[0], objectives)
        mean = statistics.fmean(accuracies)
        if len(accuracies) > 1:
            std, source = statistics.stdev(accuracies), SEEDS
        else:
            applies = noise if noise_applies(noise, epochs, proxy) else None
            std, source = single_std(mean, applies, val_size_of(first.user_attrs, study_attrs))
        rows.append(dataclasses.replace(
            first, values={**first.values, ACCURACY.name: mean}, accuracy_std=std, n_evals=len(accuracies),
            epochs=epochs, std_source=source, trials=tuple(t.number for t in group),
            baseline=next((t.user_attrs[TrialAttr.BASELINE] for t in group
                           if t.user_attrs.get(TrialAttr.BASELINE)), None),
        ))
        runs.append(accuracies)
    return _pool_seed_stds(rows, runs)


def _pool_seed_stds(rows: list[FrontRow], runs: list[list[float]]) -> list[FrontRow]:
    """Rows with 2 or more evaluations take the seed std pooled over every such row at their
    fidelity (proxy key and epochs), when at least two architectures share it."""
    by_fidelity: dict[tuple[Any, Any], list[tuple[FrontRow, list[float]]]] = {}
    for r, accuracies in zip(rows, runs, strict=True):
        if len(accuracies) >= 2:
            by_fidelity.setdefault((r.user_attrs.get(TrialAttr.PROXY_KEY), r.epochs), []).append((r, accuracies))
    pooled = {}
    for members in by_fidelity.values():
        if len({r.arch_id for r, _ in members}) >= 2:
            std = pooled_std([accuracies for _, accuracies in members])
            pooled.update({id(r): std for r, _ in members})
    return [dataclasses.replace(r, accuracy_std=pooled[id(r)], std_source=POOLED) if id(r) in pooled else r
            for r in rows]


def _distinct_seeds(evaluations: Sequence[tuple[Any, float]]) -> list[float]:
    """The accuracies, each known seed counted once (a rerun at the same seed is no new evidence)."""
    seen: set[Any] = set()
    out = []
    for seed, accuracy in evaluations:
        if seed is not None and seed in seen:
            continue
        seen.add(seed)
        out.append(accuracy)
    return out


def pareto_front(rows: Sequence[FrontRow], objectives: Sequence[str],
                 directions: Sequence[StudyDirection]) -> list[FrontRow]:
    """The rows no other row dominates in the study's objectives (accuracy: the pooled mean), cheapest first."""
    signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions]
    points = [[s * r.values[name] for s, name in zip(signs, objectives, strict=True)] for r in rows]
    return by_cost([rows[i] for i in non_dominated(points)])


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` dominates `b` (every coordinate minimised): no worse anywhere, better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (every coordinate minimised)."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


@dataclasses.dataclass(frozen=True)
class Front:
    """A study's finished architectures and their Pareto front, as pooled rows: what the table,
    the JSON, the plot and `nas export` read, for proxy results and refined results alike."""

    name: str  # what the results are, for titles and messages, e.g. "study 'demo'"
    architectures: list[FrontRow]  # every finished architecture
    rows: list[FrontRow]  # the front, cheapest first
    accuracy_label: str = "proxy validation accuracy"
    finished: int = 0  # finished trials behind the rows
    noise: dict[str, Any] | None = None  # the study's measured noise (nas.noise), if any
    latency_conditions: str | None = None  # what the rows' latencies are: runtime, batch, threads, device, machine

    @functools.cached_property
    def knee(self) -> FrontRow | None:
        return knee(self.rows) if self.rows else None


def front_of(study: optuna.Study, name: str | None = None,
             accuracy_label: str = "proxy validation accuracy") -> Front:
    """A study's results: every finished architecture, pooled, and the Pareto front of those.

    As Optuna's `best_trials`, the front holds only feasible COMPLETE trials (every constraint
    value <= 0) that no other dominates — but an architecture evaluated at several seeds
    competes with its mean.
    """
    objectives = objectives_of(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = [t for t in complete if all(c <= 0 for c in t.constraints.values())]
    table = study.user_attrs.get(StudyAttr.LATENCY_TABLE)
    conditions = (LatencyTable.from_dict(table, f"study {study.study_name!r}'s latency table").describe()
                  if table else None)
    return Front(
        name or f"study {study.study_name!r}",
        pooled_rows(complete, objectives, study.user_attrs),
        pareto_front(pooled_rows(feasible, objectives, study.user_attrs), objectives, study.directions),
        accuracy_label, finished=len(complete), noise=read_noise(study.user_attrs), latency_conditions=conditions,
    )


def cost_objective(rows: Sequence[FrontRow]) -> str:
    """The cost the knee trades accuracy against: the first the rows have (FLOPs when none)."""
    for name in COSTS:
        if rows and name in rows[0].values:
            return name
    return FLOPS.name


def cost_of(r: FrontRow, objective: str) -> float:
    return r.values.get(objective, r.mflops)


def by_cost(rows: Sequence[FrontRow]) -> list[FrontRow]:
    """Cheapest first (by the first cost objective), the more accurate first at equal cost."""
    objective = cost_objective(rows)
    return sorted(rows, key=lambda r: (cost_of(r, objective), r.mflops, -r.accuracy))


def geometric_knee(rows: Sequence[FrontRow]) -> FrontRow:
    """The bend of a front, noise aside (see the module docstring)."""
    if not rows:
        raise ConfigError("the front is empty: no finished trial matches")
    if len(rows) < 3:
        return max(rows, key=lambda r: (r.accuracy, -r.mflops))
    objective = cost_objective(rows)
    accs = [r.accuracy for r in rows]
    costs = [cost_of(r, objective) for r in rows]
    a_lo, a_hi, c_lo, c_hi = min(accs), max(accs), min(costs), max(costs)
    if a_hi == a_lo or c_hi == c_lo:
        return max(rows, key=lambda r: (r.accuracy, -r.mflops))
    points = [((c - c_lo) / (c_hi - c_lo), (a - a_lo) / (a_hi - a_lo)) for c, a in zip(costs, accs, strict=True)]
    cheapest = min(range(len(rows)), key=lambda i: (points[i][0], -points[i][1]))
    best = max(range(len(rows)), key=lambda i: (points[i][1], -points[i][0]))
    (x1, y1), (x2, y2) = points[cheapest], points[best]
    length = math.hypot(x2 - x1, y2 - y1)

    def toward_ideal(i: int) -> float:
        x, y = points[i]
        # positive on the side of (0, 1): more accuracy for less cost than the chord promises
        return ((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) / length

    return rows[max(range(len(rows)), key=lambda i: (toward_ideal(i), points[i][1]))]


def knee(rows: Sequence[FrontRow]) -> FrontRow:
    """The geometric knee, moved down the front to the cheapest point it ties with, transitively;
    then, where latency is the cost, up to the most accurate dearer point whose latency it ties
    with (the same cost within noise is no trade-off) and whose accuracy is beyond noise better."""
    chosen = geometric_knee(rows)
    ordered = by_cost(rows)
    while True:
        cheaper = ordered[: next(i for i, r in enumerate(ordered) if r is chosen)]
        tied = [r for r in cheaper if ties(r, chosen)]
        if not tied:
            break
        chosen = tied[0]
    if cost_objective(rows) == LATENCY.name:
        dearer = ordered[next(i for i, r in enumerate(ordered) if r is chosen) + 1:]
        same_cost = [r for r in dearer if latency_ties(r, chosen) and ties(r, chosen) is False
                     and r.accuracy > chosen.accuracy]
        if same_cost:
            chosen = max(same_cost, key=lambda r: r.accuracy)
    return chosen


def cheaper_tie(rows: Sequence[FrontRow], i: int) -> bool | None:
    """Whether front row `i` (cheapest first) ties with its cheaper neighbour; False for the
    cheapest, None when a std is unknown."""
    return False if i == 0 else ties(rows[i], rows[i - 1])


def format_table(front: Front) -> str:
    """A fixed-width table of the front — trial, accuracy `mean ± std (n)`, MFLOPs, params, (other
    objectives), baseline or knee mark, tie with the cheaper neighbour, arch_id — and footer
    lines saying what ± and a tie mean."""
    rows, knee_row = front.rows, front.knee
    latency = any(r.latency is not None for r in rows)
    shown = (*ALWAYS_SHOWN, LATENCY.name) if latency else ALWAYS_SHOWN
    extra = [k for k in (rows[0].values if rows else {}) if k not in shown]
    latency_header = ["latency ms ± 95%", "x none ± 95%", "latency vs cheaper"] if latency else []
    header = ["trial", "accuracy ± std (n)", "MFLOPs", "params", *extra, *latency_header, "baseline/knee",
              "vs cheaper", "arch_id"]
    lines = []
    for i, r in enumerate(rows):
        mark = "knee" if knee_row is not None and r.number == knee_row.number else ""
        tie = cheaper_tie(rows, i)
        versus = "" if i == 0 else "?" if tie is None else f"tie #{rows[i - 1].number}" if tie else "beyond noise"
        cells = [f"#{r.number}", r.accuracy_text(), f"{r.mflops:.2f}", f"{r.params:,}",
                 *(f"{r.values[k]:.3f}" for k in extra), *(_latency_cells(rows, i) if latency else []),
                 " ".join(filter(None, (r.baseline, mark))), versus, r.arch_id]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
    return "\n".join(out + footer(front))


def _latency_cells(rows: Sequence[FrontRow], i: int) -> list[str]:
    p = rows[i].latency
    if p is None:
        return ["?", "?", ""]
    tie = latency_ties(rows[i], rows[i - 1]) if i else None
    versus = "" if i == 0 or tie is None else "same (within noise)" if tie else "higher beyond noise"
    return [f"{p.ms:.3f} ± {p.ms_ci:.3f}", f"{p.ratio:.3f} ± {p.ratio_ci:.3f}", versus]


def footer(front: Front) -> list[str]:
    """What the table's ± and ties mean for this front, and a knee moved by a tie."""
    sources = {r.std_source for r in front.rows}
    lines = ["±: the std of one evaluation; (n): the evaluations (seeds) behind the mean"]
    if any(r.latency is not None for r in front.rows):
        lines.append(f"latency: predicted by the latency table ({front.latency_conditions or 'conditions unknown'}); "
                     "± 95%: the table's entries in quadrature or its 95th-percentile error on random architectures, "
                     "the larger; same (within noise): the two latencies cannot be told apart, so that pair is no "
                     "cost trade-off")
    if SEEDS in sources:
        lines.append("  n >= 2: the sample std of that architecture's own evaluations")
    if POOLED in sources:
        pooled = [r for r in front.architectures if r.std_source == POOLED]
        lines.append(f"  n >= 2: the seed std pooled over the {len({r.arch_id for r in pooled})} architectures "
                     "evaluated 2 or more times at that fidelity (2-3 seeds make too rough a std for ties)")
    if NOISE in sources and front.noise is not None:
        noise = front.noise
        lines.append(f"  n = 1: the study's measured noise, std {noise['accuracy_std']:.4f} over {noise['n']} seeds"
                     + (f" of {noise['arch_id']}" if noise.get("arch_id") else ""))
    if BINOMIAL in sources:
        lines.append("  ± ≥: no noise measured in this study; the validation split's binomial std alone, a lower bound")
    if UNKNOWN in sources:
        lines.append("  ± ?: no noise measured and validation size unknown: ties cannot be told")
    lines.append(f"vs cheaper: tie = within noise of the next cheaper front row, |Δ| <= {TIE_FACTOR:g}·sqrt(σa²/na + "
                 "σb²/nb) (~95%): its extra cost buys nothing measurable")
    if front.rows and front.knee is not None:
        bend = geometric_knee(front.rows)
        if bend is not front.knee:
            lines.append(f"knee: the bend is #{bend.number}, but it ties with the cheaper #{front.knee.number}, "
                         f"so the knee is #{front.knee.number}")
    return lines


PLOT_SUFFIXES = (".png", ".html")
NEAR_CHANCE = 0.1  # a best accuracy less than this fraction of the way from chance to 1 is "near chance"


def check_plot_path(path: Path) -> None:
    """Refuse a plot file that cannot be written, before anything is printed or computed."""
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {path}: unsupported file type {suffix or '(none)'!r}; "
                          f"allowed: {', '.join(PLOT_SUFFIXES)}")
    if not path.parent.is_dir():
        raise ConfigError(f"--plot {path}: the folder {path.parent} does not exist; create it or plot elsewhere")


def to_json(front: Front) -> list[dict[str, Any]]:
    """The front as JSON rows: accuracy, MFLOPs and the parameter count (a count, not millions) of
    every row, the study's other objectives under their keys (`nas.objectives`), the accuracy's
    noise (`accuracy_std` of one evaluation, `n_evals`, `std_source`, `epochs`), the pooled
    `trials`, the knee flag, and `tie`: whether the row ties with its cheaper neighbour
    (`tie_with`; null when it cannot be told). Refined rows keep `seeds`."""
    knee_row = front.knee
    out = []
    for i, r in enumerate(front.rows):
        item: dict[str, Any] = {"trial": r.number, "accuracy": r.accuracy, "accuracy_std": r.accuracy_std,
                                "n_evals": r.n_evals, "std_source": r.std_source, "epochs": r.epochs}
        if TrialAttr.REFINED_SEEDS in r.user_attrs:
            item["seeds"] = r.user_attrs[TrialAttr.REFINED_SEEDS]
        item.update({FLOPS.key: r.mflops, "params": r.params})
        item.update({OBJECTIVES[name].key: value for name, value in r.values.items() if name not in ALWAYS_SHOWN})
        if r.latency is not None:
            item.update(latency_ms=r.latency.ms, latency_ci_ms=r.latency.ms_ci, latency_ratio=r.latency.ratio,
                        latency_ratio_ci=r.latency.ratio_ci,
                        latency_tie=latency_ties(r, front.rows[i - 1]) if i else False)
        tie = cheaper_tie(front.rows, i)
        item.update(arch_id=r.arch_id, baseline=r.baseline, knee=knee_row is not None and r.number == knee_row.number,
                    tie=tie, tie_with=front.rows[i - 1].number if tie else None, trials=list(r.trials))
        out.append(item)
    return out


def near_chance(rows: Sequence[FrontRow]) -> str | None:
    """A warning when the best accuracy is close to guessing (the proxy learned almost nothing), else None."""
    classes = {r.arch.get("num_classes") for r in rows}
    if not rows or len(classes) != 1 or not isinstance(next(iter(classes)), int):
        return None
    num_classes = next(iter(classes))
    chance = 1 / num_classes
    best = max(r.accuracy for r in rows)
    if best >= chance + NEAR_CHANCE * (1 - chance):
        return None
    return (f"the best accuracy {best:.4f} is near chance ({chance:.4f} for {num_classes} classes): the proxy "
            "learned almost nothing, so this front ranks noise; train longer (proxy.epochs), on more data "
            "(dataset.subset), or check the dataset and backbone (e.g. small_input for 28-32 px)")


def plot_front(front: Front, path: Path) -> None:
    """PNG (matplotlib) or HTML (plotly) of every architecture, the front, the baselines and the
    knee, each with an error bar of one evaluation's std (where known)."""
    check_plot_path(path)
    if path.suffix.lower() == ".html":
        _plot_html(front, path)
    else:
        _plot_png(front, path)


def _std(rows: Sequence[FrontRow]) -> list[float] | None:
    stds = [r.accuracy_std for r in rows]
    return None if all(s is None for s in stds) else [s or 0.0 for s in stds]


def _axis(front: Front) -> tuple[Any, Any, str]:
    """The plot's cost axis: predicted latency (with its 95 % interval) where the rows have one,
    else MFLOPs. Returns (x of a row, x error of a row, label)."""
    if front.architectures and all(r.latency is not None for r in front.architectures):
        conditions = (front.latency_conditions or "").split(" on ")[0]
        return (lambda r: r.latency.ms), (lambda r: r.latency.ms_ci), \
            f"predicted latency, ms ± 95% ({conditions}; table measured once)"
    return (lambda r: r.mflops), (lambda r: 0.0), "MFLOPs (fvcore: 1 multiply-add = 1 flop)"


def _title(front: Front) -> str:
    return f"{front.name}: {front.finished} finished trials, {len(front.architectures)} architectures"


def _plot_png(front: Front, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials, rows = front.architectures, front.rows
    x, xerr, label = _axis(front)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.errorbar([x(r) for r in trials], [r.accuracy for r in trials], yerr=_std(trials),
                xerr=[xerr(r) for r in trials], fmt="o", ms=4, c="0.7", ecolor="0.8", label="architectures")
    ax.errorbar([x(r) for r in rows], [r.accuracy for r in rows], yerr=_std(rows), xerr=[xerr(r) for r in rows],
                fmt="-o", ms=5, c="tab:blue", capsize=2, label="Pareto front")
    for r in trials:
        if r.baseline:
            ax.scatter([x(r)], [r.accuracy], marker="s", s=40, facecolors="none", edgecolors="tab:red")
            ax.annotate(r.baseline, (x(r), r.accuracy), textcoords="offset points", xytext=(4, 4),
                        fontsize=8, color="tab:red")
    k = front.knee
    if k is not None:
        ax.scatter([x(k)], [k.accuracy], marker="*", s=160, c="tab:orange", zorder=5, label=f"knee #{k.number}")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:red", label="uniform baselines")
    ax.set_xlabel(label)
    ax.set_ylabel(f"{front.accuracy_label} (± std of one evaluation)")
    ax.set_title(_title(front))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_html(front: Front, path: Path) -> None:
    import plotly.graph_objects as go

    x, xerr, label = _axis(front)
    unit = "MFLOPs" if label.startswith("MFLOPs") else "ms"

    def trace(rows: Sequence[FrontRow], name: str, **style: Any) -> Any:
        std = _std(rows)
        return go.Scatter(
            x=[x(r) for r in rows], y=[r.accuracy for r in rows], name=name,
            error_y=None if std is None else {"type": "data", "array": std},
            error_x={"type": "data", "array": [xerr(r) for r in rows]} if unit == "ms" else None,
            text=[f"#{r.number} {r.arch_id}" + (f" (baseline {r.baseline})" if r.baseline else "") for r in rows],
            customdata=[r.accuracy_text() for r in rows],
            hovertemplate=f"%{{text}}<br>accuracy %{{customdata}}<br>%{{x:.3f}} {unit}<extra></extra>", **style,
        )

    fig = go.Figure([
        trace(front.architectures, "architectures", mode="markers", marker={"color": "lightgray"}),
        trace(front.rows, "Pareto front", mode="lines+markers", marker={"color": "royalblue"}),
        trace([r for r in front.architectures if r.baseline], "uniform baselines", mode="markers",
              marker={"symbol": "square-open", "color": "crimson", "size": 10}),
    ])
    k = front.knee
    if k is not None:
        fig.add_trace(trace([k], f"knee #{k.number}", mode="markers",
                            marker={"symbol": "star", "color": "orange", "size": 16}))
    fig.update_layout(title=_title(front), xaxis_title=label,
                      yaxis_title=f"{front.accuracy_label} (± std of one evaluation)")
    fig.write_html(str(path), include_plotlyjs=True)
