"""Split the corpus's train songs into "upstream-train" and "mixer-train" halves.

Why: the paper's mixer is trained on songs its upstreams never saw; if the upstreams had
been trained on the mixer's songs, their stems would look better there than on new music
and the mixer would learn to trust them too much.

Rule (deterministic, no randomness): the corpus names songs "NNNN - …"; even song
numbers are upstream-train, odd ones mixer-train. The number, not the sorted position,
decides, so a still-rendering corpus (or one that skipped a failed song and rendered it
later) splits every song the same way as the finished one. On a corpus without gaps
(v1's 62 songs) this is the same split as "even sorted positions".

Writes
    <mixer_root>/train/<song>  -> <corpus>/train/<song>   (mixer-train songs only)
    <mixer_root>/valid, /test  -> <corpus>/valid, <corpus>/test
    <out_list>                    upstream-train song names, one a line
                                  (for `mdxmix train --upstream-trained-on FILE`)

    python recipes/upstreams/split_corpus.py --corpus /work/data/corpus \
        --mixer-root /work/data/mixer_root --list /work/data/upstreams/upstream_train_songs.txt
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

STEM_FILES = ("mixture.wav", "drums.wav", "bass.wav", "other.wav", "vocals.wav")


def train_songs(corpus: Path) -> list[str]:
    """Complete song folders of the train split, sorted by name (half-rendered ones are skipped)."""
    train = corpus / "train"
    return sorted(
        p.name for p in train.iterdir()
        if p.is_dir() and not p.name.endswith(".partial") and all((p / f).is_file() for f in STEM_FILES)
    )


def song_number(name: str) -> int:
    """The "NNNN" of "NNNN - style key tempo"."""
    head = name.split(" - ", 1)[0]
    if not head.isdigit():
        raise ValueError(f"train song {name!r} is not named 'NNNN - ...'")
    return int(head)


def split(songs: list[str]) -> tuple[list[str], list[str]]:
    """(upstream-train, mixer-train): even and odd song numbers, each sorted by name."""
    songs = sorted(songs)
    return ([s for s in songs if song_number(s) % 2 == 0],
            [s for s in songs if song_number(s) % 2 == 1])


def _replace_link(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".tmp-link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def write_layout(corpus: Path, mixer_root: Path, list_file: Path) -> tuple[list[str], list[str]]:
    corpus = corpus.resolve()
    upstream, mixer = split(train_songs(corpus))
    train_dir = mixer_root / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    for entry in train_dir.iterdir():  # drop links of songs that are no longer mixer-train
        if entry.is_symlink() and entry.name not in mixer:
            entry.unlink()
    for song in mixer:
        _replace_link(train_dir / song, corpus / "train" / song)
    for part in ("valid", "test"):
        if (corpus / part).is_dir():
            _replace_link(mixer_root / part, corpus / part)
    list_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = list_file.with_name(list_file.name + ".tmp")
    tmp.write_text("".join(f"{s}\n" for s in upstream))
    os.replace(tmp, list_file)
    return upstream, mixer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/work/data/corpus"))
    ap.add_argument("--mixer-root", type=Path, default=Path("/work/data/mixer_root"))
    ap.add_argument("--list", type=Path, default=Path("/work/data/upstreams/upstream_train_songs.txt"))
    args = ap.parse_args()
    upstream, mixer = write_layout(args.corpus, args.mixer_root, args.list)
    print(f"upstream-train: {len(upstream)} songs -> {args.list}")
    print(f"mixer-train:    {len(mixer)} songs -> {args.mixer_root / 'train'}")


if __name__ == "__main__":
    main()
