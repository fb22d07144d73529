"""Reading, resampling and writing audio, with the guarantees users ask peers for.

* Any rate and channel count in: mono is duplicated to stereo, more than two channels
  is refused (we cannot guess a downmix the user wants).
* Resampling uses libsoxr (the `soxr` package): high quality, fast, streaming, so the
  output can be converted back to the input's rate block by block.
* Outputs are written to a hidden temporary name in the destination folder and renamed
  only when complete, so an interrupted or failed run never leaves a half-written stem.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from .errors import AudioError

STDIN = "-"


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
            frames = handle.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{source}: not a readable audio file ({_short(exc)})") from exc
    if frames.shape[0] == 0:
        raise AudioError(f"{source}: contains no audio samples")
    return to_stereo(torch.from_numpy(np.ascontiguousarray(frames.T)), str(source)), info


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


def resampled_length(frames: int, from_rate: int, to_rate: int) -> int:
    """The length `resample` produces, which the streaming writer must reproduce."""
    if from_rate == to_rate:
        return frames
    return int(round(frames * to_rate / from_rate))


def output_subtype(info: AudioInfo | None) -> str:
    """Keep 24-bit and float precision of the input; default to 16-bit PCM."""
    if info is not None and info.subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        return "FLOAT" if info.subtype == "DOUBLE" else info.subtype
    return "PCM_16"


class AtomicAudioWriter:
    """Append audio blocks to a temporary file, resample on the fly, rename when complete.

    Blocks arrive at `source_rate` (44.1 kHz inside the pipeline); they are streamed
    through libsoxr to `target_rate` and the file is cut or zero-padded to exactly
    `frames` samples so the output has the input's length.
    """

    def __init__(self, path: Path, *, source_rate: int, target_rate: int, frames: int, subtype: str = "PCM_16") -> None:
        self.path = Path(path)
        self.frames = frames
        self.written = 0
        self._stream = (
            None if source_rate == target_rate else soxr.ResampleStream(source_rate, target_rate, 2, dtype="float32", quality="HQ")
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp.wav", dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=target_rate, channels=2, subtype=subtype, format="WAV")
        except (OSError, sf.LibsndfileError) as exc:
            self._cleanup()
            raise AudioError(f"cannot write {self.path}: {_short(exc)}") from exc

    def write(self, block: Tensor, last: bool = False) -> None:
        data = block.T.contiguous().numpy().astype(np.float32, copy=False)
        if self._stream is not None:
            data = self._stream.resample_chunk(data, last=last)
        data = data[: max(self.frames - self.written, 0)]
        try:
            self._file.write(data)
        except (OSError, sf.LibsndfileError) as exc:
            self.abort()
            raise AudioError(f"cannot write {self.path}: {_short(exc)}") from exc
        self.written += data.shape[0]

    def commit(self) -> Path:
        """Flush the resampler, pad to the exact length, and move the file into place."""
        if self._stream is not None:
            self.write(torch.zeros(2, 0), last=True)
        if self.written < self.frames:
            self._file.write(np.zeros((self.frames - self.written, 2), dtype=np.float32))
            self.written = self.frames
        self._file.close()
        os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the destination is never touched."""
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - closing a broken file must not hide the first error
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_audio(path: Path, audio: Tensor, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a whole (2, N) tensor atomically."""
    writer = AtomicAudioWriter(path, source_rate=sample_rate, target_rate=sample_rate, frames=audio.shape[-1], subtype=subtype)
    try:
        writer.write(audio)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
