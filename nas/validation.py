"""One validation layer for what users write: study files, proxy settings and dataset settings.

pydantic v2 models give typed fields, the path of every error and a JSON Schema for free
(`nas schema`: editors with the YAML language server then complete and check study files).
What a schema cannot say — a backbone's own arguments, a search space's per-kind settings, a
storage URL — is checked by the module that owns it (`nas.backbones`, `nas.space` with the block
registry, `nas.storage`), called from `nas.studyfile`.

Every pydantic error becomes the project's one line, `<path> = <value> is invalid; allowed:
<what>`, where <what> is the field's description. Integers are strict (no `true`, no `2.5`);
numbers accept integers and numeric strings (YAML 1.1 reads `1e-3` as a string) but not booleans.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from pydantic import model_validator as _model_validator
from pydantic_core import PydanticCustomError

from nas.errors import ConfigError
from nas.fidelity import MODELS, PROMOTIONS
from nas.objectives import ACCURACY, DEFAULT_OBJECTIVES, OBJECTIVE_NAMES


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


Number = Annotated[float, BeforeValidator(_no_bool)]


def _sentence(message: str) -> PydanticCustomError:
    """A check across fields, whose message is already the project's whole sentence."""
    return PydanticCustomError("nas_sentence", message)


class _Model(BaseModel):
    """Unknown keys are errors; `noun` names what a key of this mapping is, for messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    noun: ClassVar[str] = "setting"


class ProxySettings(_Model):
    """Every setting of a proxy run (`nas.train.ProxyConfig` holds the validated values)."""

    noun: ClassVar[str] = "proxy setting"

    epochs: StrictInt = Field(2, ge=1, description="an integer >= 1")
    batch_size: StrictInt = Field(256, ge=1, description="an integer >= 1")
    lr: Number = Field(0.5, gt=0, allow_inf_nan=False, description="a number > 0")
    momentum: Number = Field(0.9, ge=0, lt=1, description="a number in [0, 1)")
    nesterov: StrictBool = Field(True, description="true or false")
    weight_decay: Number = Field(5e-4, ge=0, allow_inf_nan=False, description="a number >= 0")
    label_smoothing: Number = Field(0.2, ge=0, lt=1, description="a number in [0, 1)")
    warmup: Number = Field(0.1, ge=0, lt=1, description="a fraction in [0, 1)")
    decay: Number = Field(0.4, ge=0, le=1, description="a fraction in [0, 1]")
    augment: StrictBool = Field(True, description="true or false")
    pad: StrictInt = Field(0, ge=0, description="an integer >= 0")
    bn_recal: StrictInt = Field(4096, ge=0, description="an integer >= 0")
    max_seconds: Number | None = Field(None, gt=0, allow_inf_nan=False, description="a number > 0 or null")
    seed: StrictInt = Field(0, ge=0, description="an integer >= 0")
    eval_batch_size: StrictInt = Field(256, ge=1, description="an integer >= 1")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto, fp32, bf16")
    threads: StrictInt | None = Field(None, ge=1, description="an integer >= 1 or null")
    backbone_lr_scale: Number = Field(1.0, gt=0, le=1, allow_inf_nan=False,
                                      description="a number in (0, 1]: the learning rate of the parameters loaded from "
                                                  "the study's weights file, as a fraction of lr (new blocks and a new "
                                                  "classifier train at lr)")
    freeze_epochs: StrictInt = Field(0, ge=0, description="an integer >= 0: first epochs in which only the new "
                                                          "parameters train (the pretrained ones frozen)")

    @_model_validator(mode="after")
    def _consistent(self) -> ProxySettings:
        if self.warmup + self.decay > 1:
            raise _sentence(f"warmup + decay = {self.warmup} + {self.decay} is invalid; allowed: a sum <= 1 "
                            "(fractions of the same run)")
        if self.nesterov and self.momentum == 0:
            raise _sentence("nesterov = true needs momentum > 0; set momentum or nesterov: false")
        if self.freeze_epochs >= self.epochs:
            raise _sentence(f"freeze_epochs = {self.freeze_epochs} is invalid for epochs = {self.epochs}; allowed: "
                            "fewer than epochs (the pretrained parameters must train at some point)")
        return self


class DatasetSettings(_Model):
    """`load_dataset`'s settings as a study file writes them (the name is checked by `nas.data`)."""

    noun: ClassVar[str] = "dataset setting"

    name: str = Field(description="a dataset name")
    path: str | None = Field(None, description="a folder, relative to the study file")
    subset: StrictInt | None = Field(None, ge=2, description="an integer >= 2, or null for all")
    val_fraction: Number = Field(0.1, gt=0, lt=1, description="a number strictly between 0 and 1")
    image_size: Annotated[StrictInt, Field(ge=1)] | tuple[Annotated[StrictInt, Field(ge=1)],
                                                          Annotated[StrictInt, Field(ge=1)]] | None = Field(
        None, description="a positive integer or [height, width]")
    in_chans: Literal[1, 3] | None = Field(None, description="1, 3, or null (as stored)")
    classes: StrictInt | None = Field(None, ge=2, description="an integer >= 2 (the first N classes), or null for all")
    seed: StrictInt = Field(0, ge=0, description="an integer >= 0")
    root: str | None = Field(None, description="a cache folder")

    @property
    def size(self) -> tuple[int, int] | None:
        """`image_size` as (height, width)."""
        if self.image_size is None:
            return None
        return (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)


