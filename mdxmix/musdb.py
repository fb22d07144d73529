"""The MUSDB18-HQ folder layout, read by training and evaluation alike.

A dataset root holds one folder per split, one folder per song in it, and in each song
``mixture.wav`` plus the four stems: ``<root>/<split>/<song>/{mixture,drums,bass,other,vocals}.wav``.

MUSDB18-HQ itself ships only ``train/`` and ``test/``; its validation split is a list of
14 training songs that the ``musdb`` package defines (``musdb/configs/mus.yaml``,
``validation_tracks``, musdb 0.4.3). When a root has no ``valid/`` folder but its
``train/`` holds all of those songs, split ``valid`` is those 14 songs and split
``train`` is the other training songs, exactly as ``musdb.DB(subsets="train",
split=...)`` divides them, so ``--data MUSDB18HQ`` works as downloaded.

Audio comes back as float32 ``(samples, 2)`` at 44.1 kHz; mono files are duplicated to
stereo; another sample rate is an error (resampling would change what is scored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import UserError
from .stems import AUDIO_CHANNELS, SAMPLE_RATE, STEMS

#: musdb 0.4.3, musdb/configs/mus.yaml, `validation_tracks` (the order there).
MUSDB18_VALIDATION_SONGS: tuple[str, ...] = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)
TRAIN, VALID = "train", "valid"


class DatasetError(UserError):
    """A dataset that cannot be read as asked: missing folder, song or file, wrong format."""


def read_wav(path: Path) -> np.ndarray:
    """Read one file as float32 ``(samples, 2)``; checks the sample rate and channel count."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # unreadable or corrupt file
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if rate != SAMPLE_RATE:
        raise DatasetError(f"{path} is at {rate} Hz; training and evaluation need {SAMPLE_RATE} Hz")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, AUDIO_CHANNELS, axis=1)
    if audio.shape[1] != AUDIO_CHANNELS:
        raise DatasetError(f"{path} has {audio.shape[1]} channels; expected {AUDIO_CHANNELS}")
    return audio


def _song_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def builtin_validation(root: Path) -> bool:
    """True when `root` is MUSDB18-HQ as downloaded: no valid/, and train/ holds the 14 validation songs."""
    train = root / TRAIN
    return not (root / VALID).is_dir() and train.is_dir() and all((train / s).is_dir() for s in MUSDB18_VALIDATION_SONGS)


def split_exists(root: Path, split: str) -> bool:
    """Whether `split` can be read from `root` (a folder, or MUSDB18's built-in validation list)."""
    return (Path(root) / split).is_dir() or (split == VALID and builtin_validation(Path(root)))


class MusdbSplit:
    """One split of a MUSDB18-HQ-layout folder: song names, references, mixture."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DatasetError(f"data folder not found: {self.root}")
        self.builtin = split in (TRAIN, VALID) and builtin_validation(self.root)
        # The folder holding this split's song folders (train/ for MUSDB18's built-in valid).
        self.folder = self.root / (TRAIN if self.builtin else split)
        if not self.folder.is_dir():
            hint = f" (and {self.root / TRAIN} does not hold MUSDB18's 14 validation songs)" if split == VALID else ""
            raise DatasetError(f"split folder not found: {self.folder}{hint}")

    def __repr__(self) -> str:
        return f"MusdbSplit({str(self.root.resolve())!r}, {self.split!r})"

    def tracks(self) -> list[str]:
        """Sorted names of the song folders (hidden folders skipped)."""
        names = _song_folders(self.folder)
        if self.builtin:
            chosen = set(MUSDB18_VALIDATION_SONGS)
            names = [n for n in names if (n in chosen) == (self.split == VALID)]
        if not names:
            raise DatasetError(f"no tracks in {self.folder}")
        return names

    def song_folder(self, track: str) -> Path:
        return self.folder / track

    def _path(self, track: str, name: str) -> Path:
        path = self.song_folder(track) / f"{name}.wav"
        if not path.is_file():
            raise DatasetError(f"missing reference {path}")
        return path

    def references(self, track: str) -> dict[str, np.ndarray]:
        """The four reference stems of ``track``."""
        return {stem: read_wav(self._path(track, stem)) for stem in STEMS}

    def mixture(self, track: str) -> np.ndarray:
        """The mixture of ``track``."""
        return read_wav(self._path(track, "mixture"))

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        return self.references(track)
