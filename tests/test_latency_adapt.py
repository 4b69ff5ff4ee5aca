"""A latency table carried to another machine (issue 33): `nas latency-table --check` says how far
it holds here, `--adapt` refits it in seconds and records its parent, and a table that cannot be
carried is refused with one line, exit 2, nothing written.

Timing is faked (a `Measurer` with a known answer) wherever the point is arithmetic or output;
one test times for real, with a machine that never converges, to show nothing is written then.
How well adapting works between real conditions is benchmarks/latency_transfer.py's question.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import nas_in_process, write_study

from nas import ConfigError, load_table
from nas.latency import builder
from nas.latency.adapt import adapt_table, check_transfer, describe_check, refuse_mismatch
from nas.latency.conditions import device_signature
from nas.latency.measure import Measurement
from nas.latency.table import LatencyTable, partial_path
from nas.studyfile import load_study_config

SPACE = {"kinds": ["none", "se", "cbam"], "se": {"reduction": [2, 4]}}
QUICK = {"target": 0.25, "check": 6, "max_seconds": 5}
ELSEWHERE = {"cpu": "Edge Box 9000", "isa": "AVX2", "cores": 4, "gpu": None, "torch": "2.14.1",
             "onnxruntime": "1.32.0", "threads": 1, "id": "0123456789"}


class Fake:
    """A machine whose attention excess is `scale` x the parent's summed entries (within ±`noise`,
    fixed per architecture), and whose `none` takes `none_ms`."""

    def __init__(self, parent: LatencyTable, scale: float, none_ms: float = 2.0, noise: float = 0.0) -> None:
        self.parent, self.scale, self.ms, self.noise = parent, scale, none_ms, noise
        self.measured: list[str] = []

    def ratios(self, archs, what):
        self.measured.extend(archs)
        out = {}
        for k in archs:
            wobble = 1 + self.noise * (2 * random.Random(k).random() - 1)
            ratio = (1 + self.scale * self.parent.excess(k)) * wobble
            out[k] = {"ratio": ratio, "ratio_ci": 0.01, "ms": self.ms * ratio, "ms_ci": 0.01, "rounds": 6,
                      "converged": True}
        return out

    def none_ms(self):
        return self.ms, 0.01


def study(folder: Path, **overrides) -> Path:
    settings = {"objectives": ["accuracy", "latency"], "search_space": SPACE, "latency": QUICK,
                "baselines": ["none", "cbam"], **overrides}
    return write_study(folder, **settings)


def target_of(study_file: Path):
    config = load_study_config(study_file)
    return config.latency_target(config.load_data())


def parent_table(target, path: Path, scale: float = 0.9, **key) -> LatencyTable:
    """A table measured 'elsewhere' for `target` (each entry a random excess), written to `path`."""
    rng = random.Random(0)
    entries = {k: {"ratio": 1 + rng.uniform(0.02, 0.3), "ratio_ci": 0.005, "ms": 1.0, "ms_ci": 0.01}
               for k in target.choices()}
    table = LatencyTable(key={**target.key(), **key}, signature=dict(ELSEWHERE), none_ms=1.0, none_ms_ci=0.01,
                         entries=entries, scale=scale,
                         validation={"n": 30, "median_abs_error": 0.008, "p95_abs_error": 0.02,
                                     "max_abs_error": 0.025, "spearman": 0.98})
    path.write_text(json.dumps(table.to_dict()))
    return load_table(path)


def test_a_refit_recovers_a_known_scale_and_validates_like_a_build(tmp_path):
    target = target_of(study(tmp_path))
    parent = parent_table(target, tmp_path / "edge.json")
    fake = Fake(parent, scale=1.08, none_ms=2.0, noise=0.005)  # attention costs 20 % more here than the parent says
    table = adapt_table(parent, target, tmp_path / "here.json", archs=12, check=6, measurer=fake)
    assert table.scale == pytest.approx(1.08, rel=0.01)
    assert table.none_ms == 2.0 and table.entries == parent.entries  # the parent's ranking, this machine's magnitudes
    assert table.calibration["n"] == 12 and table.calibration["parent_scale"] == 0.9
    assert sorted({r["attention_stages"] for r in table.calibration["rows"]}) == [1, 2, 3]  # spread over 1..n
    v = table.validation
    assert v["n"] == 6 and v["median_abs_error"] < 0.006 and v["spearman"] > 0.9
    assert v["untouched"]["median_abs_error"] > 0.01  # the parent as it was is off by the scale's change
    fitted = {r["arch_id"] for r in table.calibration["rows"]}
    assert not fitted & {r["arch_id"] for r in v["rows"]}  # validated on other architectures than it was fitted on
    assert len(fake.measured) == 18 and len(set(fake.measured)) == 18
    exact = adapt_table(parent, target, tmp_path / "exact.json", archs=6, check=0, measurer=Fake(parent, 1.3))
    assert exact.scale == pytest.approx(1.3) and exact.validation is None


def test_an_adapted_table_records_its_parent_and_this_machine(tmp_path):
    target = target_of(study(tmp_path))
    parent = parent_table(target, tmp_path / "edge.json")
    adapt_table(parent, target, tmp_path / "here.json", archs=4, check=2, measurer=Fake(parent, 1.0))
    data = json.loads((tmp_path / "here.json").read_text())
    assert data["signature"] == device_signature(target.conditions)  # this machine's
    record = data["parent"]
    assert record["signature"] == ELSEWHERE and record["entries_measured_on"] == ELSEWHERE
    import hashlib

    assert record["sha256"] == hashlib.sha256((tmp_path / "edge.json").read_bytes()).hexdigest()
    assert record["path"] == str(tmp_path / "edge.json") and record["scale"] == 0.9 and record["none_ms"] == 1.0
    assert record["validation"]["p95_abs_error"] == 0.02 and record["conditions"] == target.conditions.to_dict()
    assert data["built"]["adapted"] is True and data["built"]["passes"] == 1
    here = load_table(tmp_path / "here.json")
    assert here.parent == record and here.to_dict()["parent"] == record  # read back whole
    # adapted again, elsewhere: the entries still come from the first machine
    again = adapt_table(here, target, tmp_path / "again.json", archs=4, check=0, measurer=Fake(here, 1.0))
    assert again.parent["signature"] == here.signature and again.parent["entries_measured_on"] == ELSEWHERE
    built = LatencyTable(key={}, signature={"id": "x"}, none_ms=1.0, none_ms_ci=0.0, entries={})
    assert "parent" not in built.to_dict()  # a table measured here has none


def test_check_reports_the_transfer_and_suggests_adapt_beyond_the_tables_own_error(tmp_path):
    target = target_of(study(tmp_path))
    parent = parent_table(target, tmp_path / "edge.json")
    off = check_transfer(parent, target, archs=8, measurer=Fake(parent, scale=1.08, none_ms=1.0))
    assert off.n == 8 and off.ratio["median_abs_error"] > 0.02 and off.needs_adapting()
    lines = describe_check(off, adapt="ADAPT-COMMAND", build="BUILD-COMMAND")
    assert "exceeds the table's own 95th percentile (2.0 %)" in lines[-1] and "ADAPT-COMMAND" in lines[-1]
    same = check_transfer(parent, target, archs=8, measurer=Fake(parent, scale=0.9, none_ms=1.0, noise=0.002))
    assert not same.needs_adapting() and "it holds here" in describe_check(same, "A", "B")[-1]
    slower = check_transfer(parent, target, archs=8, measurer=Fake(parent, scale=0.9, none_ms=1.25))
    assert slower.ratio["median_abs_error"] < 1e-9 and slower.ms["median_abs_error"] == pytest.approx(0.2)
    assert slower.needs_adapting()  # the ratios hold, but every millisecond figure is 20 % low
    assert "1.000 ms in the table, 1.250 ms here, +25.0 %" in describe_check(slower, "A", "B")[2]


@pytest.fixture
def carried(tmp_path, monkeypatch):
    """A study, a table from another machine for it, and timing faked at 1.1x the parent's scale."""
    study_file = study(tmp_path)
    target = target_of(study_file)
    parent = parent_table(target, tmp_path / "edge.json")
    import nas.study.latency as study_latency

    monkeypatch.setattr(study_latency, "Here", lambda *args, **kwargs: Fake(load_table(tmp_path / "edge.json"), 0.99))
    return study_file, target, parent


