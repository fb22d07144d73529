"""Bring your own stems: an upstream that reads the stems another separator already wrote.

Why: strong separators (htdemucs_ft, UVR/audio-separator models, MSST models) are run by
their own tools; re-running them inside mdxmix is slow or impossible offline. Their output
folders are an upstream like any other, for the agnostic mixer (and for scoring in
`mdxmix eval`). Recognised layouts, for a song whose file name (without extension) is TRACK:

* demucs:                           ``DIR/TRACK/<stem>.<ext>`` (DIR is e.g. ``separated/htdemucs``;
  ``DIR/<model>/TRACK/<stem>.<ext>`` is accepted when exactly one model folder has the song)
* audio-separator (UVR models):     ``DIR/TRACK_(Vocals)_<model>.<ext>`` (any capitalisation)
* Music-Source-Separation-Training: ``DIR/TRACK_<stem>.<ext>`` (also ``DIR/TRACK/<stem>.<ext>``)
* an explicit mapping ``DIR::vocals={track}-voc.flac,drums=d/{track}.wav``: a path per stem.

Stems other than drums, bass, other and vocals (e.g. "Instrumental") are ignored. Files
must be at 44.1 kHz or at the song's own rate, and as long as the song (within 10 ms,
which covers resampling round-off); anything else is one clear error line. Files at
44.1 kHz are read lazily, block by block, so long songs do not fill the memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import UpstreamError, UsageError, first_line
from ..stems import AUDIO_CHANNELS, SAMPLE_RATE, STEMS

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
TOLERANCE_SECONDS = 0.01
FAMILY = "files"


@dataclass(frozen=True)
class StemFiles:
    """A folder of stems written by another tool, or an explicit mapping of stems to paths."""

    folder: Path
    mapping: dict[str, str] = field(default_factory=dict)  # stem -> path template with {track}, relative to folder

    @property
    def name(self) -> str:
        """The upstream's identity in outputs and listings: ``files:<folder name>``."""
        return f"{FAMILY}:{self.folder.resolve().name}"

    def locate(self, track: str) -> dict[str, Path]:
        """{stem: file} for one song, in `STEMS` order; an error line when the song has no stems here."""
        if self.mapping:
            found = {s: self.folder / t.format(track=track) for s, t in self.mapping.items()}
            absent = [str(p) for p in found.values() if not p.is_file()]
            if absent:
                raise UpstreamError(f"--stems-from {self.folder}: no file {absent[0]} for song '{track}'")
        else:
            found = _demucs(self.folder, track) or _audio_separator(self.folder, track) or _msst(self.folder, track)
            if not found:
                raise UpstreamError(
                    f"--stems-from {self.folder}: no stems for song '{track}' (looked for {track}/<stem>.wav, "
                    f"<model>/{track}/<stem>.wav, {track}_(Vocals)_<model>.wav and {track}_<stem>.wav)")
        return {s: found[s] for s in STEMS if s in found}

    def open(self, track: str, frames: int, song_rate: int = SAMPLE_RATE) -> dict[str, "StemReader"]:
        """Readers of the song's stems at 44.1 kHz, checked against its length (`frames` at 44.1 kHz)."""
        return {stem: StemReader.open(path, frames, song_rate) for stem, path in self.locate(track).items()}


def parse_stems_from(text: str) -> StemFiles:
    """One `--stems-from` value: ``DIR`` or ``DIR::stem=template,stem=template``."""
    folder, _, mapping_text = text.partition("::")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UsageError(f"--stems-from {text!r}: {path} is not a folder")
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in mapping_text.split(","))):
        stem, sep, template = item.partition("=")
        if not sep or stem not in STEMS or not template:
            raise UsageError(f"--stems-from {text!r}: expected DIR::stem=path-with-{{track}},… with stems from {', '.join(STEMS)}")
        if stem in mapping:
            raise UsageError(f"--stems-from {text!r}: {stem} is mapped twice")
        try:
            template.format(track="x")
        except (KeyError, IndexError, ValueError):
            raise UsageError(f"--stems-from {text!r}: {template!r} may use only {{track}}") from None
        mapping[stem] = template
    return StemFiles(path, mapping)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS) if folder.is_dir() else []


