"""`nas train`: per-epoch progress, a validation-fraction option, refusals of an architecture
that does not fit the dataset, and saved weights that reproduce the reported test accuracy
through the README's recipe (`build_model` + `load_state_dict` + the saved preprocessing).
Training runs the real command; the refusals run through `nas.cli.main` in this process."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from conftest import nas, nas_in_process

import nas as nas_api
from nas import ArchConfig, BlockSpec

DATA = ["--dataset", "synthetic", "--subset", "300", "--image-size", "16"]


def write_arch(folder, name="arch.yaml", **changes):
    arch = ArchConfig("cifar_resnet", (BlockSpec("se", reduction=4), BlockSpec("none"), BlockSpec("eca")),
                      {"depth": 8, "width": 8}, num_classes=10, in_chans=3)
    path = folder / name
    path.write_text(yaml.safe_dump({**arch.to_dict(), **changes}, sort_keys=False))
    return path


def test_saved_weights_and_preprocessing_reproduce_the_reported_test_accuracy(tmp_path):
    arch = write_arch(tmp_path)
    result = nas("train", arch.name, *DATA, "--epochs", "2", "--val-fraction", "0.3", "--device", "cpu",
                 "--save", "model.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^epoch 1/2: validation accuracy \d\.\d{4}", out, re.M)
    assert re.search(r"^epoch 2/2: validation accuracy \d\.\d{4}", out, re.M)
    assert "on 90 images" in out  # --val-fraction 0.3 of the 300-image subset
    reported = float(re.search(r"^test accuracy (\d\.\d{4})", out, re.M).group(1))

    # the README's recipe, word for word
    checkpoint = torch.load(tmp_path / "model.pt")
    model = nas_api.build_model(nas_api.ArchConfig.from_dict(checkpoint["arch"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    pre = checkpoint["preprocessing"]
    mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)

    test = nas_api.load_dataset("synthetic", image_size=16).test  # uint8 N x C x H x W at pre["image_size"]
    assert list(test.images.shape[1:]) == [pre["in_chans"], *pre["image_size"]]
    with torch.no_grad():
        logits = model((test.images.float() / 255 - mean) / std)
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(reported, abs=1.5 / len(test.labels))  # the 4-digit rounding, and one image
    assert checkpoint["metrics"]["test_accuracy"] == pytest.approx(accuracy, abs=1.5 / len(test.labels))
    with torch.no_grad():  # without the saved normalisation the same weights are not the reported model
        raw = (model(test.images.float() / 255).argmax(1) == test.labels).float().mean().item()
    assert raw != accuracy


def test_an_architecture_that_does_not_fit_the_dataset_is_refused(tmp_path):
    four = write_arch(tmp_path, "four.yaml", num_classes=4)
    result = nas_in_process("train", four.name, *DATA, "--epochs", "1", "--save", "w.pt", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "four.yaml: num_classes = 4 but synthetic has 10 classes; allowed: --resize-head" in result.stderr
    gray = write_arch(tmp_path, "gray.yaml", in_chans=1)
    result = nas_in_process("train", gray.name, *DATA, "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "gray.yaml: in_chans = 1 but synthetic images have 3 channel(s); allowed: --in-chans 1" in result.stderr
    result = nas_in_process("train", four.name, *DATA, "--epochs", "1", "--save", "no/such/w.pt", cwd=tmp_path)
    assert result.returncode == 2 and "--save no/such/w.pt: the folder no/such does not exist" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["four.yaml", "gray.yaml"]


def test_resize_head_and_in_chans_say_what_they_change(tmp_path):
    four = write_arch(tmp_path, "four.yaml", num_classes=4, in_chans=1)
    result = nas("train", four.name, *DATA, "--epochs", "1", "--resize-head", "--in-chans", "1",
                 "--save", "w.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: --resize-head: the classifier has 10 outputs, not the architecture file's 4" in result.stdout
    checkpoint = torch.load(tmp_path / "w.pt")
    assert checkpoint["arch"]["num_classes"] == 10 and checkpoint["preprocessing"]["in_chans"] == 1
    model = nas_api.build_model(nas_api.ArchConfig.from_dict(checkpoint["arch"]))
    model.load_state_dict(checkpoint["state_dict"])
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
