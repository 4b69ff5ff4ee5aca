"""The Pareto front of a study: rows, the knee, a table, JSON, a near-chance warning, and a plot.

The front is Optuna's `study.best_trials` (feasible COMPLETE trials that no other dominates),
with repeated architectures (a reused duplicate result) shown once, at their first trial.

The knee: normalise accuracy and the first cost objective to [0, 1] over the front, draw the
line through the front's two extremes (the cheapest point and the most accurate one), and take
the point farthest from that line on the side of the ideal corner (accuracy 1, cost 0). That is
where one more unit of cost stops buying much accuracy. With fewer than three points on the
front there is no bend, and the knee is the most accurate point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.attrs import StudyAttr, TrialAttr
from nas.errors import ConfigError
from nas.objectives import ACCURACY, COSTS, DEFAULT_OBJECTIVES, FLOPS, OBJECTIVES, PARAMS

ALWAYS_SHOWN = (ACCURACY.name, FLOPS.name, PARAMS.name)  # every row has these; other objectives are extra columns


@dataclasses.dataclass(frozen=True)
class FrontRow:
    """One trial as the front table shows it; `values` maps objective name to value."""

    number: int
    values: dict[str, float]
    mflops: float
    params: int
    arch_id: str
    arch: dict[str, Any]
    baseline: str | None
    user_attrs: dict[str, Any]

    @property
    def accuracy(self) -> float:
        return self.values[ACCURACY.name]

    @property
    def accuracy_std(self) -> float | None:
        """The std over seeds of a refined result (`nas refine`); None for a single proxy run."""
        std = self.user_attrs.get(TrialAttr.REFINED_ACCURACY_STD)
        return None if std is None else float(std)


def objectives_of(study: optuna.Study) -> list[str]:
    """The objective names the study was created with (recorded in its user attrs)."""
    return list(study.user_attrs.get(StudyAttr.OBJECTIVES) or DEFAULT_OBJECTIVES)


def row(trial: FrozenTrial, objectives: Sequence[str]) -> FrontRow:
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
    )


def complete_rows(study: optuna.Study) -> list[FrontRow]:
    objectives = objectives_of(study)
    return [row(t, objectives) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def front_rows(study: optuna.Study) -> list[FrontRow]:
    """The Pareto front, one row per architecture, cheapest first."""
    objectives = objectives_of(study)
    seen: dict[str, FrontRow] = {}
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        r = row(trial, objectives)
        seen.setdefault(r.arch_id, r)
    return sorted(seen.values(), key=lambda r: (r.mflops, -r.accuracy))


@dataclasses.dataclass(frozen=True)
class Front:
    """A study's finished trials and their Pareto front, as rows: what the table, the JSON, the
    plot and `nas export` read, for proxy results and refined results alike."""

    name: str  # what the results are, for titles and messages, e.g. "study 'demo'"
    trials: list[FrontRow]  # every finished trial
    rows: list[FrontRow]  # the front, cheapest first
    accuracy_label: str = "proxy validation accuracy"

    @property
    def knee(self) -> FrontRow | None:
        return knee(self.rows) if self.rows else None


def front_of(study: optuna.Study) -> Front:
    """The proxy results of a search study."""
    return Front(f"study {study.study_name!r}", complete_rows(study), front_rows(study))


def cost_objective(rows: Sequence[FrontRow]) -> str:
    """The cost the knee trades accuracy against: the first the rows have (FLOPs when none)."""
    for name in COSTS:
        if rows and name in rows[0].values:
            return name
    return FLOPS.name


def cost_of(r: FrontRow, objective: str) -> float:
    return r.values.get(objective, r.mflops)


def knee(rows: Sequence[FrontRow]) -> FrontRow:
    """The knee of a front (see the module docstring)."""
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


def format_table(rows: Sequence[FrontRow], knee_row: FrontRow | None = None) -> str:
    """A fixed-width table: trial, accuracy, MFLOPs, params, (other objectives), baseline or knee mark, arch_id."""
    extra = [k for k in (rows[0].values if rows else {}) if k not in ALWAYS_SHOWN]
    header = ["trial", "accuracy", "MFLOPs", "params", *extra, "baseline/knee", "arch_id"]
    lines = []
    for r in rows:
        mark = "knee" if knee_row is not None and r.number == knee_row.number else ""
        accuracy = f"{r.accuracy:.4f}"
        if r.accuracy_std is not None:
            accuracy += f" ± {r.accuracy_std:.4f}"
        cells = [f"#{r.number}", accuracy, f"{r.mflops:.2f}", f"{r.params:,}",
                 *(f"{r.values[k]:.3f}" for k in extra), " ".join(filter(None, (r.baseline, mark))), r.arch_id]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
    return "\n".join(out)


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
    every row, the study's other objectives under their keys (`nas.objectives`), the knee flag."""
    knee_row = front.knee
    out = []
    for r in front.rows:
        item: dict[str, Any] = {"trial": r.number, ACCURACY.key: r.accuracy}
        if r.accuracy_std is not None:
            item["accuracy_std"] = r.accuracy_std
            item["seeds"] = r.user_attrs.get(TrialAttr.REFINED_SEEDS)
        item.update({FLOPS.key: r.mflops, "params": r.params})
        item.update({OBJECTIVES[name].key: value for name, value in r.values.items() if name not in ALWAYS_SHOWN})
        item.update(arch_id=r.arch_id, baseline=r.baseline, knee=knee_row is not None and r.number == knee_row.number)
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
    """PNG (matplotlib) or HTML (plotly) of every trial, the front, the baselines and the knee;
    refined results get error bars of one std over seeds."""
    check_plot_path(path)
    if path.suffix.lower() == ".html":
        _plot_html(front, path)
    else:
        _plot_png(front, path)


