"""A small generated dataset for tests and quick benchmarks: no files, generated in milliseconds."""

from __future__ import annotations

import torch

from nas.data.dataset import Pool, Request, Split
from nas.errors import ConfigError

# The generated set: enough images for a few hundred training steps to mean something, small
# enough to generate in milliseconds.
SYNTHETIC_TRAIN = 1000
SYNTHETIC_TEST = 200
SYNTHETIC_CLASSES = 10
SYNTHETIC_SHAPE = (3, 32, 32)


def read(request: Request) -> Pool:
    """Class prototypes (smooth random fields, mirror-symmetric so flips keep the label) shown
    with random contrast, a small shift and pixel noise: learnable by a small CNN in a few
    hundred steps, not by a single pixel."""
    if request.path is not None:
        raise ConfigError(f"path = '{request.path}' is not used by dataset synthetic; leave it unset")
    g = torch.Generator().manual_seed(request.seed)
    c, h, w = SYNTHETIC_SHAPE
    coarse = torch.rand(SYNTHETIC_CLASSES, c, 4, 4, generator=g)
    coarse = (coarse + coarse.flip(-1)) / 2
    protos = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    protos = (protos - protos.mean(dim=(1, 2, 3), keepdim=True)) * 3.0  # contrast around mid-grey

    def draw(n: int) -> Split:
        labels = torch.arange(n) % SYNTHETIC_CLASSES
        labels = labels[torch.randperm(n, generator=g)]
        contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
        x = protos[labels] * contrast
        shift = torch.randint(-2, 3, (2,), generator=g).tolist()  # one shift per draw keeps it vectorised
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        x = 0.5 + x + 0.15 * torch.randn(n, c, h, w, generator=g)
        return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), labels.long())

    train, test = draw(SYNTHETIC_TRAIN), draw(SYNTHETIC_TEST)
    classes = tuple(f"class{i}" for i in range(SYNTHETIC_CLASSES))
    return Pool(train, test, classes, SYNTHETIC_CLASSES, flip=True)
