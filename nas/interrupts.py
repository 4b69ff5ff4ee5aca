"""Ctrl-C and SIGTERM for a long-running command: the first one stops it cleanly, later ones wait.

The first SIGINT raises KeyboardInterrupt and the first SIGTERM raises `Terminated` (a
KeyboardInterrupt), so Optuna marks the running trial failed and the CLI prints one line and
exits 130 or 143. A second signal while that clean-up is writing to the storage is ignored:
Python's default would raise again in the middle of it and end the process with a traceback.
A third one ends the process at once (exit 130 or 143, nothing more written); the trial it
leaves RUNNING is failed and retried by the next worker (`nas.study.workers` reaps dead workers).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from nas.errors import Terminated

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as shells report it


class _Handler:
    def __init__(self) -> None:
        self.received = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received == 1:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.received == 2:
            return
        os._exit(EXIT.get(signum, 130))


def ignore_further() -> None:
    """Ignore SIGINT/SIGTERM from here on, for a process on its way out after an interrupt: at
    exit Python puts its own handlers back to the default, and a second Ctrl-C arriving then
    would end the process by the signal instead of the exit status already chosen."""
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT:
            signal.signal(signum, signal.SIG_IGN)


def install() -> None:
    """Route SIGINT and SIGTERM through one handler for the rest of the process (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (e.g. main() run by a test thread)
    handler = _Handler()
    for signum in EXIT:
        signal.signal(signum, handler)
