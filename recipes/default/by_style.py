"""Split an `mdxmix eval` table by corpus style: all tracks, v2 tracks, v1 tracks.

    python recipes/default/by_style.py RESULTS/results.csv

`build_v2mix.sh` validates on songs of both styles in one root (v1 songs are linked as
"v1 NAME"); this prints museval's summary, the median over tracks of each stem, for each style
apart, so a gain on one style cannot hide a loss on the other.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict

STEMS = ("drums", "bass", "other", "vocals")


def by_style(path: str) -> None:
    rows = list(csv.DictReader(open(path, newline="")))
    metric = next(k for k in rows[0] if k.startswith("sdr"))
    styles = {"all": lambda t: True, "v2": lambda t: not t.startswith("v1 "), "v1": lambda t: t.startswith("v1 ")}
    for style, keep in styles.items():
        table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if keep(row["track"]) and row[metric] not in ("", "nan"):
                table[row["system"]][row["stem"]].append(float(row[metric]))
        if not table:
            continue
        tracks = len({row["track"] for row in rows if keep(row["track"])})
        print(f"## {style} ({tracks} tracks): median over tracks, dB")
        for system, stems in table.items():
            medians = {s: statistics.median(stems[s]) for s in STEMS if s in stems}
            cells = " ".join(f"{medians[s]:6.2f}" for s in medians)
            print(f"{system:40s} {cells}  average {statistics.mean(medians.values()):.2f}")


if __name__ == "__main__":
    by_style(sys.argv[1])
