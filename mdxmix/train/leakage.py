"""The leakage guard: mixer-training songs that an upstream was itself trained on.

An upstream separates the songs it was trained on better than unseen music. A mixer
trained on such songs learns to trust that upstream too much, and the trust does not
carry over to new songs. `--upstream-trained-on` names those songs (a split of the
dataset, or a text file with one song name a line); overlaps are reported so the user
can train the mixer on a disjoint split instead.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def songs_named_by(spec: str, data_root: Path) -> set[str]:
    """A split name of `data_root` (every song folder in it) or a text file of song names."""
    folder = data_root / spec
    if folder.is_dir():
        return {p.name for p in folder.iterdir() if p.is_dir()}
    path = Path(spec)
    if path.is_file():
        return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}
    raise UserError(f"--upstream-trained-on {spec!r}: neither a split of {data_root} nor a file of song names")


def leakage_report(train_songs: list[str], trained_on: list[str], data_root: Path) -> list[str]:
    """One warning per source whose songs overlap the mixer-training songs."""
    warnings = []
    mine = set(train_songs)
    for spec in trained_on:
        overlap = sorted(mine & songs_named_by(spec, data_root))
        if overlap:
            shown = ", ".join(overlap[:3]) + (" …" if len(overlap) > 3 else "")
            warnings.append(
                f"{len(overlap)} of {len(mine)} mixer-training songs were used to train an upstream ({spec}: {shown}); "
                "the mixer will over-trust that upstream - train it on a disjoint split"
            )
    return warnings
