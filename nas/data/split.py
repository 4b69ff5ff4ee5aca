"""Sampling and splitting a pool: its first N classes, a class-balanced subset, and the validation
split carved from the training pool with the seed (stratified)."""

from __future__ import annotations

import math

import torch

from nas.data.dataset import Pool, Split
from nas.errors import ConfigError


def first_classes(pool: Pool, n: int, name: str) -> Pool:
    """The pool restricted to its first `n` classes (labels keep their values: 0..n-1)."""
    if n > pool.num_classes:
        raise ConfigError(
            f"classes = {n} is more than the {pool.num_classes} classes of {name}; allowed: 2..{pool.num_classes}"
        )

    def keep(split: Split) -> Split:
        return take(split, (split.labels < n).nonzero().flatten())

    return Pool(keep(pool.train), keep(pool.test) if pool.test is not None else None,
                 pool.classes[:n] if pool.classes is not None else None, n, pool.flip)



def balanced_sample(labels: torch.Tensor, n: int, num_classes: int, g: torch.Generator) -> torch.Tensor:
    """Indices of `n` images, as equal per class as the class sizes allow (a class too small gives
    all it has and the others share its remainder), random within each class."""
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    quota = _water_fill(counts, n, g)
    order = torch.randperm(len(labels), generator=g)
    ordered = labels[order]
    picked = [order[ordered == k][:q] for k, q in enumerate(quota) if q]
    return torch.cat(picked).sort().values



def _water_fill(counts: list[int], n: int, g: torch.Generator) -> list[int]:
    """Per-class quotas summing to `n` (<= sum(counts)): the highest common level every class
    can fill (capped by its size), plus one each for a random few of the classes above it."""
    lo, hi = 0, max(counts)
    while lo < hi:  # the largest level whose capped total does not exceed n
        mid = (lo + hi + 1) // 2
        if sum(min(c, mid) for c in counts) <= n:
            lo = mid
        else:
            hi = mid - 1
    quota = [min(c, lo) for c in counts]
    room = [k for k, c in enumerate(counts) if c > lo]
    for j in torch.randperm(len(room), generator=g)[: n - sum(quota)].tolist():
        quota[room[j]] += 1
    return quota



def stratified_split(
    labels: torch.Tensor, fraction: float, num_classes: int, g: torch.Generator, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(val, train) indices: `round(N * fraction)` validation images spread over the classes in
    proportion to their size (largest remainders first), random within each class."""
    n = len(labels)
    n_val = round(n * fraction)
    if n_val < 1 or n_val >= n:
        raise ConfigError(
            f"val_fraction = {fraction} leaves {n_val} validation and {n - n_val} training images of "
            f"the {n} in {name}; choose a fraction that leaves at least one of each"
        )
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    exact = [c * n_val / n for c in counts]
    quota = [math.floor(e) for e in exact]
    by_remainder = sorted(range(num_classes), key=lambda k: quota[k] - exact[k])
    for k in by_remainder[: n_val - sum(quota)]:
        quota[k] += 1
    order = torch.randperm(n, generator=g)
    ordered = labels[order]  # gathered once, not once per class (200 classes for Tiny-ImageNet)
    val = torch.cat([order[ordered == k][:q] for k, q in enumerate(quota)])
    mask = torch.ones(n, dtype=torch.bool)
    mask[val] = False
    return val.sort().values, mask.nonzero().flatten()



def take(split: Split, idx: torch.Tensor) -> Split:
    return Split(split.images[idx].contiguous(), split.labels[idx].contiguous())