class Constraints(_Model):
    noun: ClassVar[str] = "constraint"

    max_mflops: Number | None = Field(None, gt=0, allow_inf_nan=False, description="a number > 0 or null")
    max_params: StrictInt | None = Field(None, gt=0, description="an integer > 0 or null")


# Confirmation's seeds are 0, 1, ... (added to the proxy seed); the fresh seeds that score its front
# again start here, so no confirmation setting can reach them (`nas.refine`).
FRESH_SEED = 1000
SAMPLER_SETTINGS = {"tpe": ("seed", "n_startup_trials"), "nsga2": ("seed", "population_size"), "random": ("seed",)}


class Sampler(_Model):
    noun: ClassVar[str] = "sampler setting"

    name: Literal[tuple(SAMPLER_SETTINGS)] = Field(  # type: ignore[valid-type]
        "tpe", description=", ".join(SAMPLER_SETTINGS))
    seed: StrictInt | None = Field(None, ge=0, description="an integer >= 0")
    n_startup_trials: StrictInt | None = Field(None, ge=1, description="an integer >= 1 (tpe only)")
    population_size: StrictInt | None = Field(None, ge=2, description="an integer >= 2 (nsga2 only)")

    @_model_validator(mode="after")
    def _settings_of_the_sampler(self) -> Sampler:
        for key in ("n_startup_trials", "population_size"):
            if getattr(self, key) is not None and key not in SAMPLER_SETTINGS[self.name]:
                raise _sentence(f"sampler.{key} is not a setting of {self.name}; "
                                f"allowed: {', '.join(SAMPLER_SETTINGS[self.name])}")
        return self

    def options(self) -> dict[str, Any]:
        """The settings the user gave, `name` included (None = not given)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class FidelitySettings(_Model):
    """A multi-fidelity search's rungs (`nas.fidelity.Fidelity` holds the validated values)."""

    noun: ClassVar[str] = "fidelity setting"

    epochs: list[Annotated[StrictInt, Field(ge=1)]] = Field(
        min_length=2, description="a list of 2 or more strictly increasing integers >= 1, one per rung, e.g. [1, 3, 9]")
    keep: Number = Field(gt=0, lt=1, allow_inf_nan=False,
                         description="a fraction strictly between 0 and 1 (promoted per rung), e.g. 0.34")
    seeds: list[Annotated[StrictInt, Field(ge=1)]] | None = Field(
        None, description="a list of integers >= 1, one per rung (seeds trained per candidate; default 1 each)")
    promotion: Literal[PROMOTIONS] = Field(  # type: ignore[valid-type]
        "asha", description="asha (a candidate goes up while in a rung's best keep so far) or quota (exactly keep "
                            "of each rung goes up, the best first)")
    model: Literal[MODELS] = Field(  # type: ignore[valid-type]
        "rung0", description="rung0 (the sampler learns from rung 0's results) or highest (from the highest rung "
                             "with enough finished trials, BOHB's rule; needs sampler tpe)")

    @_model_validator(mode="after")
    def _rungs(self) -> FidelitySettings:
        if any(b <= a for a, b in itertools.pairwise(self.epochs)):
            raise _sentence(f"epochs = {self.epochs} is invalid; allowed: strictly increasing epochs, e.g. [1, 3, 9]")
        if self.seeds is not None and len(self.seeds) != len(self.epochs):
            raise _sentence(f"seeds = {self.seeds} is invalid; allowed: one count per rung, {len(self.epochs)} "
                            f"like epochs {self.epochs} (or leave it out for 1 seed per rung)")
        return self


