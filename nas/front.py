"""The Pareto front of a study: rows, the knee, a table, and a plot.

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

from nas.errors import ConfigError

COST_OBJECTIVES = ("flops", "params", "latency")


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
        return self.values["accuracy"]


def objectives_of(study: optuna.Study) -> list[str]:
    """The objective names the study was created with (recorded in its user attrs)."""
    return list(study.user_attrs.get("objectives") or ["accuracy", "flops"])


def row(trial: FrozenTrial, objectives: Sequence[str]) -> FrontRow:
    attrs = trial.user_attrs
    return FrontRow(
        number=trial.number,
        values=dict(zip(objectives, trial.values, strict=True)),
        mflops=float(attrs.get("mflops", math.nan)),
        params=int(attrs.get("params", 0)),
        arch_id=attrs.get("arch_id", "?"),
        arch=attrs.get("arch", {}),
        baseline=attrs.get("baseline"),
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


def cost_objective(rows: Sequence[FrontRow]) -> str:
    for name in COST_OBJECTIVES:
        if rows and name in rows[0].values:
            return name
    return "flops"


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
    extra = [k for k in (rows[0].values if rows else {}) if k not in ("accuracy", "flops", "params")]
    header = ["trial", "accuracy", "MFLOPs", "params", *extra, "baseline/knee", "arch_id"]
    lines = []
    for r in rows:
        mark = "knee" if knee_row is not None and r.number == knee_row.number else ""
        accuracy = f"{r.accuracy:.4f}"
        if "refined_accuracy_std" in r.user_attrs:
            accuracy += f" ± {r.user_attrs['refined_accuracy_std']:.4f}"
        cells = [f"#{r.number}", accuracy, f"{r.mflops:.2f}", f"{r.params:,}",
                 *(f"{r.values[k]:.3f}" for k in extra), " ".join(filter(None, (r.baseline, mark))), r.arch_id]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
    return "\n".join(out)


def plot_front(study: optuna.Study, path: Path) -> None:
    """PNG (matplotlib) or HTML (Optuna's plotly figure) of all trials, the front and baselines."""
    suffix = path.suffix.lower()
    if suffix == ".html":
        fig = optuna.visualization.plot_pareto_front(study, include_dominated_trials=True)
        fig.write_html(str(path))
        return
    if suffix != ".png":
        raise ConfigError(f"--plot {path}: unsupported file type {suffix!r}; allowed: .png, .html")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = complete_rows(study)
    front = front_rows(study)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([r.mflops for r in rows], [r.accuracy for r in rows], s=18, c="0.7", label="trials")
    ax.plot([r.mflops for r in front], [r.accuracy for r in front], "-o", c="tab:blue", ms=5, label="Pareto front")
    for r in rows:
        if r.baseline:
            ax.scatter([r.mflops], [r.accuracy], marker="s", s=40, facecolors="none", edgecolors="tab:red")
            ax.annotate(r.baseline, (r.mflops, r.accuracy), textcoords="offset points", xytext=(4, 4),
                        fontsize=8, color="tab:red")
    if front:
        k = knee(front)
        ax.scatter([k.mflops], [k.accuracy], marker="*", s=160, c="tab:orange", zorder=5, label=f"knee #{k.number}")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:red", label="uniform baselines")
    ax.set_xlabel("MFLOPs (fvcore: 1 multiply-add = 1 flop)")
    ax.set_ylabel("proxy validation accuracy")
    ax.set_title(f"study {study.study_name}: {len(rows)} finished trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
