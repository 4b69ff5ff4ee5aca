"""A study's one-shot evaluator (`evaluation: {kind: supernet}`): its supernet, trained once before
any trial and saved beside the study, and the trainer hook that scores a trial from it in seconds.

The first worker trains the supernet under a lock on its file (the others wait, then load it); a
killed training resumes from its per-epoch checkpoint; a file for another backbone, head, space,
sharing or dataset is refused, naming the difference. Every worker scores from the same weights.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from nas.arch import ArchConfig
from nas.attrs import StudyAttr
from nas.data import Dataset
from nas.errors import ConfigError
from nas.files import exclusive_lock
from nas.studyfile import StudyConfig
from nas.supernet import Supernet, fingerprint, load_supernet, save_supernet, score_architecture, train_supernet
from nas.train import ProxyConfig, ProxyResult


def supernet_config(config: StudyConfig) -> ProxyConfig:
    """The supernet trains with the study's proxy settings, for `evaluation.epochs`."""
    return dataclasses.replace(config.proxy, epochs=config.evaluation.epochs, bn_recal=0, max_seconds=None)


def data_key(config: StudyConfig) -> str:
    """The study's data as a saved supernet records it: weights trained on other images score nothing here."""
    return json.dumps(dict(config.dataset), sort_keys=True, default=str)


def describe_supernet(net: Supernet) -> str:
    """Its size in words: choices per stage, architectures, weights and their memory."""
    params = sum(p.numel() for p in net.parameters())
    return (f"{net.size:,} architectures ({' x '.join(str(len(c)) for c in net.choices)} choices per stage), "
            f"sharing {net.sharing}, {params:,} weights ({megabytes(net):.1f} MB)")


def megabytes(net: Supernet) -> float:
    return sum(t.numel() * t.element_size() for t in net.state_dict().values() if torch.is_tensor(t)) / 1e6


def baselines(config: StudyConfig, data: Dataset) -> tuple[ArchConfig, ...]:
    """The study's hand placements: the supernet holds them even where the space does not."""
    return tuple(config.baseline_arch(spec, data.num_classes, data.in_chans) for _, spec in config.baselines)


def build_supernet(config: StudyConfig, data: Dataset) -> Supernet:
    """The study's supernet, untrained; refused when its weights would exceed `evaluation.max_mb`."""
    template = config.template(data.num_classes, data.in_chans)
    net = Supernet(template, config.space, sharing=config.evaluation.sharing, seed=config.proxy.seed,
                   extra=baselines(config, data))
    size = megabytes(net)
    if size > config.evaluation.max_mb:
        raise ConfigError(f"{config.path}: evaluation.max_mb = {config.evaluation.max_mb:g} but this space's supernet "
                          f"needs {size:.1f} MB of weights ({describe_supernet(net)}); allowed: a larger max_mb, "
                          "sharing kind, or a smaller space")
    return net


def prepare_supernet(config: StudyConfig, data: Dataset, device: torch.device,
                     log: Callable[[str], None] = print, progress: bool | None = None) -> Supernet:
    """Load the study's supernet, or train it now (resuming a killed training) and save it."""
    path = config.supernet_path
    template = config.template(data.num_classes, data.in_chans)
    if path.exists():
        return _load(config, path, template, data)
    with exclusive_lock(path.with_name(f".{path.name}.lock")):
        if path.exists():  # another worker trained it while this one waited
            return _load(config, path, template, data)
        net = build_supernet(config, data)
        checkpoint = path.with_name(f".{path.name}.checkpoint")
        log(f"training the supernet: {describe_supernet(net)}; {config.evaluation.epochs} epochs on {device}"
            + (" (resuming its last finished epoch)" if checkpoint.exists() else ""))
        tick = time.perf_counter()
        result = train_supernet(net, data, supernet_config(config), device, progress, checkpoint=checkpoint)
        seconds = time.perf_counter() - tick
        save_supernet(net, path, {"data": data_key(config), "epochs": config.evaluation.epochs,
                                  "train_seconds": round(seconds, 1), "device": result.device,
                                  "images_per_second": round(result.images_per_second, 1)})
        checkpoint.unlink(missing_ok=True)
        log(f"supernet trained in {seconds:.0f} s, saved to {path}")
        return net


def _load(config: StudyConfig, path: Path, template: ArchConfig, data: Dataset) -> Supernet:
    net = load_supernet(path, config.space, template, baselines(config, data))
    if net.meta.get("data") != data_key(config):
        raise ConfigError(f"{path}: supernet trained on other data ({net.meta.get('data')}), but the study's "
                          f"dataset is {data_key(config)}; allowed: delete the file or set evaluation.file to another")
    return net


def record_supernet(study: optuna.Study, config: StudyConfig, net: Supernet) -> None:
    """The study says which supernet scored it (the dashboard shows study user attrs)."""
    study.set_user_attr(StudyAttr.SUPERNET, {"file": str(config.supernet_path), "fingerprint": fingerprint(net),
                                        "sharing": net.sharing, **{k: v for k, v in net.meta.items() if k != "data"}})


class SupernetTrainer:
    """The trainer hook of `nas.study.objective.Objective`: a trial's 'training' is its score with
    inherited weights, batch-norm statistics recalibrated on `evaluation.recal` training images
    (drawn by the trial's seed, so noise seeds measure the evaluation's own spread)."""

    def __init__(self, net: Supernet, recal: int) -> None:
        self.net, self.recal = net, recal

    def __call__(self, arch: ArchConfig, data: Dataset, proxy: ProxyConfig, device: torch.device) -> ProxyResult:
        tick = time.perf_counter()
        accuracy, loss = score_architecture(self.net, arch, data, dataclasses.replace(proxy, bn_recal=self.recal),
                                            device)
        seconds = time.perf_counter() - tick
        return ProxyResult(accuracy=accuracy, loss=loss, train_loss=float("nan"), seconds=seconds,
                           train_seconds=0.0, images_per_second=0.0, epochs_done=0.0, stopped_early=False,
                           device=str(device), images_seen=0)
