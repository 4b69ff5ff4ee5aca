"""The one-shot evaluator's network: one weight-sharing supernet holding every stage choice of a space.

Trained once by sampling one architecture per batch (Single-Path One-Shot, Guo et al. 2020), it
lets a trial score its architecture with inherited weights in seconds (`Supernet.subnet`, then
`nas.train.score_weights`, which recalibrates batch-norm statistics for that architecture first:
Yu et al. 2020 found inherited-weight rankings meaningless without it).

What shares weights (`sharing`):
- `choice`: every distinct block of a stage (kind, settings, placement) has weights of its own;
- `placement`: one set per stage, kind and placement, shared by the kind's settings, each setting
  taking the slice its shape needs (leading channels, the centre of a kernel), as Once-for-All
  shares widths and kernel sizes;
- `kind`: one set per stage and kind, its placements included (a `pre` block on a stage's first,
  narrower unit takes the leading channels).
The backbone is shared by every architecture.

How a subnet finds its tensors, for any backbone: the architecture is built as a plain model; its
attention modules (the outermost modules of a block class, or of the backbone's own attention) are
split into per-stage groups in the order the model registers them, the j-th module of a stage's
group drawing on that stage's entry (key, j); every other tensor is the backbone's, matched in
order to the `none` architecture's. A subnet therefore is exactly the standalone network of its
architecture (`subnet` returns one), and training runs it through `torch.func.functional_call`
with the supernet's tensors, so gradients reach the shared weights.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nas.arch import ArchConfig
from nas.backbones import get_backbone
from nas.blocks import BLOCK_KINDS, REGISTRY, BlockSpec
from nas.build import build_model
from nas.data import Dataset
from nas.errors import ConfigError
from nas.files import atomic_write
from nas.space import SearchSpace
from nas.train import ProxyConfig, ProxyResult, score_weights, train_proxy

SHARING = ("choice", "placement", "kind")
BLOCK_CLASSES = tuple(REGISTRY[kind].module for kind in BLOCK_KINDS)  # a new kind's module is found too


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One tensor of a built architecture: its name there, where it lives in the supernet, its shape."""

    name: str
    key: str  # "backbone.<name in the none model>" or a block key in `Supernet.blocks`
    shape: tuple[int, ...]
    buffer: bool