class LatencySettings(_Model):
    """The conditions latency is measured and predicted under, and the table that predicts it
    (`nas.latency`). Checked against this machine (threads, CUDA) by `nas.studyfile`."""

    noun: ClassVar[str] = "latency setting"

    runtime: Literal["onnxruntime", "eager"] = Field(
        "onnxruntime", description="onnxruntime (what ships; the default) or eager (PyTorch)")
    batch_size: StrictInt = Field(1, ge=1, description="an integer >= 1 (images per forward)")
    threads: StrictInt = Field(1, ge=1, description="an integer >= 1, at most this machine's cores")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu, or cuda where a CUDA device is present")
    table: str | None = Field(None, description="a latency table file (nas latency-table -o FILE.json), relative to "
                                                "the study file; null: <study name>.latency.json beside it, built "
                                                "when the study is created")
    check: StrictInt = Field(30, ge=0, description="an integer >= 0 (random architectures a new table is "
                                                      "checked on; 0: none)")
    passes: StrictInt = Field(2, ge=1, description="an integer >= 1 (times a new table measures each choice, minutes "
                                                   "apart: their spread is part of its interval)")
    target: Number = Field(0.02, gt=0, lt=0.5, description="a number in (0, 0.5): the 95 % interval of a ratio to "
                                                           "none, relative, that a measurement stops at")
    max_seconds: Number = Field(20, gt=0, allow_inf_nan=False,
                                description="a number > 0: seconds a group of measurements may take")


class EvaluationSettings(_Model):
    """How a trial's accuracy is obtained (DESIGN.md's evaluator): a standalone proxy run, or a score
    with weights inherited from the study's one-shot supernet (`nas.supernet`)."""

    noun: ClassVar[str] = "evaluation setting"

    kind: Literal["proxy", "supernet"] = Field(
        "proxy", description="proxy (train each candidate alone, briefly; the default) or supernet (score it with "
                             "the weights it inherits from one weight-sharing network trained once)")
    epochs: StrictInt = Field(10, ge=1, description="an integer >= 1 (epochs the supernet trains, with the proxy's "
                                                    "other settings)")
    sharing: Literal["choice", "placement", "kind"] = Field(
        "kind", description="choice (own weights per block, settings and placement), placement (a kind's settings "
                            "share weights per placement, sliced) or kind (one set per kind and stage)")
    recal: StrictInt = Field(2048, ge=0, description="an integer >= 0 (training images that recalibrate batch-norm "
                                                     "statistics for each scored architecture)")
    file: str | None = Field(None, description="the supernet's weights file, relative to the study file; null: "
                                               "<study name>.supernet.pt beside it, trained when missing")
    max_mb: Number = Field(1024, gt=0, allow_inf_nan=False,
                           description="a number > 0: the most memory (MB) the supernet's weights may take")


