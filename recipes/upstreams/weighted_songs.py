"""The upstream-train song list, with songs whose lead parts bend and slide drawn more often.

    python recipes/upstreams/weighted_songs.py --corpus /work/data/corpus_v2 --weight 3 --out LIST

Why: corpus v2 gained songs with expressive leads (`render.py --expressive-from 205`) late in
the upstreams' training, 9 of the 118 upstream-train songs; listed once, they would be 8 % of
the crops for the last hour of training. A name listed k times is drawn k times as often by
`train_upstream.py --songs` (it keeps duplicates), so each such song is listed `--weight`
times. The songs are the upstream-train half (even numbers, `split_corpus.split`) either way.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from split_corpus import split, train_songs


def weighted_list(corpus: Path, weight: int) -> list[str]:
    """Even-numbered train songs in order, each with expressive leads repeated `weight` times."""
    entries = json.loads((corpus / "corpus.json").read_text())["songs"]
    expressive = {e["name"] for e in entries if e["split"] == "train" and any((e.get("expressive_leads") or {}).values())}
    upstream, _ = split(train_songs(corpus))
    return [name for name in upstream for _ in range(weight if name in expressive else 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--weight", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    names = weighted_list(args.corpus, args.weight)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("".join(f"{name}\n" for name in names))
    os.replace(tmp, args.out)
    print(f"{len(set(names))} songs, {len(names)} lines -> {args.out}")


if __name__ == "__main__":
    main()
