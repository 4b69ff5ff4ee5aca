"""The proxy trainer: `train_proxy(model, data, config) -> ProxyResult`, a short, fast, seeded run.

A search trains hundreds of candidates briefly, so nearly all of a study's time is spent here.
The trainer reads top to bottom like airbench: settings (`ProxyConfig`), data (whole splits moved
to the device once, as uint8), network (built under the config's seed), training (augmentation
and normalisation in whole batches on the device, no DataLoader, no per-sample Python), and
evaluation (batch-norm statistics recalibrated, then top-1 accuracy and loss on the validation
split).

Devices: on CUDA, bf16 autocast, channels_last and cuDNN autotuning (switched on inside the run,
restored after); on the CPU, float32, the memory layout `nas.layout` found safe and fastest on
this CPU (NCHW where channels_last crashes or is slower), torch's threads (or
`ProxyConfig.threads` when several workers share the machine), and glibc's malloc told once per
process to keep freed memory (see `_keep_freed_memory`).

Determinism ("common random numbers"): every candidate trained with the same config sees the same
data order and the same crops and flips, and a model passed as a builder is initialised from the
same RNG state, so a difference between two architectures is not a difference in luck. On the
CPU a rerun with the same thread count is bit-identical; on CUDA cuDNN's autotuner may pick
different kernels between runs, so reruns agree only to rounding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas import interrupts
from nas.backbones.pretrained import PRETRAINED_ATTR
from nas.data import Dataset, Split
from nas.errors import ConfigError, TrainingDiverged
from nas.files import atomic_write
from nas.layout import memory_format
from nas.validation import ProxySettings, validate

PRECISIONS = ("auto", "fp32", "bf16")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r} is invalid; allowed: {', '.join(allowed)}")


def _autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast on CUDA by default; on the CPU only when asked, because CPUs without native
    bf16 (no AVX512-BF16/AMX) emulate it slower than float32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} = {value!r} is invalid; allowed: an integer >= {minimum}")


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """Every setting of a proxy run, with its unit.

    The defaults aim at ranking architectures after two epochs, not at a best final accuracy.
    They were chosen with benchmarks/proxy_accuracy.py (cifar_resnet 8/16 with SE, 10k Fashion-
    MNIST subset, 2 epochs of batch 256, CPU) by the mean validation accuracy over 5 seeds, since
    one seed's noise (std about 0.01) is as large as most effects. The defaults scored 0.807
    (seeds 0-4) and 0.804 (seeds 5-9); each alternative below is its mean on seeds 0-4.
    - Nesterov SGD, momentum 0.9: the optimizer CNNs and their attention blocks were designed and
      tuned with, so a candidate's proxy rank should track its rank under full training.
    - Linear warm-up over the first 10% of the steps, hold, linear decay to zero over the last
      40%: two epochs are about 70 steps, so the steps at full learning rate are most of what the
      network learns from, and the decay anneals it so that the score reflects the architecture
      rather than where a still-high learning rate left it; warm-up keeps fresh gates and batch
      norms from blowing up. A triangular one-cycle (`decay` 0.9) scored 0.788.
    - lr 0.5: on a 5%/50% schedule, 0.3 scored 0.792, 0.4 0.798, 0.5 0.810 (0.6: 0.800 on seeds 5-9).
    - Label smoothing 0.2: 0.1 scored 0.798; none 0.795, with twice the spread between seeds.
    - Weight decay 5e-4 on conv/linear weights only (not batch-norm scales or biases): it barely
      acts in 70 steps and is kept at the usual value so that longer proxies behave conventionally.
    - Augmentation on, crops off (`pad` 0): in two epochs a network is far from overfitting, and
      2-pixel crops scored 0.773. Flips apply where the dataset says a mirrored image is still an
      image of its class (`Dataset.flip`); forcing them on Fashion-MNIST scored 0.802. Set `pad`
      to 2-4 for proxies of ten epochs or more.
    - Batch-norm recalibration on `bn_recal` training images before each evaluation: running
      statistics averaged over the last steps of a fast-moving network lag behind its final
      weights (without: 0.803); it costs one forward pass over those images.
    - Fine-tuning (a network started from a weights file): `backbone_lr_scale` 1.0, because 0.1
      was not better (benchmarks/pretrained_finetune.py, ResNet-20 pretrained on 100 Tiny-ImageNet
      classes, 3 epochs on 20 others, 3 seeds: `none` 0.4063 against 0.4140, SE 0.4053 against
      0.4117, both within noise); `freeze_epochs` 0, because 1 was not better (same benchmark,
      the network pretrained again: `none` 0.3910 against 0.4033, SE 0.4127 against 0.4040, ties).
    """

    epochs: int = 2  # passes over the training split
    batch_size: int = 256  # images per optimizer step
    lr: float = 0.5  # peak learning rate (per step, for batch_size images)
    momentum: float = 0.9  # SGD momentum (unitless)
    nesterov: bool = True  # Nesterov momentum
    weight_decay: float = 5e-4  # L2 coefficient on conv/linear weights (unitless)
    label_smoothing: float = 0.2  # probability mass spread over all classes
    warmup: float = 0.1  # fraction of all steps spent warming up linearly from 0 to lr
    decay: float = 0.4  # fraction of all steps, at the end, spent decaying linearly from lr to 0
    augment: bool = True  # random crop from a padded image + flip where the dataset allows
    pad: int = 0  # crop padding, pixels on each side; 0 = no crops
    bn_recal: int = 4096  # training images whose statistics replace batch-norm running stats; 0 = off
    max_seconds: float | None = None  # budget from the first step to the last, per-epoch evals included, s
    seed: int = 0  # seeds initialisation (when the model is a builder), data order, augmentation
    eval_batch_size: int = 256  # images per evaluation batch (larger ran slower on CPUs: caches, page faults)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or fp32, bf16 (both devices)
    threads: int | None = None  # CPU threads for the run; None = torch's default (all cores)
    # fine-tuning a pretrained network (`weights:`); no effect on a network without pretrained parameters
    backbone_lr_scale: float = 1.0  # lr of the parameters loaded from the weights file, as a fraction of lr
    freeze_epochs: int = 0  # first epochs in which those parameters stay frozen (only new ones train)

    def __post_init__(self) -> None:
        # validated by the one validation layer (nas.validation); values normalised (1 -> 1.0)
        settings = validate(ProxySettings, dataclasses.asdict(self))
        for name, value in settings.model_dump().items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxyConfig:
        """From a study file's `proxy:` section; unknown keys are errors that list the allowed ones.
        Numbers written as strings are accepted (YAML 1.1 reads `1e-3`, no dot, as a string)."""
        return cls(**validate(ProxySettings, data, prefix="proxy.").model_dump())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key_dict(self) -> dict[str, Any]:
        """`to_dict` without the fine-tuning settings left at their defaults: what a study's proxy
        fingerprint is made of, so that studies made before those settings existed keep theirs."""
        out = self.to_dict()
        for name in FINE_TUNING:
            if out[name] == getattr(ProxyConfig, name):
                del out[name]
        return out


FINE_TUNING = ("backbone_lr_scale", "freeze_epochs")


@dataclasses.dataclass(frozen=True)
class ProxyResult:
    """What one proxy run measured. Accuracies are fractions; times are seconds of wall clock.

    `epochs_done` is fractional when `max_seconds` stopped the run mid-epoch (steps done / steps
    per epoch); `images_per_second` counts training images over `train_seconds`, which excludes
    evaluation and batch-norm recalibration; `seconds` is the whole call. `train_loss` is the mean
    training loss (label-smoothed) of the last epoch run; `loss` is the plain cross-entropy on the
    validation split. `images_seen` counts the training images the run consumed (steps x batch);
    None from a custom trainer that does not say (`estimated_images` then stands in).
    """

    accuracy: float
    loss: float
    train_loss: float
    seconds: float
    train_seconds: float
    images_per_second: float
    epochs_done: float
    stopped_early: bool
    device: str
    images_seen: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


ModelOrBuilder = nn.Module | Callable[[], nn.Module]


def images_per_epoch(train_images: int, batch_size: int) -> int:
    """Training images one epoch consumes: full batches only, as `train_proxy` trains."""
    batch = min(batch_size, train_images)
    return (train_images // batch) * batch if batch > 0 else 0


def estimated_images(result: ProxyResult, train_images: int, batch_size: int) -> int:
    """`result.images_seen`, or for a trainer that does not report it, its epochs done times an epoch's images."""
    if result.images_seen is not None:
        return result.images_seen
    return round(result.epochs_done * images_per_epoch(train_images, batch_size))


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."""
    allowed = "auto, cpu, cuda, cuda:N"
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device = {spec!r} is not a device; allowed: {allowed}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device = {spec!r} is not supported; allowed: {allowed}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device = {spec!r} but CUDA is not available here; allowed: auto, cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device = {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist; "
            f"allowed: cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def train_proxy(
    model: ModelOrBuilder,
    data: Dataset,
    config: ProxyConfig = ProxyConfig(),  # noqa: B008 - frozen, so one shared default is safe
    device: str | torch.device = "auto",
    progress: bool | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    checkpoint: str | Path | None = None,
) -> ProxyResult:
    """Train `model` on `data.train` as `config` says and score it on `data.val`.

    `model` is a module (trained in place) or a zero-argument builder, called after seeding torch
    with `config.seed` so every candidate starts from the same RNG state. The caller's global RNG
    state is restored afterwards. `progress`: a bar on stderr (None: only when stderr is a TTY).
    `on_epoch(epoch, accuracy)` is called after each full epoch (1-based) with the validation
    accuracy — evaluated per epoch only when it is given; an exception it raises (an Optuna prune)
    propagates. A NaN, infinite or exploded loss (above 100x ln(num_classes), the loss of
    uniform guessing) raises `TrainingDiverged`. `checkpoint`: a file the run saves itself to after
    every epoch (weights, optimiser, data order, RNG) and resumes from when it exists, so a killed
    long run (the one-shot supernet's) continues bit for bit where its last epoch ended; the caller
    deletes it when the result is safe.
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a nas.data.Dataset (from load_dataset), not {type(data).__name__}")
    if not cuda:
        _keep_freed_memory()
    with (
        _fork_rng(dev),
        _cudnn_benchmark(cuda),
        _threads(config.threads),
    ):
        torch.manual_seed(config.seed)
        net = _materialise(model)
        run = _Run(net, data, config, dev, progress, on_epoch, start)
        run.checkpoint = None if checkpoint is None else Path(checkpoint)
        return run.train()


def evaluate(
    model: nn.Module,
    split: Split,
    data: Dataset,
    device: str | torch.device = "auto",
    batch_size: int = 256,
    precision: str = "auto",
) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of `model` on `split`, normalised with `data`'s stats.

    For the test split after training (`nas train`); the model is left in the mode it was in.
    """
    _check_int("batch_size", batch_size, 1)
    dev = resolve_device(device)
    _check_choice("precision", precision, PRECISIONS)
    fmt = memory_format(dev)
    model.to(dev, memory_format=fmt)
    norm = _Normaliser(data, dev, fmt)
    autocast = _autocast(dev, precision)
    return _evaluate(model, split.images.to(dev), split.labels.to(dev), norm, batch_size, autocast)


def score_weights(
    model: nn.Module,
    data: Dataset,
    config: ProxyConfig = ProxyConfig(),  # noqa: B008 - frozen, so one shared default is safe
    device: str | torch.device = "auto",
) -> tuple[float, float]:
    """(validation accuracy, loss) of `model` as it is, batch-norm statistics recalibrated first on
    `config.bn_recal` training images: how the one-shot evaluator scores weights a subnet inherited,
    exactly as `train_proxy` scores the weights it trained (same images, same precision)."""
    dev = resolve_device(device)
    fmt = memory_format(dev)
    with _fork_rng(dev), _threads(config.threads):
        net = model.to(dev, memory_format=fmt)
        schedule = _Schedule.of(config, len(data.train))
        on = _DeviceData(data, config, schedule, dev, fmt)
        autocast = _autocast(dev, config.precision)
        net.train()
        _recalibrate(net, autocast, on, config.eval_batch_size)
        return _evaluate(net, on.val_x, on.val_y, on.norm, config.eval_batch_size, autocast)


# ---------------------------------------------------------------------------------------------
# Internals


class _Normaliser:
    """uint8 batch → float, normalised with the train split's mean/std, in the model's layout."""

    def __init__(self, data: Dataset, device: torch.device, fmt: torch.memory_format) -> None:
        mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1) * 255
        std = torch.tensor(data.std, device=device).view(1, -1, 1, 1) * 255
        self.shift, self.scale = mean, 1 / std
        self.memory_format = fmt

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32, memory_format=self.memory_format)
        return x.sub_(self.shift).mul_(self.scale)


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """Settings turned into steps: full batches only (a batch of one breaks batch norm; each epoch
    reshuffles, so the images left out differ from epoch to epoch), and the learning rate per step."""

    lr: float  # peak learning rate
    batch: int  # images per step
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    decay_steps: int

    @classmethod
    def of(cls, config: ProxyConfig, train_images: int) -> _Schedule:
        batch = min(config.batch_size, train_images)
        steps_per_epoch = train_images // batch
        total = steps_per_epoch * config.epochs
        return cls(config.lr, batch, steps_per_epoch, total, round(config.warmup * total), round(config.decay * total))

    def lr_at(self, step: int) -> float:
        """Linear warm-up to `lr`, hold, linear decay to zero over the last `decay_steps`."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / (self.warmup_steps + 1)
        to_go = self.total_steps - step
        return self.lr * to_go / self.decay_steps if to_go < self.decay_steps else self.lr


class _DeviceData:
    """The data, moved to the device once as uint8 (4x less memory and transfer than float), and
    each epoch's order, crops and flips drawn from one CPU generator (so runs agree across devices)."""

    def __init__(self, data: Dataset, config: ProxyConfig, schedule: _Schedule, device: torch.device,
                 fmt: torch.memory_format) -> None:
        self.data, self.config, self.schedule, self.device = data, config, schedule, device
        self.train_x, self.train_y = data.train.images.to(device), data.train.labels.to(device)
        self.val_x, self.val_y = data.val.images.to(device), data.val.labels.to(device)
        recal = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(config.seed))
        self.recal_idx = recal[: config.bn_recal].to(device)  # the images batch-norm statistics are measured on
        self.norm = _Normaliser(data, device, fmt)
        self.generator = torch.Generator().manual_seed(config.seed)

    def epoch_plan(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The epoch's order and its per-image crop offsets (dy, dx) and flips, drawn at once on
        the CPU generator and moved to the device once."""
        n, g, cfg, s = len(self.data.train), self.generator, self.config, self.schedule
        order = torch.randperm(n, generator=g)[: s.steps_per_epoch * s.batch]
        if not cfg.augment:
            return order.to(self.device), None, None
        shifts = torch.randint(0, 2 * cfg.pad + 1, (2, len(order)), generator=g)
        flips = torch.rand(len(order), generator=g) < 0.5
        if not self.data.flip:
            flips.zero_()
        return order.to(self.device), shifts.to(self.device), flips.to(self.device)

    def batch_images(
        self, idx: torch.Tensor, shifts: torch.Tensor | None, flips: torch.Tensor | None
    ) -> torch.Tensor:
        """Gather a batch and crop/flip it in one indexing op on uint8, then normalise."""
        x = self.train_x[idx]
        if shifts is not None and flips is not None:
            x = _crop_flip(x, shifts, flips, self.config.pad)
        return self.norm(x)


class _Divergence:
    """What counts as diverged, and where it is checked. A finite loss can have diverged too: at lr
    1e6 losses reach 1e10 and stay finite, and batch-norm recalibration then even makes the
    validation loss finite. 100x the loss of uniform guessing is far beyond anything a recovering
    network shows. Checking forces a host-device sync; on CUDA it is done every few steps so the
    host can queue work ahead, and the exact bad step is found in the per-step loss buffer."""

    def __init__(self, num_classes: int, schedule: _Schedule, cuda: bool) -> None:
        self.max_loss = 100 * math.log(max(num_classes, 2))
        self.check_every = 16 if cuda else 1
        self.schedule = schedule

    def diverged(self, losses: torch.Tensor) -> torch.Tensor:
        """Elementwise: NaN, infinite or above `max_loss`."""
        return ~torch.isfinite(losses) | (losses > self.max_loss)

    def check_loss(self, losses: torch.Tensor, lo: int, hi: int, epoch: int, steps_before: int) -> None:
        """Raise TrainingDiverged at the first step in [lo, hi) whose loss is NaN, infinite or
        beyond `max_loss`."""
        bad = self.diverged(losses[lo:hi])
        if bool(bad.any()):
            i = lo + int(bad.nonzero()[0])
            s = self.schedule
            raise TrainingDiverged(
                f"training diverged: loss {float(losses[i]):.4g} at epoch {epoch}, step {i + 1} of "
                f"{s.steps_per_epoch} (lr {s.lr_at(steps_before + i):.4g}, peak lr {s.lr:g}; "
                f"diverged means NaN, infinite or above {self.max_loss:.4g})"
            )

    def check_validation(self, loss: float, epoch: float) -> None:
        if not math.isfinite(loss) or loss > self.max_loss:
            raise TrainingDiverged(
                f"training diverged: validation loss {loss:.4g} after {epoch:g} epoch(s) "
                f"(peak lr {self.schedule.lr:g}; diverged means NaN, infinite or above {self.max_loss:.4g})"
            )


class _Learner:
    """The network and its optimiser: SGD with weight decay on conv/linear weights and none on
    batch-norm scales and biases (ndim <= 1); one step at a time. Parameters a weights file gave
    (`nas_pretrained`, set by `nas.backbones.pretrained`) are groups of their own, stepped at
    `backbone_lr_scale` x lr, and not at all in the first `freeze_epochs`."""

    def __init__(self, net: nn.Module, config: ProxyConfig, device: torch.device, fmt: torch.memory_format,
                 divergence: _Divergence) -> None:
        self.net = net.to(device, memory_format=fmt)
        pretrained = getattr(net, PRETRAINED_ATTR, frozenset())
        groups = []
        for loaded in (False, True):
            named = [p for n, p in net.named_parameters() if (n in pretrained) == loaded]
            groups += [
                {"params": [p for p in named if p.ndim > 1], "weight_decay": config.weight_decay, "pretrained": loaded},
                {"params": [p for p in named if p.ndim <= 1], "weight_decay": 0.0, "pretrained": loaded},
            ]
        groups = [g for g in groups if g["params"]] or groups[:2]
        self.backbone_lr_scale = config.backbone_lr_scale
        self.optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
        self.autocast = _autocast(device, config.precision)
        self.label_smoothing = config.label_smoothing
        self.cuda = device.type == "cuda"
        self.divergence = divergence

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float, frozen: bool = False) -> torch.Tensor:
        """One SGD step (`frozen`: the pretrained parameters not stepped); returns the
        (label-smoothed) loss as a device tensor, no sync."""
        for group in self.optimizer.param_groups:
            group["lr"] = (0.0 if frozen else lr * self.backbone_lr_scale) if group["pretrained"] else lr
        with self.autocast:
            out = self.net(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=self.label_smoothing)
        if not self.cuda and bool(self.divergence.diverged(loss)):
            # Diverged: never backpropagate NaN/inf or exploded activations through native
            # kernels; the step is skipped and `check_loss` (every step on the CPU) raises.
            return loss.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def _validate(learner: _Learner, on: _DeviceData, config: ProxyConfig, divergence: _Divergence,
              epoch: float) -> tuple[float, float]:
    """(accuracy, loss) on the validation split, batch-norm statistics recalibrated first."""
    learner.net.train()
    _recalibrate(learner.net, learner.autocast, on, config.eval_batch_size)
    acc, loss = _evaluate(learner.net, on.val_x, on.val_y, on.norm, config.eval_batch_size, learner.autocast)
    divergence.check_validation(loss, epoch)
    return acc, loss


def _recalibrate(net: nn.Module, autocast: Any, on: _DeviceData, batch_size: int) -> None:
    """Replace batch-norm running statistics by plain averages over the `bn_recal` training
    images (not augmented) under the current weights; momentum is restored after."""
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms or len(on.recal_idx) < 2:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    try:
        # forked RNG: dropout draws here must not shift the training stream, so a run with
        # per-epoch evaluation trains exactly like one without
        with torch.no_grad(), autocast, _fork_rng(on.device):
            for chunk in on.recal_idx.split(batch_size):
                net(on.norm(on.train_x[chunk]))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


class _Run:
    """One training run, in the order it happens: the schedule, the data on the device, the
    network and its optimiser, then epochs of steps, each checked for divergence, and validation."""

    def __init__(self, net: nn.Module, data: Dataset, config: ProxyConfig, device: torch.device,
                 progress: bool | None, on_epoch: Callable[[int, float], None] | None, start: float) -> None:
        self.config, self.device, self.on_epoch, self.start = config, device, on_epoch, start
        self.cuda = device.type == "cuda"
        fmt = memory_format(device)  # channels_last on CUDA; on the CPU only where safe and faster (nas.layout)
        self.schedule = _Schedule.of(config, len(data.train))
        self.divergence = _Divergence(data.num_classes, self.schedule, self.cuda)
        self.learner = _Learner(net, config, device, fmt, self.divergence)
        self.on = _DeviceData(data, config, self.schedule, device, fmt)
        self.show = sys.stderr.isatty() if progress is None else progress
        self.loop_start = time.perf_counter()  # reset when training starts

    def train(self) -> ProxyResult:
        cfg, s = self.config, self.schedule
        steps_done, stopped, train_loss = 0, False, math.nan
        last_eval: tuple[int, float, float] | None = None
        train_seconds = 0.0
        first = 1
        resumed = self.resume()
        if resumed is not None:
            first, steps_done, train_seconds, train_loss = resumed
        self.loop_start = time.perf_counter()
        bar = _bar(self.show, s.total_steps)
        if bar is not None and steps_done:
            bar.update(steps_done)
        try:
            for epoch in range(first, cfg.epochs + 1):
                if bar is not None:
                    bar.set_description(f"epoch {epoch}/{cfg.epochs}")
                tick = time.perf_counter()
                steps, train_loss = self.train_epoch(epoch, steps_done, bar)
                if self.cuda:
                    torch.cuda.synchronize(self.device)
                train_seconds += time.perf_counter() - tick
                steps_done += steps
                stopped = steps_done < s.total_steps and self.out_of_time()
                if stopped:
                    break
                self.save(epoch, steps_done, train_seconds, train_loss)
                if self.on_epoch is not None:
                    acc, val_loss = self.validate(epoch)
                    last_eval = (epoch, acc, val_loss)
                    self.on_epoch(epoch, acc)
        finally:
            if bar is not None:
                bar.close()
        if last_eval is not None and last_eval[0] == cfg.epochs:
            acc, val_loss = last_eval[1], last_eval[2]
        else:
            acc, val_loss = self.validate(steps_done / s.steps_per_epoch)
        return ProxyResult(
            accuracy=acc, loss=val_loss, train_loss=train_loss, seconds=time.perf_counter() - self.start,
            train_seconds=train_seconds,
            images_per_second=steps_done * s.batch / train_seconds if train_seconds > 0 else 0.0,
            epochs_done=steps_done / s.steps_per_epoch, stopped_early=stopped, device=str(self.device),
            images_seen=steps_done * s.batch,
        )

    def train_epoch(self, epoch: int, steps_before: int, bar: Any) -> tuple[int, float]:
        """One pass (or less, when out of time): (steps run, their mean training loss)."""
        s, on, check_every = self.schedule, self.on, self.divergence.check_every
        self.learner.net.train()
        order, shifts, flips = on.epoch_plan()
        losses = torch.zeros(s.steps_per_epoch, device=self.device)
        checked = 0
        for i in range(s.steps_per_epoch):
            interrupts.stop_if_swallowed()
            sl = slice(i * s.batch, (i + 1) * s.batch)
            idx = order[sl]
            x = on.batch_images(idx, None if shifts is None else shifts[:, sl], None if flips is None else flips[sl])
            frozen = steps_before + i < s.steps_per_epoch * self.config.freeze_epochs
            losses[i] = self.learner.step(x, on.train_y[idx], s.lr_at(steps_before + i), frozen)
            if (i + 1) % check_every == 0 or i + 1 == s.steps_per_epoch:
                self.divergence.check_loss(losses, checked, i + 1, epoch, steps_before)
                checked = i + 1
                if bar is not None:
                    bar.update(steps_before + i + 1 - bar.n)
                if i + 1 < s.steps_per_epoch and self.out_of_time():
                    return i + 1, float(losses[: i + 1].mean())
        return s.steps_per_epoch, float(losses.mean())

    checkpoint: Path | None = None

    def save(self, epoch: int, steps_done: int, train_seconds: float, train_loss: float) -> None:
        """After a whole epoch: everything the next epoch depends on, written all or nothing."""
        if self.checkpoint is None:
            return
        state = {"format": 1, "epoch": epoch, "steps_done": steps_done, "train_seconds": train_seconds,
                 "train_loss": train_loss, "epochs": self.config.epochs,
                 "net": self.learner.net.state_dict(), "optimizer": self.learner.optimizer.state_dict(),
                 "data_rng": self.on.generator.get_state(), "torch_rng": torch.get_rng_state()}
        with atomic_write(self.checkpoint) as handle:
            torch.save(state, handle)

    def resume(self) -> tuple[int, int, float, float] | None:
        """(first epoch to run, steps done, training seconds, last loss) from the checkpoint, if one exists."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        if state.get("epochs") != self.config.epochs:
            raise ConfigError(f"{self.checkpoint}: a checkpoint of a {state.get('epochs')}-epoch run, but this run "
                              f"has {self.config.epochs}; allowed: the same settings, or delete the file")
        self.learner.net.load_state_dict(state["net"])
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.on.generator.set_state(state["data_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        return state["epoch"] + 1, state["steps_done"], state["train_seconds"], state["train_loss"]

    def out_of_time(self) -> bool:
        budget = self.config.max_seconds
        return budget is not None and time.perf_counter() - self.loop_start >= budget

    def validate(self, epoch: float) -> tuple[float, float]:
        return _validate(self.learner, self.on, self.config, self.divergence, epoch)


def _crop_flip(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crops of a zero-padded batch, mirrored where `flips`, as one gather.

    Written by hand because torchvision's RandomCrop/RandomHorizontalFlip draw one crop per call
    (per image in a DataLoader), and the proxy needs a different crop per image in one batch op.
    """
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    dev = x.device
    rows = shifts[0].view(b, 1) + torch.arange(h, device=dev)  # b, h
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flips.view(b, 1), w - 1 - cols, cols) + shifts[1].view(b, 1)  # b, w
    batch = torch.arange(b, device=dev).view(b, 1, 1)
    # Advanced indices around a slice put the indexed dims first: the result is b, h, w, c.
    out = xp[batch, :, rows.view(b, h, 1), cols.view(b, 1, w)]
    return out.permute(0, 3, 1, 2)


@torch.no_grad()
def _evaluate(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    norm: _Normaliser,
    batch_size: int,
    autocast: Any,
) -> tuple[float, float]:
    was_training = net.training
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    try:
        for lo in range(0, len(labels), batch_size):
            x, y = norm(images[lo : lo + batch_size]), labels[lo : lo + batch_size]
            with autocast:
                out = net(x)
            out = out.float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
    finally:
        net.train(was_training)
    n = max(len(labels), 1)
    return int(correct) / n, float(loss_sum) / n


@functools.cache  # once per process
def _keep_freed_memory() -> None:
    """Raise glibc malloc's mmap and trim thresholds, once per process.

    With glibc's defaults the multi-megabyte activation buffers each CPU step frees went back to
    the kernel and were page-faulted in again at the next step: 20-40% of a training step was
    kernel time (benchmarks/trainer_throughput.py, minor faults per step). Keeping them in the
    heap is what jemalloc or tcmalloc (via LD_PRELOAD) would do; a worker process that trains
    candidate after candidate reuses the memory anyway. A no-op where libc has no `mallopt`.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: glibc's maximum; larger blocks are still mmapped
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap rather than trim it


def _fork_rng(device: torch.device) -> Any:
    """torch's global RNG (and the device's) restored on exit."""
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    return torch.random.fork_rng(devices=devices, device_type="cuda")


def _materialise(model: ModelOrBuilder) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a zero-argument builder, not {type(model).__name__}")
    net = model()
    if not isinstance(net, nn.Module):
        raise TypeError(f"the model builder returned {type(net).__name__}, not an nn.Module")
    return net


class _cudnn_benchmark:
    """cuDNN autotuning on for the run (fixed input shapes), the previous setting restored after."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.before = torch.backends.cudnn.benchmark

    def __enter__(self) -> None:
        if self.on:
            torch.backends.cudnn.benchmark = True

    def __exit__(self, *exc: object) -> None:
        torch.backends.cudnn.benchmark = self.before


class _threads:
    """`torch.set_num_threads` for the run, restored after. Several workers on one machine should
    share its cores: OpenMP threads that outnumber the free cores spin-wait on each other, and a
    run then slows down by an order of magnitude rather than by the share it lost."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.before = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n is not None:
            torch.set_num_threads(self.before)


def _bar(show: bool, total: int) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # installed with optuna

    return tqdm(total=total, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)