class ConfirmSettings(_Model):
    """Confirmation (DESIGN.md): after the search, the front and its near-front neighbours are
    retrained standalone at the long fidelity over seeds (`nas.refine`); `nas front` and `nas
    export` read the confirmed front. Seeds are spent by successive halving: with a `screen`, that
    many candidates get one run each first and the best `top` of them go on; every candidate kept
    gets `seeds`, and those still tied at the top get twice as many, up to `max_seeds`. With
    `fresh_seeds`, the front so chosen is trained again at seeds no selection read, and those are
    the figures shown (a front's own runs read high: benchmarks/confirm_rules.py)."""

    noun: ClassVar[str] = "confirm setting"

    after_search: StrictBool = Field(True, description="true (nas search confirms when the study reaches its "
                                                       "target) or false (only `nas refine` confirms)")
    # 12 x 2 seeds, not 8 x 3, at the same 24 runs: breadth before depth (benchmarks/confirm_rules.py's
    # best simulated rule; end_to_end.py's breadth2 arms: two of six searches' fronts beat the hand
    # placements' beyond noise at fresh seeds, which no other rule's held-out front did: docs/results.md)
    top: StrictInt = Field(12, ge=1, description="an integer >= 1 (front and near-front architectures retrained)")
    screen: StrictInt | None = Field(
        None, ge=1, description="an integer >= top (candidates first trained at one seed, of which the top by "
                                "that run's front rank go on), or null (no screen: the top by the search's)")
    epochs: StrictInt | None = Field(None, ge=1, description="an integer >= 1, or null for 3x the proxy's epochs")
    seeds: StrictInt = Field(2, ge=1, description="an integer >= 1 (seeds per candidate)")
    max_seeds: StrictInt | None = Field(
        None, ge=1, description="an integer >= seeds (seeds for candidates still tied at the top), or null for "
                                "2x seeds")
    fresh_seeds: StrictInt = Field(
        0, ge=0, le=100, description="an integer from 0 to 100: seeds the confirmed front is trained at again, "
                                     "seeds confirmation did not use, and shown at (0: the front is shown at the "
                                     "runs it was chosen on, which read high)")

    @_model_validator(mode="after")
    def _more_seeds(self) -> ConfirmSettings:
        if self.screen is not None and self.screen < self.top:
            raise _sentence(f"screen = {self.screen} is fewer than top = {self.top}; allowed: an integer >= "
                            f"{self.top}, or null for no screen")
        if self.max_seeds is not None and self.max_seeds < self.seeds:
            raise _sentence(f"max_seeds = {self.max_seeds} is fewer than seeds = {self.seeds}; allowed: an "
                            f"integer >= {self.seeds}, or null for 2x seeds")
        if self.most_seeds >= FRESH_SEED:
            raise _sentence(f"max_seeds = {self.most_seeds} (seeds = {self.seeds}) reaches the fresh seeds, which "
                            f"start at {FRESH_SEED}; allowed: at most {FRESH_SEED - 1}")
        return self

    @property
    def most_seeds(self) -> int:
        return self.max_seeds if self.max_seeds is not None else 2 * self.seeds


class WeightsSettings(_Model):
    """Pretrained weights the study's candidates start from (`nas.backbones.pretrained`)."""

    noun: ClassVar[str] = "weights setting"

    file: str = Field(description="a local weights file, relative to the study file: a state dict (.pt/.pth), a "
                                  "safetensors file, or a `nas train --save` checkpoint of the backbone without blocks")
    identity: StrictBool = Field(True, description="true (every inserted block starts as the identity, so the "
                                                   "network starts as the pretrained one) or false (paper init)")


