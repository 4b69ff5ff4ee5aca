"""Pretrained weights from a local file: what loads where, what is refused, what a study records.

Every checkpoint here is made by the test (random weights saved to a temporary file): no download
can work in CI, and none is needed to check that the right tensor lands in the right place.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import nas_in_process, write_study

from nas.arch import ArchConfig, load_arch
from nas.backbones.pretrained import PRETRAINED_ATTR
from nas.backbones.weights import Pretrained
from nas.blocks import BlockSpec
from nas.blocks.identity import IdentityStart
from nas.blocks.registry import BLOCK_KINDS
from nas.build import build_model
from nas.errors import ConfigError

CIFAR = {"depth": 8, "width": 4}
MOBILE = {"small_input": True, "width_mult": 0.25}


def save_none(path: Path, backbone: str = "cifar_resnet", args: dict | None = None, kind: str = "none",
              num_classes: int = 10, checkpoint: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 'pretrained' network at random weights: as `nas train --save` writes it (`checkpoint`) or a
    plain state dict (what torchvision and timm ship). Returns its state dict."""
    torch.manual_seed(seed)
    arch = ArchConfig.uniform(backbone, BlockSpec(kind), args or {}, num_classes)
    model = build_model(arch)
    with torch.no_grad():  # batch-norm statistics that are not the defaults, so loading them shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"arch": arch.to_dict(), "state_dict": state} if checkpoint else state, path)
    return state


def with_weights(backbone: str, args: dict, stages: tuple[BlockSpec, ...], file: Path, num_classes: int = 10,
                 identity: bool = True) -> ArchConfig:
    return ArchConfig(backbone, stages, args, num_classes, weights=Pretrained.of(file, identity))


def uniform(kind: str, placement: str = "block") -> BlockSpec:
    return BlockSpec.paper_default(kind, placement) if kind in BLOCK_KINDS else BlockSpec(kind)


# -- 1. loading -----------------------------------------------------------------------------------


def test_a_nas_checkpoint_loads_every_tensor_and_a_new_classifier_for_other_classes(tmp_path):
    file = tmp_path / "none.pt"
    state = save_none(file, args=CIFAR)
    model = build_model(with_weights("cifar_resnet", CIFAR, (uniform("se"),) * 3, file, num_classes=7))
    got = model.state_dict()
    assert got["fc.weight"].shape == (7, 16)  # the classifier is the task's
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        mapped = key.replace(".attn.", ".attn.block.")
        assert torch.equal(got[mapped], value), key
    assert "fc.weight" not in getattr(model, PRETRAINED_ATTR)
    assert "stem.0.weight" in getattr(model, PRETRAINED_ATTR)
    assert not any("attn" in name for name in getattr(model, PRETRAINED_ATTR))


def test_a_stage_block_renames_keys_and_still_loads(tmp_path):
    file = tmp_path / "none.pt"
    state = save_none(file, args=CIFAR)
    model = build_model(with_weights("cifar_resnet", CIFAR, (uniform("eca", "stage"),) * 3, file))
    got = model.state_dict()
    assert torch.equal(got["stages.1.0.0.conv1.weight"], state["stages.1.0.conv1.weight"])
    assert torch.equal(got["fc.weight"], state["fc.weight"])  # same classes: the classifier is kept


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_torchvision_state_dict_own_keeps_none_strips_a_block_replaces(tmp_path, fmt):
    file = tmp_path / f"mnv3.{fmt}"
    torch_file = tmp_path / "mnv3.pt"
    state = save_none(torch_file, "mobilenet_v3_small", MOBILE, kind="own", checkpoint=False)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, file)
    se_keys = [k for k in state if ".fc1." in k]  # torchvision's SqueezeExcitation
    assert se_keys
    own = build_model(with_weights("mobilenet_v3_small", MOBILE, (BlockSpec("own"),) * 4, file)).state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)  # the designer's network, tensor for tensor
    none = build_model(with_weights("mobilenet_v3_small", MOBILE, (BlockSpec("none"),) * 4, file)).state_dict()
    assert not any(".fc1." in k for k in none)
    assert all(torch.equal(v, state[k]) for k, v in none.items())
    expand = build_model(with_weights("mobilenet_v3_small", MOBILE, (uniform("eca", "expand"),) * 4, file))
    assert not any(type(m).__name__ == "SqueezeExcitation" for m in expand.modules())
    assert sum(isinstance(m, IdentityStart) for m in expand.modules()) == 11  # one per unit


