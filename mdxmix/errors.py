"""Errors a user can cause, kept apart from programming errors.

The command line prints a `UserError` as one line and exits non-zero; anything
else is a bug and keeps its traceback (shown with `--verbose`).
"""

from __future__ import annotations


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