def _std(rows: Sequence[FrontRow]) -> list[float] | None:
    stds = [r.accuracy_std for r in rows]
    return None if all(s is None for s in stds) else [s or 0.0 for s in stds]


def _plot_png(front: Front, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials, rows = front.trials, front.rows
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.errorbar([r.mflops for r in trials], [r.accuracy for r in trials], yerr=_std(trials), fmt="o", ms=4,
                c="0.7", ecolor="0.8", label="trials")
    ax.errorbar([r.mflops for r in rows], [r.accuracy for r in rows], yerr=_std(rows), fmt="-o", ms=5,
                c="tab:blue", capsize=2, label="Pareto front")
    for r in trials:
        if r.baseline:
            ax.scatter([r.mflops], [r.accuracy], marker="s", s=40, facecolors="none", edgecolors="tab:red")
            ax.annotate(r.baseline, (r.mflops, r.accuracy), textcoords="offset points", xytext=(4, 4),
                        fontsize=8, color="tab:red")
    k = front.knee
    if k is not None:
        ax.scatter([k.mflops], [k.accuracy], marker="*", s=160, c="tab:orange", zorder=5, label=f"knee #{k.number}")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:red", label="uniform baselines")
    ax.set_xlabel("MFLOPs (fvcore: 1 multiply-add = 1 flop)")
    ax.set_ylabel(front.accuracy_label)
    ax.set_title(f"{front.name}: {len(trials)} finished trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_html(front: Front, path: Path) -> None:
    import plotly.graph_objects as go

    def trace(rows: Sequence[FrontRow], name: str, **style: Any) -> Any:
        std = _std(rows)
        return go.Scatter(
            x=[r.mflops for r in rows], y=[r.accuracy for r in rows], name=name,
            error_y=None if std is None else {"type": "data", "array": std},
            text=[f"#{r.number} {r.arch_id}" + (f" (baseline {r.baseline})" if r.baseline else "") for r in rows],
            hovertemplate="%{text}<br>accuracy %{y:.4f}<br>%{x:.3f} MFLOPs<extra></extra>", **style,
        )

    fig = go.Figure([
        trace(front.trials, "trials", mode="markers", marker={"color": "lightgray"}),
        trace(front.rows, "Pareto front", mode="lines+markers", marker={"color": "royalblue"}),
        trace([r for r in front.trials if r.baseline], "uniform baselines", mode="markers",
              marker={"symbol": "square-open", "color": "crimson", "size": 10}),
    ])
    k = front.knee
    if k is not None:
        fig.add_trace(trace([k], f"knee #{k.number}", mode="markers",
                            marker={"symbol": "star", "color": "orange", "size": 16}))
    fig.update_layout(title=f"{front.name}: {len(front.trials)} finished trials",
                      xaxis_title="MFLOPs (fvcore: 1 multiply-add = 1 flop)", yaxis_title=front.accuracy_label)
    fig.write_html(str(path), include_plotlyjs=True)