def test_timm_model_loads_its_state_dict(tmp_path):
    file = tmp_path / "timm.pt"
    args: dict = {}
    state = save_none(file, "timm:mobilenetv3_small_050", args, kind="own", checkpoint=False)
    model = build_model(with_weights("timm:mobilenetv3_small_050", args, (uniform("se", "stage"),) * 5, file))
    got = model.state_dict()
    assert torch.equal(got["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(got["classifier.weight"], state["classifier.weight"])


def test_an_export_with_weights_round_trips_and_builds_from_the_file(tmp_path):
    file = tmp_path / "none.pt"
    save_none(file, args=CIFAR)
    arch = with_weights("cifar_resnet", CIFAR, (uniform("cbam"),) * 3, file)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "best.yaml").write_text(yaml.safe_dump({**arch.to_dict(), "weights": {
        **arch.weights.to_dict(), "file": "../none.pt"}}))  # relative: against the architecture file
    again = load_arch(folder / "best.yaml")
    assert again.weights.sha256 == arch.weights.sha256 and again.arch_id == arch.arch_id
    assert isinstance(build_model(folder / "best.yaml").stages[0][0].attn, IdentityStart)


# -- 2. identity insertion ------------------------------------------------------------------------

RESIDUAL = ("block", "pre", "post", "identity", "stage")
INVERTED = ("block", "expand", "stage")


def _outputs_equal(reference: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor) -> float:
    """The largest difference of the outputs, in eval mode and in training mode (batch statistics;
    the same dropout draws in both)."""
    def train(net: torch.nn.Module) -> torch.Tensor:
        torch.manual_seed(0)
        return net.train()(x)

    with torch.no_grad():
        return max(float((reference.eval()(x) - model.eval()(x)).abs().max()),
                   float((train(reference) - train(model)).abs().max()))


@pytest.mark.parametrize(("kind", "placement"), list(itertools.product(BLOCK_KINDS, RESIDUAL)))
def test_every_block_starts_as_the_identity_on_a_resnet(tmp_path, kind, placement):
    file = tmp_path / "none.pt"
    save_none(file, args=CIFAR)
    pretrained = build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, file))
    model = build_model(with_weights("cifar_resnet", CIFAR, (uniform(kind, placement),) * 3, file))
    assert _outputs_equal(pretrained, model, torch.randn(4, 3, 16, 16)) <= 1e-5
    paper = build_model(with_weights("cifar_resnet", CIFAR, (uniform(kind, placement),) * 3, file, identity=False))
    assert _outputs_equal(pretrained, paper, torch.randn(4, 3, 16, 16)) > 1e-3  # what identity insertion avoids


@pytest.mark.parametrize(("kind", "placement"), list(itertools.product(BLOCK_KINDS, INVERTED)))
def test_every_block_starts_as_the_identity_on_a_mobilenet_v3(tmp_path, kind, placement):
    file = tmp_path / "none.pt"
    save_none(file, "mobilenet_v3_small", MOBILE)  # a `none` checkpoint: the pretrained network has no SE
    pretrained = build_model(with_weights("mobilenet_v3_small", MOBILE, (BlockSpec("none"),) * 4, file))
    model = build_model(with_weights("mobilenet_v3_small", MOBILE, (uniform(kind, placement),) * 4, file))
    assert _outputs_equal(pretrained, model, torch.randn(4, 3, 32, 32)) <= 1e-5


