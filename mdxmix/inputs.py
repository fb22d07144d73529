"""Turning command-line arguments into a list of songs: files, folders, globs and stdin."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from .audio import STDIN

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".wv", ".opus", ".caf", ".w64"}


@dataclass(frozen=True)
class Song:
    source: str  # a path, or '-' for stdin
    track: str  # the name used in output paths


def expand_inputs(arguments: list[str]) -> list[Song]:
    """Files as given, folders searched recursively for audio, glob patterns expanded.

    A pattern or folder that yields nothing still appears (as itself), so the user gets a
    per-item error instead of a silent skip. Tracks whose names collide get their parent
    folder's name prepended, so no song overwrites another's stems.
    """
    sources: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if argument == STDIN:
            sources.append(argument)
        elif path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            sources.extend(found or [argument])
        elif any(ch in argument for ch in "*?[") and not path.exists():
            found = sorted(p for p in glob.glob(argument, recursive=True) if Path(p).is_file())
            sources.extend(found or [argument])
        else:
            sources.append(argument)
    unique = list(dict.fromkeys(sources))
    names = ["stdin" if s == STDIN else Path(s).stem for s in unique]
    songs = []
    for source, name in zip(unique, names):
        if names.count(name) > 1 and source != STDIN:
            name = f"{Path(source).resolve().parent.name}-{name}"
        songs.append(Song(source, name))
    return songs
