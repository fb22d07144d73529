"""Systems scored straight from a checkpoint: its mixer, and its upstreams from the stem cache.

Both are picklable callables `track -> {stem: (samples, 2) array}`, so `score_systems` can
send them to worker processes; each process loads its model once, on first use. Upstream
stems come from the same on-disk cache that training filled, so the upstream baselines,
the ensembles and the mixer all see identical upstream estimates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cache import StemCache, audio_key
from ..checkpoint import read_meta
from ..musdb import MusdbSplit
from ..pipeline import Separator
from ..registry import Registry
from ..stems import SAMPLE_RATE, STEMS
from ..upstream import build_upstream
from ..upstream.base import UpstreamSpec
from ..upstream.stem_files import StemFiles
from ..weightfiles import file_sha256, upstream_search_path
from .journal import folder_stamp


def _worker_threads() -> None:
    # Several scoring processes share the cores; one thread each avoids oversubscription.
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)


class CheckpointEstimates:
    """Separate a split's mixtures with a checkpoint (upstream stems via the cache)."""

    def __init__(self, checkpoint: str, data: Path, split: str, cache_dir: Path | None, device: str = "cpu",
                 consistency: str | None = None, stem_files: list[StemFiles] | None = None,
                 specs: list[UpstreamSpec] | None = None, search: list[Path] | None = None) -> None:
        self.checkpoint, self.data, self.split = checkpoint, Path(data), split
        self.cache_dir, self.device = cache_dir, device
        self.consistency = consistency  # None: the separator's default
        self.stem_files = list(stem_files or [])  # with these, an agnostic checkpoint mixes only them
        self.specs, self.search = specs, list(search or [])  # upstreams run here instead of the checkpoint's own
        self._separator = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_separator": None}

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        if self._separator is None:
            _worker_threads()
            options = {} if self.consistency is None else {"consistency": self.consistency}
            specs = self.specs if self.specs else ([] if self.stem_files else None)
            self._separator = Separator(self.checkpoint, device=self.device, cache=StemCache(self.cache_dir),
                                        specs=specs, search=self.search, stem_files=self.stem_files, **options)
        mixture = MusdbSplit(self.data, self.split).mixture(track)
        stems = self._separator.separate(torch.from_numpy(np.ascontiguousarray(mixture.T)), SAMPLE_RATE, track=track)
        return {stem: stems[stem].numpy().T for stem in STEMS}

    def __repr__(self) -> str:
        return f"CheckpointEstimates({self.checkpoint!r})"

    def fingerprint(self) -> str:
        """The checkpoint by content, and everything that changes what it outputs here."""
        _, path = Registry.load().checkpoint_path(self.checkpoint)
        parts = [f"checkpoint {file_sha256(Path(path))}", f"consistency {self.consistency}",
                 *(f"upstream {spec.id}" for spec in self.specs or []),
                 *(f"stems {folder_stamp(files.folder)} {files.mapping}" for files in self.stem_files)]
        return "; ".join(parts)


class StemFilesEstimates:
    """The stems another tool wrote for a split's songs (`--stems-from`), checked against each mixture's length."""

    def __init__(self, files: StemFiles, data: Path, split: str) -> None:
        self.files, self.data, self.split = files, Path(data), split

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        frames = MusdbSplit(self.data, self.split).mixture(track).shape[0]
        return {stem: np.asarray(reader).T for stem, reader in self.files.open(track, frames).items()}

    def __repr__(self) -> str:
        return f"StemFilesEstimates({str(self.files.folder)!r})"

    def fingerprint(self) -> str:
        return f"stems {folder_stamp(self.files.folder)} {self.files.mapping}"


class UpstreamEstimates:
    """One upstream's stems of a split's mixtures, read from (or computed into) the cache."""

    def __init__(self, spec: UpstreamSpec, search: list[Path], data: Path, split: str, cache_dir: Path | None,
                 device: str = "cpu") -> None:
        self.spec, self.search, self.data, self.split = spec, search, Path(data), split
        self.cache_dir, self.device = cache_dir, device
        self._upstream = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_upstream": None}

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        mixture = torch.from_numpy(np.ascontiguousarray(MusdbSplit(self.data, self.split).mixture(track).T))
        cache = StemCache(self.cache_dir)
        key = audio_key(mixture)
        stems = cache.get(self.spec.id, key)
        if stems is None:
            if self._upstream is None:
                _worker_threads()
                self._upstream = build_upstream(self.spec, self.search, self.device)
            stems, _ = cache.stems(self._upstream, mixture, key)
        return {stem: np.asarray(stems[stem], dtype=np.float32).T for stem in self.spec.stems}

    def __repr__(self) -> str:
        return f"UpstreamEstimates({self.spec.id!r})"


def upstream_systems(checkpoint: str, data: Path, split: str, cache_dir: Path | None) -> dict[str, UpstreamEstimates]:
    """Every upstream a checkpoint mixes, by a short name, for the baseline rows."""
    _, path = Registry.load().checkpoint_path(checkpoint)
    return spec_systems(read_meta(path).upstreams, upstream_search_path(path), data, split, cache_dir)


def spec_systems(specs: list[UpstreamSpec], search: list[Path], data: Path, split: str,
                 cache_dir: Path | None) -> dict[str, UpstreamEstimates]:
    """These upstreams by a short name (the file name without .safetensors, else the id), for the baseline rows."""
    systems = {}
    for spec in specs:
        name = spec.model.removesuffix(".safetensors")
        if name in systems:
            name = spec.id
        systems[name] = UpstreamEstimates(spec, search, data, split, cache_dir)
    return systems
