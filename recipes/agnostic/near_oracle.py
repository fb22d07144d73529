"""Strong separators must not be harmed: an agnostic mixer over near-oracle synthetic upstreams.

Three synthetic separators of kind `leak` at qualities 0.8, 0.9 and 1.0 (≈ 14–20 dB SDR each on
the v1 test songs) are made from each song's true stems; the mixer mixes all three. Issue 11's
target: the mixer stays within 0.1 dB of the best of them, or above. Scores are museval SDR
(the closed-form backend), median over 1-s frames, median over songs.

    python recipes/agnostic/near_oracle.py CHECKPOINT --data /work/data/corpus --split test --songs 3
    python recipes/agnostic/near_oracle.py init ...    # a fresh agnostic mixer: the per-stem average
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mdxmix.checkpoint import load_checkpoint
from mdxmix.evaluate.metrics import score_track, track_median
from mdxmix.mixer import AgnosticConfig, AgnosticMixer
from mdxmix.mixer.engine import mix_tensor
from mdxmix.mixer.normalize import Normalizer
from mdxmix.stems import STEMS
from mdxmix.train.synthetic_upstreams import SyntheticUpstream

CHUNK = 2**20  # synthetic separators work on ~24-s pieces (their STFT of the whole song would be large)
UPSTREAMS = [SyntheticUpstream(STEMS, quality, seed, kind="leak") for quality, seed in ((0.8, 11), (0.9, 12), (1.0, 13))]


def synthetic_estimates(upstream: SyntheticUpstream, refs: torch.Tensor) -> torch.Tensor:
    """(4, 2, N) references → (4, 2, N) estimates, piece by piece, seeded by position."""
    pieces = [torch.stack(list(upstream.separate(refs[..., a : a + CHUNK], torch.Generator().manual_seed(upstream.seed + a)).values()))
              for a in range(0, refs.shape[-1], CHUNK)]
    return torch.cat(pieces, dim=-1)


def score_song(mixer, song: Path) -> dict[str, dict[str, float]]:
    refs = torch.stack([torch.from_numpy(sf.read(song / f"{s}.wav", dtype="float32", always_2d=True)[0].T.copy()) for s in STEMS])
    mix = refs.sum(0)
    estimates = [synthetic_estimates(u, refs) for u in UPSTREAMS]
    norm = Normalizer.of(mix)
    x = norm.forward(torch.cat([mix] + [e.reshape(8, -1) for e in estimates]))
    with torch.no_grad():
        mixed = norm.inverse(mix_tensor(x, mixer.bind((STEMS,) * len(UPSTREAMS)))).view(4, 2, -1)
    reference = {s: refs[i].T.numpy() for i, s in enumerate(STEMS)}
    systems = [(f"synthetic q={u.quality}", e) for u, e in zip(UPSTREAMS, estimates)] + [("agnostic", mixed)]
    out = {}
    for name, est in systems:
        scores = score_track(reference, {s: est[i].T.numpy() for i, s in enumerate(STEMS)}, metrics=("museval",))
        out[name] = {s: scores[s]["museval"] for s in STEMS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="an agnostic checkpoint, or 'init' for a fresh mixer (the per-stem average)")
    ap.add_argument("--data", type=Path, default=Path("/work/data/corpus"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--songs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mixer = AgnosticMixer(AgnosticConfig.preset("tiny")) if args.checkpoint == "init" else load_checkpoint(args.checkpoint)[0]
    mixer.eval()
    songs = sorted(p for p in (args.data / args.split).iterdir() if p.is_dir())[: args.songs]
    per_song = {song.name: score_song(mixer, song) for song in songs}
    table = {}
    for name in per_song[songs[0].name]:
        row = {s: track_median([per_song[t][name][s] for t in per_song]) for s in STEMS}
        table[name] = {**row, "average": float(np.mean([row[s] for s in STEMS]))}
        print(f"{name:20s} " + " ".join(f"{s} {row[s]:6.2f}" for s in STEMS) + f"  average {table[name]['average']:.2f}")
    best = max(v["average"] for k, v in table.items() if k != "agnostic")
    print(json.dumps({"songs": list(per_song), "table": table, "agnostic_minus_best": table["agnostic"]["average"] - best}))


if __name__ == "__main__":
    main()
