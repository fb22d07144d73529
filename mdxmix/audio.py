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

STDIN = "-"
READ_BLOCK = 1 << 20  # frames per read when loading a file


@dataclass(frozen=True)
class AudioInfo:
    """What we keep of the input to write outputs the way it came in."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    format: str


def read_audio(source: str | Path) -> tuple[Tensor, AudioInfo]:
    """Read a file (or '-' for stdin) as float32 stereo (2, N) at its own rate."""
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
            samples = _read_planar(handle, str(source))
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{source}: not a readable audio file ({first_line(exc)})") from exc
    if samples.shape[1] == 0:
        raise AudioError(f"{source}: contains no audio samples")
    return to_stereo(torch.from_numpy(samples), str(source)), info


def _read_planar(handle: sf.SoundFile, name: str) -> np.ndarray:
    """The whole file as (channels, N) float32, read in blocks into one array.

    Reading it whole gives (N, channels) and the transpose copies it: two copies of the song
    at once (2.6 GB for an hour of stereo). Blocks also let the finiteness check stay small.
    """
    out = np.empty((handle.channels, max(0, handle.frames)), dtype=np.float32)
    position = 0
    while True:
        block = handle.read(READ_BLOCK, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        check_finite(block, name)
        if position + block.shape[0] > out.shape[1]:  # a header that undercounts: grow
            out = np.concatenate([out[:, :position], np.empty((out.shape[0], block.shape[0]), np.float32)], axis=1)
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
