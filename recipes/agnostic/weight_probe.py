"""What an agnostic mixer does to one set of upstreams: the mean and spread of its weights W.

    python recipes/agnostic/weight_probe.py CKPT [CKPT ...] --upstream FAMILY:MODEL [...] \
        [--data /work/data/eval_v1 --split test --songs 3 --seconds 60]

Why: in the leave-one-family-out test the mixer scored below the unseen upstream it mixed
(recipes/agnostic/README.md); the weights show whether it varies them per segment or applies
one fixed correction learnt from other families. For each output stem (left channel) it prints
the input rows whose mean weight is beyond ±0.02 or whose spread is above 0.05.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mdxmix.musdb import MusdbSplit
from mdxmix.pipeline import Separator
from mdxmix.stems import STEMS
from mdxmix.upstream.parse import parse_upstreams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--upstream", action="append", required=True, metavar="FAMILY:MODEL")
    ap.add_argument("--data", default="/work/data/eval_v1")
    ap.add_argument("--split", default="test")
    ap.add_argument("--songs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0, help="from 30 s into each song")
    args = ap.parse_args()
    torch.set_num_threads(1)
    specs, search = parse_upstreams(args.upstream)
    split = MusdbSplit(args.data, args.split)
    for checkpoint in args.checkpoints:
        separator = Separator(checkpoint, device="cpu", cache=None, consistency="none",
                              specs=specs, search=search)
        rows = ["mixture L", "mixture R"] + [f"{i}:{stem} {side}" for i, stems in enumerate(s.stems for s in separator.specs)
                                             for stem in stems for side in "LR"]
        batches: list[torch.Tensor] = []
        for track in split.tracks()[: args.songs]:
            mixture = torch.from_numpy(np.ascontiguousarray(split.mixture(track).T))
            excerpt = mixture[:, 30 * 44100 : int((30 + args.seconds) * 44100)]
            for _ in separator.stream(excerpt, on_weights=lambda starts, w, into=batches: into.append(w)):
                pass
        weights = torch.cat(batches).float()  # (segments, 2 + C, 8)
        print(f"{checkpoint}: {weights.shape[0]} segments; mean (spread) weight per input row")
        for index, stem in enumerate(STEMS):
            column = weights[:, :, 2 * index]
            cells = [f"{row} {m:+.2f} ({s:.2f})" for row, m, s in zip(rows, column.mean(0).tolist(), column.std(0).tolist())
                     if abs(m) > 0.02 or s > 0.05]
            print(f"  {stem} L: " + ", ".join(cells))


if __name__ == "__main__":
    main()
