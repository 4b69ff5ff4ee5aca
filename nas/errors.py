"""The project's exceptions: one base, a few kinds.

The CLI turns every `NasError` into one line on stderr and exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class NasError(Exception):
    """Base of every error `nas` raises on purpose."""


class ConfigError(NasError, ValueError):
    """A setting, config or file the user wrote is invalid.

    Messages name the field, the value and what is allowed; when the setting came from a file,
    the file is named too (see `with_source`).
    """


class DataError(NasError):
    """A dataset cannot be found or read, or is unusable (empty, a single class, ...)."""


class TrainingDiverged(NasError):
    """The proxy loss became NaN or infinite; the search records the trial as failed."""


class StudyError(NasError):
    """A study cannot run or make progress (storage unreachable, no feasible candidate, ...)."""


class MachineBusy(NasError):
    """A latency could not be measured to its interval in the time allowed: the machine is too
    loaded for a figure to be trusted, so none is stored."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, systemd, Slurm, Kubernetes) arrived: handled exactly like Ctrl-C — the
    running trial is marked failed with its reason — but the command exits 143, not 130.

    A KeyboardInterrupt subclass because Optuna marks a trial FAIL on Exception and
    KeyboardInterrupt only; any other BaseException would leave it RUNNING."""

    reason = "terminated (SIGTERM)"


def interrupt_reason(interrupt: KeyboardInterrupt) -> str:
    """The `fail_reason` a trial stopped by this interrupt gets."""
    return interrupt.reason if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"


def with_source(error: ConfigError, source: str) -> ConfigError:
    """Return `error` with `source` (a file path) prefixed, unless it already names it."""
    message = str(error)
    if message.startswith(f"{source}:"):
        return error
    return type(error)(f"{source}: {message}")
