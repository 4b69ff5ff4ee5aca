"""benchmarks/harness.py's claim: how benchmark workers started side by side split long runs
(end_to_end.py's confirmation). A claimed run is one worker's until it finishes or dies, so no run
is trained twice and a killed worker's run is not lost to the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from harness import claim  # noqa: E402


def hold(lock: Path) -> subprocess.Popen:
    """Another worker that claims `lock` and keeps it until killed."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from harness import claim\n"
            "with claim(__import__('pathlib').Path(sys.argv[2])) as mine:\n"
            "    print(mine, flush=True); time.sleep(120)")
    worker = subprocess.Popen([sys.executable, "-c", code, str(BENCHMARKS), str(lock)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    assert worker.stdout is not None and worker.stdout.readline().strip() == "True"
    return worker


def test_a_claimed_run_is_one_workers_until_it_dies(tmp_path):
    lock = tmp_path / "claims" / "run.lock"  # its folder is made on the first claim
    worker = hold(lock)
    try:
        with claim(lock) as mine:
            assert mine is False  # held elsewhere: answered at once, not waited for
    finally:
        worker.kill()
        worker.wait()
    with claim(lock) as mine:  # the dead worker's claim is free again
        assert mine is True
        with claim(lock) as again:
            assert again is False  # one holder at a time, even within a process
    with claim(lock) as mine:  # released when the work is done
        assert mine is True
