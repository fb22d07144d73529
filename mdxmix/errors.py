"""Errors a user can cause, kept apart from programming errors.

The command line prints a `UserError` as one line and exits non-zero; anything
else is a bug and keeps its traceback (shown with `--verbose`).
"""

from __future__ import annotations

import threading


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type), for one-line user errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class UserError(Exception):
    """Something the user can fix: a missing file, a wrong checkpoint, no network."""

    exit_code: int = 1


class AudioError(UserError):
    """An input that cannot be read as audio, or an output that cannot be written."""


class CheckpointError(UserError):
    """A checkpoint that is missing, malformed, tampered with or mismatched."""


class UpstreamError(UserError):
    """An upstream separator that cannot be loaded or run."""


class OfflineError(UserError):
    """A file that must come from the network while the network is unavailable."""


class UsageError(UserError):
    """Options that contradict each other or cannot work; exit code 2 like other usage errors."""

    exit_code = 2


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: stops the whole batch (unlike a song's error), after cleanup.

    A `BaseException`, so `except Exception` in a song's error handling never swallows it,
    and not a `KeyboardInterrupt`, so the command-line library does not turn it into a bare exit code.
    """

    def __init__(self, signum: int = 2) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP


class InterruptFlag:
    """Set by the signal handler (main thread); songs in worker threads check it between blocks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum = 2

    def set(self, signum: int = 2) -> None:
        if not self._event.is_set():
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    def check(self) -> None:
        """Raise `Interrupted` if an interrupt arrived."""
        if self._event.is_set():
            raise Interrupted(self.signum)


INTERRUPT = InterruptFlag()
