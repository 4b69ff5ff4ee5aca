"""The proxy trainer on the synthetic set with a tiny cifar_resnet (a second or two per run)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from conftest import python_child

from nas import ArchConfig, BlockSpec, ConfigError, build_model
from nas.data import Dataset, load_dataset
from nas.train import ProxyConfig, ProxyResult, _crop_flip, _Schedule, evaluate, resolve_device, train_proxy

# One thread: the tiny test models gain nothing from more, and on a shared CI runner OpenMP threads
# that outnumber the free cores make a run ten times slower.
FAST = ProxyConfig(epochs=2, batch_size=64, lr=0.1, threads=1)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("synthetic", image_size=16)


def builder(data: Dataset, kind: str = "se"):
    arch = ArchConfig.uniform(
        "cifar_resnet", BlockSpec(kind), {"depth": 8, "width": 8}, num_classes=data.num_classes,
        in_chans=data.in_chans,
    )
    return lambda: build_model(arch)


def test_learns_the_synthetic_set(data: Dataset) -> None:
    result = train_proxy(builder(data), data, FAST, device="cpu", progress=False)
    assert isinstance(result, ProxyResult)
    assert result.accuracy > 0.6  # chance is 0.1
    assert result.loss < 2.0 and result.train_loss < 2.3
    assert result.epochs_done == 2 and not result.stopped_early and result.device == "cpu"
    assert result.images_per_second > 0 and 0 < result.train_seconds <= result.seconds


def test_same_seed_same_result_other_seed_other_result(data: Dataset) -> None:
    a = train_proxy(builder(data), data, FAST, device="cpu", progress=False)
    b = train_proxy(builder(data), data, FAST, device="cpu", progress=False)
    assert (a.accuracy, a.loss, a.train_loss) == (b.accuracy, b.loss, b.train_loss)
    c = train_proxy(builder(data), data, dataclasses.replace(FAST, seed=1), device="cpu", progress=False)
    assert (c.loss, c.train_loss) != (a.loss, a.train_loss)


def test_builder_is_called_under_the_seed_and_caller_rng_is_kept(data: Dataset) -> None:
    initial: list[dict[str, torch.Tensor]] = []

    def recording_builder() -> torch.nn.Module:
        model = builder(data)()
        initial.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    torch.manual_seed(1234)
    before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    tiny = dataclasses.replace(FAST, epochs=1)
    train_proxy(recording_builder, data, tiny, device="cpu", progress=False)
    train_proxy(recording_builder, data, tiny, device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads_before  # config.threads is restored too
    assert initial[0].keys() == initial[1].keys()
    assert all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0])
    train_proxy(recording_builder, data, dataclasses.replace(tiny, seed=5), device="cpu", progress=False)
    assert not torch.equal(initial[0]["stem.0.weight"], initial[2]["stem.0.weight"])


def test_module_is_trained_in_place_and_evaluate_agrees(data: Dataset) -> None:
    torch.manual_seed(0)
    model = builder(data)()
    result = train_proxy(model, data, FAST, device="cpu", progress=False)
    acc, loss = evaluate(model, data.val, data, device="cpu", batch_size=37)
    assert acc == pytest.approx(result.accuracy, abs=1e-9)
    assert loss == pytest.approx(result.loss, rel=1e-5)
    test_acc, test_loss = evaluate(model, data.test, data, device="cpu")
    assert 0.5 < test_acc <= 1 and test_loss > 0
    assert model.training  # evaluate restores the mode


# Divergence runs in a child process: exploding activations are what native kernels handle worst,
# so a crash there must fail one test with its signal, not abort the suite.
DIVERGE = """
import sys
from nas import ArchConfig, BlockSpec, TrainingDiverged, build_model, load_dataset
from nas.train import ProxyConfig, train_proxy
data = load_dataset("synthetic", subset={subset}, image_size=16)
arch = ArchConfig.uniform("cifar_resnet", BlockSpec("{kind}"), {{"depth": 8, "width": {width}}},
                          num_classes=data.num_classes, in_chans=data.in_chans)
config = ProxyConfig(epochs={epochs}, batch_size={batch}, lr=1e6, warmup=0.0, threads=1)
try:
    train_proxy(lambda: build_model(arch), data, config, device="cpu", progress=False)
