"""nas: search where to put attention blocks (SE, ECA, CBAM, Gather-Excite) in a CNN.

Data flow (each arrow one module): search space --sample--> ArchConfig --build_model--> nn.Module
--cost--> FLOPs, params; nn.Module + dataset --train_proxy--> accuracy; results --> Optuna study
--> Pareto front --> exported ArchConfig.
"""

from nas.arch import ArchConfig, load_arch
from nas.blocks import BlockSpec, make_block, reduced_width
from nas.build import build_model
from nas.cost import arch_cost, count_flops, count_params, measure_latency
from nas.data import Dataset, Split, load_dataset
from nas.errors import ConfigError, DataError, NasError, StudyError, TrainingDiverged
from nas.train import ProxyConfig, ProxyResult, evaluate, resolve_device, train_proxy

__version__ = "0.1.0"

__all__ = [
    "ArchConfig",
    "BlockSpec",
    "ConfigError",
    "DataError",
    "Dataset",
    "NasError",
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
    "make_block",
    "measure_latency",
    "reduced_width",
    "resolve_device",
    "train_proxy",
]
