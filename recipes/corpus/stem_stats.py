#!/usr/bin/env python
"""Per-stem loudness and crest factor of a rendered corpus (a listening proxy).

    python recipes/corpus/stem_stats.py /work/data/corpus --split test --songs 6
    python recipes/corpus/stem_stats.py /work/data/corpus_v2 --split valid --songs 6

Why: nobody can listen to hours of audio on a CI box, but two numbers tell produced
records from raw renders: integrated loudness (ITU-R BS.1770, pyloudnorm) — masters sit
around -14..-7 LUFS, raw renders far below — and crest factor (peak over RMS, dB) —
compressed, limited stems have a smaller one than dry samples. Prints one Markdown table
of medians over the songs (and, with --json, the numbers per song).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pyloudnorm
import soundfile as sf

NAMES = ("mixture", "drums", "bass", "other", "vocals")


def stats(path: str) -> dict[str, float]:
    x, sr = sf.read(path, dtype="float64")
    rms = float(np.sqrt(np.mean(x ** 2)))
    peak = float(np.max(np.abs(x)))
    lufs = float(pyloudnorm.Meter(sr).integrated_loudness(x))
    return {"lufs": lufs, "crest_db": 20 * np.log10(max(peak, 1e-12) / max(rms, 1e-12)),
            "peak_dbfs": 20 * np.log10(max(peak, 1e-12))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("--split", default="test")
    ap.add_argument("--songs", type=int, default=6, help="first N songs of the split")
    ap.add_argument("--json", action="store_true", help="per-song numbers as JSON lines")
    a = ap.parse_args(argv)
    folder = os.path.join(a.root, a.split)
    if not os.path.isdir(folder):
        print(f"error: no split folder {folder}", file=sys.stderr)
        return 2
    songs = sorted(d for d in os.listdir(folder)
                   if os.path.isdir(os.path.join(folder, d)) and not d.endswith(".partial"))
    songs = songs[: a.songs]
    per: dict[str, list[dict[str, float]]] = {k: [] for k in NAMES}
    for s in songs:
        row = {k: stats(os.path.join(folder, s, f"{k}.wav")) for k in NAMES}
        for k in NAMES:
            per[k].append(row[k])
        if a.json:
            print(json.dumps({"song": s, **row}))
    print(f"{a.root} / {a.split}: medians over {len(songs)} songs")
    print("| stem | loudness (LUFS) | crest factor (dB) | peak (dBFS) |")
    print("| --- | ---: | ---: | ---: |")
    for k in NAMES:
        med = {m: float(np.median([r[m] for r in per[k]])) for m in ("lufs", "crest_db",
                                                                       "peak_dbfs")}
        print(f"| {k} | {med['lufs']:.1f} | {med['crest_db']:.1f} | {med['peak_dbfs']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