@pytest.mark.parametrize("kind", BLOCK_KINDS)
def test_every_new_parameter_receives_gradient(tmp_path, kind):
    """At step 0 only each block's `scale` can (the block's output is multiplied by it, 0); after one
    step every parameter of every block does."""
    file, args = tmp_path / "none.pt", {"depth": 8, "width": 16}
    save_none(file, args=args)
    # MLPs 4+ wide (a 1-wide ReLU layer can be dead from the start, attention or not); GE with its
    # parameterised gather and MLP: every parameter a kind can have
    settings = {"ge": {"extent": 2, "gather": "conv", "reduction": 4}, "se": {"reduction": 4},
                "cbam": {"reduction": 4}, "coord": {"reduction": 4}}.get(kind, {})
    spec = BlockSpec.from_dict({"kind": kind, **settings})
    model = build_model(with_weights("cifar_resnet", args, (spec,) * 3, file))
    new = {n: p for n, p in model.named_parameters() if n not in getattr(model, PRETRAINED_ATTR) and ".attn." in n}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    for step in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if step == 0:
            assert all(p.grad.abs().sum() > 0 for n, p in new.items() if n.endswith(".scale"))
        optimizer.step()
    no_gradient = [n for n, p in new.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_gradient


# -- 4. bad input ---------------------------------------------------------------------------------


def _refused(arch_or_call, *match: str) -> str:
    with pytest.raises(ConfigError) as info:
        arch_or_call()
    message = str(info.value)
    assert "\n" not in message
    for piece in match:
        assert piece in message, message
    return message


def test_missing_truncated_and_foreign_files_are_one_line(tmp_path):
    _refused(lambda: Pretrained.of(tmp_path / "gone.pt"), "weights.file", "gone.pt", "no such file")
    file = tmp_path / "none.pt"
    save_none(file, args=CIFAR)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(file.read_bytes()[:2000])
    arch = with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, truncated)
    _refused(lambda: build_model(arch), "weights.file", "truncated.pt", "cannot be read")
    foreign = tmp_path / "notes.pt"
    foreign.write_text("not weights at all\n")
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, foreign)),
             "notes.pt", "cannot be read")
    half = tmp_path / "half.safetensors"
    from safetensors.torch import save_file

    save_file({"stem.0.weight": torch.zeros(4, 3, 3, 3)}, half)
    half.write_bytes(half.read_bytes()[:-40])
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, half)),
             "half.safetensors", "safetensors")


def test_a_changed_file_is_refused_by_its_hash(tmp_path):
    file = tmp_path / "none.pt"
    save_none(file, args=CIFAR)
    arch = with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, file)
    save_none(file, args=CIFAR, seed=1)
    _refused(lambda: build_model(arch), "sha256", "none.pt")


def test_another_width_or_backbone_names_the_key_and_both_shapes(tmp_path):
    wide = tmp_path / "wide.pt"
    save_none(wide, args={"depth": 8, "width": 8}, checkpoint=False)
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, wide)),
             "'stem.0.weight'", "[8, 3, 3, 3]", "[4, 3, 3, 3]")
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3,
                                              _checkpoint(tmp_path, {"depth": 8, "width": 8}))),
             "backbone_args.width = 8", "is 4")
    grey = ArchConfig("cifar_resnet", (BlockSpec("none"),) * 3, CIFAR, 10, in_chans=1,
                      weights=Pretrained.of(_plain(tmp_path)))
    _refused(lambda: build_model(grey), "'stem.0.weight'", "[4, 3, 3, 3]", "[4, 1, 3, 3]", "dataset.in_chans: 3")
    mobile = tmp_path / "mobile.pt"
    save_none(mobile, "mobilenet_v3_small", MOBILE, kind="own", checkpoint=False)
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, mobile)),
             "mobile.pt", "key 'features.0.0.weight'", "is not in cifar_resnet")
    deeper = tmp_path / "deeper.pt"
    save_none(deeper, args={"depth": 14, "width": 4}, checkpoint=False)
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, deeper)),
             "key 'stages.0.1.conv1.weight'", "is not in cifar_resnet")
    partial = tmp_path / "partial.pt"
    state = save_none(partial, args=CIFAR, checkpoint=False)
    torch.save({k: v for k, v in state.items() if k != "stem.1.weight"}, partial)
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (BlockSpec("none"),) * 3, partial)),
             "key 'stem.1.weight'", "[4]", "is missing")


def _plain(tmp_path: Path) -> Path:
    file = tmp_path / "plain.pt"
    save_none(file, args=CIFAR, checkpoint=False)
    return file


def _checkpoint(tmp_path: Path, args: dict) -> Path:
    file = tmp_path / f"ckpt-{args['width']}.pt"
    save_none(file, args=args)
    return file


def test_own_needs_a_file_with_the_designers_attention(tmp_path):
    file = tmp_path / "none.pt"
    save_none(file, "mobilenet_v3_small", MOBILE)
    _refused(lambda: build_model(with_weights("mobilenet_v3_small", MOBILE, (BlockSpec("own"),) * 4, file)),
             "stages[1].kind = 'own'", "none.pt")


@pytest.mark.parametrize(("backbone", "tag", "where"), [
    ("mobilenet_v3_small", "IMAGENET1K_V1", "https://download.pytorch.org/models/mobilenet_v3_small"),
    ("resnet18", "DEFAULT", "checkpoints/resnet18"),
    ("timm:mobilenetv3_small_100", "imagenet", "timm/mobilenetv3_small_100"),
])
def test_a_hub_name_says_where_the_file_would_come_from(tmp_path, backbone, tag, where):
    _refused(lambda: Pretrained.of(tag, backbone=backbone), f"weights.file = {tag!r}", "never downloads", where,
             "weights: <path")


