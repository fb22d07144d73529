"""Readers for the two folder layouts evaluation consumes.

* references, MUSDB18-HQ layout: ``<root>/<split>/<song>/{mixture,drums,bass,other,vocals}.wav``
* estimates, mdxmix's output layout: ``<dir>/<track>/{drums,bass,other,vocals}.wav``

Both are small picklable objects, so they can be handed to worker processes and read
there (sending paths is cheaper than sending audio). Audio comes back as float32
``(samples, 2)`` at 44.1 kHz; mono files are duplicated to stereo; another sample rate is
an error (resampling would change what is scored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from mdxmix.stems import AUDIO_CHANNELS, SAMPLE_RATE, STEMS

try:  # the core's base class for errors the CLI prints as one line
    from mdxmix.errors import UserError as _UserError
except ImportError:  # pragma: no cover - keeps this subpackage usable on its own
    _UserError = Exception  # type: ignore[misc,assignment]


class EvaluationError(_UserError):
    """A user-facing problem (missing folder, missing track, bad file): one-line message."""


def read_wav(path: Path) -> np.ndarray:
    """Read one stem as float32 ``(samples, 2)``; checks the sample rate."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # unreadable or corrupt file
        raise EvaluationError(f"cannot read {path}: {exc}") from None
    if rate != SAMPLE_RATE:
        raise EvaluationError(f"{path} is at {rate} Hz; evaluation needs {SAMPLE_RATE} Hz")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, AUDIO_CHANNELS, axis=1)
    if audio.shape[1] != AUDIO_CHANNELS:
        raise EvaluationError(f"{path} has {audio.shape[1]} channels; expected {AUDIO_CHANNELS}")
    return audio


class MusdbSplit:
    """One split of a MUSDB18-HQ-layout folder: track names, references, mixture."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        self.folder = self.root / split
        if not self.root.is_dir():
            raise EvaluationError(f"data folder not found: {self.root}")
        if not self.folder.is_dir():
            raise EvaluationError(f"split folder not found: {self.folder}")

    def tracks(self) -> list[str]:
        """Sorted names of the song folders (hidden folders skipped)."""
        names = sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not names:
            raise EvaluationError(f"no tracks in {self.folder}")
        return names

    def _path(self, track: str, name: str) -> Path:
        path = self.folder / track / f"{name}.wav"
        if not path.is_file():
            raise EvaluationError(f"missing reference {path}")
        return path

    def references(self, track: str) -> dict[str, np.ndarray]:
        """The four reference stems of ``track``."""
        return {stem: read_wav(self._path(track, stem)) for stem in STEMS}

    def mixture(self, track: str) -> np.ndarray:
        """The mixture of ``track``."""
        return read_wav(self._path(track, "mixture"))

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        return self.references(track)


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
