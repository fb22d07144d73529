#!/usr/bin/env python
"""Convert a corpus rendered as float32 WAV into v2's 16-bit stem sets, in place.

    python recipes/corpus/to_pcm16.py /work/data/corpus_v2

Why: corpus v2 was first written as float32 (76 GB for 12 h); renders now write 16-bit
(``wavio.write_pcm16_set``: rounded stems, mixture = their integer sum). This rewrites the
songs rendered before that change the same way, so the corpus has one format. Each file
is replaced atomically and the stems go before the mixture; a stopped run is simply run
again (16-bit stems read back and re-rounded are unchanged, so a song half-converted
converts to the same bytes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mixing import STEMS  # noqa: E402
from wavio import write_pcm16_set  # noqa: E402


def needs_conversion(song: Path) -> bool:
    return any(sf.info(str(song / f"{n}.wav")).subtype != "PCM_16" for n in ("mixture", *STEMS))


def convert(song: Path) -> int:
    stems = {}
    for name in STEMS:
        audio, sr = sf.read(str(song / f"{name}.wav"), dtype="float64", always_2d=True)
        stems[name] = audio
    return write_pcm16_set(str(song), stems, sr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    args = ap.parse_args()
    songs = sorted(p for split in ("train", "valid", "test") if (args.root / split).is_dir()
                   for p in (args.root / split).iterdir()
                   if p.is_dir() and not p.name.endswith(".partial") and (p / "mixture.wav").exists())
    done = 0
    for song in songs:
        if needs_conversion(song):
            clipped = convert(song)
            done += 1
            print(f"{song.parent.name}/{song.name}: 16-bit" + (f", {clipped} clipped" if clipped else ""), flush=True)
    print(f"{done} converted, {len(songs) - done} already 16-bit")


if __name__ == "__main__":
    main()
