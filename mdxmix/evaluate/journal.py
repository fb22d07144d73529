"""Per-track scores written as they finish, so that an interrupted evaluation continues.

Why: scoring a test split with museval takes tens of minutes to hours on a CPU (every upstream,
every ensemble rule, every mixer, on every song), and a stopped run used to lose all of it:
the results were written only at the end. With `mdxmix eval --out DIR`, each finished track's
scores are appended to a hidden journal in DIR; rerunning the same command reads it back and
scores only the tracks that are missing. The journal is removed once the results are written.

A journal is only reused for the same evaluation: its name and its first line hold a digest of
what is scored (the data split, every system's name and identity, metrics, backend). System
identities come from `fingerprint`: checkpoint files by their sha256 and upstreams by their
content-pinned ids, so a retrained model file is never mixed with scores of the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

PREFIX = ".eval-journal-"


def fingerprint(source: object) -> str:
    """What a system (or the references) is, for the journal: its `fingerprint()` if it has one, else its repr."""
    method = getattr(source, "fingerprint", None)
    return method() if callable(method) else repr(source)


def folder_stamp(folder: Path) -> str:
    """A folder of audio files by path and by the newest change of anything in it (rewritten stems show)."""
    folder = Path(folder).resolve()
    newest = max((path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()), default=0)
    return f"{folder}@{newest}"


class ScoreJournal:
    """An append-only JSON-lines file of finished tracks: `(track, scores, seconds, notes)`."""

    def __init__(self, folder: Path, identity: dict) -> None:
        text = json.dumps(identity, sort_keys=True)
        self.header = {"journal": 1, "digest": hashlib.sha256(text.encode()).hexdigest()}
        self.path = Path(folder) / f"{PREFIX}{self.header['digest'][:16]}.jsonl"
        self._open = False  # whether the file on disk is this journal (checked by `load`)
        self._torn = False

    def load(self, tracks: Iterable[str]) -> dict[str, tuple]:
        """The finished tracks among `tracks` (a torn last line, from a kill mid-write, is ignored)."""
        wanted, done = set(tracks), {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return done
        lines = text.splitlines()
        if not lines or _parse(lines[0]) != self.header:
            return done
        self._open = True
        self._torn = not text.endswith("\n")  # the next line must not be glued to a torn one
        for line in lines[1:]:
            entry = _parse(line)
            if isinstance(entry, dict) and entry.get("track") in wanted:
                done[entry["track"]] = (entry["track"], entry["scores"], entry["seconds"], entry["notes"])
        return done

    def append(self, track: str, scores: dict, seconds: dict, notes: list[str]) -> None:
        """Add one finished track (a journal not read back by `load` starts afresh); on disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a" if self._open else "w") as handle:
            if not self._open:
                handle.write(json.dumps(self.header) + "\n")
                self._open = True
            elif self._torn:
                handle.write("\n")
                self._torn = False
            handle.write(json.dumps({"track": track, "scores": scores, "seconds": seconds, "notes": notes}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def clear(folder: Path) -> int:
        """Remove every journal in `folder` (after its results are written); returns how many."""
        removed = 0
        for path in Path(folder).glob(f"{PREFIX}*.jsonl"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _parse(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
