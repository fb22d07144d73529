"""Split an `mdxmix eval` table by corpus style: all tracks, v2 tracks, v1 tracks.

    python recipes/default/by_style.py RESULTS/results.csv

`build_v2mix.sh` validates on songs of both styles in one root (v1 songs are linked as
"v1 NAME"); this prints the eval's own summary (`Results.aggregate`: for museval the median
over tracks of each stem, then the average of the stems) for each style apart, so a gain on
one style cannot hide a loss on the other.
"""

from __future__ import annotations

import csv
import math
import sys

from mdxmix.evaluate.report import Results

STYLES = {"all": lambda track: True, "v2": lambda track: not track.startswith("v1 "),
          "v1": lambda track: track.startswith("v1 ")}


def read_results(path: str, keep=lambda track: True) -> Results:
    """The tracks of an eval's results.csv that `keep` accepts, as the eval held them."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = tuple(column.removeprefix("sdr_") for column in rows[0] if column.startswith("sdr_"))
    per_track: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for row in rows:
        if keep(row["track"]):
            scores = {m: float(row[f"sdr_{m}"]) if row[f"sdr_{m}"] else math.nan for m in metrics}
            per_track.setdefault((row["system"], row["track"]), {})[row["stem"]] = scores
    results = Results(metrics=metrics)
    for (system, track), stems in per_track.items():
        results.add(system, track, stems)
    return results


def main(path: str) -> None:
    for style, keep in STYLES.items():
        results = read_results(path, keep)
        if not results.tracks:
            continue
        for metric in results.metrics:
            print(f"## {style} ({len(results.tracks)} tracks), {metric} SDR in dB")
            for system, row in results.aggregate(metric).items():  # a system's stems only, then the average
                print(f"{system:40s} " + "  ".join(f"{column} {value:5.2f}" for column, value in row.items()))


if __name__ == "__main__":
    main(sys.argv[1])
