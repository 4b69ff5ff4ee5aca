"""nas.noise: the `noise` record a search writes and the front reads back, the single-evaluation
fallback order, and the tie rule every comparison of accuracies goes through."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest

from nas.errors import StudyError
from nas.noise import (
    BINOMIAL,
    NOISE,
    TIE_FACTOR,
    UNKNOWN,
    binomial_std,
    compare,
    difference_std,
    noise_applies,
    noise_record,
    pooled_std,
    read_noise,
    single_std,
    ties,
    val_size_of,
)


@dataclasses.dataclass
class Acc:
    accuracy: float
    accuracy_std: float | None
    n_evals: int = 1


def test_noise_record_holds_the_seed_std_and_the_evaluation_part_of_it():
    record = noise_record([0.70, 0.72, 0.74, 0.68], 500, arch_id="s1:none", epochs=1, proxy_key="abc")
    mean = 0.71
    std = math.sqrt(sum((a - mean) ** 2 for a in (0.70, 0.72, 0.74, 0.68)) / 3)
    eval_std = math.sqrt(mean * (1 - mean) / 500)
    assert record == pytest.approx({
        "accuracy_std": std, "n": 4, "accuracy": mean, "arch_id": "s1:none", "epochs": 1, "proxy_key": "abc",
        "val_size": 500, "eval_std": eval_std,
    })
    with pytest.raises(ValueError, match="2 or more seeds"):
        noise_record([0.7], 500, arch_id="a", epochs=1)


def test_a_noise_record_survives_a_study_attribute_and_a_malformed_one_is_refused():
    study = optuna.create_study()
    study.set_user_attr("noise", noise_record([0.70, 0.74], 500, arch_id="a", epochs=1))
    assert read_noise(study.user_attrs)["accuracy_std"] == pytest.approx(math.sqrt(0.0008))
    assert read_noise({}) is None
    for bad in ({"accuracy_std": -0.1, "n": 3}, {"accuracy_std": 0.01, "n": 1}, 0.02, {"n": 3}):
        with pytest.raises(StudyError, match="'noise' attribute is malformed"):
            read_noise({"noise": bad})


def test_a_single_evaluation_takes_the_measured_noise_then_the_binomial_lower_bound_then_nothing():
    noise = noise_record([0.70, 0.74], 500, arch_id="a", epochs=1, proxy_key="k")
    assert single_std(0.8, noise, 1000) == (noise["accuracy_std"], NOISE)
    assert single_std(0.8, None, 1000) == (pytest.approx(math.sqrt(0.8 * 0.2 / 1000)), BINOMIAL)
    assert single_std(0.8, None, None) == (None, UNKNOWN)
    # the noise holds only at the fidelity it was measured at
    assert noise_applies(noise, 1, "k") and noise_applies(noise, None, None)
    assert not noise_applies(noise, 3, "k") and not noise_applies(noise, 1, "other") and not noise_applies(None, 1, "k")


def test_the_validation_size_comes_from_the_trial_the_study_or_the_dataset_subset():
    study = {"val_size": 800, "dataset": {"name": "fashion-mnist", "subset": 5000, "val_fraction": 0.1}}
    assert val_size_of({"val_size": 600}, study) == 600
    assert val_size_of({}, study) == 800
    assert val_size_of({}, {"dataset": {"subset": 5000, "val_fraction": 0.1}}) == 500
    assert val_size_of({}, {"dataset": {"subset": 200}}) == 20  # val_fraction's default, 0.1
    assert val_size_of({}, {"dataset": {"name": "fashion-mnist"}}) is None  # the whole pool: size unknown
    assert binomial_std(0.5, 100) == pytest.approx(0.05)


def test_two_accuracies_tie_within_two_standard_errors_of_their_difference():
    assert TIE_FACTOR == 2.0
    a = Acc(0.70, 0.03)
    threshold = TIE_FACTOR * 0.03 * math.sqrt(2)  # 0.0849
    assert ties(a, Acc(0.70 + threshold - 1e-6, 0.03)) and compare(Acc(0.78, 0.03), a) == "tie"
    assert not ties(a, Acc(0.70 + threshold + 1e-6, 0.03))
    assert compare(Acc(0.79, 0.03), a) == "better" and compare(a, Acc(0.79, 0.03)) == "worse"
    # four evaluations each halve the standard error: 0.05 is then beyond noise
    assert difference_std(Acc(0.75, 0.03, 4), Acc(0.70, 0.03, 4)) == pytest.approx(0.03 * math.sqrt(2) / 2)
    assert compare(Acc(0.75, 0.03, 4), Acc(0.70, 0.03, 4)) == "better" and ties(Acc(0.75, 0.03), a)
    # each side's own std and count
    assert difference_std(Acc(0.7, 0.04, 4), Acc(0.7, 0.03, 1)) == pytest.approx(math.sqrt(0.04**2 / 4 + 0.03**2))
    assert ties(a, Acc(0.9, None)) is None and compare(a, Acc(0.9, None)) == "unknown"


def test_the_pooled_seed_std_weighs_each_architecture_by_its_degrees_of_freedom():
    # variances 0.0004 (2 df) and 0.0002 (1 df); a single run adds nothing
    pooled = pooled_std([[0.80, 0.82, 0.78], [0.60, 0.62], [0.5]])
    assert pooled == pytest.approx(math.sqrt((2 * 0.0004 + 1 * 0.0002) / 3))
    assert pooled_std([[0.7, 0.74, 0.78]]) == pytest.approx(0.04)
    assert pooled_std([[0.7], [0.6]]) is None and pooled_std([]) is None
