"""Shared fixtures: small study files on the synthetic set, the real CLI in a subprocess, and
system tools (Chromium, PostgreSQL, Fashion-MNIST) that CI must have."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

# One torch/OpenMP thread per test process, set before anything imports torch. The suite's models are
# tiny, so a second thread gains little on an idle machine, while on a busy one (CI on 2 shared cores,
# or `pytest -n 2`, one worker per core) OpenMP threads that outnumber the free cores spin-wait on each
# other: test_build's resnet50 case took 113 s with two threads and 15 s with one, back to back. The
# subprocesses the tests start already ran with one thread (nas(), the workers); an explicit
# OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # imported before this file (a plugin): the variable came too late for it
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"] or 1))

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("nas")  # the installed console script: the real command
NAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "nas.cli"]

# A study small enough that a trial takes about a second on a 2-core CPU.
TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "backbone": "cifar_resnet",
    "backbone_args": {"depth": 8, "width": 4},
    "dataset": {"name": "synthetic", "subset": 200, "image_size": 16},
    "search_space": {"kinds": ["none", "se", "eca", "cbam", "ge"], "se": {"reduction": [2, 4]},
                     "ge": {"extent": [0, 2]}},
    "proxy": {"epochs": 1, "batch_size": 50},
    "sampler": {"name": "tpe", "seed": 0},
    "trials": 6,
    "baselines": ["none", "se"],
    "noise_seeds": 1,  # no extra seeds of `none`: the trial counts the tests assert stay as written
    "confirm": {"after_search": False},  # a search ends with its trials; tests/test_confirm.py confirms
}


def require_system(what: str, present: bool) -> None:
    """Skip when a system tool is missing on a developer's machine; fail in CI, which has them."""
    if present:
        return
    if os.environ.get("NAS_REQUIRE_SYSTEM_TESTS"):
        pytest.fail(f"{what} is required here (NAS_REQUIRE_SYSTEM_TESTS is set); run scripts/system-packages")
    pytest.skip(f"{what} is not installed (scripts/system-packages installs it)")


def write_study(folder: Path, **overrides: Any) -> Path:
    """Write TINY_STUDY (with overrides; a None value removes the key) to folder/<name>.yaml."""
    data = {**TINY_STUDY, **overrides}
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / f"{data.get('name', 'study')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def nas(*args: str, cwd: Path | None = None, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run the real `nas` command; returns the completed process (text output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([*NAS, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)


def nas_in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`nas ARGS` through `nas.cli.main`, the function behind the command, in this process: the same
    exit status and output as `nas()` without a fresh interpreter importing torch (seconds each, and
    tens on a busy machine). For the many refusals whose point is the message; `nas()` stays the
    choice wherever the process matters (exit by a signal, start-up output, workers, what loads).
    A warning raised while the command runs is printed to its stderr, as Python's default filters
    would in the real process."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    hook, old = sys.unraisablehook, Path.cwd()
    import optuna

    verbosity = optuna.logging.get_verbosity()
    os.chdir(cwd or old)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()  # a fresh interpreter's filters, not the test run's
            for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")  # first, as there
            try:
                code = main([str(a) for a in args])
            except SystemExit as exit_:  # argparse refuses a command line by exiting
                code = exit_.code if isinstance(exit_.code, int) else 1
            for w in caught:
                err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    finally:
        os.chdir(old)
        for signum, handler in handlers.items():  # main() installs its Ctrl-C / SIGTERM handlers
            signal.signal(signum, handler)
        sys.unraisablehook = hook  # and an unraisable hook
        optuna.logging.set_verbosity(verbosity)
    return subprocess.CompletedProcess(["nas", *map(str, args)], code, out.getvalue(), err.getvalue())


def nas_popen(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*NAS, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    return write_study(tmp_path)


def wait_for(predicate: Any, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds (errors count as not yet: the database may not exist yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the database may not exist yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def python_child(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, so a native crash (heap corruption, a signal) fails the one
    test that caused it, with its signal in `returncode`, instead of aborting the whole suite."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
