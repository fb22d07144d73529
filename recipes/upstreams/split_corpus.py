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
    <mixer_root>/train/<song>  -> <corpus>/train/<song>   (mixer-train songs only; with
                                  --mixer-songs N the first N of them)
    <mixer_root>/valid, /test  -> <corpus>/valid, <corpus>/test
                                  (with --valid-songs N: valid/ is a folder of links to
                                  the first N valid songs, so mixer validation and its
                                  stem cache stay small)
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


def link_songs(folder: Path, songs: list[str], source: Path) -> None:
    """`folder` holds exactly one link per song (to source/song); links of other songs are dropped."""
    if folder.is_symlink():  # an earlier layout linked the whole split
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_symlink() and entry.name not in songs:
            entry.unlink()
    for song in songs:
        _replace_link(folder / song, source / song)


def write_layout(corpus: Path, mixer_root: Path, list_file: Path, valid_songs: int | None = None,
                 mixer_songs: int | None = None) -> tuple[list[str], list[str]]:
    corpus = corpus.resolve()
    upstream, mixer = split(train_songs(corpus))
    mixer = mixer[:mixer_songs]  # the first N by number: the render drew each song's style at random
    link_songs(mixer_root / "train", mixer, corpus / "train")
    for part in ("valid", "test"):
        if not (corpus / part).is_dir():
            continue
        if part == "valid" and valid_songs is not None:
            songs = sorted(p.name for p in (corpus / part).iterdir() if p.is_dir())[:valid_songs]
            link_songs(mixer_root / part, songs, corpus / part)
        else:
            link = mixer_root / part
            if link.is_dir() and not link.is_symlink():  # an earlier --valid-songs layout: a folder of links
                link_songs(link, [], corpus / part)
                link.rmdir()
            _replace_link(link, corpus / part)
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
    ap.add_argument("--valid-songs", type=int, default=None, help="link only the first N valid songs (default: the whole split)")
    ap.add_argument("--mixer-songs", type=int, default=None, help="link only the first N mixer-train songs (default: all)")
    args = ap.parse_args()
    upstream, mixer = write_layout(args.corpus, args.mixer_root, args.list, args.valid_songs, args.mixer_songs)
    print(f"upstream-train: {len(upstream)} songs -> {args.list}")
    print(f"mixer-train:    {len(mixer)} songs -> {args.mixer_root / 'train'}")


if __name__ == "__main__":
    main()