def test_nas_latency_table_check_prints_both_machines_and_the_error(tmp_path, carried):
    study_file, _, _ = carried
    before = sorted(p.name for p in tmp_path.iterdir())
    result = nas_in_process("latency-table", study_file.name, "--check", "edge.json", "--archs", "6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the table: onnxruntime, batch 1, 1 thread, cpu on Edge Box 9000 (AVX2, 4 cores)" in out
    assert "here:      onnxruntime, batch 1, 1 thread, cpu on " in out and device_signature(
        load_study_config(study_file).latency_conditions)["id"] in out
    assert "6 random architectures measured here" in out and "Spearman" in out
    assert "refit it here in seconds: nas latency-table tiny.yaml --adapt edge.json -o NEW.json" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # --check writes nothing


def test_nas_latency_table_adapt_writes_a_table_the_study_then_uses(tmp_path, carried):
    study_file, _, _ = carried
    result = nas_in_process("latency-table", study_file.name, "--adapt", "edge.json", "-o", "here.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "adapting edge.json (measured on Edge Box 9000" in result.stdout
    assert "scale 0.900 there, 0.990 here" in result.stdout and "the parent, untouched" in result.stdout
    assert "latency table written to here.json" in result.stdout
    here = load_table(tmp_path / "here.json")
    assert here.scale == pytest.approx(0.99) and here.validation["n"] == 6 and here.parent["path"] == "edge.json"
    study_with_it = study(tmp_path, latency={**QUICK, "table": "here.json"})
    checked = nas_in_process("check", study_with_it.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "adapted from edge.json" in checked.stdout and "warning: the latency table" not in checked.stdout
    # given as it came, the study says where it is from and how to check or adapt it
    study_elsewhere = study(tmp_path, latency={**QUICK, "table": "edge.json"})
    checked = nas_in_process("check", study_elsewhere.name, cwd=tmp_path)
    assert "warning: the latency table edge.json was measured on Edge Box 9000" in checked.stdout
    edge = tmp_path / "edge.json"
    assert f"nas latency-table tiny.yaml --check {edge}" in checked.stdout and f"--adapt {edge}" in checked.stdout


def test_a_runtime_change_needs_the_flag(tmp_path, carried):
    study_file, target, _ = carried
    conditions = {**target.conditions.to_dict(), "runtime": "eager"}
    parent_table(target, tmp_path / "edge.json", conditions=conditions)
    refused = nas_in_process("latency-table", study_file.name, "--adapt", "edge.json", "-o", "here.json",
                             cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert ("--adapt edge.json: conditions.runtime = 'eager', but the study measures under 'onnxruntime'"
            in refused.stderr and "--allow-runtime-change" in refused.stderr)
    assert not (tmp_path / "here.json").exists()
    allowed = nas_in_process("latency-table", study_file.name, "--adapt", "edge.json", "-o", "here.json",
                             "--allow-runtime-change", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert load_table(tmp_path / "here.json").conditions.runtime == "onnxruntime"  # the study's, measured here
    other_batch = {**target.conditions.to_dict(), "batch_size": 8}
    parent_table(target, tmp_path / "edge.json", conditions=other_batch)  # batch, threads: what adapting is for
    checked = nas_in_process("latency-table", study_file.name, "--check", "edge.json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    # ... but a batch change reorders architectures, which a scale cannot undo: the user is told so
    assert ("batch_size 8 there, 1 here: adapting fixes magnitudes, not the order of architectures" in checked.stdout
            and "build a table here: nas latency-table tiny.yaml -o NEW.json" in checked.stdout)


def test_threads_or_another_cpu_alone_get_no_order_warning(tmp_path, carried):
    study_file, target, _ = carried
    parent_table(target, tmp_path / "edge.json", conditions={**target.conditions.to_dict(), "threads": 2})
    checked = nas_in_process("latency-table", study_file.name, "--check", "edge.json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "not the order of architectures" not in checked.stdout
    adapted = nas_in_process("latency-table", study_file.name, "--adapt", "edge.json", "-o", "here.json", cwd=tmp_path)
    assert adapted.returncode == 0 and "not the order of architectures" not in adapted.stdout


@pytest.mark.parametrize("key, message", [
    ({"backbone": "mobilenet_v2"}, "backbone = \"mobilenet_v2\", but the study has backbone = \"cifar_resnet\""),
    ({"backbone_args": {"depth": 8, "width": 8}}, "backbone_args = {\"depth\": 8, \"width\": 8}, but the study has "
                                                  "backbone_args = {\"depth\": 8, \"width\": 4}"),
    ({"image_size": [32, 32]}, "image_size = [32, 32], but the study has image_size = [16, 16]"),
    ({"num_classes": 100}, "num_classes = 100, but the study has num_classes = 10"),
])
def test_a_table_of_another_network_is_refused_with_nothing_written(tmp_path, carried, key, message):
    study_file, target, _ = carried
    parent_table(target, tmp_path / "edge.json", **key)
    before = sorted(p.name for p in tmp_path.iterdir())
    for option in ("--adapt", "--check"):
        result = nas_in_process("latency-table", study_file.name, option, "edge.json", cwd=tmp_path)
        assert result.returncode == 2 and f"{option} edge.json: {message}" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_other_bad_input_is_refused_with_nothing_written(tmp_path, carried):
    study_file, target, parent = carried
    narrow = {k: v for k, v in parent.to_dict()["entries"].items() if not k.startswith("s2:se-r4")}
    (tmp_path / "narrow.json").write_text(json.dumps({**parent.to_dict(), "entries": narrow}))
    (tmp_path / "corrupt.json").write_text('{"format": 1, "key": ')
    (tmp_path / "wrong.json").write_text(json.dumps({**parent.to_dict(), "parent": {"signature": "x"}}))
    naming_it = study(tmp_path, name="named", latency={**QUICK, "table": "edge.json"})  # its table file is the parent
    before = sorted(p.name for p in tmp_path.iterdir())
    result = nas_in_process("latency-table", naming_it.name, "--adapt", "edge.json", cwd=tmp_path)
    assert result.returncode == 2 and f"the output {tmp_path / 'edge.json'} (-o, else" in result.stderr, result.stderr
    cases = [
        (("--adapt", "narrow.json"), "--adapt narrow.json: entries = "),
        (("--adapt", "narrow.json"), "stage choices without s2:se-r4-avg, but the study's search space has them"),
        (("--adapt", "corrupt.json"), "--adapt corrupt.json: not a readable latency table"),
        (("--check", "corrupt.json"), "--check corrupt.json: not a readable latency table"),
        (("--adapt", "wrong.json"), "--adapt wrong.json: parent = {'signature': 'x'} is invalid"),
        (("--adapt", "missing.json"), "--adapt missing.json: no such latency table"),
        (("--adapt", "edge.json", "-o", "edge.json"), "the output edge.json (-o, else the study's table file) is the "
                                                      "table being adapted"),
        (("--adapt", "edge.json", "-o", "nowhere/here.json"), "the folder nowhere does not exist"),
        (("--check", "edge.json", "--archs", "1"), "--archs = 1 is invalid; allowed: an integer >= 2"),
        (("--check", "edge.json", "-o", "x.json"), "--check writes nothing"),
        (("--allow-runtime-change",), "--allow-runtime-change is for --adapt or --check"),
    ]
    for args, message in cases:
        result = nas_in_process("latency-table", study_file.name, *args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(ConfigError, match="conditions.runtime"):
        eager = LatencyTable.from_dict({**parent.to_dict(), "key": {**parent.key, "conditions": {"runtime": "eager"}}},
                                       "t")
        refuse_mismatch(eager, target, "t")


def test_a_busy_machine_writes_no_adapted_table(tmp_path, monkeypatch):
    """Timed for real (tiny networks), with a machine on which no ratio ever converges."""
    study_file = study(tmp_path)
    parent_table(target_of(study_file), tmp_path / "edge.json")

    def never_converges(reference, candidates, **kwargs):
        return {k: Measurement(1.0, 0.5, 1.1, 0.5, 1.0, 0.01, 6, False) for k in candidates}

    monkeypatch.setattr(builder, "measure_ratios", never_converges)
    result = nas_in_process("latency-table", study_file.name, "--adapt", "edge.json", "-o", "here.json",
                            "--archs", "2", cwd=tmp_path)
    assert result.returncode == 2 and "too loaded for latencies to be trusted; nothing was written:" in result.stderr
    assert not (tmp_path / "here.json").exists() and not partial_path(tmp_path / "here.json").exists()
