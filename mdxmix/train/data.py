"""Training data: songs of a MUSDB18-HQ-layout split, their cached upstream stems, segments.

Every song is prepared once: its mixture is hashed (the cache key) and its statistics
taken (the paper's per-track normalisation), and the upstream stems are computed into
the stem cache if they are not there yet. Segments are then read lazily: the mixture and
references from the WAV files, the upstream stems from memory-mapped float16 arrays, so
a corpus of many hours trains in a few GB of memory.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from ..cache import StemCache, audio_key
from ..device import cpu_thread_share
from ..errors import UserError
from ..mixer.normalize import Normalizer
from ..musdb import MusdbSplit, read_wav
from ..stems import SAMPLE_RATE, STEMS
from ..upstream import Upstream, UpstreamSpec


@dataclass
class PreparedSong:
    name: str
    folder: Path
    frames: int
    normalizer: Normalizer
    upstream_rows: list[np.ndarray]  # one (2, N) float16 array per upstream channel pair, in X's order
    mixture: bool = True  # whether X starts with the mixture (False: the paper's Table 6 condition)

    def read_input(self, start: int, stop: int) -> Tensor:
        """Normalised X (2+C or C, n) for samples [start, stop): the mixture, then the cached upstream stems."""
        rows = [torch.from_numpy(np.asarray(r[:, start:stop], dtype=np.float32)) for r in self.upstream_rows]
        if self.mixture:
            rows.insert(0, _read(self.folder / "mixture.wav", start, stop))
        return self.normalizer.forward(torch.cat(rows) if len(rows) > 1 else rows[0])

    def read_target(self, start: int, stop: int) -> Tensor:
        """Normalised target Y (8, n): the four reference stems."""
        return self.normalizer.forward(torch.cat([_read(self.folder / f"{stem}.wav", start, stop) for stem in STEMS]))

    def read(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        return self.read_input(start, stop), self.read_target(start, stop)


def _read(path: Path, start: int, stop: int) -> Tensor:
    data, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    return torch.from_numpy(np.ascontiguousarray(data.T))


def prepare_split(root: Path, split: str, specs: list[UpstreamSpec], load_upstream: Callable[[int], Upstream],
                  cache: StemCache, *, on_song: Callable[[str, bool], None] | None = None,
                  songs: list[str] | None = None, include_mixture: bool = True, jobs: int = 1) -> list[PreparedSong]:
    """Hash, normalise and cache the upstream stems of every song of a split.

    `load_upstream(i)` is called only on a cache miss, so a fully cached dataset never
    loads (or needs) the upstream models; it must be safe to call from several threads when
    `jobs` > 1. `on_song(name, computed)` reports each song as it is done. `include_mixture=False`
    leaves the mixture out of X (it still sets the normalisation).

    `jobs` songs are prepared at once, in threads sharing the loaded models, with the torch
    threads divided between them: an upstream on one song uses two cores poorly (HDemucs on
    this 2-core CPU: 2.07 s wall with two threads, 2.47 s with one), so two songs with one
    thread each fill the cache ~1.5x faster. Cores that other work keeps busy are left to it
    (`cpu_thread_share`): beside two other jobs, a 215-s song with two threads was 40 % through
    HDemucs after 10 minutes; with one thread its four upstreams took under 90 s. The result is
    in the split's order either way.
    """
    split_reader = MusdbSplit(root, split)
    names = songs if songs is not None else split_reader.tracks()

    def one(name: str) -> PreparedSong:
        folder = split_reader.song_folder(name)
        mixture = torch.from_numpy(np.ascontiguousarray(read_wav(folder / "mixture.wav").T))
        for stem in STEMS:
            if not (folder / f"{stem}.wav").is_file():
                raise UserError(f"{folder}: missing {stem}.wav (expected the MUSDB18-HQ layout)")
        key = audio_key(mixture)
        rows: list[np.ndarray] = []
        computed = False
        for index, spec in enumerate(specs):
            stems = cache.get(spec.id, key)
            if stems is None:
                upstream = load_upstream(index)
                stems, _ = cache.stems(upstream, mixture, key)
                computed = True
            missing = [s for s in spec.stems if s not in stems]
            if missing:
                raise UserError(f"cached stems of {spec.id} lack {missing}")
            rows += [stems[s] for s in spec.stems]
        if on_song is not None:
            on_song(name, computed)
        return PreparedSong(name, folder, mixture.shape[-1], Normalizer.of(mixture), rows, mixture=include_mixture)

    with cpu_thread_share(min(jobs, len(names))):  # the free cores, shared between the songs
        if jobs <= 1 or len(names) <= 1:
            return [one(name) for name in names]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(one, names))


class SegmentDataset(torch.utils.data.Dataset):
    """Training segments of T samples every `shift` samples (paper: T=2^18, shift 2^15)."""

    def __init__(self, songs: list[PreparedSong], segment: int, shift: int) -> None:
        self.songs = songs
        self.segment = segment
        self.index: list[tuple[int, int]] = []
        for i, song in enumerate(songs):
            last = max(song.frames - segment, 0)
            self.index += [(i, start) for start in range(0, last + 1, shift)]
        if not self.index:
            raise UserError("no training segments: the training split is empty")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[Tensor, Tensor]:
        song_index, start = self.index[item]
        song = self.songs[song_index]
        x, y = song.read(start, min(start + self.segment, song.frames))
        if x.shape[-1] < self.segment:  # a song shorter than T is zero-padded, as at inference
            pad = self.segment - x.shape[-1]
            x, y = torch.nn.functional.pad(x, (0, pad)), torch.nn.functional.pad(y, (0, pad))
        return x, y


def song_seconds(songs: list[PreparedSong]) -> float:
    return sum(s.frames for s in songs) / SAMPLE_RATE
