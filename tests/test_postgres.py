"""Many machines: `nas search` workers on one PostgreSQL server.

The fixture starts a real, throwaway PostgreSQL server on loopback (Debian's `postgresql`; initdb refuses
root, so as root it runs as the `postgres` user), with password authentication, and creates an empty
database. Two workers then start on one new study at the same moment: both import everything first and
wait at a gate, which the test opens for both at once, so they race through schema creation, study
creation and the queued baselines together, as workers started together on several machines do. Each
worker is `nas.cli.main(["search", ...])`, the function behind the `nas` command.

Checks: both exit 0; no FAIL, no RUNNING or WAITING left; COMPLETE between the target and target + 1
(workers - 1); every trial run by one worker only; each baseline queued and run once; no architecture
trained twice (a repeat is a recorded duplicate, `duplicate_of`); `nas front` and `nas export` read the
study back through `--storage`; and the password never reaches output or files.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import ROOT, nas, require_system, write_study
from optuna.trial import TrialState

TARGET = 8
WORKERS = 2
USER = "nas"
PASSWORD = "Pw-7c1e9a"  # distinctive, so that a leak into any output is found
DATABASE = "nas_studies"
STUDY = "pgstudy"


def postgres_bindir() -> Path | None:
    """Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin, off the PATH."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    url: str  # with the driver SQLAlchemy should use, psycopg2 (what nas's dev extras install)
    plain_url: str  # postgresql://..., what users write


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    bindir = postgres_bindir()
    require_system("postgresql (initdb, pg_ctl)", bindir is not None and (bindir / "initdb").exists())
    require_system("psycopg2 (pip install psycopg2-binary)", importlib.util.find_spec("psycopg2") is not None)
    assert bindir is not None
    as_postgres: list[str] = []
    # Not pytest's tmp_path: it is private to the user running the tests, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        require_system("the postgres OS user", _has_user("postgres") and shutil.which("runuser") is not None)
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, log, pwfile = root / "data", root / "server.log", root / "password"
    pwfile.write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres")
    started = False
    try:
        _run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "--no-sync", "--encoding=UTF8", "--no-locale"], cwd=root)
        for _ in range(3):  # another process may take the free port first
            port = free_port()
            options = (f"-p {port} -k {shlex.quote(str(root))} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            result = subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                                     "-w", "-t", "60", "-o", options, "start"],
                                    cwd=root, capture_output=True, text=True, timeout=90)
            if result.returncode == 0:
                started = True
                break
        assert started, f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{_tail(log)}"
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE],
             env={**os.environ, "PGPASSWORD": PASSWORD})
        where = f"{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
        yield Server(port, f"postgresql+psycopg2://{where}", f"postgresql://{where}")
    finally:
        if started:
            subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60",
                            "stop"], cwd=root, capture_output=True, timeout=90)
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _run(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stdout}{result.stderr}"


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""


# A worker: `nas search ...` exactly as the command runs it, after a gate. The slow imports (torch,
# torchvision, timm, fvcore, optuna, the driver) happen before the gate, so that the workers really
# reach the storage at the same moment.
GATED_WORKER = """
import os, sys
import psycopg2, sqlalchemy.dialects.postgresql.psycopg2
import nas.build, nas.cli, nas.cost, nas.data, nas.study, nas.studyfile, nas.train
open(os.environ["NAS_TEST_READY"], "w").close()
sys.stdin.readline()
sys.exit(nas.cli.main(sys.argv[1:]))
"""


@dataclass
class Run:
    study_file: Path
    server: Server
    returncodes: list[int]
    stdouts: list[str]
    stderrs: list[str]
    seconds: float

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=STUDY, storage=self.server.url)


@pytest.fixture(scope="module")
def two_workers(postgres: Server, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("pg-workers")
    # both workers end by confirming the front: one at a time, under the server's advisory lock
    study_file = write_study(folder, name=STUDY, trials=TARGET,
                             confirm={"top": 3, "epochs": 1, "seeds": 2, "max_seeds": 2})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = ["search", str(study_file), "--storage", postgres.url, "--no-progress"]
    procs: list[subprocess.Popen] = []
    outs = [(folder / f"worker{i}.out", folder / f"worker{i}.err") for i in range(WORKERS)]
    try:
        for i, (out, err) in enumerate(outs):
            with out.open("w") as o, err.open("w") as e:
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", GATED_WORKER, *argv], cwd=folder, stdin=subprocess.PIPE, stdout=o,
                    stderr=e, text=True, env={**env, "NAS_TEST_READY": str(folder / f"ready{i}")},
                    start_new_session=True))
        deadline = time.monotonic() + 180
        while not all((folder / f"ready{i}").exists() for i in range(WORKERS)):
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            assert not dead, f"worker {dead[0]} died before the gate:\n{outs[dead[0]][1].read_text()}"
            assert time.monotonic() < deadline, "the workers did not get ready within 180 s"
            time.sleep(0.05)
        start = time.monotonic()
        for p in procs:  # open the gate for all of them at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            p.wait(timeout=300)
        seconds = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
    return Run(study_file, postgres, [p.returncode for p in procs], [o.read_text() for o, _ in outs],
               [e.read_text() for _, e in outs], seconds)


def _trial_numbers(stdout: str) -> list[int]:
    """Trial numbers from a worker's one-line-per-trial log ("#12  * acc 0.5000 ..."), not its
    confirmation's lines ("#12   search 0.5000 -> confirmed ...")."""
    trials = [line for line in stdout.splitlines() if " -> confirmed " not in line]  # not the confirmation's
    return [int(m) for m in re.findall(r"^#(\d+)\s", "\n".join(trials), flags=re.M)]