class StudyFile(_Model):
    """The shape of a study file. `nas.studyfile` adds what needs the backbone, the space and the
    storage, and resolves paths."""

    noun: ClassVar[str] = "study key"

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="letters, digits, '_', '.', '-'")
    description: str = Field("", description="text")
    storage: str | None = Field(None, description="a storage URL, e.g. sqlite:///demo.db")
    backbone: str = Field(description="a backbone name, e.g. cifar_resnet, resnet18, timm:<name>")
    backbone_args: dict[str, Any] = Field(default_factory=dict, description="a mapping of backbone arguments")
    dataset: DatasetSettings = Field(description="a mapping with a name")
    search_space: str | dict[str, Any] = Field(description="a file path or a mapping")
    proxy: ProxySettings = Field(default_factory=ProxySettings, description="a mapping of proxy settings")
    objectives: list[Literal[OBJECTIVE_NAMES]] = Field(  # type: ignore[valid-type]
        list(DEFAULT_OBJECTIVES), min_length=1, description=", ".join(OBJECTIVE_NAMES))
    sampler: Sampler = Field(default_factory=Sampler, description="a mapping with a name: tpe, nsga2, random")
    trials: StrictInt = Field(24, ge=1,
                              description="an integer >= 1 (finished trials to reach; a sampled repeat is not one)")
    baselines: list[str | dict[str, Any]] | None = Field(
        None, description="a list of block kinds, designer (the backbone's own attention kept, where it brings "
                          "some) or block mappings (default: every kind, and designer where the backbone has one)")
    constraints: Constraints = Field(default_factory=Constraints, description="a mapping like {max_mflops: 20}")
    noise_seeds: StrictInt = Field(3, ge=1, description="an integer >= 1 (seeds of the none baseline that measure "
                                   "the study's noise; 1: do not measure)")
    fidelity: FidelitySettings | None = Field(
        None, description="a mapping like {epochs: [1, 3, 9], keep: 0.34, seeds: [1, 1, 2]}, or null for one fidelity")
    latency: LatencySettings = Field(default_factory=LatencySettings,
                                     description="a mapping like {runtime: onnxruntime, batch_size: 1, threads: 1}")
    evaluation: EvaluationSettings = Field(
        default_factory=EvaluationSettings, description="a mapping like {kind: supernet, epochs: 10}")
    confirm: ConfirmSettings = Field(
        default_factory=ConfirmSettings, description="a mapping like {top: 12, epochs: 6, seeds: 2, max_seeds: 4}")
    weights: WeightsSettings | None = Field(
        None, description="a weights file, or a mapping like {file: resnet20.pt, identity: true}; null: candidates "
                          "start from a fresh initialisation")

    @_model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """`dataset: fashion-mnist` means `{name: fashion-mnist}`; null sections mean defaults."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if isinstance(data.get("dataset"), str):
            data["dataset"] = {"name": data["dataset"]}
        if isinstance(data.get("weights"), str):
            data["weights"] = {"file": data["weights"]}
        for key in ("proxy", "sampler", "constraints", "backbone_args", "fidelity", "latency", "evaluation", "confirm"):
            if key in data and data[key] is None:
                del data[key]
        return data

    @_model_validator(mode="after")
    def _objectives(self) -> StudyFile:
        if len(set(self.objectives)) != len(self.objectives) or ACCURACY.name not in self.objectives:
            raise _sentence(f"objectives = {self.objectives} must include {ACCURACY.name} and list each objective once")
        return self

    @_model_validator(mode="after")
    def _supernet_has_one_fidelity(self) -> StudyFile:
        if self.fidelity is not None and self.evaluation.kind == "supernet":
            raise _sentence("fidelity rungs train candidates for longer, but evaluation.kind = 'supernet' trains "
                            "none; allowed: remove fidelity, or evaluation.kind proxy")
        return self

    @_model_validator(mode="after")
    def _supernet_has_no_weights(self) -> StudyFile:
        if self.weights is not None and self.evaluation.kind == "supernet":
            raise _sentence("weights start each candidate from a pretrained network, but evaluation.kind = "
                            "'supernet' trains one weight-sharing network from scratch; allowed: remove weights, or "
                            "evaluation.kind proxy")
        return self

    @_model_validator(mode="after")
    def _model_needs_tpe(self) -> StudyFile:
        if self.fidelity is not None and self.fidelity.model == "highest" and self.sampler.name != "tpe":
            raise _sentence(f"fidelity.model = 'highest' needs sampler.name = 'tpe', not {self.sampler.name!r} "
                            "(only TPE's model can be fitted on another rung's trials); allowed: sampler tpe, "
                            "or fidelity.model rung0")
        return self


def validate(model: type[_Model], data: Any, prefix: str = "") -> Any:
    """`model.model_validate(data)`, its first error as one ConfigError line (`prefix` goes
    before field paths, e.g. "proxy.")."""
    if not isinstance(data, Mapping):
        required = [name for name, f in model.model_fields.items() if f.is_required()]
        what = f"a mapping of {', '.join(required)}, ..." if required else "a mapping of settings"
        where = prefix.rstrip(".") or f"the {model.noun.split()[0]} file"
        raise ConfigError(f"{where} must be {what}; got {data!r}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(one_line(model, error.errors()[0], prefix)) from None


def one_line(model: type[_Model], error: Mapping[str, Any], prefix: str = "") -> str:
    """The project's message for one pydantic error."""
    loc = [part for part in error["loc"] if not _is_branch(part)]
    path = prefix + _path(loc)
    owner, field = _field(model, loc)
    if error["type"] == "nas_sentence":  # a model validator's own sentence, under its model's path
        lead = path.rstrip(".")
        return error["msg"] if not lead or error["msg"].startswith(lead) else f"{lead}.{error['msg']}"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(owner.model_fields) if owner is not None else "see `nas schema`"
        noun = owner.noun if owner is not None else "setting"
        return f"{path} is not a {noun}; allowed: {allowed}"
    if error["type"] == "missing":
        parent = _field(model, loc[:-1])[0] if len(loc) > 1 else model  # the mapping the key is missing from
        required = [n for n, f in (parent or model).model_fields.items() if f.is_required()]
        study = parent is StudyFile
        return f"{path} is missing; {'a study needs ' if study else 'required: '}{', '.join(required)}"
    allowed = field.description if field is not None and field.description else error["msg"]
    return f"{path} = {error.get('input')!r} is invalid; allowed: {allowed}"


