"""Converting loaded splits: resizing, changing the channel count, per-channel statistics."""

from __future__ import annotations

import math

import torch

from nas.data.dataset import Split


def resize(split: Split, size: tuple[int, int]) -> Split:
    """Resize uint8 images in chunks (antialiased bilinear, torchvision's uint8 fast path)."""
    from torchvision.transforms.v2 import functional as TF

    if tuple(split.images.shape[2:]) == size:
        return split
    chunks = [TF.resize(chunk, list(size), antialias=True) for chunk in split.images.split(4096)]
    return Split(torch.cat(chunks).contiguous(), split.labels)



def to_chans(split: Split, chans: int) -> Split:
    from torchvision.transforms.v2 import functional as TF

    have = split.images.shape[1]
    if have == chans:
        return split
    if chans == 3:
        return Split(split.images.expand(-1, 3, -1, -1).contiguous(), split.labels)
    return Split(TF.rgb_to_grayscale(split.images, num_output_channels=1).contiguous(), split.labels)



def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std on the 0–1 scale from a 256-bin histogram per channel:
    no float copy of the whole split."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)  # uint8: no int64 copy
        total = hist.sum()
        mean = float((hist * values).sum() / total)
        var = float((hist * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(max(math.sqrt(var), 1e-3))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)
