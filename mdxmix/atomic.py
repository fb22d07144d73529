"""Atomic file writes: the one place that names temporary files and puts results in place.

Everything mdxmix writes (stems, cache entries, checkpoints, training state, reports) is
written under a temporary name in the destination's folder and renamed over the final
name, so a reader sees the old file or the whole new one, never half of one.

Temporary names are short and fixed-length (`.mdxmix-<pid>-<random>.tmp`, at most 32
bytes), so they fit wherever the final name fits, even names near the 255-byte limit.
They carry the writer's process id: a later run deletes temporaries whose process is
gone (killed with SIGKILL, a power cut), which nothing else could clean up.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

TEMP_PREFIX = ".mdxmix-"
_TEMP_NAME = re.compile(r"^\.mdxmix-(\d+)-[0-9a-f]{8}\.tmp$")
NAME_MAX = 255  # bytes per path component on every common file system


def _read_umask() -> int:
    # Read once at import (single-threaded), never while worker threads create files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def temp_path(destination: Path) -> Path:
    """A fresh temporary name in `destination`'s folder, owned by this process."""
    return destination.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp"


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


def make_public(path: Path) -> None:
    """The permissions a plain `open()` would give: 0o666 minus the umask (tempfile makes 0o600)."""
    os.chmod(path, 0o666 & ~_UMASK)


class Staged:
    """A temporary file beside `destination` that becomes it on `commit()` or disappears on `abort()`."""

    def __init__(self, destination: str | Path) -> None:
        self.destination = Path(destination)
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.destination)

    def commit(self) -> Path:
        make_public(self.tmp)
        os.replace(self.tmp, self.destination)
        return self.destination

    def abort(self) -> None:
        remove(self.tmp)


@contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `destination`, on failure it is removed."""
    staged = Staged(destination)
    try:
        yield staged.tmp
        staged.commit()
    finally:
        staged.abort()  # after a commit there is nothing left to remove


def write_bytes(destination: str | Path, data: bytes) -> Path:
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)
    return Path(destination)


def write_text(destination: str | Path, text: str) -> Path:
    return write_bytes(destination, text.encode("utf-8"))


def remove(path: Path) -> None:
    """Delete a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(pairs: list[tuple[Path, Path]]) -> None:
    """Rename every (temporary, final) pair into place, all or none.

    Each final file that already exists is first hard-linked to a backup name (no data is
    copied), so if a later rename fails, the new files are removed and the old ones put back.
    """
    done: list[tuple[Path, Path | None]] = []  # (final, backup of the file it replaced)
    try:
        for tmp, final in pairs:
            backup = None
            if final.is_file():
                backup = temp_path(final)
                try:
                    os.link(final, backup)
                except OSError:
                    backup = None  # a file system without hard links: no way back for this one
            try:
                make_public(tmp)
                os.replace(tmp, final)
            except BaseException:
                if backup is not None:
                    backup.unlink(missing_ok=True)
                raise
            done.append((final, backup))
    except BaseException:
        for final, backup in reversed(done):
            if backup is not None:
                os.replace(backup, final)
            else:
                final.unlink(missing_ok=True)
        raise
    finally:
        for tmp, _ in pairs:
            remove(tmp)
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def sweep_stale(folder: Path, *, recursive: bool = False) -> int:
    """Delete temporaries left in `folder` by processes that no longer run; returns how many."""
    if not folder.is_dir():
        return 0
    removed = 0
    candidates = folder.rglob(f"{TEMP_PREFIX}*") if recursive else folder.glob(f"{TEMP_PREFIX}*")
    for path in list(candidates):
        match = _TEMP_NAME.match(path.name)
        if match and not _alive(int(match.group(1))):
            remove(path)
            removed += 1
    return removed


def check_name_lengths(path: Path) -> str | None:
    """Why `path` cannot exist on disk (a component over 255 bytes), or None."""
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            return f"the name {part[:40]}… is {len(os.fsencode(part))} bytes; file systems allow {NAME_MAX}"
    return None


def check_output_file(path: Path, option: str, *, create_folder: bool = False) -> None:
    """Fail before any work when `path` could not be written: a missing or read-only folder.

    With `create_folder` a missing folder is fine as long as it can be made (as for ``--out``),
    so ``--out results/ --plot results/sdr.png`` works before ``results/`` exists.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        if not create_folder:
            raise UsageError(f"{option} {path}: the folder {folder} does not exist")
        check_output_folder(folder, option)
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {folder} is not writable")
    reason = check_name_lengths(path)
    if reason:
        raise UsageError(f"{option} {path}: {reason}")


def check_output_folder(folder: Path, option: str) -> None:
    """Fail before any work when `folder` cannot hold outputs: a file in the way, or read-only."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{option} {folder}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {folder}: {probe} is not writable")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
