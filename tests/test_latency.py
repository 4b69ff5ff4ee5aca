"""Latency as a cost: named conditions, measurement with its interval, the table (keying,
refusals, resume, prediction), the latency objective, and the front/export columns.

Figures (how well a table predicts, what attention costs) live in benchmarks/latency_table.py;
these tests hold behaviour. Timing here is loose on purpose: a busy CI machine must not fail them.
The commands run through `nas.cli.main` in this process (`nas_in_process`), sparing a torch import
per command; a resumed search runs as the real command, in a process of its own.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import nas, nas_in_process, write_study
from optuna.trial import TrialState
from torch import nn

from nas import ArchConfig, BlockSpec, ConfigError, LatencyConditions, ProxyResult, load_table, search
from nas.errors import MachineBusy
from nas.latency import builder, runtime
from nas.latency.builder import LatencyTarget, build_table
from nas.latency.conditions import device_signature
from nas.latency.measure import Measurement, mean_ci, measure_ratios, median_ci
from nas.latency.runtime import Runner, make_runner
from nas.latency.table import LatencyTable, fit_scale, partial_path, percentile, spearman
from nas.space import SearchSpace
from nas.studyfile import load_study_config

# loose settings: a tiny network, a wide interval, few checks; the defaults are for real tables
QUICK = {"target": 0.25, "check": 4, "max_seconds": 5}
SPACE = {"kinds": ["none", "se", "cbam"], "se": {"reduction": [2, 4]}}


def stub(arch, data, proxy, device):
    """Attention "helps" a little per stage; no training."""
    accuracy = 0.5 + 0.05 * sum(spec.kind != "none" for spec in arch.stages)
    return ProxyResult(accuracy=accuracy, loss=1.0, train_loss=1.0, seconds=0.01, train_seconds=0.01,
                       images_per_second=1.0, epochs_done=proxy.epochs, stopped_early=False, device="cpu")


def latency_study(folder: Path, **overrides) -> Path:
    settings = {"objectives": ["accuracy", "latency"], "search_space": SPACE, "latency": QUICK,
                "baselines": ["none", "cbam"], "trials": 4, **overrides}
    return write_study(folder, **settings)


def tiny_target(space: dict | None = None) -> LatencyTarget:
    """The table latency_study's studies need: SPACE's choices and the cbam baseline's block."""
    return LatencyTarget("cifar_resnet", {"depth": 8, "width": 4}, SearchSpace.from_dict(space or SPACE), (16, 16), 3,
                         10, LatencyConditions(), extra=(BlockSpec.paper_default("cbam"),))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A latency study searched once (stub trainer): its folder, file, study and log."""
    folder = tmp_path_factory.mktemp("latency")
    study_file = latency_study(folder)
    lines: list[str] = []
    study = search(study_file, trainer=stub, device="cpu", log=lines.append)
    return folder, study_file, study, lines


def test_conditions_are_named_and_checked(tmp_path):
    assert LatencyConditions().describe() == "onnxruntime, batch 1, 1 thread, cpu"
    assert LatencyConditions("eager", 64, 4).describe() == "eager, batch 64, 4 threads, cpu"
    signature = device_signature(LatencyConditions())
    assert signature["isa"] in ("AVX-512", "AVX2", "AVX", "SSE4.2", "aarch64", "x86_64")
    assert signature["onnxruntime"] and signature["torch"] and len(signature["id"]) == 10
    assert device_signature(LatencyConditions(threads=2))["id"] != signature["id"]
    config = load_study_config(latency_study(tmp_path))
    assert config.latency_conditions == LatencyConditions()
    assert config.latency_table_path == tmp_path / "tiny.latency.json"
    for bad, message in (({"runtime": "tflite"}, "latency.runtime = 'tflite' is invalid; allowed: onnxruntime"),
                         ({"batch_size": 0}, "latency.batch_size = 0 is invalid; allowed: an integer >= 1"),
                         ({"threads": 0}, "latency.threads = 0 is invalid"),
                         ({"device": "tpu"}, "latency.device = 'tpu' is invalid; allowed: cpu, or cuda"),
                         ({"repeats": 3}, "latency.repeats is not a latency setting; allowed: runtime, batch_size")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_study_config(latency_study(tmp_path, latency=bad))


@pytest.mark.parametrize("latency", [{"threads": 4096}, {"batch_size": 0}, {"runtime": "tensorrt"}])
def test_bad_conditions_are_one_line_exit_2_and_nothing_written(tmp_path, latency):
    study_file = latency_study(tmp_path, latency=latency)
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in (("latency-table", study_file.name), ("search", study_file.name), ("latency", study_file.name)):
        result = nas_in_process(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "latency." in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_study_measures_its_table_once_and_every_trial_predicts_from_it(searched):
    folder, study_file, study, lines = searched
    table = load_table(folder / "tiny.latency.json")
    assert not partial_path(table.path).exists()
    assert any("measuring the latency table" in line for line in lines)
    assert any("predicts 4 random architectures measured directly" in line for line in lines)
    target = load_study_config(study_file).latency_target(load_study_config(study_file).load_data())
    # every stage choice of the space, and the baselines' blocks on every stage (cbam is outside the space)
    assert set(table.entries) == set(target.choices())
    assert all(len(e["passes"]) == 2 for e in table.entries.values())  # each choice measured twice, apart
    assert {f"s{s}:cbam-r16-k7-avgmax" for s in (1, 2, 3)} <= set(table.entries)
    assert {f"s{s}:se-r{r}-avg" for s in (1, 2, 3) for r in (2, 4)} <= set(table.entries)
    assert table.validation["n"] == 4 and 0 <= table.validation["median_abs_error"] < 1
    assert table.calibration["n"] == 4 and table.scale > 0 and "additive" in table.validation
    assert sorted(r["attention_stages"] for r in table.calibration["rows"]) == [1, 1, 2, 3]  # 1..n, cycling
    assert study.user_attrs["latency_table"] == table.to_dict()  # every worker predicts from the same table
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) >= 4
    for trial in complete:
        prediction = table.predict(trial.user_attrs["arch_id"])
        assert trial.values[1] == prediction.ms  # the objective is the prediction: nothing timed in the trial
        attrs = trial.user_attrs
        assert attrs["latency_ms"] == prediction.ms and attrs["latency_ratio"] == prediction.ratio
        assert attrs["latency_ci_ms"] > 0 and attrs["latency_ratio_ci"] > 0
        assert attrs["latency_conditions"] == "onnxruntime, batch 1, 1 thread, cpu"
        assert attrs["latency_device"] == table.signature["id"]
    cbam = next(t for t in complete if t.user_attrs.get("baseline") == "cbam")
    assert cbam.user_attrs["latency_ratio"] > 1.2  # CBAM everywhere is far slower than none (x2.9 measured)


def test_a_resumed_study_does_not_measure_again(searched):
    folder, study_file, _, _ = searched
    table_file = folder / "tiny.latency.json"
    stamp = table_file.stat().st_mtime_ns
    result = nas("search", study_file.name, "--trials", "5", "--no-progress", cwd=folder)  # the real command
    assert result.returncode == 0, result.stderr
    assert "measuring the latency table" not in result.stdout + result.stderr
    assert table_file.stat().st_mtime_ns == stamp


def test_front_and_export_show_latency_with_its_interval_and_ties(searched, tmp_path):
    folder, study_file, study, _ = searched
    rows = json.loads(nas_in_process("front", study_file.name, "--json", cwd=folder).stdout)
    assert rows and all({"latency_ms", "latency_ci_ms", "latency_ratio", "latency_ratio_ci", "latency_tie"} <= set(r)
                        for r in rows)
    assert rows[0]["latency_tie"] is False  # the cheapest has no cheaper neighbour
    table = nas_in_process("front", study_file.name, cwd=folder).stdout
    assert "latency ms ± 95%" in table and "x none ± 95%" in table and "onnxruntime, batch 1, 1 thread, cpu" in table
    out = nas_in_process("export", study_file.name, "--pick", "accuracy", "-o", str(tmp_path / "best.yaml"), cwd=folder)
    assert out.returncode == 0, out.stderr
    assert "latency:" in out.stdout and "vs none" in out.stdout and "onnxruntime, batch 1" in out.stdout
    provenance = yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]
    latency = provenance["metrics"]["latency"]
    assert latency["ms"] > 0 and latency["ratio"] > 1 and "onnxruntime" in latency["conditions"]


def test_latency_ties_count_on_the_front():
    from nas.front import FrontRow, latency_ties
    from nas.latency.table import Prediction

    def row(number, ms, ci):
        return FrontRow(number, {"accuracy": 0.5, "latency": ms}, 1.0, 1, f"a{number}", {}, None, {},
                        latency=Prediction(ms, ci, ms, ci))

    assert latency_ties(row(0, 1.00, 0.03), row(1, 1.04, 0.03)) is True  # |0.04| <= hypot(0.03, 0.03)
    assert latency_ties(row(0, 1.00, 0.01), row(1, 1.04, 0.01)) is False
    assert latency_ties(row(0, 1.0, 0.01), FrontRow(1, {"accuracy": 0.5}, 1.0, 1, "b", {}, None, {})) is None


def test_nas_latency_measures_against_none_and_shows_the_prediction(searched):
    folder, study_file, _, _ = searched
    result = nas_in_process("latency", study_file.name, "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["conditions"] == LatencyConditions().to_dict() and report["signature"]["id"]
    rows = {r["label"]: r for r in report["rows"]}
    assert set(rows) == {"none", "cbam"}
    for r in rows.values():
        assert {"arch_id", "measured_ms", "measured_ratio", "ratio_ci", "predicted_ms", "predicted_ratio"} <= set(r)
    assert rows["none"]["predicted_ratio"] == 1.0
    assert rows["cbam"]["measured_ratio"] > 1.2 and rows["cbam"]["predicted_ratio"] > 1.2


def test_a_flops_study_shows_latency_from_a_given_table(tmp_path):
    study_file = write_study(tmp_path, search_space=SPACE, latency=QUICK, baselines=["none", "se"], trials=3)
    search(study_file, trainer=stub, device="cpu", log=lambda line: None)
    assert not (tmp_path / "tiny.latency.json").exists()  # FLOPs study: no table measured for it
    built = nas_in_process("latency-table", study_file.name, "-o", "box.json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "predicts 4 random architectures" in built.stdout and (tmp_path / "box.json").is_file()
    rows = json.loads(nas_in_process("front", study_file.name, "--latency", "box.json", "--json", cwd=tmp_path).stdout)
    assert rows and all("latency_ms" in r for r in rows)
    assert "latency_ms" not in json.loads(nas_in_process("front", study_file.name, "--json", cwd=tmp_path).stdout)[0]
    out = nas_in_process("export", study_file.name, "--latency", "box.json", "-o", "best.yaml", cwd=tmp_path)
    assert out.returncode == 0 and "latency:" in out.stdout
    missing = nas_in_process("front", study_file.name, "--latency", "nowhere.json", cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere.json: no such latency table" in missing.stderr


@pytest.fixture(scope="module")
def box_table(tmp_path_factory) -> Path:
    """tiny_target's table without validation, built once for the tests that copy it and use it."""
    path = tmp_path_factory.mktemp("box") / "box.json"
    # 5 s, not 2: a box table is a fixture, not a measurement, and a CI machine running a training
    # beside the tests left 5 of its 12 choices short of ±50 % in 2 s (and 4 on the retry)
    table = build_table(tiny_target(), path, check=0, target_ci=0.5, max_seconds=5, log=lambda line: None)
    assert table.validation is None
    return path


