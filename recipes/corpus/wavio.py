"""Byte-reproducible WAV writers: float32 (v1) and 16-bit stem sets (v2).

Why not ``soundfile.write``: libsndfile adds a PEAK chunk with a timestamp to float WAV
files, so two identical renders differ in their bytes. These writers emit only the
``fmt``/(``fact``)/``data`` chunks, which every reader accepts.

Why 16-bit for v2: 12 hours of five float32 stereo files are 76 GB; 16-bit halves that.
So that the stems still add up to the mixture exactly, the mixture is written as the
integer sum of the rounded stems (clipped to int16 where a sum would overflow, which a
master peaking below 0.999 cannot reach by more than 2 LSB).
"""

from __future__ import annotations

import os
import struct

import numpy as np


def write_float32(path: str, x: np.ndarray, sr: int) -> None:
    """Write (n, channels) float32 audio; written to ``path + '.tmp'`` then renamed."""
    x = np.ascontiguousarray(x, dtype="<f4")
    if x.ndim == 1:
        x = x[:, None]
    n, ch = x.shape
    data = x.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, ch, sr, sr * ch * 4, ch * 4, 32, 0)
    fact = struct.pack("<I", n)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(data)))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        f.write(data)
    os.replace(tmp, path)


def _write_riff(path: str, fmt: bytes, extra: bytes, data: bytes) -> None:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", len(data))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        f.write(data)
    os.replace(tmp, path)


def write_pcm16(path: str, x: np.ndarray, sr: int) -> None:
    """Write (n, channels) int16 audio; written to ``path + '.tmp'`` then renamed."""
    x = np.ascontiguousarray(x, dtype="<i2")
    ch = x.shape[1]
    fmt = struct.pack("<HHIIHH", 1, ch, sr, sr * ch * 2, ch * 2, 16)
    _write_riff(path, fmt, b"", x.tobytes())


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) to int16, rounded to nearest."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def write_pcm16_set(folder: str, stems: dict[str, np.ndarray], sr: int) -> int:
    """Stems as 16-bit WAVs and ``mixture.wav`` as their integer sum; returns clipped samples."""
    ints = {k: to_int16(v) for k, v in stems.items()}
    total = sum(v.astype(np.int32) for v in ints.values())
    mixture = np.clip(total, -32768, 32767)
    for k, v in ints.items():
        write_pcm16(os.path.join(folder, f"{k}.wav"), v, sr)
    write_pcm16(os.path.join(folder, "mixture.wav"), mixture.astype(np.int16), sr)
    return int(np.count_nonzero(mixture != total))
