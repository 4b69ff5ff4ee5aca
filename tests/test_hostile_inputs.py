"""Hostile and mistaken inputs, foreign studies and refusing storages: one line, exit 2, no
traceback, nothing written (or, for a storage that refuses mid-study, nothing lost).

What could exhaust memory (a huge image size, a YAML alias bomb), the full disk (a file-size limit
on the process), a read-only database met by fresh processes (in one process, a connection opened
before the file was made read-only fails differently) and what a whole process prints (a storage
password) run the real `nas` command;
the other refusals and the searches around them run through `nas.cli.main` in this process
(`nas_in_process`), sparing a torch import per command."""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from conftest import NAS, ROOT, nas, nas_in_process, write_study
from optuna.trial import TrialState

from nas.data import load_dataset
from nas.errors import StudyError
from nas.storage import storage_errors
from nas.study import open_study, run_search
from nas.studyfile import load_study_config

BOMB = """name: bomb
backbone: cifar_resnet
search_space: {kinds: [none, se]}
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
dataset: *i
"""


def refused(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for phrase in phrases:
        assert phrase in line, line
    return line


@pytest.mark.parametrize("size", [100000, 4096])
def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_allocating(tmp_path, size):
    study = write_study(tmp_path, dataset={"name": "synthetic", "subset": 200, "image_size": size})
    line = refused(nas("search", study, timeout=120), "tiny.yaml: dataset.image_size", str(size),
                   "is too large", "available", "at most about")
    assert "memory" in line
    assert not (tmp_path / "tiny.db").exists()


def test_a_yaml_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    refused(nas("check", path, timeout=60), "bomb.yaml", "aliases", "100,000")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert max(peak_kb, before) < 3_000_000  # the bomb expands to 9^9 strings: tens of GB if built
    assert not list(tmp_path.glob("*.db"))


def test_dataset_settings_name_the_file_and_the_dataset_field(tmp_path):
    study = write_study(tmp_path, dataset={"name": "synthetic", "subset": [1, 2], "image_size": 16})
    refused(nas_in_process("search", study), "tiny.yaml", "dataset.subset = [1, 2] is invalid", "an integer >= 2")
    assert not (tmp_path / "tiny.db").exists()


def test_a_study_stops_once_every_architecture_of_its_space_was_evaluated(tmp_path):
    space = {"kinds": ["none", "se"], "se": {"reduction": [2], "pool": ["avg"], "gate": ["sigmoid"]}}
    study = write_study(tmp_path, search_space=space, trials=1_000_000_000, baselines=["none"])
    result = nas_in_process("search", study, "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "all 8 distinct architectures of the search space have been evaluated" in result.stdout
    done = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/tiny.db")
    complete = done.get_trials(states=(TrialState.COMPLETE,))
    assert len({t.user_attrs["arch_id"] for t in complete}) == 8
    assert len(done.trials) < 60  # duplicates stop being drawn once the space is exhausted
    check = nas_in_process("check", study, cwd=tmp_path)
    assert "8 distinct architectures" in check.stdout


def _foreign(tmp_path: Path, directions: list[str]) -> tuple[Path, str]:
    study_file = write_study(tmp_path)
    url = f"sqlite:///{tmp_path}/tiny.db"
    other = optuna.create_study(study_name="tiny", storage=url, directions=directions)
    other.set_user_attr("owner", "someone else")
    other.enqueue_trial({"x": 1.0})
    return study_file, url


def _dump(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return [row for table in ("studies", "study_user_attributes", "study_system_attributes", "trials",
                                  "trial_user_attributes", "trial_system_attributes", "trial_params")
                for row in con.execute(f"SELECT * FROM {table}")]  # noqa: S608 - fixed table names


@pytest.mark.parametrize("directions", [["maximize"], ["minimize", "minimize"], ["maximize", "minimize"]],
                         ids=["one objective", "other directions", "same directions"])
def test_another_tools_study_of_the_same_name_is_refused_before_a_byte_is_written(tmp_path, directions):
    study_file, url = _foreign(tmp_path, directions)
    before = _dump(tmp_path / "tiny.db")
    for command in ("search", "front", "export", "dashboard"):
        extra = ["-o", str(tmp_path / "best.yaml")] if command == "export" else []
        refused(nas_in_process(command, study_file, *extra, cwd=tmp_path), "study 'tiny'",
                "was not created by nas", "use another study name")
    assert _dump(tmp_path / "tiny.db") == before
    assert not (tmp_path / "best.yaml").exists()


def test_a_nas_study_with_other_objectives_is_refused_with_a_true_message(tmp_path):
    study_file = write_study(tmp_path, trials=1, baselines=["none"])
    assert nas_in_process("search", study_file, "--no-progress", cwd=tmp_path).returncode == 0
    before = _dump(tmp_path / "tiny.db")
    changed = write_study(tmp_path, trials=1, baselines=["none"], objectives=["accuracy", "params"])
    line = refused(nas_in_process("search", changed, cwd=tmp_path), "has objectives ['accuracy', 'flops']",
                   "asks for objectives ['accuracy', 'params']")
    assert line.count("['accuracy', 'flops']") == 1
    assert _dump(tmp_path / "tiny.db") == before


def test_a_baseline_whose_every_attempt_died_is_queued_again_and_trained(tmp_path):
    config = load_study_config(write_study(tmp_path, trials=3, baselines=["none", "se"]))
    data = load_dataset(**config.dataset)
    study, _ = open_study(config, create=True, data=data)
    for _ in range(2):  # both queued baselines taken and lost, as after a worker killed 3 times
        trial = study.ask()
        study.tell(trial, state=TrialState.FAIL)
    lines: list[str] = []
    study = run_search(config, data, device="cpu", log=lines.append, progress=False)
    assert any("baseline(s) none, se never finished" in line for line in lines), lines
    finished = {t.user_attrs.get("baseline") for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {"none", "se"} <= finished


def _read_only(db: Path, on: bool) -> None:
    """Make the database file unwritable: root ignores permission bits, so as root the file is
    made immutable (chattr), as anyone else read-only (chmod)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(db)], check=True)
    else:
        db.chmod(0o444 if on else 0o644)


def test_a_read_only_database_is_one_line_and_the_study_stays_resumable(tmp_path):
    study_file = write_study(tmp_path, trials=2, baselines=["none"])
    assert nas("search", study_file, "--no-progress", cwd=tmp_path, timeout=300).returncode == 0
    db = tmp_path / "tiny.db"
    before = _dump(db)
    _read_only(db, True)
    try:
        more = nas("search", study_file, "--trials", "4", "--no-progress", cwd=tmp_path, timeout=300)
        refused(more, "storage sqlite:///", "readonly", "finished trials are kept")
    finally:
        _read_only(db, False)
    assert _dump(db) == before
    again = nas("search", study_file, "--trials", "4", "--no-progress", cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= 4


def test_a_full_disk_mid_study_is_one_line_and_loses_no_finished_trial(tmp_path):
    study_file = write_study(tmp_path, trials=2, baselines=["none"])
    assert nas_in_process("search", study_file, "--no-progress", cwd=tmp_path).returncode == 0
    db = tmp_path / "tiny.db"
    finished = {t.number: t.values for t in optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
                if t.state == TrialState.COMPLETE}
    limit = sum(f.stat().st_size for f in tmp_path.glob("tiny.db*")) + 8192

    def full_disk() -> None:  # files may not grow past `limit` bytes: SQLite reports a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    full = subprocess.run([*NAS, "search", str(study_file), "--trials", "30", "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env, preexec_fn=full_disk)
    refused(full, "storage sqlite:///", "the database refused a write", "finished trials are kept")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    assert {n: v for n, v in finished.items()} == {t.number: t.values for t in study.trials if t.number in finished}
    again = nas_in_process("search", study_file, "--trials", "4", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").get_trials(
        states=(TrialState.COMPLETE,))) >= 4


PASSWORD = "Pl4nted-s3cret"


@pytest.mark.parametrize("command", ["check", "search", "front", "export", "refine", "dashboard"])
def test_no_command_prints_a_storage_password(tmp_path, command):
    url = f"postgresql://nas:{PASSWORD}@127.0.0.1:1/nas_studies"  # port 1: nothing listens
    extra = {"export": ["-o", str(tmp_path / "best.yaml")], "refine": ["--top", "1"]}.get(command, [])
    for study in (write_study(tmp_path), write_study(tmp_path, name="inline", storage=url)):
        args = [command, study, *extra] + (["--storage", url] if study.stem == "tiny" else [])
        result = nas(*args, cwd=tmp_path, timeout=120)
        assert PASSWORD not in result.stdout + result.stderr, (command, result.stdout + result.stderr)
        assert "Traceback" not in result.stderr


def test_the_storage_error_message_helper_finds_the_database_reason():
    from nas.storage import _root_cause

    try:
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("An exception is raised during the commit.") from inner
    except RuntimeError as outer:
        assert _root_cause(outer) == "attempt to write a readonly database"


def test_a_refused_final_write_that_optuna_reports_as_an_assertion_is_still_one_line():
    """Optuna's trial loop replaces a failed write of the trial's final state with an AssertionError
    ("Should not reach.") raised in a `finally`; the database's error is its context."""
    with pytest.raises(StudyError, match=r"storage sqlite:///x.db: the database refused a write \(disk I/O error\)"):
        with storage_errors("sqlite:///x.db"):
            try:
                raise optuna.exceptions.StorageInternalError("commit") from sqlite3.OperationalError("disk I/O error")
            finally:
                raise AssertionError("Should not reach.")  # as Optuna's trial loop does
    with pytest.raises(AssertionError):  # an assertion of anything else is not a storage error
        with storage_errors("sqlite:///x.db"):
            raise AssertionError("a bug")
