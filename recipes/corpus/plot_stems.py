#!/usr/bin/env python
"""Spectrograms of one song's stems (a visual check of a rendered corpus).

    python recipes/corpus/plot_stems.py SONG_DIR OUT.png [--start 30 --length 20]

Why: listening is not possible on a CI box; a log-frequency spectrogram shows at a glance
that drums are broadband transients, bass sits low, and vocals have formants and word
gaps. Needs matplotlib (not part of the recipe's requirements).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("song_dir")
    ap.add_argument("out")
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--length", type=float, default=20.0)
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["mixture", "drums", "bass", "other", "vocals"]
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 13), sharex=True)
    for ax, name in zip(axes, names):
        x, sr = sf.read(os.path.join(a.song_dir, f"{name}.wav"), dtype="float32")
        x = x[int(a.start * sr):int((a.start + a.length) * sr)].mean(axis=1)
        n, hop = 2048, 512
        frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
        S = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
        f = np.fft.rfftfreq(n, 1 / sr)
        t = a.start + np.arange(S.shape[1]) * hop / sr
        ax.pcolormesh(t, f[1:], S[1:], vmin=S.max() - 80, vmax=S.max(), shading="auto",
                      cmap="magma")
        ax.set_yscale("log")
        ax.set_ylim(30, sr / 2)
        ax.set_ylabel(f"{name}\nHz")
    axes[-1].set_xlabel("s")
    fig.suptitle(os.path.basename(os.path.normpath(a.song_dir)))
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)


if __name__ == "__main__":
    main()