except TrainingDiverged as error:
    print(error)
    sys.exit(0)
sys.exit("no TrainingDiverged")
"""


def diverge(**settings: object) -> str:
    """The TrainingDiverged message of a child's run at lr 1e6; fails on a crash or no divergence."""
    values = {"subset": 400, "kind": "se", "width": 8, "epochs": 2, "batch": 64, **settings}
    done = python_child(DIVERGE.format(**values))
    assert done.returncode == 0, f"child exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.strip()


def test_absurd_learning_rate_raises_training_diverged() -> None:
    assert re.search(r"epoch \d+, step \d+ of \d+ \(lr .*peak lr 1e\+06", diverge())


def test_an_exploded_but_finite_loss_is_divergence_too() -> None:
    # Three steps at lr 1e6: the loss reaches ~1e10 yet stays finite, and batch-norm
    # recalibration would make the validation loss finite as well. Width 4 at 16 px is also the
    # model whose channels_last backward corrupted the heap on AVX2 CPUs (README, Known issues).
    message = diverge(subset=200, kind="none", width=4, epochs=1, batch=50)
    assert re.search(r"loss .*e\+\d+ at epoch 1, step 2 of 3 .*above 230\.3", message), message


def test_max_seconds_stops_at_a_step_boundary(data: Dataset) -> None:
    config = dataclasses.replace(FAST, epochs=50, max_seconds=1e-6)
    result = train_proxy(builder(data), data, config, device="cpu", progress=False)
    steps_per_epoch = len(data.train) // config.batch_size
    assert result.stopped_early
    assert result.epochs_done == pytest.approx(1 / steps_per_epoch)  # one step, then the budget check
    assert 0 <= result.accuracy <= 1 and result.loss > 0


def test_on_epoch_reports_each_epoch_and_its_exception_propagates(data: Dataset) -> None:
    seen: list[tuple[int, float]] = []
    result = train_proxy(
        builder(data), data, dataclasses.replace(FAST, epochs=3), device="cpu", progress=False,
        on_epoch=lambda epoch, acc: seen.append((epoch, acc)),
    )
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == result.accuracy

    class Pruned(Exception):
        pass

    def prune(epoch: int, acc: float) -> None:
        raise Pruned(epoch)

    with pytest.raises(Pruned):
        train_proxy(builder(data), data, FAST, device="cpu", progress=False, on_epoch=prune)


