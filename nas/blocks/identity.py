"""Identity insertion: a block put into a pretrained network starts as the identity.

A block at its paper initialisation changes what a trained network computes before any step (a
sigmoid gate near 0.5 halves what it gates, CBAM's spatial map rescales every position), so a short
fine-tune spends its budget repairing the damage. Every block kind is therefore wrapped in the
same residual form, `x + scale * (block(x) - x)` with a scalar `scale` starting at 0 (ReZero,
Bachlechner et al. 2020, applied to the block's output):

- at step 0 the output is `x` exactly, whatever the block and its placement (no per-kind gate
  bias can do that: a sigmoid reaches 1 only where its gradient is 0);
- `scale` gets gradient at step 0 (`<dL/dy, block(x) - x>`, nonzero since a fresh gate is not 1),
  and once it has moved every parameter inside the block gets gradient too;
- the block inside keeps its paper initialisation, so what it learns is the paper's block, and the
  whole stays an attention gate: `x * (1 - scale + scale * g(x))` for the gated kinds.
"""

from __future__ import annotations

import torch
from torch import nn


class IdentityStart(nn.Module):
    """`x + scale * (block(x) - x)`, `scale` a learnable scalar that starts at 0."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * (self.block(x) - x)


def start_as_identity(model: nn.Module, block_types: tuple[type[nn.Module], ...]) -> list[str]:
    """Wrap every outermost module of `block_types` in `model` in `IdentityStart`, in place;
    returns the wrapped modules' names."""
    found: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, block_types) and not any(name.startswith(outer + ".") for outer in found):
            found.append(name)
    for name in found:
        holder_name, _, leaf = name.rpartition(".")
        holder = model.get_submodule(holder_name) if holder_name else model
        setattr(holder, leaf, IdentityStart(holder.get_submodule(leaf)))
    return found
