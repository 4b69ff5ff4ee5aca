"""Ctrl-C and SIGTERM for a long-running command: the first one stops it cleanly, later ones wait.

The first SIGINT raises KeyboardInterrupt and the first SIGTERM raises `Terminated` (a
KeyboardInterrupt), so Optuna marks the running trial failed and the CLI prints one line and
exits 130 or 143. A second signal while that clean-up is writing to the storage is ignored:
Python's default would raise again in the middle of it and end the process with a traceback.
A third one ends the process at once (exit 130 or 143, nothing more written); the trial it
leaves RUNNING is failed and retried by the next worker (`nas.study.workers` reaps dead workers).

A first signal can land while Python runs a finaliser (a `__del__`, a weakref callback: SQLAlchemy
runs some at every garbage collection). Python prints "Exception ignored in ..." and drops what the
handler raised there, and the stop would be lost; `_dropped`, the `sys.unraisablehook`, sees that
and delivers the signal again, to be raised in ordinary code.

Some code drops it without a trace: C code that clears any error raised under it (CPython's
`PyObject_HasAttr` and `PyDict_GetItem` do, around a Python `__getattr__`, `__eq__` or `__hash__`,
which torch modules have) or a library's `except BaseException: pass`. Nothing is printed and the
process ran on and exited 0 (seen twice in CI: `nas search` ignored a SIGTERM mid-trial). So the
long loops (every training step, every trial) call `stop_if_swallowed`, which raises the interrupt
again when it was raised and the process is still at work.

A signal can also land while a module is being imported, e.g. torch's start-up, where a C++
extension (pybind11) runs Python code: an exception raised there cannot cross the C++ frame and
the process aborts (SIGABRT, a C++ traceback; seen once in CI as Ctrl-C at start-up). Imports
last seconds at most, so the handler delivers such a signal again until it lands outside one.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from types import FrameType

from nas.errors import Terminated

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as shells report it


class _Handler:
    def __init__(self) -> None:
        self.received = 0
        self.raised: KeyboardInterrupt | None = None  # what the first signal raised

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if _inside_the_hook(frame) or _inside_an_import(frame):  # raised here, dropped or fatal
            _deliver_again(signum)
            return
        self.received += 1
        if self.received == 1:
            self.raised = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
            raise self.raised
        if self.received == 2:
            return
        os._exit(EXIT.get(signum, 130))


_handler: _Handler | None = None
_previous_hook = sys.unraisablehook  # what reports everything else (Python's own, or a test runner's)


def _dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """A finaliser dropped an exception: when it is the one our handler raised, undo that signal
    and deliver it again, until it lands in ordinary code."""
    if _handler is None or _handler.raised is None or unraisable.exc_value is not _handler.raised:
        _previous_hook(unraisable)
        return
    signum = signal.SIGTERM if isinstance(_handler.raised, Terminated) else signal.SIGINT
    _handler.raised, _handler.received = None, 0
    _deliver_again(signum)


def stop_if_swallowed() -> None:
    """Raise again an interrupt that was raised and then dropped without a trace. Call it where
    the work goes on (a training step, a trial): an interrupt that propagated never gets there,
    because nothing after it trains."""
    if _handler is not None and _handler.raised is not None:
        raise _handler.raised


def _deliver_again(signum: int) -> None:
    """Run the handler for `signum` again shortly, from another thread: delivered from here, it
    would run at the next check, still inside the hook. Landing in a finaliser or the hook again
    only delivers it once more, so the timing decides how many tries, never whether it lands."""
    timer = threading.Timer(0.01, _thread.interrupt_main, (signum,))
    timer.daemon = True
    timer.start()


def _inside_the_hook(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code is _dropped.__code__:
            return True
        frame = frame.f_back
    return False


def _inside_an_import(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load" and frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def ignore_further() -> None:
    """Ignore SIGINT/SIGTERM from here on, for a process on its way out after an interrupt: at
    exit Python puts its own handlers back to the default, and a second Ctrl-C arriving then
    would end the process by the signal instead of the exit status already chosen."""
    if _handler is not None:
        _handler.raised = None  # caught where it was meant to be: nothing to raise again
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT:
            signal.signal(signum, signal.SIG_IGN)


def install() -> None:
    """Route SIGINT and SIGTERM through one handler for the rest of the process (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (e.g. main() run by a test thread)
    global _handler, _previous_hook
    _handler = _Handler()
    for signum in EXIT:
        signal.signal(signum, _handler)
    if sys.unraisablehook is not _dropped:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _dropped