# -- the study: recorded, checked before anything is written, refused on resume with another file -


def _study(tmp_path: Path, file: str, **overrides) -> Path:
    return write_study(tmp_path, weights=file, trials=3, baselines=["none", "se"],
                       dataset={"name": "synthetic", "subset": 200, "image_size": 16, "in_chans": 3}, **overrides)


def test_a_study_records_the_file_refuses_another_and_exports_it(tmp_path):
    save_none(tmp_path / "none.pt", args={"depth": 8, "width": 4})
    study = _study(tmp_path, "none.pt")
    done = nas_in_process("search", study, "--no-progress")
    assert done.returncode == 0, done.stderr
    stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/tiny.db")
    sha = Pretrained.of(tmp_path / "none.pt").sha256
    assert stored.user_attrs["weights"] == {"file": str(tmp_path / "none.pt"), "sha256": sha, "identity": True}
    out = tmp_path / "best.yaml"
    assert nas_in_process("export", study, "-o", out).returncode == 0
    exported = yaml.safe_load(out.read_text())
    assert exported["weights"]["sha256"] == sha and exported["provenance"]["weights"]["sha256"] == sha
    assert isinstance(build_model(out), torch.nn.Module)
    checked = nas_in_process("check", study)
    assert checked.returncode == 0 and f"sha256 {sha[:12]}" in checked.stdout, checked.stderr
    trained = nas_in_process("train", out, "--dataset", "synthetic", "--subset", "200", "--image-size", "16",
                             "--in-chans", "3", "--epochs", "1", "--batch-size", "50", "--save", tmp_path / "ft.pt",
                             "--onnx", tmp_path / "ft.onnx")
    assert trained.returncode == 0, trained.stderr
    _onnx_matches_checkpoint(tmp_path / "ft.onnx", tmp_path / "ft.pt")
    nowhere = nas_in_process("train", out, "--dataset", "synthetic", "--onnx", tmp_path / "nope" / "x.onnx")
    assert nowhere.returncode == 2 and "--onnx" in nowhere.stderr and "does not exist" in nowhere.stderr
    refined = nas_in_process("refine", study, "--top", "1", "--epochs", "1", "--seeds", "1")
    assert refined.returncode == 0, refined.stderr

    save_none(tmp_path / "other.pt", args={"depth": 8, "width": 4}, seed=3)
    before = _rows(tmp_path / "tiny.db")
    refused = nas_in_process("search", _study(tmp_path, "other.pt"), "--no-progress")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "other.pt" in refused.stderr and "was created with" in refused.stderr
    assert _rows(tmp_path / "tiny.db") == before


def _onnx_matches_checkpoint(onnx: Path, checkpoint: Path) -> None:
    """The fine-tuned model as ONNX computes what its PyTorch checkpoint computes."""
    import onnxruntime as ort

    saved = torch.load(checkpoint, weights_only=True)
    model = build_model(ArchConfig.from_dict(saved["arch"]))  # the pretrained file, then the fine-tuned weights
    model.load_state_dict(saved["state_dict"])
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert abs(got - expected).max() < 1e-4
    assert any(isinstance(m, IdentityStart) for m in model.modules()) or saved["arch"]["stages"][0]["kind"] == "none"