def _by_stem(files: list[Path], pattern: re.Pattern) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        match = pattern.fullmatch(path.stem)
        stem = match.group("stem").lower() if match else None
        if stem in STEMS and stem not in found:
            found[stem] = path
    return found


def _demucs(folder: Path, track: str) -> dict[str, Path]:
    plain = _by_stem(_audio_files(folder / track), re.compile(r"(?P<stem>\w+)"))
    if plain:
        return plain
    models = [d for d in sorted(folder.iterdir()) if d.is_dir() and (d / track).is_dir()] if folder.is_dir() else []
    if len(models) > 1:
        raise UpstreamError(f"--stems-from {folder}: song '{track}' is in several model folders "
                            f"({', '.join(d.name for d in models)}); name one of them")
    return _by_stem(_audio_files(models[0] / track), re.compile(r"(?P<stem>\w+)")) if models else {}


def _audio_separator(folder: Path, track: str) -> dict[str, Path]:
    return _by_stem(_audio_files(folder), re.compile(re.escape(track) + r"_\((?P<stem>[^)]+)\)(_.*)?"))


def _msst(folder: Path, track: str) -> dict[str, Path]:
    return _by_stem(_audio_files(folder), re.compile(re.escape(track) + r"_(?P<stem>[A-Za-z]+)"))


class StemReader:
    """A (2, N) float32 view of one stem file at 44.1 kHz: `reader[:, a:b]` reads only those samples."""

    def __init__(self, path: Path, frames: int, data: np.ndarray | None) -> None:
        self.path, self.frames, self._data = path, frames, data
        self.shape = (AUDIO_CHANNELS, frames)

    @classmethod
    def open(cls, path: Path, frames: int, song_rate: int) -> "StemReader":
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise UpstreamError(f"{path}: not a readable audio file ({first_line(exc)})") from None
        if info.channels not in (1, 2):
            raise UpstreamError(f"{path}: {info.channels} channels; stems must be mono or stereo")
        if info.samplerate not in (SAMPLE_RATE, song_rate):
            expected = f"{SAMPLE_RATE} Hz" + (f" or the song's {song_rate} Hz" if song_rate != SAMPLE_RATE else "")
            raise UpstreamError(f"{path}: {info.samplerate} Hz, expected {expected}")
        length = info.frames if info.samplerate == SAMPLE_RATE else round(info.frames * SAMPLE_RATE / info.samplerate)
        if abs(length - frames) > TOLERANCE_SECONDS * SAMPLE_RATE:
            raise UpstreamError(f"{path}: {length / SAMPLE_RATE:.2f} s long, the song is {frames / SAMPLE_RATE:.2f} s "
                                "(stems of another song, or of an edited file?)")
        data = None
        if info.samplerate != SAMPLE_RATE:  # resample once, whole (a stem at the song's own rate)
            audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
            data = _fit(soxr.resample(audio, info.samplerate, SAMPLE_RATE, quality="HQ").T, frames)
        return cls(path, frames, data)

    def __getitem__(self, index: tuple[slice, slice]) -> np.ndarray:
        rows, columns = index
        start, stop, _ = columns.indices(self.frames)
        if self._data is not None:
            return self._data[rows, start:stop]
        audio, _ = sf.read(str(self.path), start=start, stop=stop, dtype="float32", always_2d=True)
        return _fit(audio.T, stop - start)[rows]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:, 0 : self.frames]
        return whole if dtype is None else whole.astype(dtype)


def _fit(audio: np.ndarray, frames: int) -> np.ndarray:
    """(channels, n) → (2, frames): mono duplicated, a few samples of round-off padded or cut."""
    if audio.shape[0] == 1:
        audio = np.repeat(audio, AUDIO_CHANNELS, axis=0)
    if audio.shape[1] < frames:
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
    return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
