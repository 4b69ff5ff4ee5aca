"""The objectives a study can optimise, each spelled once: direction, name in Optuna and the
dashboard, unit, key in JSON and exports, how it is measured, and whether it is a cost.

Torch-free, so the study-file model, the front and export read it without loading torch;
`nas.study.objective` measures each one, in the unit given here (study files store the values so).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """One objective."""

    name: str  # as a study file's `objectives:` lists it
    direction: str  # "maximize" or "minimize", as Optuna takes it
    metric_name: str  # Optuna's set_metric_names: the dashboard's axis label
    unit: str  # of the stored values
    key: str  # in `nas front --json` rows and an export's provenance metrics
    measured: str  # how, in one phrase (docs, `nas check`)
    cost: bool  # traded against accuracy; the first cost a study has is the knee's axis


ACCURACY = ObjectiveSpec("accuracy", "maximize", "accuracy", "fraction", "accuracy",
                         "top-1 accuracy on the validation split after the proxy training", cost=False)
FLOPS = ObjectiveSpec("flops", "minimize", "MFLOPs", "MFLOPs", "mflops",
                      "fvcore count for one image at the proxy input size, one multiply-add = one flop", cost=True)
PARAMS = ObjectiveSpec("params", "minimize", "params (M)", "millions", "params_millions",
                       "parameters, trainable or not (buffers excluded)", cost=True)
LATENCY = ObjectiveSpec("latency", "minimize", "latency (ms)", "ms", "latency_ms",
                        "median time of one inference forward of one image on the search's device", cost=True)

OBJECTIVES = {o.name: o for o in (ACCURACY, FLOPS, PARAMS, LATENCY)}  # in the order costs are preferred
OBJECTIVE_NAMES = tuple(OBJECTIVES)
COSTS = tuple(o.name for o in OBJECTIVES.values() if o.cost)
# a study file's default, and the objectives of a study made before the `objectives` study attribute
DEFAULT_OBJECTIVES = (ACCURACY.name, FLOPS.name)
