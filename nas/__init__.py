"""nas: search where to put attention blocks (SE, ECA, CBAM, Gather-Excite) in a CNN.

Data flow (each arrow one module): search space --sample--> ArchConfig --build_model--> nn.Module
--cost--> FLOPs, params; nn.Module + dataset --train_proxy--> accuracy; results --> Optuna study
--> Pareto front --> exported ArchConfig.

The public names are imported on first use (PEP 562), so `import nas` and `nas --help` do not
pay for torch, fvcore and optuna until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, DataError, NasError, StudyError, TrainingDiverged

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "ArchConfig": "nas.arch",
    "load_arch": "nas.arch",
    "Pretrained": "nas.backbones.weights",
    "BlockSpec": "nas.blocks",
    "make_block": "nas.blocks",
    "reduced_width": "nas.blocks",
    "build_model": "nas.build",
    "arch_cost": "nas.cost",
    "count_flops": "nas.cost",
    "count_params": "nas.cost",
    "measure_latency": "nas.latency.builder",
    "LatencyConditions": "nas.latency.conditions",
    "load_table": "nas.latency.table",
    "Dataset": "nas.data",
    "Split": "nas.data",
    "load_dataset": "nas.data",
    "ProxyConfig": "nas.train",
    "ProxyResult": "nas.train",
    "evaluate": "nas.train",
    "resolve_device": "nas.train",
    "train_proxy": "nas.train",
    "search": "nas.study.loop",
}

if TYPE_CHECKING:
    from nas.arch import ArchConfig, load_arch
    from nas.backbones.weights import Pretrained
    from nas.blocks import BlockSpec, make_block, reduced_width
    from nas.build import build_model
    from nas.cost import arch_cost, count_flops, count_params
    from nas.data import Dataset, Split, load_dataset
    from nas.latency.builder import measure_latency
    from nas.latency.conditions import LatencyConditions
    from nas.latency.table import load_table
    from nas.study.loop import search
    from nas.train import ProxyConfig, ProxyResult, evaluate, resolve_device, train_proxy

__all__ = [
    "ArchConfig",
    "BlockSpec",
    "ConfigError",
    "DataError",
    "Dataset",
    "LatencyConditions",
    "NasError",
    "Pretrained",
    "ProxyConfig",
    "ProxyResult",
    "Split",
    "StudyError",
    "TrainingDiverged",
    "arch_cost",
    "build_model",
    "count_flops",
    "count_params",
    "evaluate",
    "load_arch",
    "load_dataset",
    "load_table",
    "make_block",
    "measure_latency",
    "reduced_width",
    "resolve_device",
    "search",
    "train_proxy",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
