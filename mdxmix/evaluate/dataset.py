"""Estimates in mdxmix's output layout: ``<dir>/<track>/{drums,bass,other,vocals}.wav``.

References in the MUSDB18-HQ layout are read by :mod:`mdxmix.musdb`, shared with
training. Both readers are small picklable objects, so they can be handed to worker
processes and read there (sending paths is cheaper than sending audio).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..musdb import read_wav
from ..stems import STEMS


class EvaluationError(UserError):
    """A user-facing problem of an evaluation (missing estimates, nothing to score): one line."""


class EstimatesFolder:
    """A folder of separated stems in the output layout; callable as ``track → stems``.

    A stem file absent for a track means the system does not produce that stem (it is
    simply not scored); a track folder absent is an error naming the track.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EvaluationError(f"estimates folder not found: {self.folder}")

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        tdir = self.folder / track
        if not tdir.is_dir():
            raise EvaluationError(f"track {track!r} missing from estimates folder {self.folder}")
        return {stem: read_wav(tdir / f"{stem}.wav") for stem in STEMS if (tdir / f"{stem}.wav").is_file()}

    def check_tracks(self, tracks: list[str]) -> None:
        """Fail early, before any scoring, if a track folder is missing."""
        missing = [t for t in tracks if not (self.folder / t).is_dir()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise EvaluationError(f"track {missing[0]!r} missing from estimates folder {self.folder}{more}")

    def __repr__(self) -> str:
        return f"EstimatesFolder({str(self.folder)!r})"

    def fingerprint(self) -> str:
        from .journal import folder_stamp

        return f"estimates {folder_stamp(self.folder)}"
