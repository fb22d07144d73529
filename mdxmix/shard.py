"""`--shard K/N`: split one library over N workers with no coordinator.

Every worker expands the same arguments and keeps the songs whose key hashes to its
shard. The key is the song's path relative to the input root it was found under (the
folder given, a glob's fixed leading folders, or a file's own folder), written with `/`,
so it is the same on every machine whatever the mount point and whatever order the file
system lists folders in. The hash is sha256 (Python's `hash()` is salted per process).
Skip-existing does the rest: rerunning a shard redoes only songs whose outputs are missing.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .audio import STDIN
from .errors import UsageError


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based, as in `--shard 2/4`) of `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'K/N' with 1 <= K <= N, else a usage error that says what is expected."""
        k, sep, n = text.strip().partition("/")
        if not sep or not k.strip().isdigit() or not n.strip().isdigit():
            raise UsageError(f"--shard {text!r}: expected K/N, e.g. --shard 1/4 (shards are numbered 1..N)")
        index, count = int(k), int(n)
        if count < 1 or not 1 <= index <= count:
            hint = " (shards are numbered from 1: with a 0-based index i use $((i+1))/N)" if index == 0 and count >= 1 else ""
            raise UsageError(f"--shard {text!r}: K must be between 1 and N, and N at least 1{hint}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The 1-based shard of a song key: the first 8 bytes of sha256(key) modulo `count`."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def _fixed_prefix(pattern: str) -> Path:
    """The leading folders of a glob pattern that contain no wildcard ('music/*/x.wav' → 'music')."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _input_root(argument: str) -> Path:
    path = Path(argument)
    if path.is_dir():
        return path
    if glob.has_magic(argument) and not path.exists():
        return _fixed_prefix(argument)
    return path.parent


def _relative(source: str, root: Path) -> str | None:
    """`source` relative to `root` as a '/'-joined key, or None when it is not inside it."""
    for resolve in (os.path.abspath, os.path.realpath):
        try:
            rel = Path(resolve(source)).relative_to(Path(resolve(root)))
        except ValueError:
            continue
        return PurePosixPath(*rel.parts).as_posix()
    return None


def song_key(source: str, arguments: Sequence[str]) -> str:
    """The stable key of one expanded song: its path relative to the first argument that holds it.

    A file named directly is keyed by its name; a song found under a folder or glob by its
    path below that folder ('live/2019/song.flac'), so two machines that mount the library
    in different places give every song the same key.
    """
    if source == STDIN:
        return STDIN
    if source in arguments:
        return Path(source).name
    for argument in arguments:
        if argument == STDIN:
            continue
        rel = _relative(source, _input_root(argument))
        if rel is not None and rel != ".":
            return rel
    return Path(source).name


def select(sources: Sequence[str], arguments: Sequence[str], shard: Shard) -> list[int]:
    """Indices of the sources (in their given order) that belong to `shard`."""
    if STDIN in sources and shard.count > 1:
        raise UsageError("--shard splits files and folders; stdin ('-') cannot be shared between workers")
    return [i for i, source in enumerate(sources) if shard.holds(song_key(source, arguments))]
