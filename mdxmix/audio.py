"""Reading, resampling and writing audio, with the guarantees users ask peers for.

* Any rate and channel count in: mono is duplicated to stereo, more than two channels
  is refused (we cannot guess a downmix the user wants).
* Resampling uses libsoxr (the `soxr` package): high quality, fast, streaming, so the
  output can be converted back to the input's rate block by block.
* Writing stems (atomically, in the chosen format) is `outputs.py`'s job.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from .errors import AudioError, first_line
from .pcm_map import MappedPcm, SeekablePcm, wav_layout
from .stems import AUDIO_CHANNELS

STDIN = "-"
READ_BLOCK = 1 << 20  # frames per read when loading a file
STATS_BLOCK = 1 << 18  # frames per piece of a mixture's mean and std


@dataclass(frozen=True)
class AudioInfo:
    """What we keep of the input to write outputs the way it came in."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    format: str


class PcmSamples:
    """A (2, N) 16-bit song held as int16 and served as float32 slices, exactly as soundfile reads them.

    The song is the one thing the pipeline holds whole (its statistics and its cache key need
    all of it): an hour of stereo is 1.27 GB as float32 and 0.64 GB as int16, and nothing at all
    when a 16-bit WAV file is mapped or a 16-bit FLAC file decoded per window (`pcm_map`). A slice `samples[:, a:b]` is the float32
    tensor q / 32768 (exact), so code that slices a mixture works unchanged; `mean`, `std` and
    `numel` serve the normaliser.
    """

    def __init__(self, ints: Tensor | MappedPcm | SeekablePcm) -> None:
        if not isinstance(ints, Tensor):
            if ints.channels not in (1, 2):
                raise ValueError(f"expected a mono or stereo file, got {ints.channels} channels")
        elif ints.dtype != torch.int16 or ints.dim() != 2:
            raise ValueError(f"expected (channels, N) int16 samples, got {ints.dtype} {tuple(ints.shape)}")
        self.ints = ints

    @property
    def shape(self) -> torch.Size:
        if not isinstance(self.ints, Tensor):
            return torch.Size((AUDIO_CHANNELS, self.ints.frames))
        return self.ints.shape

    @property
    def mapped(self) -> bool:
        """True when the samples are served from the file (mapped or decoded per window), not held."""
        return not isinstance(self.ints, Tensor)

    def dim(self) -> int:
        return 2

    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def float(self) -> "PcmSamples":
        return self  # its slices are float32 already

    def __getitem__(self, index: object) -> Tensor:
        if isinstance(self.ints, Tensor):
            return self.ints[index].to(torch.float32).div_(32768.0)
        rows, columns = index if isinstance(index, tuple) else (index, slice(None))
        if not isinstance(columns, slice) or columns.step not in (None, 1):
            raise IndexError("a mapped song is read in contiguous slices of samples")
        start, stop, _ = columns.indices(self.ints.frames)
        return self._window(start, max(start, stop))[rows].to(torch.float32).div_(32768.0)

    def _window(self, start: int, stop: int) -> Tensor:
        """(2, stop - start) int16 samples."""
        if isinstance(self.ints, Tensor):
            return self.ints[:, start:stop]
        window = torch.from_numpy(self.ints.window(start, stop))
        return window.expand(AUDIO_CHANNELS, -1) if window.shape[0] == 1 else window

    def rows(self) -> Iterator[Tensor]:
        """Float32 pieces of row 0, then of row 1: the (2, N) array's bytes in order (for hashing)."""
        for row in range(self.shape[0]):
            for start in range(0, self.shape[1], READ_BLOCK):
                yield self[row, start : start + READ_BLOCK]

    def _pieces(self) -> Iterator[Tensor]:
        """Float64 pieces of both rows, small enough that the statistics need no song-sized temporaries."""
        for start in range(0, self.shape[1], STATS_BLOCK):
            yield self._window(start, start + STATS_BLOCK).to(torch.float64).div_(32768.0)

    def mean(self) -> Tensor:
        return torch.tensor(sum(float(p.sum()) for p in self._pieces()) / max(1, self.numel()))

    def std(self) -> Tensor:
        """Sample standard deviation (torch's default), accumulated in float64."""
        mean = float(self.mean())
        squares = sum(float(p.sub_(mean).pow_(2).sum()) for p in self._pieces())
        return torch.tensor((squares / max(1, self.numel() - 1)) ** 0.5)


Samples = Tensor | PcmSamples