def test_both_workers_finish_cleanly(two_workers: Run) -> None:
    results = zip(two_workers.returncodes, two_workers.stdouts, two_workers.stderrs, strict=True)
    for i, (rc, out, err) in enumerate(results):
        assert rc == 0, f"worker {i} exited {rc}:\n{out}\n{err}"
        assert "Traceback" not in err, err
        assert "done." in out


def test_study_reaches_its_target_with_nothing_failed_or_left_running(two_workers: Run) -> None:
    trials = two_workers.study().get_trials()
    states = collections.Counter(t.state for t in trials)
    assert states[TrialState.FAIL] == 0, [t.user_attrs.get("fail_reason") for t in trials]
    assert states[TrialState.RUNNING] == 0
    assert states[TrialState.WAITING] == 0
    assert TARGET <= states[TrialState.COMPLETE] <= TARGET + WORKERS - 1, states


def test_each_trial_and_each_baseline_runs_once(two_workers: Run) -> None:
    study = two_workers.study()
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    # Each trial was run by exactly one worker: the workers' logs are disjoint and cover every trial.
    logged = [_trial_numbers(out) for out in two_workers.stdouts]
    assert all(logged), f"a worker ran no trial at all: {logged}"
    assert not set(logged[0]) & set(logged[1]), f"trials run by both workers: {logged}"
    assert sorted(logged[0] + logged[1]) == sorted(t.number for t in trials)
    assert len({t.user_attrs.get("worker") for t in trials}) == WORKERS
    # The baselines were queued once (one creator), and each queued trial was taken by one worker.
    baselines = collections.Counter(t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs)
    assert baselines == {"none": 1, "se": 1}


def test_no_architecture_is_trained_twice(two_workers: Run) -> None:
    complete = two_workers.study().get_trials(states=(TrialState.COMPLETE,))
    by_number = {t.number: t for t in complete}
    trained = collections.Counter(t.user_attrs["arch_id"] for t in complete if "duplicate_of" not in t.user_attrs)
    assert max(trained.values()) == 1, f"trained more than once: {[a for a, n in trained.items() if n > 1]}"
    for t in complete:
        if "duplicate_of" in t.user_attrs:
            original = by_number[t.user_attrs["duplicate_of"]]
            assert original.user_attrs["arch_id"] == t.user_attrs["arch_id"]
            assert "duplicate_of" not in original.user_attrs
            assert original.datetime_complete <= t.datetime_complete
            assert original.values == t.values


def test_the_front_is_confirmed_once_though_both_workers_confirm(two_workers: Run) -> None:
    refined = optuna.load_study(study_name=f"{STUDY}.refined", storage=two_workers.server.url)
    sources = [t.user_attrs["source_trial"] for t in refined.get_trials(states=(TrialState.COMPLETE,))]
    assert len(sources) == len(set(sources)) == 3  # a second confirmer would have added each again
    runs = [k for k in refined.user_attrs if k.startswith("run:")]
    assert len(runs) == 3 * 2
    assert all("confirming 3 architectures" in out for out in two_workers.stdouts)


def test_front_and_export_read_the_study_from_postgres(two_workers: Run, tmp_path: Path) -> None:
    study = two_workers.study()
    front = nas("front", two_workers.study_file, "--storage", two_workers.server.url, "--search", "--json",
                timeout=180)
    assert front.returncode == 0, front.stderr
    rows = json.loads(front.stdout)
    # `nas front` lists one row per architecture on Optuna's front, the earliest trial of each.
    earliest: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(study.best_trials, key=lambda t: t.number):
        earliest.setdefault(t.user_attrs["arch_id"], t)
    assert sorted(r["trial"] for r in rows) == sorted(t.number for t in earliest.values())
    for r in rows:
        assert r["accuracy"] == pytest.approx(study.trials[r["trial"]].values[0])
        assert r["mflops"] == pytest.approx(study.trials[r["trial"]].user_attrs["mflops"])

    table = nas("front", two_workers.study_file, "--storage", two_workers.server.url, timeout=180)
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"confirmed front (1 epochs x 2 seeds; candidates ranked by 1-epoch proxy) of "
                                   f"study {STUDY!r}")

    out = tmp_path / "best.yaml"
    export = nas("export", two_workers.study_file, "--storage", two_workers.server.url, "--search", "--pick",
                 "accuracy", "-o", out, timeout=180)
    assert export.returncode == 0, export.stderr
    document = yaml.safe_load(out.read_text())
    provenance = document["provenance"]
    assert provenance["study"] == STUDY
    best = max(study.best_trials, key=lambda t: (t.values[0], -t.values[1]))
    assert provenance["trial"] in {t.number for t in study.best_trials}
    assert provenance["metrics"]["accuracy"] == pytest.approx(best.values[0])
    assert provenance["storage"].startswith("postgresql+psycopg2://nas:")
    assert PASSWORD not in out.read_text() + export.stdout + front.stdout + table.stdout


def test_the_password_never_reaches_the_output(two_workers: Run) -> None:
    for i, text in enumerate(two_workers.stdouts + two_workers.stderrs):
        assert PASSWORD not in text, f"the database password is printed by worker {i % WORKERS}:\n{text}"


def test_a_plain_postgresql_url_works(two_workers: Run) -> None:
    """`postgresql://user:pw@host/db` is the URL the docs give; with the driver nas installs
    (psycopg2-binary) it must work too, not only `postgresql+psycopg2://`."""
    result = nas("front", two_workers.study_file, "--storage", two_workers.server.plain_url, "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
