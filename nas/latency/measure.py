"""Architectures timed interleaved with the `none` reference, until the 95 % interval of each
one's ratio to it is within a target (default ±2 %) or a time cap.

A round times the reference, then every candidate still running in random order, each over
enough calls to last about `round_seconds`; a candidate's ratio in a round is its time over the
reference's in the same round, so drift of the machine (clock, other load) cancels in the ratio.
The ratio is the median round's, its interval the distribution-free one of a median (order
statistics) on the log ratios; milliseconds likewise. Not the mean: on a shared 2-core VM, idle,
a round's log ratio had a standard deviation 2-3x its robust (MAD) one, because a few rounds meet
interference, and a mean's t interval then needs more rounds or never reaches ±2 % in the time
cap (benchmarks/latency_rounds.py). The timer is `torch.utils.benchmark.Timer` (it compiles the
statement once and handles threads).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from nas.latency.runtime import Runner

TARGET = 0.02  # the 95 % interval of a ratio, relative half-width
MIN_ROUNDS = 6
# Student's t, two-sided 95 %, by degrees of freedom (no scipy at run time); the normal's 1.96 beyond
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 12: 2.18,
        15: 2.13, 20: 2.09, 25: 2.06, 30: 2.04, 40: 2.02, 60: 2.00, 120: 1.98}


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t at `df` degrees of freedom (conservative between table rows)."""
    if df < 1:
        return math.inf
    known = [k for k in _T95 if k <= df]
    return _T95[max(known)] if df <= 120 else 1.96


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (t interval) of `values`."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.inf
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def median_ci(values: list[float]) -> tuple[float, float]:
    """Median and 95 % half-width of `values`: the distribution-free interval between the order
    statistics that a Binomial(n, 1/2) puts at most 2.5 % beyond on each side, as ± its wider
    side; inf below 6 values (no such interval). Written here because `statistics` has no
    interval for a median and scipy is not a run-time dependency."""
    xs = sorted(values)
    n = len(xs)
    median = statistics.median(xs) if xs else math.nan
    k, tail = 0, 0.0  # k: order statistics left out on each side
    while k < n:
        p = math.comb(n, k) / 2 ** n
        if tail + p > 0.025:
            break
        tail, k = tail + p, k + 1
    if k == 0:
        return median, math.inf
    return median, max(median - xs[k - 1], xs[n - k] - median)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One architecture against the reference: milliseconds per forward and the ratio to the
    reference, each with its 95 % half-width."""

    ms: float
    ms_ci: float
    ratio: float
    ratio_ci: float
    reference_ms: float
    reference_ms_ci: float
    rounds: int
    converged: bool  # the ratio's interval reached the target before the time cap

    def to_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


def _timer(run: Callable[[], object], threads: int) -> Any:
    """A `torch.utils.benchmark.Timer` of `run()`; imported here, once its import's "No CUDA
    runtime is found" log line (torch.utils.cpp_extension) is quieted."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    return Timer(stmt="run()", globals={"run": run}, num_threads=threads)


def _round_calls(timer: Any, round_seconds: float) -> int:
    """Warm the timed call up (first calls allocate), then how many calls last `round_seconds`."""
    timer.timeit(3)
    return max(1, round(round_seconds / max(timer.timeit(5).mean, 1e-7)))


def measure_ratios(
    reference: Runner,
    candidates: Mapping[str, Runner],
    target: float = TARGET,
    max_seconds: float = 60.0,
    round_seconds: float = 0.02,
    min_rounds: int = MIN_ROUNDS,
    seed: int = 0,
    log_ratios: dict[str, list[float]] | None = None,
) -> dict[str, Measurement]:
    """Each candidate's latency and ratio to `reference`, timed interleaved (see the module
    docstring). A candidate whose interval is still wider than `target` when `max_seconds` have
    passed comes back with `converged` False. The reference alone (an empty `candidates`) is
    timed for `min_rounds` rounds. `log_ratios`, when given, receives every round's log ratio per
    candidate (benchmarks/latency_rounds.py compares estimators on them)."""
    threads = reference.conditions.threads
    timers = {"": _timer(reference.run, threads), **{k: _timer(r.run, threads) for k, r in candidates.items()}}
    calls = {key: _round_calls(timer, round_seconds) for key, timer in timers.items()}
    times: dict[str, list[float]] = {key: [] for key in timers}
    logs: dict[str, list[float]] = {} if log_ratios is None else log_ratios
    logs.update({key: [] for key in candidates})
    active = list(candidates)
    rng = random.Random(seed)
    start = time.perf_counter()
    rounds = 0
    while True:
        reference_time = timers[""].timeit(calls[""]).mean
        times[""].append(reference_time)
        rng.shuffle(active)
        for key in active:
            own = timers[key].timeit(calls[key]).mean
            times[key].append(own)
            logs[key].append(math.log(own / reference_time))
        rounds += 1
        if rounds >= min_rounds:
            active = [k for k in active if math.expm1(median_ci(logs[k])[1]) > target]
            if not active or time.perf_counter() - start > max_seconds:
                break
    reference_ms, reference_ci = (1e3 * v for v in median_ci(times[""]))
    out = {}
    for key in candidates:
        log_median, log_ci = median_ci(logs[key])
        ms, ms_ci = (1e3 * v for v in median_ci(times[key]))
        ratio = math.exp(log_median)
        out[key] = Measurement(ms=ms, ms_ci=ms_ci, ratio=ratio, ratio_ci=ratio * math.expm1(log_ci),
                               reference_ms=reference_ms, reference_ms_ci=reference_ci, rounds=len(logs[key]),
                               converged=math.expm1(log_ci) <= target)
    return out


def measure_reference(reference: Runner, rounds: int = 30, round_seconds: float = 0.02) -> tuple[float, float]:
    """The reference's milliseconds per forward and 95 % half-width over `rounds` rounds."""
    timer = _timer(reference.run, reference.conditions.threads)
    calls = _round_calls(timer, round_seconds)
    ms, ci = median_ci([timer.timeit(calls).mean for _ in range(rounds)])
    return 1e3 * ms, 1e3 * ci