def test_a_table_for_another_network_or_space_is_refused_before_anything_is_written(tmp_path, box_table):
    shutil.copy(box_table, tmp_path / "box.json")
    cases = [
        ({"backbone_args": {"depth": 8, "width": 8}}, "was built for backbone_args"),
        ({"search_space": {"kinds": ["none", "se"], "se": {"reduction": [2, 8]}}},
         "lacks the stage choice s1:se-r8-avg"),
        ({"dataset": {"name": "synthetic", "subset": 200, "image_size": 24}}, "was built for image_size"),
        ({"latency": {**QUICK, "table": "box.json", "batch_size": 4}}, "was built for conditions"),
    ]
    for overrides, message in cases:
        overrides.setdefault("latency", {**QUICK, "table": "box.json"})
        study_file = latency_study(tmp_path, **overrides)
        result = nas_in_process("search", study_file.name, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "latency.table" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "tiny.db").exists()
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "half.json.partial").write_text("{}")
    for name, message in (("bad.json", "not a readable latency table"), ("half.json", "a build stopped at"),
                          ("none.json", "no such latency table")):
        study_file = latency_study(tmp_path, latency={**QUICK, "table": name})
        result = nas_in_process("search", study_file.name, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "tiny.db").exists()


def test_a_table_from_another_machine_is_used_with_a_warning(tmp_path, box_table):
    data = json.loads(box_table.read_text())
    data["signature"].update(cpu="Edge Box 9000", id="0123456789")
    (tmp_path / "box.json").write_text(json.dumps(data))
    study_file = latency_study(tmp_path, baselines=["none"], latency={**QUICK, "table": "box.json"})
    result = nas_in_process("check", study_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: the latency table box.json was measured on Edge Box 9000" in result.stdout
    study = search(study_file, trainer=stub, device="cpu", log=lambda line: None)
    assert study.user_attrs["latency_table"]["signature"]["cpu"] == "Edge Box 9000"


def test_a_killed_build_resumes_and_the_table_appears_only_when_done(tmp_path, monkeypatch):
    target = tiny_target()
    path = tmp_path / "t.json"
    real = builder.measure_ratios
    measured: list[str] = []

    def dies_on_second_group(reference, candidates, **kwargs):
        if measured:
            raise KeyboardInterrupt
        measured.extend(candidates)
        return real(reference, candidates, **kwargs)

    monkeypatch.setattr(builder, "measure_ratios", dies_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        # max_seconds only bounds a group that does not converge (which is then measured again, and that
        # call would be taken for the second group's): ample, so that a loaded machine converges in it
        build_table(target, path, check=0, target_ci=0.5, max_seconds=20, log=lambda line: None, passes=1)
    assert not path.exists() and partial_path(path).exists()
    first = list(measured)
    assert len(first) == builder.GROUP

    again: list[str] = []

    def counts(reference, candidates, **kwargs):
        again.extend(candidates)
        return real(reference, candidates, **kwargs)

    monkeypatch.setattr(builder, "measure_ratios", counts)
    lines: list[str] = []
    table = build_table(target, path, check=0, target_ci=0.5, max_seconds=20, log=lines.append, passes=1)
    assert any("resuming" in line for line in lines)
    assert not set(first) & set(again) and set(first) | set(again) == set(target.choices())
    assert path.exists() and not partial_path(path).exists() and set(table.entries) == set(target.choices())


def test_a_busy_machine_stores_no_table(tmp_path, monkeypatch):
    def never_converges(reference, candidates, **kwargs):
        return {k: Measurement(1.0, 0.5, 1.1, 0.5, 1.0, 0.01, 6, False) for k in candidates}

    monkeypatch.setattr(builder, "measure_ratios", never_converges)
    with pytest.raises(MachineBusy, match="did not reach a ±50 % interval.*too loaded"):
        build_table(tiny_target(), tmp_path / "t.json", check=0, target_ci=0.5, max_seconds=1, log=lambda line: None)
    assert not (tmp_path / "t.json").exists()
    kept = json.loads(partial_path(tmp_path / "t.json").read_text())
    assert kept["entries"][0] and not any(e["converged"] for e in kept["entries"][0].values())


def test_prediction_adds_the_stage_deltas_and_carries_its_interval():
    table = LatencyTable(key={}, signature={"id": "x"}, none_ms=2.0, none_ms_ci=0.02,
                         entries={"s1:se-r16-avg": {"ratio": 1.10, "ratio_ci": 0.01},
                                  "s2:eca-kauto-avg": {"ratio": 1.05, "ratio_ci": 0.02}})
    p = table.predict("s1:se-r16-avg|s2:eca-kauto-avg|s3:none")
    assert p.ratio == pytest.approx(1.15) and p.ms == pytest.approx(2.3)
    assert p.ratio_ci == pytest.approx(math.hypot(0.01, 0.02))
    assert p.ms_ci == pytest.approx(math.hypot(0.02 * 1.15, 2.0 * p.ratio_ci))
    assert table.predict("s1:none|s2:none|s3:none").ratio == 1.0
    table.scale = 0.9  # the stages' excesses overlap when combined: a fitted factor on their sum
    assert table.predict("s1:se-r16-avg|s2:eca-kauto-avg|s3:none").ratio == pytest.approx(1 + 0.9 * 0.15)
    assert table.excess("s1:se-r16-avg|s2:eca-kauto-avg|s3:none") == pytest.approx(0.15)
    table.validation = {"p95_abs_error": 0.05}  # the table's own error on random architectures, when larger
    assert table.predict("s1:se-r16-avg|s2:eca-kauto-avg|s3:none").ratio_ci == pytest.approx(1.135 * 0.05)
    with pytest.raises(ConfigError, match="no entry 's2:se-r16-avg'.*another search space"):
        table.predict("s1:none|s2:se-r16-avg|s3:none")


def test_passes_minutes_apart_widen_an_entry_to_their_spread():
    """One run's interval is too narrow across runs (a recheck found half the entries outside
    it): an entry is the mean of its passes, its interval at least their spread."""
    from nas.latency.builder import _combine

    run = {"ms": 1.0, "ms_ci": 0.01, "rounds": 6, "converged": True}
    entry = _combine([{**run, "ratio": 1.10, "ratio_ci": 0.01}, {**run, "ratio": 1.14, "ratio_ci": 0.01}])
    assert entry["ratio"] == pytest.approx(1.12) and entry["ratio_ci"] == pytest.approx(0.04)
    assert entry["passes"] == [1.10, 1.14] and entry["rounds"] == 12
    agreeing = _combine([{**run, "ratio": 1.10, "ratio_ci": 0.02}, {**run, "ratio": 1.101, "ratio_ci": 0.02}])
    assert agreeing["ratio_ci"] == pytest.approx(math.sqrt(2 * 0.02**2) / 2)  # their own intervals, combined


def test_the_scale_is_least_squares_through_the_origin():
    assert fit_scale([0.1, 0.2, 0.4], [0.09, 0.18, 0.36]) == pytest.approx(0.9)
    assert fit_scale([0.0, 0.0], [0.1, 0.2]) == 1.0  # nothing to fit: the plain sum
    assert fit_scale([0.1, 0.2], [-0.1, -0.2]) == 1.0  # a nonsense fit is not used


def test_rank_statistics_match_scipy():
    from scipy import stats

    rng = random.Random(0)
    xs = [rng.choice([1.0, 1.1, 1.2, 1.3]) + rng.random() * 0.05 * (i % 3) for i in range(40)]
    ys = [x + rng.gauss(0, 0.05) for x in xs]
    assert spearman(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic)
    ties = [1, 1, 2, 2, 3]
    assert spearman(ties, [5, 4, 3, 2, 1]) == pytest.approx(stats.spearmanr(ties, [5, 4, 3, 2, 1]).statistic)
    import numpy as np

    assert percentile(ys, 95) == pytest.approx(float(np.percentile(ys, 95)))


def test_an_interleaved_measurement_knows_its_interval():
    conditions = LatencyConditions()

    def work(n):
        return lambda: sum(range(n))

    reference, double = Runner(work(20000), conditions), Runner(work(40000), conditions)
    result = measure_ratios(reference, {"double": double}, target=0.1, max_seconds=10, round_seconds=0.005)["double"]
    assert 1.4 < result.ratio < 2.8 and result.converged and result.rounds >= 6
    assert result.ratio_ci <= 0.1 * result.ratio + 1e-12 and result.ms > result.reference_ms
    short = measure_ratios(reference, {"double": double}, target=1e-9, max_seconds=0.05, round_seconds=0.002)["double"]
    assert not short.converged and short.ratio_ci > 0


def test_a_ratio_is_the_median_round_with_the_order_statistics_interval():
    import numpy as np
    from scipy import stats

    rng = random.Random(3)
    for n in (6, 9, 20, 37, 120):
        values = [rng.gauss(0.1, 0.02) for _ in range(n)]
        median, half = median_ci(values)
        exact = stats.quantile_test(values, q=0, p=0.5).confidence_interval(0.95)  # the same order statistics
        assert median == pytest.approx(float(np.median(values)))
        assert half == pytest.approx(max(median - exact.low, exact.high - median))
    assert median_ci([0.1] * 5)[1] == math.inf  # no 95 % interval from 5 rounds
    # rounds that met interference (15 % of them, +40 %) move a mean and widen its interval; the median's stays tight
    rounds = [rng.gauss(0.1, 0.01) + (0.4 if rng.random() < 0.15 else 0.0) for _ in range(60)]
    median, half = median_ci(rounds)
    mean, mean_half = mean_ci(rounds)
    assert abs(median - 0.1) < 0.01 and math.expm1(half) < 0.02
    assert mean > 0.13 and mean_half > 2 * half


def test_onnx_runtime_matches_eager_or_is_refused_naming_the_op(monkeypatch):
    arch = ArchConfig.uniform("cifar_resnet", BlockSpec.paper_default("cbam"), {"depth": 8, "width": 4})
    from nas import build_model

    model = build_model(arch)
    runner = make_runner(model, (1, 3, 16, 16), LatencyConditions(), arch.arch_id)
    assert runner.run()[0].shape == (1, 10)
    assert model.training  # timed on an eval-mode copy

    class Unexportable(nn.Module):
        def forward(self, x):
            return torch.linalg.eigh(x[0, 0] @ x[0, 0].T).eigenvalues.unsqueeze(0)

    with pytest.raises(ConfigError, match=r"odd-net: the ONNX export fails at .*linalg_eigh.*latency.runtime: eager"):
        make_runner(Unexportable(), (1, 1, 4, 4), LatencyConditions(), "odd-net")
    monkeypatch.setattr(runtime, "TOLERANCE", -1.0)
    with pytest.raises(ConfigError, match="differs from eager PyTorch by .* allowed: latency.runtime: eager"):
        make_runner(model, (1, 3, 16, 16), LatencyConditions(), arch.arch_id)
    eager = make_runner(model, (2, 3, 16, 16), LatencyConditions(runtime="eager", batch_size=2))
    assert eager.run().shape == (2, 10)


def test_threads_are_checked_against_this_machine():
    with pytest.raises(ConfigError, match=f"latency.threads = 999 is more than this machine's {os.cpu_count()} cores"):
        builder.check_conditions(LatencyConditions(threads=999))


def test_front_measure_checks_the_predictions_by_direct_timing(searched):
    folder, study_file, _, _ = searched
    rows = json.loads(nas_in_process("front", study_file.name, "--json", cwd=folder).stdout)
    result = nas_in_process("front", study_file.name, "--measure", cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("#") and "measured " in line]
    assert len(lines) == len(rows) and "measured now (onnxruntime, batch 1, 1 thread, cpu" in result.stdout
    assert all(("agrees" in line) or ("DISAGREES beyond noise" in line) for line in lines)


def test_nas_latency_takes_exported_architectures_and_refuses_another_network(searched, tmp_path):
    folder, study_file, _, _ = searched
    assert nas_in_process("export", study_file.name, "--pick", "accuracy", "-o", str(tmp_path / "best.yaml"),
               cwd=folder).returncode == 0
    result = nas_in_process("latency", study_file.name, str(tmp_path / "best.yaml"), "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["rows"]
    assert row["label"] == str(tmp_path / "best.yaml") and row["predicted_ratio"] > 1
    other = ArchConfig.uniform("cifar_resnet", BlockSpec("se"), {"depth": 14, "width": 4})
    (tmp_path / "other.yaml").write_text(other.to_yaml())
    refused = nas_in_process("latency", study_file.name, str(tmp_path / "other.yaml"), cwd=folder)
    assert refused.returncode == 2 and "backbone_args" in refused.stderr and "other.yaml" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