def test_progress_bar_only_when_asked(data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = dataclasses.replace(FAST, epochs=1)
    train_proxy(builder(data), data, tiny, device="cpu")  # stderr is not a TTY under pytest
    assert capsys.readouterr().err == ""
    train_proxy(builder(data), data, tiny, device="cpu", progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_batch_larger_than_the_training_set(data: Dataset) -> None:
    result = train_proxy(builder(data), data, dataclasses.replace(FAST, batch_size=4096), device="cpu",
                         progress=False)
    assert result.epochs_done == 2


def test_batch_norm_is_recalibrated_before_evaluation(data: Dataset) -> None:
    torch.manual_seed(0)
    model = builder(data)()
    train_proxy(model, data, dataclasses.replace(FAST, bn_recal=300, eval_batch_size=128), device="cpu",
                progress=False)
    assert int(model.stem[1].num_batches_tracked) == 3  # reset, then 128 + 128 + 44 images
    torch.manual_seed(0)
    model = builder(data)()
    train_proxy(model, data, dataclasses.replace(FAST, bn_recal=0), device="cpu", progress=False)
    assert int(model.stem[1].num_batches_tracked) == 2 * (len(data.train) // FAST.batch_size)


def test_schedule_warms_up_holds_and_decays_to_zero(data: Dataset) -> None:
    config = ProxyConfig(epochs=1, batch_size=9, lr=1.0, warmup=0.1, decay=0.5)  # 100 steps
    schedule = _Schedule.of(config, len(data.train))
    lrs = [schedule.lr_at(step) for step in range(schedule.total_steps)]
    assert schedule.total_steps == 100
    assert lrs[:10] == pytest.approx([(i + 1) / 11 for i in range(10)])
    assert lrs[10:50] == [1.0] * 40
    assert lrs[50:] == pytest.approx([(100 - s) / 50 for s in range(50, 100)])
    triangle = _Schedule.of(dataclasses.replace(config, decay=0.9), len(data.train))
    assert max(triangle.lr_at(s) for s in range(100)) == 1.0 and triangle.lr_at(99) == pytest.approx(1 / 90)


def test_crop_and_flip_move_pixels_as_drawn() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    centre = torch.full((2, 2), 2)
    none = torch.zeros(2, dtype=torch.bool)
    assert torch.equal(_crop_flip(x, centre, none, pad=2), x)
    assert torch.equal(_crop_flip(x, centre, ~none, pad=2), x.flip(3))
    # shift (0, 0): the top-left crop of the padded image, i.e. x moved down and right by pad
    corner = _crop_flip(x, torch.zeros(2, 2, dtype=torch.long), none, pad=1)
    assert torch.equal(corner[:, :, 1:, 1:], x[:, :, :-1, :-1])
    assert corner[:, :, 0, :].sum() == 0 and corner[:, :, :, 0].sum() == 0
    # per-image draws: image 0 flipped, image 1 shifted up by one row
    mixed = _crop_flip(x, torch.tensor([[1, 2], [1, 1]]), torch.tensor([True, False]), pad=1)
    assert torch.equal(mixed[0], x[0].flip(2))
    assert torch.equal(mixed[1, :, :-1], x[1, :, 1:])


# ---------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs = 0 is invalid; allowed: an integer >= 1"),
        ({"epochs": 1.5}, "epochs = 1.5 is invalid"),
        ({"lr": -0.1}, "lr = -0.1 is invalid; allowed: a number > 0"),
        ({"lr": float("nan")}, "lr = nan is invalid"),
        ({"momentum": 1.0}, "momentum = 1.0 is invalid; allowed: a number in [0, 1)"),
        ({"label_smoothing": 1}, "label_smoothing = 1 is invalid"),
        ({"warmup": -0.1}, "warmup = -0.1 is invalid"),
        ({"decay": 1.5}, "decay = 1.5 is invalid; allowed: a fraction in [0, 1]"),
        ({"warmup": 0.5, "decay": 0.6}, "warmup + decay = 0.5 + 0.6 is invalid; allowed: a sum <= 1"),
        ({"bn_recal": -1}, "bn_recal = -1 is invalid; allowed: an integer >= 0"),
        ({"max_seconds": 0}, "max_seconds = 0 is invalid; allowed: a number > 0 or null"),
        ({"batch_size": True}, "batch_size = True is invalid"),
        ({"augment": "yes"}, "augment = 'yes' is invalid; allowed: true or false"),
        ({"precision": "fp16"}, "precision = 'fp16' is invalid; allowed: auto, fp32, bf16"),
        ({"threads": 0}, "threads = 0 is invalid; allowed: an integer >= 1"),
        ({"momentum": 0.0}, "nesterov = true needs momentum > 0"),
    ],
)
def test_proxy_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ProxyConfig(**kwargs)
    assert message in str(info.value)


def test_proxy_config_from_dict() -> None:
    config = ProxyConfig.from_dict({"epochs": 3, "lr": "1e-3", "max_seconds": 60})
    assert (config.epochs, config.lr, config.max_seconds) == (3, 0.001, 60)
    assert ProxyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError) as info:
        ProxyConfig.from_dict({"epoch": 3})
    assert "proxy.epoch is not a proxy setting; allowed: epochs, batch_size, lr" in str(info.value)
    with pytest.raises(ConfigError, match=r"proxy\.epochs = 0 is invalid"):
        ProxyConfig.from_dict({"epochs": 0})
    with pytest.raises(ConfigError, match=r"proxy\.lr = 'fast' is invalid"):
        ProxyConfig.from_dict({"lr": "fast"})


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device = 'tpu' is not a device; allowed: auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="device = 'mps' is not supported"):
        resolve_device("mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device = 'cuda:1' but CUDA is not available"):
            resolve_device("cuda:1")


def test_train_proxy_rejects_a_non_dataset(data: Dataset) -> None:
    with pytest.raises(TypeError, match="load_dataset"):
        train_proxy(builder(data), {"train": None}, FAST, device="cpu")  # type: ignore[arg-type]