def _is_branch(part: Any) -> bool:
    """pydantic names union branches in the path ('int', 'tuple[int, int]', 'function-after[...]')."""
    return isinstance(part, str) and ("[" in part or "-" in part or part in ("int", "str", "float", "bool", "dict"))


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field(model: type[_Model], loc: list[Any]) -> tuple[type[_Model] | None, Any]:
    """(the model owning the last name in `loc`, that field or None)."""
    owner: type[_Model] | None = model
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if owner is None or part not in owner.model_fields:
            return owner, None
        field = owner.model_fields[part]
        nested = _optional_of(field.annotation)
        owner = nested if isinstance(nested, type) and issubclass(nested, _Model) else None
    return owner, field


def _optional_of(annotation: Any) -> Any:
    """`X` for `X | None` (a section that may be left out), else the annotation itself."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a study file (`nas schema`), with the search space's kinds and their
    settings filled in from the block registry, so editors can complete them too."""
    from nas.blocks.registry import REGISTRY
    from nas.blocks.settings import PLACEMENTS

    schema = StudyFile.model_json_schema()
    schema["title"] = "nas study file"
    def kind_schema(kind: Any) -> dict[str, Any]:
        """A mapping of settings to lists of choices, or a list of whole variants (one value each)."""
        choices = {"type": "object", "additionalProperties": False,
                   "properties": {s.name: {"type": "array", "description": f"choices; each {s.allowed}"}
                                  for s in kind.settings}}
        variant = {"type": "object", "additionalProperties": False,
                   "properties": {s.name: {"description": s.allowed} for s in kind.settings}}
        return {"anyOf": [choices, {"type": "array", "items": variant}]}

    kinds = {name: kind_schema(kind) for name, kind in REGISTRY.items() if kind.settings}
    space = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kinds": {"type": "array", "items": {"enum": list(REGISTRY)}},
            **kinds,
            "placement": {"type": "array", "items": {"enum": list(PLACEMENTS)}},
            "stages": {"anyOf": [{"const": "all"}, {"type": "array", "items": {"type": "integer", "minimum": 1}}]},
            "choose_stages": {"type": "boolean",
                              "description": "each stage first chooses whether it takes attention, then which kind"},
        },
    }
    schema["properties"]["search_space"] = {"anyOf": [{"type": "string"}, space],
                                            "description": "a search-space file path or an inline mapping"}
    return schema