class _RandomChoices:
    """Stands in for an Optuna trial so that `SearchSpace.sample` draws uniformly at every choice
    (kind, then each setting, then placement): the same tree a random sampler walks."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.rng.choice(choices)


class Supernet(nn.Module):
    """Every stage choice of `space` on `template`'s backbone, with shared weights.

    In training mode with gradients on, each forward samples an architecture (`sample`); otherwise
    it runs `active` (the template until set), so batch-norm recalibration and evaluation inside
    `train_proxy` see one architecture.
    """

    def __init__(self, template: ArchConfig, space: SearchSpace, sharing: str = "kind", seed: int = 0,
                 extra: tuple[ArchConfig, ...] = ()) -> None:
        super().__init__()
        if sharing not in SHARING:
            raise ConfigError(f"sharing = {sharing!r} is invalid; allowed: {', '.join(SHARING)}")
        self.template, self.space, self.sharing = template, space, sharing
        backbone = get_backbone(template.backbone)
        per_stage = backbone.placements_per_stage(template.backbone_args)
        owned = backbone.own_counts(template.backbone_args)
        self._own_classes = frozenset(name for counts in owned for name in counts)
        choices = self._space_choices(per_stage, owned)
        for arch in extra:  # architectures scored beside the space's (a study's hand placements)
            choices = [c if spec in c else (*c, spec) for c, spec in zip(choices, arch.stages, strict=True)]
        self.choices: tuple[tuple[BlockSpec, ...], ...] = tuple(choices)
        # per stage, the choices only `extra` brings: sampled as often as any other choice of the stage
        self._extra = tuple(c[len(base):] for c, base in zip(choices, self._space_choices(per_stage, owned),
                                                             strict=True))
        self.seed, self.rng = seed, random.Random(seed)
        self.meta: dict[str, Any] = {}  # what a saved supernet records beside its weights (training time, ...)
        self.active = self._plain()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.backbone = build_model(self._plain())
            self.blocks = nn.ParameterDict()
            self.block_buffers = nn.Module()
            self._allocate()

    # --- architectures

    def _plain(self) -> ArchConfig:
        return dataclasses.replace(self.template, stages=(BlockSpec("none"),) * len(self.template.stages))

    def _space_choices(self, per_stage: tuple[tuple[str, ...], ...],
                       owned: tuple[Any, ...]) -> list[tuple[BlockSpec, ...]]:
        searched = self.space.searched_stages(len(self.template.stages))
        return [self.space.stage_specs(per_stage[s - 1], bool(owned[s - 1])) if s in searched
                else (self.template.stages[s - 1],) for s in range(1, len(self.template.stages) + 1)]

    def sample(self) -> ArchConfig:
        """One architecture, uniformly at every choice of the space (kind, settings, placement); a
        stage's extra choices (hand placements outside the space) each as often as one of its choices."""
        arch = self.space.sample(_RandomChoices(self.rng), self.template)  # type: ignore[arg-type]
        if not any(self._extra):
            return arch
        stages = list(arch.stages)
        for i, (extra, choices) in enumerate(zip(self._extra, self.choices, strict=True)):
            if extra and self.rng.random() < len(extra) / len(choices):
                stages[i] = self.rng.choice(extra)
        return dataclasses.replace(arch, stages=tuple(stages))

    def contains(self, arch: ArchConfig) -> bool:
        """Whether every stage of `arch` is one of this supernet's choices (same backbone and head)."""
        same = (arch.backbone, dict(arch.backbone_args), arch.num_classes, arch.in_chans) == (
            self.template.backbone, dict(self.template.backbone_args), self.template.num_classes,
            self.template.in_chans)
        return same and all(spec in choices for spec, choices in zip(arch.stages, self.choices, strict=True))

    @property
    def size(self) -> int:
        """Distinct architectures this supernet holds."""
        n = 1
        for choices in self.choices:
            n *= len(choices)
        return n

    def get_extra_state(self) -> Any:
        """The sampler's state travels with the weights, so a resumed training draws what it would have."""
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss]}

    def set_extra_state(self, state: Any) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    # --- weights

    def _block_key(self, stage: int, spec: BlockSpec, j: int, name: str, ndim: int) -> str:
        if self.sharing == "choice":
            who = spec.block_id  # names its settings and placement
        elif self.sharing == "placement":
            who = f"{spec.kind}@{spec.placement}"
        else:
            who = spec.kind
        # ParameterDict keys cannot hold dots
        return f"s{stage}/{who}/{j}/{name}/{ndim}d".replace(".", ":")

    def _attention_modules(self, model: nn.Module) -> list[str]:
        """Names of the outermost attention modules, in registration order."""
        found: list[str] = []
        for name, module in model.named_modules():
            if found and name.startswith(found[-1] + "."):
                continue  # inside a block already found (CBAM's channel gate, ...)
            if isinstance(module, BLOCK_CLASSES) or type(module).__name__ in self._own_classes:
                found.append(name)
        return found

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one supernet per process; layouts are small
    def _group_size(self, stage: int, spec: BlockSpec) -> int:
        """How many attention modules `spec` puts on `stage` (one per unit, one per stage, ...)."""
        stages = list(self._plain().stages)
        stages[stage - 1] = spec
        model = build_model(dataclasses.replace(self.template, stages=tuple(stages)))
        return len(self._attention_modules(model))

    def _layout(self, arch: ArchConfig, model: nn.Module) -> list[_Entry]:
        """Where each tensor of `model` (built from `arch`) lives in this supernet."""
        blocks = self._attention_modules(model)
        owner: dict[str, tuple[int, BlockSpec, int]] = {}
        i = 0
        for stage, spec in enumerate(arch.stages, 1):
            for j in range(self._group_size(stage, spec)):
                owner[blocks[i]] = (stage, spec, j)
                i += 1
        if i != len(blocks):
            raise RuntimeError(f"{arch.arch_id}: {len(blocks)} attention modules, but its stages account for {i}")
        plain = [(n, True) for n, _ in self.backbone.named_buffers()]
        plain_params = [n for n, _ in self.backbone.named_parameters()]
        entries: list[_Entry] = []
        backbone_params, backbone_buffers = iter(plain_params), iter(n for n, _ in plain)
        for is_buffer, named in ((False, model.named_parameters()), (True, model.named_buffers())):
            for name, tensor in named:
                block = next((b for b in blocks if name.startswith(b + ".")), None)
                if block is None:
                    source = next(backbone_buffers if is_buffer else backbone_params)
                    entries.append(_Entry(name, f"backbone.{source}", tuple(tensor.shape), is_buffer))
                else:
                    stage, spec, j = owner[block]
                    local = name[len(block) + 1:]
                    key = self._block_key(stage, spec, j, local, tensor.ndim)
                    entries.append(_Entry(name, key, tuple(tensor.shape), is_buffer))
        return entries

    def _allocate(self) -> None:
        """One tensor per block key, as large as its largest user, initialised as each choice's own
        module would be (largest last, so the full tensor carries a real initialisation)."""
        inits: dict[str, list[tuple[torch.Tensor, bool]]] = {}
        for stage, choices in enumerate(self.choices, 1):
            for spec in choices:
                if spec.kind == "none":
                    continue
                stages = list(self._plain().stages)
                stages[stage - 1] = spec
                arch = dataclasses.replace(self.template, stages=tuple(stages))
                model = build_model(arch)
                tensors = dict(model.named_parameters()) | dict(model.named_buffers())
                for entry in self._layout(arch, model):
                    if not entry.key.startswith("backbone."):
                        inits.setdefault(entry.key, []).append((tensors[entry.name].detach(), entry.buffer))
        for key, values in inits.items():
            shape = tuple(max(dims) for dims in zip(*(v.shape for v, _ in values), strict=True))
            full = torch.zeros(shape, dtype=values[0][0].dtype)
            for value, _ in sorted(values, key=lambda v: v[0].numel()):
                _slice(full, tuple(value.shape)).copy_(value)
            if values[0][1]:
                self.block_buffers.register_buffer(key, full)
            else:
                self.blocks[key] = nn.Parameter(full)

    def _tensor(self, key: str) -> torch.Tensor:
        if key.startswith("backbone."):
            return self.backbone.get_parameter(key[9:]) if key[9:] in self._backbone_params else \
                self.backbone.get_buffer(key[9:])
        return self.blocks[key] if key in self.blocks else self.block_buffers.get_buffer(key)

    @functools.cached_property
    def _backbone_params(self) -> frozenset[str]:
        return frozenset(n for n, _ in self.backbone.named_parameters())

    def tensors(self, arch: ArchConfig, model: nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s (built from `arch`) parameters and buffers as views of this supernet's."""
        return {e.name: _slice(self._tensor(e.key), e.shape) for e in self._layout(arch, model)}

    def subnet(self, arch: ArchConfig) -> nn.Module:
        """The standalone network of `arch` (a plain `build_model` result) with the weights it inherits."""
        if not self.contains(arch):
            raise ConfigError(f"{arch.arch_id} is not in this supernet's space")
        model = build_model(arch)
        state = {name: t.detach().clone() for name, t in self.tensors(arch, model).items()}
        model.load_state_dict(state)
        return model.to(next(self.parameters()).device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self.sample() if self.training and torch.is_grad_enabled() else self.active
        model = build_model(arch).to(x.device).train(self.training)
        return functional_call(model, self.tensors(arch, model), (x,))


def _slice(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The part of a shared tensor a smaller user takes: leading rows and channels, and the centre of
    a kernel (dimensions 2 and up of a convolution weight), as Once-for-All slices widths and kernels."""
    if tuple(tensor.shape) == shape:
        return tensor
    index = []
    for dim, (have, want) in enumerate(zip(tensor.shape, shape, strict=True)):
        lo = (have - want) // 2 if dim >= 2 and tensor.ndim >= 3 else 0
        index.append(slice(lo, lo + want))
    return tensor[tuple(index)]


def train_supernet(
    net: Supernet,
    data: Dataset,
    config: ProxyConfig,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    checkpoint: str | Path | None = None,
) -> ProxyResult:
    """Train the supernet as the proxy trains one network (same schedule, augmentation and
    optimiser), one sampled architecture per batch. Parameters a batch's architecture does not use
    get no gradient, so SGD leaves them (and their momentum) alone for that step. `checkpoint`: a
    file saved after every epoch, from which a killed training resumes."""
    return train_proxy(net, data, config, device, progress, checkpoint=checkpoint)


def score_architecture(
    net: Supernet,
    arch: ArchConfig,
    data: Dataset,
    config: ProxyConfig,
    device: str | torch.device = "auto",
) -> tuple[float, float]:
    """(validation accuracy, loss) of `arch` with the weights it inherits, batch-norm statistics
    recalibrated for it on `config.bn_recal` training images."""
    return score_weights(net.subnet(arch), data, config, device)


def fingerprint(net: Supernet) -> str:
    """What a saved supernet must match to be reused: backbone, head, choices per stage, sharing."""
    text = json.dumps({"template": net.template.to_dict(), "sharing": net.sharing,
                       "choices": [[spec.block_id for spec in choices] for choices in net.choices]},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_supernet(net: Supernet, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Weights, the fingerprint and `meta`, written whole or not at all."""
    net.meta = {**net.meta, **(meta or {})}
    payload = {"format": 1, "fingerprint": fingerprint(net), "template": net.template.to_dict(),
               "sharing": net.sharing, "seed": net.seed, "meta": net.meta,
               "state": {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in net.state_dict().items()}}
    with atomic_write(Path(path)) as handle:
        torch.save(payload, handle)


def load_supernet(path: str | Path, space: SearchSpace, template: ArchConfig | None = None,
                  extra: tuple[ArchConfig, ...] = ()) -> Supernet:
    """A saved supernet, refused (ConfigError naming the file and the difference) when it is not a
    supernet file or holds another backbone, head, space or sharing than `template` and `space`."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such supernet file") from None
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a truncated or foreign file
        raise ConfigError(f"{path}: not a readable supernet file ({type(error).__name__}: "
                          f"{str(error).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != 1 or "state" not in payload:
        raise ConfigError(f"{path}: not a supernet file written by nas (no format 1 header)")
    saved = ArchConfig.from_dict(payload["template"])
    if template is not None and saved != template:
        raise ConfigError(f"{path}: supernet of {_describe(saved)}, but the study has {_describe(template)}")
    net = Supernet(template or saved, space, sharing=payload["sharing"], seed=payload["seed"], extra=extra)
    if fingerprint(net) != payload["fingerprint"]:
        raise ConfigError(f"{path}: supernet of another search space or baselines (fingerprint "
                          f"{payload['fingerprint']}, this study's {fingerprint(net)}); allowed: delete the file to "
                          "train one for this study, or name another with evaluation.file")
    net.load_state_dict(payload["state"])
    net.meta = dict(payload.get("meta") or {})
    return net


def _describe(arch: ArchConfig) -> str:
    args = ",".join(f"{k}={v}" for k, v in arch.backbone_args.items())
    return f"{arch.backbone}({args}), {arch.num_classes} classes, {arch.in_chans} channels"
