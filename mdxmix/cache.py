"""On-disk cache of upstream stems, keyed by the audio's content and the upstream's identity.

Upstream models are frozen, so their stems for a given song never change. They are
stored once as float16 `.npy` files (memory-mappable, ≈ 2.5 GB per hour of audio for a
four-stem upstream) and read back by training, evaluation and repeated separations.
A file appears under its final name only when complete (`atomic.py`), so an interrupted
run resumes by computing what is missing. Each entry's `.json` holds a sha256 of the
array and of its own stem list; an entry that fails the check (bit rot, an edit, a
wrong length) is deleted and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .atomic import Staged, atomic_path, is_temp_name, sweep_stale, write_text
from .audio import PcmSamples, Samples
from .errors import UsageError, UserError
from .stems import AUDIO_CHANNELS

CACHE_VERSION = 1
DEFAULT_MAX_GB = 20.0
# Entries from before checksums are kept only if their samples look like audio stems.
LEGACY_PEAK_LIMIT = 256.0
_ENTRY_NAME = re.compile(r"^[0-9a-f]{32}\.(npy|json)$")
_LEGACY_TEMP = re.compile(r"^\.[0-9a-f]{32}\.(npy|json)\.(\d+)(\.\d+)?\.tmp$")  # before atomic.py: pid in the name


def _mark_used(data_path: Path) -> None:
    """Set the entry's access time to now, so that eviction (oldest access first) spares it.

    The kernel does not: with `relatime`, Linux's default mount option, a read updates the
    access time only once a day or after a write, and `noatime` never. Without this, an entry
    read every hour looked as old as its first read and was evicted before entries never read
    again. A cache on a read-only or foreign-owned folder is still read, just not marked."""
    try:
        os.utime(data_path, ns=(time.time_ns(), data_path.stat().st_mtime_ns))
    except OSError:
        pass


def default_cache_dir() -> Path:
    """`$MDXMIX_CACHE` if set, else the user cache dir (e.g. ~/.cache/mdxmix/stems)."""
    override = os.environ.get("MDXMIX_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mdxmix")) / "stems"


def audio_key(mixture: Samples) -> str:
    """A content hash of the 44.1 kHz float32 mixture: the same song gives the same key in any file format."""
    if isinstance(mixture, PcmSamples):  # the same bytes, made a piece at a time
        digest = hashlib.sha256(np.asarray(tuple(mixture.shape), dtype=np.int64).tobytes())
        for piece in mixture.rows():
            digest.update(memoryview(piece.numpy()))
        return digest.hexdigest()[:32]
    data = mixture.detach().to(torch.float32).contiguous().cpu().numpy()
    digest = hashlib.sha256(np.asarray(data.shape, dtype=np.int64).tobytes())
    digest.update(memoryview(data.reshape(-1)))  # no copy: tobytes() doubled an hour-long song's memory
    return digest.hexdigest()[:32]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name)


def max_bytes_from_env() -> int:
    """`$MDXMIX_CACHE_MAX_GB` (default 20) in bytes; a value that is not a number is a usage error."""
    raw = os.environ.get("MDXMIX_CACHE_MAX_GB", "").strip()
    if not raw:
        return int(DEFAULT_MAX_GB * 1e9)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise UsageError(f"MDXMIX_CACHE_MAX_GB={raw!r}: give the cache's size limit in GB, a number >= 0 (e.g. 20)")
    return int(value * 1e9)


def _digest(data_path: Path, stems: list[str], frames: int, upstream_id: str) -> str:
    """sha256 over the array file and the metadata that says how to read it."""
    digest = hashlib.sha256(json.dumps({"stems": stems, "frames": frames, "upstream": upstream_id}, sort_keys=True).encode())
    with open(data_path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _write_meta(meta_path: Path, data_path: Path, stems: list[str], frames: int, upstream_id: str) -> None:
    meta = {"stems": stems, "upstream": upstream_id, "frames": frames, "version": CACHE_VERSION,
            "sha256": _digest(data_path, stems, frames, upstream_id)}
    write_text(meta_path, json.dumps(meta))


class CacheError(UserError):
    """A cache folder that holds things mdxmix did not put there."""


class StemCache:
    """`get`/`put` whole-track stems of one upstream for one mixture key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.limit_bytes = max_bytes_from_env()  # checked now, not after the first upstream ran

    def _paths(self, upstream_id: str, key: str) -> tuple[Path, Path]:
        folder = self.root / f"v{CACHE_VERSION}" / _safe(upstream_id)
        return folder / f"{key}.npy", folder / f"{key}.json"

    def get(self, upstream_id: str, key: str, *, frames: int | None = None,
            stems: tuple[str, ...] | None = None) -> dict[str, np.ndarray] | None:
        """Memory-mapped (2, N) float16 views of each stem, or None when not cached (or damaged).

        `frames` and `stems`, when given, must match the entry too (the mixture's length,
        the upstream's stems). A damaged or mismatched entry is deleted so that it is
        recomputed; a file that cannot be read right now (an OSError) is left alone.
        """
        data_path, meta_path = self._paths(upstream_id, key)
        if not (data_path.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            names, length, digest = [str(n) for n in meta["stems"]], int(meta["frames"]), meta.get("sha256")
            if digest is not None and digest != _digest(data_path, names, length, upstream_id):
                raise ValueError("checksum mismatch")
            data = np.load(data_path, mmap_mode="r")
            if data.shape != (AUDIO_CHANNELS * len(names), length) or data.dtype != np.float16:
                raise ValueError("wrong shape")
            if (frames is not None and length != frames) or (stems is not None and not set(stems) <= set(names)):
                raise ValueError("not this mixture's or upstream's entry")
            if digest is None:  # written before entries had checksums: check what can be checked, then pin it
                if not np.isfinite(data).all() or float(np.abs(data).max(initial=0.0)) > LEGACY_PEAK_LIMIT:
                    raise ValueError("implausible samples")
                _write_meta(meta_path, data_path, names, length, upstream_id)
        except OSError:
            return None
        except (ValueError, KeyError, TypeError):
            self.drop(upstream_id, key)
            return None
        _mark_used(data_path)
        return {stem: data[AUDIO_CHANNELS * i : AUDIO_CHANNELS * (i + 1)] for i, stem in enumerate(names)}

    def drop(self, upstream_id: str, key: str) -> None:
        """Delete one entry (a damaged one, so that it is computed again)."""
        for path in self._paths(upstream_id, key):
            path.unlink(missing_ok=True)

    def put(self, upstream_id: str, key: str, stems: dict[str, Tensor]) -> None:
        data_path, meta_path = self._paths(upstream_id, key)
        names = list(stems)
        array = torch.cat([stems[s].float().cpu() for s in names], dim=0).clamp(-65000, 65000).numpy().astype(np.float16)
        if not np.isfinite(array).all():
            return  # an upstream that produced NaN is not remembered
        self.sweep()
        with atomic_path(data_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array)
            _write_meta(meta_path, tmp, names, int(array.shape[-1]), upstream_id)
        self.enforce_limit()

    def writer(self, upstream_id: str, key: str, stems: tuple[str, ...], frames: int) -> "CacheWriter":
        """Fill one entry block by block (the streaming pipeline); it appears only when complete."""
        return CacheWriter(self, upstream_id, key, stems, frames)

    def stems(self, upstream, mixture: Tensor, key: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """The upstream's stems for `mixture`, computed and stored on a miss; returns (stems, was_cached)."""
        key = key or audio_key(mixture)
        frames, names = int(mixture.shape[-1]), tuple(upstream.stems)
        cached = self.get(upstream.name, key, frames=frames, stems=names)
        if cached is not None:
            return cached, True
        separated = upstream.separate(mixture)
        self.put(upstream.name, key, separated)
        stored = self.get(upstream.name, key, frames=frames, stems=names)
        if stored is None:  # not storable (non-finite) or evicted at once by a tiny size limit
            stored = {s: separated[s].float().cpu().numpy().astype(np.float16) for s in names}
        return stored, False

    def enforce_limit(self, limit_bytes: int | None = None) -> None:
        """Delete least recently used entries until the cache fits `limit_bytes` ($MDXMIX_CACHE_MAX_GB, default 20)."""
        limit_bytes = self.limit_bytes if limit_bytes is None else limit_bytes
        # Other threads or processes sharing the cache may delete an entry between the listing
        # and its stat: a vanished entry is simply not counted.
        entries = sorted(((path, stat.st_atime, stat.st_size) for path in self.root.glob(f"v{CACHE_VERSION}/*/*.npy")
                          if (stat := _stat(path)) is not None), key=lambda entry: entry[1]) if self.root.exists() else []
        total = sum(size for _, _, size in entries)
        for data_path, _, size in entries:
            if total <= limit_bytes:
                break
            total -= size
            data_path.unlink(missing_ok=True)
            data_path.with_suffix(".json").unlink(missing_ok=True)

    def sweep(self) -> int:
        """Delete temporaries of writers that died (SIGKILL, power cut); returns how many."""
        removed = 0
        for folder in self.root.glob("v*/*/") if self.root.is_dir() else []:
            removed += sweep_stale(folder)
            for path in folder.glob(".*.tmp"):
                match = _LEGACY_TEMP.match(path.name)
                if match and not _pid_alive(int(match.group(2))):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0

    def _foreign(self) -> Path | None:
        """The first thing under the root that is not a cache entry (or a cache temporary)."""
        for child in self.root.iterdir():
            if not (child.is_dir() and re.fullmatch(r"v\d+", child.name)):
                return child
            for upstream_dir in child.iterdir():
                if not upstream_dir.is_dir():
                    return upstream_dir
                for item in upstream_dir.iterdir():
                    name = item.name
                    if not (item.is_file() and (_ENTRY_NAME.match(name) or is_temp_name(name) or _LEGACY_TEMP.match(name))):
                        return item
        return None

    def clear(self) -> int:
        """Remove every cached stem (never anything else); returns the bytes freed.

        The root may be a folder the user named (`$MDXMIX_CACHE`, `--cache-dir`): if it
        holds anything mdxmix did not write, nothing is deleted.
        """
        if not self.root.exists():
            return 0
        if not self.root.is_dir():
            raise CacheError(f"{self.root}: is a file, not a stem cache folder; nothing was deleted")
        foreign = self._foreign()
        if foreign is not None:
            raise CacheError(f"{self.root} holds {foreign.relative_to(self.root)}, which is not a cached stem; "
                             "nothing was deleted (point --cache-dir or $MDXMIX_CACHE at a folder only mdxmix uses)")
        size = self.size_bytes()
        for version_dir in list(self.root.iterdir()):
            for upstream_dir in list(version_dir.iterdir()):
                for item in list(upstream_dir.iterdir()):
                    item.unlink(missing_ok=True)
                upstream_dir.rmdir()
            version_dir.rmdir()
        return size


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CacheWriter:
    """A float16 .npy filled block by block with positioned writes, renamed when every block is in.

    The entry is (rows, frames) in C order, so one block of one row is one contiguous byte
    range: it is written with `os.pwrite` at its offset. Nothing of the entry is mapped into
    this process (a memory map kept every written page resident: 930 MiB of RSS for a 600-s
    entry, ~6 GB for an hour), so memory stays at one block whatever the song's length.
    """

    def __init__(self, cache: StemCache, upstream_id: str, key: str, stems: tuple[str, ...], frames: int) -> None:
        self.cache, self.upstream_id, self.key, self.stems, self.frames = cache, upstream_id, key, stems, frames
        self.data_path, self.meta_path = cache._paths(upstream_id, key)
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        cache.sweep()
        self.staged = Staged(self.data_path)
        self.tmp = self.staged.tmp
        self.fd: int | None = None
        self.fd, self.offset = _open_npy(self.tmp, (AUDIO_CHANNELS * len(stems), frames))
        self.filled = 0
        self.finite = True
        self._f32, self._f16 = np.empty(0, np.float32), np.empty(0, "<f2")

    def write(self, start: int, stems: dict[str, Tensor]) -> None:
        """Store one block of every stem at sample `start` (blocks come in order, each once).

        Each row goes through two buffers kept between blocks (clamped float32, then float16),
        so a block allocates nothing new: fresh large arrays cost page faults every time.
        """
        assert self.fd is not None
        width = 0
        for i, stem in enumerate(self.stems):
            block = stems[stem].detach().to("cpu", torch.float32).numpy()
            self.finite = self.finite and bool(np.isfinite(block).all())
            width = block.shape[-1]
            if self._f32.shape[0] < width:
                self._f32, self._f16 = np.empty(width, np.float32), np.empty(width, "<f2")
            for channel in range(AUDIO_CHANNELS):
                np.clip(block[channel], -65000, 65000, out=self._f32[:width])
                self._f16[:width] = self._f32[:width]
                row = AUDIO_CHANNELS * i + channel
                _pwrite_all(self.fd, memoryview(self._f16[:width]).cast("B"), self.offset + 2 * (row * self.frames + start))
        self.filled += width

    def commit(self) -> None:
        if self.filled < self.frames or not self.finite:
            self.abort()  # never store an entry with holes or NaN
            return
        self._close()
        try:
            _write_meta(self.meta_path, self.tmp, list(self.stems), self.frames, self.upstream_id)
            self.staged.commit()
        finally:
            self.staged.abort()
        self.cache.enforce_limit()

    def abort(self) -> None:
        self._close()
        self.staged.abort()

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _open_npy(path: Path, shape: tuple[int, int]) -> tuple[int, int]:
    """Create a float16 .npy of `shape` (sparse until written); returns (descriptor, data offset)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f2")), "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        handle.truncate(offset + 2 * shape[0] * shape[1])
    return os.open(path, os.O_WRONLY), offset


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