def _rows(db: Path) -> list:
    """Every row of every table of an SQLite file: what a refused command must leave as it was."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(t, sorted(map(repr, connection.execute(f"SELECT * FROM {t}")))) for t in sorted(tables)]


@pytest.mark.parametrize(("setup", "match"), [
    ("missing", "no such file"),
    ("wide", "[8, 3, 3, 3]"),
    ("hub", "never downloads"),
])
def test_a_bad_weights_file_in_a_study_is_exit_2_and_nothing_written(tmp_path, setup, match):
    if setup == "wide":
        save_none(tmp_path / "w.pt", args={"depth": 8, "width": 8}, checkpoint=False)
    value = {"missing": "gone.pt", "wide": "w.pt", "hub": "DEFAULT"}[setup]
    study = _study(tmp_path, value)
    result = nas_in_process("search", study, "--no-progress")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and match in result.stderr and str(study) in result.stderr
    assert "weights" in result.stderr
    assert not (tmp_path / "tiny.db").exists()


# -- 3. the fine-tuning proxy ---------------------------------------------------------------------


def _fine_tune(tmp_path: Path, **settings) -> tuple[torch.nn.Module, dict[str, torch.Tensor], list]:
    from nas.data import load_dataset
    from nas.train import ProxyConfig, train_proxy

    file = tmp_path / "none.pt"
    save_none(file, args=CIFAR)
    model = build_model(with_weights("cifar_resnet", CIFAR, (uniform("se"),) * 3, file))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = load_dataset("synthetic", subset=200, image_size=16)
    snapshots: list[dict[str, torch.Tensor]] = []
    config = ProxyConfig(epochs=2, batch_size=50, **settings)
    train_proxy(model, data, config, "cpu", on_epoch=lambda e, a: snapshots.append(
        {n: p.detach().clone() for n, p in model.named_parameters()}))
    return model, before, snapshots


def test_freeze_epochs_train_only_the_new_parameters_first(tmp_path):
    model, before, snapshots = _fine_tune(tmp_path, freeze_epochs=1)
    pretrained = getattr(model, PRETRAINED_ATTR)
    after_one = snapshots[0]
    assert all(torch.equal(after_one[n], before[n]) for n in pretrained)
    assert all(not torch.equal(after_one[n], before[n]) for n in before if n.endswith(".scale"))
    assert any(not torch.equal(snapshots[1][n], before[n]) for n in pretrained)  # then everything trains


def test_backbone_lr_scale_slows_only_the_pretrained_parameters(tmp_path):
    def moved(scale: float) -> tuple[float, float]:
        model, before, snapshots = _fine_tune(tmp_path, backbone_lr_scale=scale, weight_decay=0.0)
        pretrained = getattr(model, PRETRAINED_ATTR)
        old = sum(float((snapshots[-1][n] - before[n]).abs().sum()) for n in pretrained if n == "stem.0.weight")
        new = sum(float((snapshots[-1][n] - before[n]).abs().sum()) for n in before if n.endswith(".scale"))
        return old, new

    full, slow = moved(1.0), moved(0.01)
    assert slow[0] < 0.1 * full[0]
    assert slow[1] > 0.1 * full[1]  # the new parameters still learn at lr


def test_fine_tuning_settings_leave_old_proxy_keys_alone():
    from nas.train import ProxyConfig

    assert "backbone_lr_scale" not in ProxyConfig().key_dict()
    assert ProxyConfig(backbone_lr_scale=0.1).key_dict()["backbone_lr_scale"] == 0.1
    with pytest.raises(ConfigError, match="freeze_epochs = 2 is invalid for epochs = 2"):
        ProxyConfig(epochs=2, freeze_epochs=2)


def test_the_study_file_section_shorthand_defaults_and_refusals():
    from nas.validation import StudyFile, validate

    base = {"name": "s", "backbone": "cifar_resnet", "dataset": "synthetic", "search_space": {"kinds": ["none"]}}
    assert validate(StudyFile, {**base, "weights": "a.pt"}).weights.model_dump() == {"file": "a.pt", "identity": True}
    with pytest.raises(ConfigError, match="weights.idenity is not a weights setting; allowed: file, identity"):
        validate(StudyFile, {**base, "weights": {"file": "a.pt", "idenity": False}})
    with pytest.raises(ConfigError, match="evaluation.kind = 'supernet' trains one weight-sharing network"):
        validate(StudyFile, {**base, "weights": "a.pt", "evaluation": {"kind": "supernet"}})


def test_a_nas_train_save_checkpoint_is_a_weights_file(tmp_path):
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec("none"), CIFAR, 10)
    (tmp_path / "none.yaml").write_text(arch.to_yaml())
    trained = nas_in_process("train", tmp_path / "none.yaml", "--dataset", "synthetic", "--subset", "200",
                             "--image-size", "16", "--in-chans", "3", "--epochs", "1", "--batch-size", "50",
                             "--save", tmp_path / "none.pt")
    assert trained.returncode == 0, trained.stderr
    saved = torch.load(tmp_path / "none.pt", weights_only=True)["state_dict"]
    model = build_model(with_weights("cifar_resnet", CIFAR, (uniform("ge"),) * 3, tmp_path / "none.pt", 5))
    assert torch.equal(model.state_dict()["stages.2.0.conv2.weight"], saved["stages.2.0.conv2.weight"])
    with_blocks = tmp_path / "se-trained.pt"
    torch.save({"arch": ArchConfig.uniform("cifar_resnet", uniform("se"), CIFAR, 10).to_dict(),
                "state_dict": saved}, with_blocks)
    _refused(lambda: build_model(with_weights("cifar_resnet", CIFAR, (uniform("se"),) * 3, with_blocks)),
             "stages[1].kind = 'se'", "a network without blocks")
