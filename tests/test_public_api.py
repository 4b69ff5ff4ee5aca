"""Every public name is importable from `nas` itself."""

import nas

PUBLIC = [
    "BlockSpec", "make_block", "ArchConfig", "load_arch", "build_model", "count_flops", "count_params",
    "measure_latency", "arch_cost", "reduced_width", "load_dataset", "Dataset", "Split", "ProxyConfig",
    "train_proxy", "ProxyResult", "TrainingDiverged", "evaluate", "resolve_device", "NasError", "ConfigError",
    "DataError", "StudyError",
]


def test_public_names_are_exported():
    for name in PUBLIC:
        assert hasattr(nas, name) and name in nas.__all__, name
    assert sorted(nas.__all__) == sorted(PUBLIC)
    assert issubclass(nas.ConfigError, ValueError) and issubclass(nas.ConfigError, nas.NasError)
    assert issubclass(nas.TrainingDiverged, nas.NasError)