def read_audio(source: str | Path, *, compact: bool = False) -> tuple[Samples, AudioInfo]:
    """Read a file (or '-' for stdin) as float32 stereo (2, N) at its own rate.

    With `compact`, a 16-bit file comes as `PcmSamples` (half the memory, the same values);
    a plain 16-bit WAV file is mapped and a 16-bit FLAC file decoded a window at a time, so
    neither is held in memory.
    """
    try:
        if str(source) == STDIN:
            data = sys.stdin.buffer.read()
            if not data:
                raise AudioError("stdin is empty: pipe a WAV or FLAC file into `mdxmix -`")
            handle = sf.SoundFile(io.BytesIO(data))
        else:
            path = Path(source)
            if not path.exists():
                raise AudioError(f"{path}: no such file")
            if path.is_dir():
                raise AudioError(f"{path}: is a folder, not an audio file")
            handle = sf.SoundFile(str(path))
        with handle:
            info = AudioInfo(handle.samplerate, handle.channels, handle.frames, handle.subtype, handle.format)
            compact = compact and info.subtype == "PCM_16"
            mapped = _mapped(source, info) if compact else None
            if mapped is not None:
                return mapped, info
            samples = _read_planar(handle, str(source), "int16" if compact else "float32")
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{source}: not a readable audio file ({first_line(exc)})") from exc
    if samples.shape[1] == 0:
        raise AudioError(f"{source}: contains no audio samples")
    audio = to_stereo(torch.from_numpy(samples), str(source))
    return (PcmSamples(audio) if compact else audio), info


def _mapped(source: str | Path, info: AudioInfo) -> PcmSamples | None:
    """A mono or stereo 16-bit WAV or FLAC file on disk as `PcmSamples` served from the file; None otherwise."""
    if str(source) == STDIN or info.channels not in (1, 2) or info.frames <= 0:
        return None
    if info.format == "FLAC":
        try:
            return PcmSamples(SeekablePcm(source, info.frames, info.channels))
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None
    if info.format not in ("WAV", "WAVEX"):
        return None
    layout = wav_layout(source, info.frames)
    if layout is None or layout.channels != info.channels:
        return None
    try:
        return PcmSamples(MappedPcm(source, layout))
    except (OSError, ValueError):
        return None  # a file that cannot be mapped is read instead


def _read_planar(handle: sf.SoundFile, name: str, dtype: str = "float32") -> np.ndarray:
    """The whole file as (channels, N) `dtype`, read in blocks into one array.

    Reading it whole gives (N, channels) and the transpose copies it: two copies of the song
    at once (2.6 GB for an hour of stereo). Blocks also let the finiteness check stay small.
    """
    out = np.empty((handle.channels, max(0, handle.frames)), dtype=dtype)
    position = 0
    while True:
        block = handle.read(READ_BLOCK, dtype=dtype, always_2d=True)
        if block.shape[0] == 0:
            break
        check_finite(block, name)
        if position + block.shape[0] > out.shape[1]:  # a header that undercounts: grow
            out = np.concatenate([out[:, :position], np.empty((out.shape[0], block.shape[0]), dtype)], axis=1)
        out[:, position : position + block.shape[0]] = block.T
        position += block.shape[0]
    return out if position == out.shape[1] else np.ascontiguousarray(out[:, :position])


def to_stereo(audio: Tensor, name: str = "input") -> Tensor:
    """(channels, N) → (2, N): mono is duplicated, stereo kept, anything else refused."""
    if audio.shape[0] == 1:
        return audio.expand(2, -1).contiguous()
    if audio.shape[0] == 2:
        return audio
    raise AudioError(f"{name}: has {audio.shape[0]} channels; mdxmix separates mono or stereo audio")


def resample(audio: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """(C, N) → (C, round(N·to/from)) with libsoxr's high-quality filter."""
    if from_rate == to_rate:
        return audio
    out = soxr.resample(audio.T.contiguous().numpy(), from_rate, to_rate, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(out.T))


def check_finite(samples: np.ndarray | Tensor, name: str) -> None:
    """Refuse NaN and infinite samples (a broken float file): separators turn them into garbage or crash.

    Checked a block of samples at a time, so that an hour of audio needs no hour-long mask.
    """
    flat = samples.reshape(-1)
    for start in range(0, flat.shape[0], 2 * READ_BLOCK):
        part = flat[start : start + 2 * READ_BLOCK]
        finite = bool(torch.isfinite(part).all()) if isinstance(part, Tensor) else bool(np.isfinite(part).all())
        if not finite:
            raise AudioError(f"{name}: contains NaN or infinite samples; repair or re-export the file")


def resample_chunks(chunks: Iterable[np.ndarray], from_rate: int, to_rate: int, *, frames: int) -> Iterator[np.ndarray]:
    """(C, n) float32 chunks at `from_rate` → (C, m) chunks at `to_rate`, `frames` in all.

    The one streaming resampler: libsoxr keeps its filter state across chunks, so the
    result equals resampling the whole signal, without holding it. The total is trimmed
    or zero-padded to exactly `frames` (the input's length at `to_rate`).
    """
    stream: soxr.ResampleStream | None = None
    position, channels = 0, 2

    def take(block: np.ndarray) -> np.ndarray:
        nonlocal position
        block = block[:, : max(0, frames - position)]
        position += block.shape[1]
        return block

    for chunk in chunks:
        channels = chunk.shape[0]
        if from_rate != to_rate:
            if stream is None:
                stream = soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality="HQ")
            chunk = stream.resample_chunk(np.ascontiguousarray(chunk.T, dtype=np.float32), last=False).T
        block = take(chunk)
        if block.shape[1]:
            yield block
    if stream is not None:
        block = take(stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True).T)
        if block.shape[1]:
            yield block
    if position < frames:
        yield np.zeros((channels, frames - position), dtype=np.float32)
