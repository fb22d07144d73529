"""Byte-reproducible float32 WAV writer.

Why not ``soundfile.write``: libsndfile adds a PEAK chunk with a timestamp to float WAV
files, so two identical renders differ in their bytes. This writer emits only the
``fmt``/``fact``/``data`` chunks (WAVE_FORMAT_IEEE_FLOAT), which every reader accepts.
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
