"""Turning command-line arguments into a list of songs: files, folders, globs and stdin."""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .audio import STDIN
from .naming import is_output_folder

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".wv", ".opus", ".caf", ".w64"}


@dataclass(frozen=True)
class Song:
    source: str  # a path, or '-' for stdin
    track: str  # the name used in output paths, unique within the run


@dataclass(frozen=True)
class Expansion:
    songs: list[Song]
    notes: list[str]  # one line per group of songs renamed so that their outputs do not collide


def _search(folder: Path, exclude: list[Path]) -> list[str]:
    """Audio files under `folder`, leaving out output folders (`-o`, or any folder mdxmix wrote)."""
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        if is_output_folder(here) or here.resolve() in exclude:
            dirs.clear()
            continue
        dirs.sort()
        found += [str(here / f) for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS and (here / f).is_file()]
    return sorted(found)


def _unique_names(sources: list[str]) -> tuple[list[str], list[str]]:
    """A track name per source, unique even on case-insensitive file systems.

    A name shared by several sources gets its parent folders prepended, as few as tell
    them apart (`live-intro`, `demo-intro`); sources that differ only in their extension
    (`in.flac`, `in.mp3`) get it appended (`in-flac`); anything still equal is numbered.
    """
    names = ["stdin" if s == STDIN else Path(s).stem for s in sources]
    groups: dict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        groups[name.casefold()].append(index)
    notes = []
    for members in groups.values():
        if len(members) < 2:
            continue
        paths = [Path(sources[i]).resolve() for i in members]
        chosen = None
        for depth in range(1, max(len(p.parts) for p in paths)):
            candidate = ["-".join([*p.parent.parts[len(p.parent.parts) - depth:], p.stem]) for p in paths]
            if len({c.casefold() for c in candidate}) == len(candidate):
                chosen = candidate
                break
        if chosen is None:
            chosen = [f"{p.stem}-{p.suffix.lstrip('.')}" if p.suffix else p.stem for p in paths]
        for i, name in zip(members, chosen):
            names[i] = name
        notes.append(f"{len(members)} songs are named '{Path(sources[members[0]]).stem}'; their stems go to {', '.join(chosen)}")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):  # a renamed song may now equal another song's plain name
        key = name.casefold()
        if key in seen:
            seen[key] += 1
            names[index] = f"{name}-{seen[key]}"
            notes.append(f"{sources[index]}: its name is taken in this run; its stems go to {names[index]}")
        else:
            seen[key] = 1
    return names, notes


def expand_inputs(arguments: list[str], *, exclude: list[Path] = ()) -> Expansion:
    """Files as given, folders searched recursively for audio, glob patterns expanded.

    A pattern or folder that yields nothing still appears (as itself), so the user gets a
    per-item error instead of a silent skip. Folders given in `exclude` (the output
    folder) and folders holding mdxmix's output marker are not searched, so a run never
    separates stems an earlier run wrote. Every song gets a distinct track name.
    """
    excluded = [Path(p).resolve() for p in exclude]
    sources: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if argument == STDIN:
            sources.append(argument)
        elif path.is_dir():
            sources.extend(_search(path, excluded) or [argument])
        elif any(ch in argument for ch in "*?[") and not path.exists():
            found = sorted(p for p in glob.glob(argument, recursive=True) if Path(p).is_file())
            sources.extend(found or [argument])
        else:
            sources.append(argument)
    unique = list(dict.fromkeys(sources))
    names, notes = _unique_names(unique)
    return Expansion([Song(source, name) for source, name in zip(unique, names)], notes)
