"""On-disk cache of upstream stems, keyed by the audio's content and the upstream's identity.

Upstream models are frozen, so their stems for a given song never change. They are
stored once as float16 `.npy` files (memory-mappable, ≈ 2.5 GB per hour of audio for a
four-stem upstream) and read back by training, evaluation and repeated separations.
A file appears under its final name only when complete, so an interrupted run resumes
by computing what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .stems import AUDIO_CHANNELS

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$MDXMIX_CACHE` if set, else the user cache dir (e.g. ~/.cache/mdxmix/stems)."""
    override = os.environ.get("MDXMIX_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mdxmix")) / "stems"


def audio_key(mixture: Tensor) -> str:
    """A content hash of the 44.1 kHz float32 mixture: the same song gives the same key in any file format."""
    data = mixture.detach().to(torch.float32).contiguous().cpu().numpy()
    digest = hashlib.sha256(np.asarray(data.shape, dtype=np.int64).tobytes())
    digest.update(data.tobytes())
    return digest.hexdigest()[:32]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name)


class StemCache:
    """`get`/`put` whole-track stems of one upstream for one mixture key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _paths(self, upstream_id: str, key: str) -> tuple[Path, Path]:
        folder = self.root / f"v{CACHE_VERSION}" / _safe(upstream_id)
        return folder / f"{key}.npy", folder / f"{key}.json"

    def get(self, upstream_id: str, key: str) -> dict[str, np.ndarray] | None:
        """Memory-mapped (2, N) float16 views of each stem, or None when not cached."""
        data_path, meta_path = self._paths(upstream_id, key)
        if not (data_path.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            data = np.load(data_path, mmap_mode="r")
        except (ValueError, OSError):
            return None  # a damaged entry is recomputed, never trusted
        if data.shape[0] != AUDIO_CHANNELS * len(meta["stems"]):
            return None
        return {stem: data[AUDIO_CHANNELS * i : AUDIO_CHANNELS * (i + 1)] for i, stem in enumerate(meta["stems"])}

    def put(self, upstream_id: str, key: str, stems: dict[str, Tensor]) -> None:
        data_path, meta_path = self._paths(upstream_id, key)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        names = list(stems)
        array = torch.cat([stems[s].float().cpu() for s in names], dim=0).clamp(-65000, 65000).numpy().astype(np.float16)
        tmp = data_path.with_name(f".{data_path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        meta_tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        meta_tmp.write_text(json.dumps({"stems": names, "upstream": upstream_id, "frames": array.shape[-1], "version": CACHE_VERSION}))
        os.replace(tmp, data_path)
        os.replace(meta_tmp, meta_path)

    def writer(self, upstream_id: str, key: str, stems: tuple[str, ...], frames: int) -> "CacheWriter":
        """Fill one entry block by block (the streaming pipeline); it appears only when complete."""
        return CacheWriter(self, upstream_id, key, stems, frames)

    def stems(self, upstream, mixture: Tensor, key: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """The upstream's stems for `mixture`, computed and stored on a miss; returns (stems, was_cached)."""
        key = key or audio_key(mixture)
        cached = self.get(upstream.name, key)
        if cached is not None:
            return cached, True
        self.put(upstream.name, key, upstream.separate(mixture))
        stored = self.get(upstream.name, key)
        assert stored is not None
        return stored, False

    def enforce_limit(self, limit_bytes: int | None = None) -> None:
        """Delete least recently used entries until the cache fits `limit_bytes` ($MDXMIX_CACHE_MAX_GB, default 20)."""
        if limit_bytes is None:
            limit_bytes = int(float(os.environ.get("MDXMIX_CACHE_MAX_GB", "20")) * 1e9)
        entries = sorted(self.root.glob(f"v{CACHE_VERSION}/*/*.npy"), key=lambda p: p.stat().st_atime) if self.root.exists() else []
        total = sum(p.stat().st_size for p in entries)
        for data_path in entries:
            if total <= limit_bytes:
                break
            total -= data_path.stat().st_size
            data_path.unlink()
            data_path.with_suffix(".json").unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0

    def clear(self) -> int:
        """Remove every cached stem; returns the bytes freed."""
        size = self.size_bytes()
        if self.root.exists():
            shutil.rmtree(self.root)
        return size


class CacheWriter:
    """A float16 .npy filled in place through a memory map, renamed when every block is in."""

    def __init__(self, cache: StemCache, upstream_id: str, key: str, stems: tuple[str, ...], frames: int) -> None:
        self.cache, self.upstream_id, self.key, self.stems, self.frames = cache, upstream_id, key, stems, frames
        self.data_path, self.meta_path = cache._paths(upstream_id, key)
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.data_path.with_name(f".{self.data_path.name}.{os.getpid()}.{id(self)}.tmp")
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float16, shape=(AUDIO_CHANNELS * len(stems), frames))
        self.filled = 0

    def write(self, start: int, stems: dict[str, Tensor]) -> None:
        for i, stem in enumerate(self.stems):
            block = stems[stem].float().clamp(-65000, 65000).cpu().numpy()
            self.array[AUDIO_CHANNELS * i : AUDIO_CHANNELS * (i + 1), start : start + block.shape[-1]] = block
            width = block.shape[-1]
        self.filled += width

    def commit(self) -> None:
        if self.filled < self.frames:
            self.abort()  # never store an entry with holes
            return
        self.array.flush()
        del self.array
        meta_tmp = self.meta_path.with_name(f".{self.meta_path.name}.{os.getpid()}.tmp")
        meta_tmp.write_text(json.dumps({"stems": list(self.stems), "upstream": self.upstream_id, "frames": self.frames, "version": CACHE_VERSION}))
        os.replace(self.tmp, self.data_path)
        os.replace(meta_tmp, self.meta_path)
        self.cache.enforce_limit()

    def abort(self) -> None:
        if hasattr(self, "array"):
            del self.array
        self.tmp.unlink(missing_ok=True)
