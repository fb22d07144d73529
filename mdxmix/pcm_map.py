"""A 16-bit song's samples served straight from its file, so an hour-long song is not held.

Why: the pipeline needs the whole mixture (its statistics, its cache key, the blocks the
upstreams see, the residual that makes the stems add up), but only a block of it at a time.
Read into memory, an hour of 16-bit stereo is 0.64 GB of the process's peak; mapped, the
pages a block touched are handed back (`MADV_DONTNEED`) as soon as it is copied out, and
the kernel's page cache keeps them for the next pass at no cost to the process.

Only plain RIFF/WAVE files with 16-bit integer PCM (format tag 1, or the extensible tag with
the same layout) and a data chunk whose size matches the frame count are mapped; other WAVs
(RF64, a streamed header with an unknown size) and stdin are read as before.

A 16-bit FLAC file cannot be mapped, but libsndfile seeks in it to the sample, so it is decoded
a window at a time instead (`SeekablePcm`): about 0.06 s per minute of stereo on this CPU, a
few passes per song (cache key, statistics, the blocks, the residual).

A mapped file that another program truncates would kill the process (SIGBUS) on the next read
of a missing page, so every window first checks the open file's size and ends the song with a
clean error instead; a file that grows, or is replaced by a rename, is unaffected (the map holds
the original file, and only the frames its header declared).
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError

PCM = 1
EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class WavLayout:
    """Where a 16-bit WAV file's interleaved samples are."""

    offset: int  # bytes from the start of the file to the first sample
    channels: int
    frames: int


def wav_layout(path: str | Path, frames: int) -> WavLayout | None:
    """The data chunk of a 16-bit PCM WAV file holding `frames` frames, or None when it is not one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            channels = None
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = handle.read(size)
                    if len(fmt) < 16:
                        return None
                    tag, channels, _, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
                    if tag not in (PCM, EXTENSIBLE) or bits != 16 or align != 2 * channels:
                        return None
                    if tag == EXTENSIBLE and (len(fmt) < 26 or struct.unpack("<H", fmt[24:26])[0] != PCM):
                        return None
                    handle.seek(size & 1, 1)
                elif name == b"data":
                    if channels is None or size != frames * 2 * channels:
                        return None  # no format yet, or a header that does not match the frame count
                    offset = handle.tell()
                    if Path(path).stat().st_size < offset + size:
                        return None
                    return WavLayout(offset, channels, frames)
                else:
                    handle.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None


class MappedPcm:
    """(frames, channels) little-endian int16 samples of a file, read a window at a time."""

    def __init__(self, path: str | Path, layout: WavLayout) -> None:
        self.path = str(path)
        self._handle = open(path, "rb")  # kept open: its size is checked before every read
        weakref.finalize(self, self._handle.close)
        self._map = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.layout = layout
        count = layout.frames * layout.channels
        self._samples = np.frombuffer(self._map, dtype="<i2", count=count, offset=layout.offset)
        self._samples = self._samples.reshape(layout.frames, layout.channels)

    @property
    def frames(self) -> int:
        return self.layout.frames

    @property
    def channels(self) -> int:
        return self.layout.channels

    def window(self, start: int, stop: int) -> np.ndarray:
        """(channels, stop - start) native int16, copied out; the file pages it touched are released."""
        stop = min(stop, self.layout.frames)
        end = self.layout.offset + stop * 2 * self.layout.channels
        if stop > start and os.fstat(self._handle.fileno()).st_size < end:
            raise AudioError(f"{self.path}: the file was cut short while it was being read")
        out = np.array(self._samples[start:stop].T, dtype=np.int16, order="C")  # a copy, never a view of the map
        self._release(start, stop)
        return out

    def _release(self, start: int, stop: int) -> None:
        step = 2 * self.layout.channels
        first = (self.layout.offset + start * step) // mmap.PAGESIZE * mmap.PAGESIZE
        end = self.layout.offset + stop * step
        if end <= first:
            return
        try:
            self._map.madvise(mmap.MADV_DONTNEED, first, end - first)
        except (AttributeError, OSError, ValueError):
            pass  # no madvise on this platform: only memory is at stake, never the samples


class SeekablePcm:
    """(frames, channels) int16 samples of a seekable file (16-bit FLAC), decoded a window at a time.

    Reads are serialised: a seek and the read after it must not interleave with another
    thread's (the GPU path's prefetch worker reads blocks while the main thread reads the residual).
    """

    def __init__(self, path: str | Path, frames: int, channels: int) -> None:
        self.path = str(path)
        self.frames = frames
        self.channels = channels
        self._file = sf.SoundFile(self.path)
        weakref.finalize(self, self._file.close)
        self._lock = threading.Lock()
        self._file.seek(frames - 1)  # a header that overcounts is read whole instead (the caller's fallback)
        if self._file.read(2, dtype="int16", always_2d=True).shape[0] != 1:
            raise OSError(f"{self.path}: the header's frame count does not match the file")

    def window(self, start: int, stop: int) -> np.ndarray:
        """(channels, stop - start) native int16."""
        stop = min(stop, self.frames)
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.int16)
        try:
            with self._lock:
                self._file.seek(start)
                block = self._file.read(stop - start, dtype="int16", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioError(f"{self.path}: could not be read again while separating ({exc})") from exc
        if block.shape[0] != stop - start:
            raise AudioError(f"{self.path}: the file was cut short while it was being read")
        return np.ascontiguousarray(block.T)


__all__ = ["MappedPcm", "SeekablePcm", "WavLayout", "wav_layout"]
