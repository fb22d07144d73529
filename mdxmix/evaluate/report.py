"""Evaluation results: storage, aggregation, and the table / Markdown / CSV / JSON views.

Aggregation follows the two conventions being compared:
* ``museval``: per-track median over 1-s frames (done when scoring), then **median** over
  tracks — the paper's (and SiSEC's) number;
* ``global``: per-track utterance SDR, then **mean** over tracks — the MDX challenge's.
The "average" column is the mean over the stems a system produces; a system without a stem
shows "–" there and its average covers only its other stems (a caption says so).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text
from ..stems import STEMS
from .metrics import track_mean, track_median

METRICS: tuple[str, ...] = ("museval", "global")
METRIC_TITLES: dict[str, str] = {
    "museval": "SDR (BSS Eval v4, median of 1-s frames, median over tracks) [dB]",
    "global": "Global SDR (MDX challenge, mean over tracks) [dB]",
}
COLUMNS: tuple[str, ...] = STEMS + ("average",)


@dataclass
class Results:
    """Per system, per track, per stem, per metric scores; systems keep insertion order."""

    metrics: tuple[str, ...]
    systems: list[str] = field(default_factory=list)
    tracks: list[str] = field(default_factory=list)
    # scores[system][track][stem][metric] = value (NaN allowed: all frames silent)
    scores: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # seconds summed over worker processes: "estimates" (reading audio, ensembling) and one
    # entry per metric; "wall" is the elapsed time of the whole scoring run
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, system: str, track: str, stem_scores: dict[str, dict[str, float]]) -> None:
        """Record one track of one system: ``{stem: {metric: value}}``."""
        if system not in self.scores:
            self.systems.append(system)
            self.scores[system] = {}
        if track not in self.tracks:
            self.tracks.append(track)
        self.scores[system][track] = stem_scores

    def stems_of(self, system: str) -> list[str]:
        """Stems the system produced for at least one track, in STEMS order."""
        have = {s for per in self.scores[system].values() for s in per}
        return [s for s in STEMS if s in have]

    def values(self, system: str, stem: str, metric: str) -> list[float]:
        """Per-track values of one system/stem/metric, in track order."""
        return [
            per[stem][metric]
            for per in (self.scores[system].get(t, {}) for t in self.tracks)
            if stem in per and metric in per[stem]
        ]

    def aggregate(self, metric: str) -> dict[str, dict[str, float]]:
        """``{system: {stem or "average": value}}``; missing stems absent from the dict."""
        agg = track_median if metric == "museval" else track_mean
        out: dict[str, dict[str, float]] = {}
        for system in self.systems:
            row = {s: agg(self.values(system, s, metric)) for s in self.stems_of(system)}
            finite = [v for v in row.values() if not math.isnan(v)]
            row["average"] = sum(finite) / len(finite) if finite else math.nan
            out[system] = row
        return out

    def incomplete_systems(self) -> list[str]:
        """Systems lacking at least one of the four stems."""
        return [s for s in self.systems if len(self.stems_of(s)) < len(STEMS)]


def best_per_column(summary: dict[str, dict[str, float]]) -> dict[str, set[str]]:
    """For each column, the systems holding the highest value (ties: all of them).

    The average competes only among systems with all four stems: a vocals-only upstream's
    "average" is its vocals score and says nothing about separating a whole song.
    """
    best: dict[str, set[str]] = {}
    for col in COLUMNS:
        rows = {sys: row for sys, row in summary.items() if col != "average" or all(s in row for s in STEMS)}
        vals = {sys: row[col] for sys, row in rows.items() if col in row and not math.isnan(row[col])}
        if vals:
            top = max(vals.values())
            best[col] = {sys for sys, v in vals.items() if v == top}
    return best


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if math.isnan(v):
        return "nan"
    return f"{v:.2f}"


def _caption(results: Results) -> str | None:
    missing = results.incomplete_systems()
    if not missing:
        return None
    return ("– = stem not produced; the average of " + ", ".join(missing)
            + " is over its other stems only and is not ranked against four-stem systems.")


def rich_tables(results: Results) -> list:
    """One ``rich.table.Table`` per metric, best value per column in bold."""
    from rich.table import Table

    tables = []
    for metric in results.metrics:
        summary = results.aggregate(metric)
        best = best_per_column(summary)
        table = Table(title=METRIC_TITLES[metric], caption=_caption(results))
        table.add_column("system")
        for col in COLUMNS:
            table.add_column(col, justify="right")
        for system, row in summary.items():
            cells = []
            for col in COLUMNS:
                text = _fmt(row.get(col))
                cells.append(f"[bold]{text}[/bold]" if system in best.get(col, ()) else text)
            table.add_row(system, *cells)
        tables.append(table)
    return tables


def to_markdown(results: Results) -> str:
    """Markdown tables (one per metric), best per column in **bold**."""
    lines: list[str] = []
    for metric in results.metrics:
        summary = results.aggregate(metric)
        best = best_per_column(summary)
        lines += [f"### {METRIC_TITLES[metric]}", "", "| system | " + " | ".join(COLUMNS) + " |"]
        lines.append("| --- |" + " ---: |" * len(COLUMNS))
        for system, row in summary.items():
            cells = []
            for col in COLUMNS:
                text = _fmt(row.get(col))
                cells.append(f"**{text}**" if system in best.get(col, ()) else text)
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    caption = _caption(results)
    if caption:
        lines += [caption, ""]
    for note in results.notes:
        lines += [f"- {note}"]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(results: Results) -> str:
    """One row per system × track × stem; a column per metric (``sdr_<metric>``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["system", "track", "stem"] + [f"sdr_{m}" for m in results.metrics])
    for system in results.systems:
        for track in results.tracks:
            per = results.scores[system].get(track, {})
            for stem in STEMS:
                if stem in per:
                    writer.writerow([system, track, stem] + [_num(per[stem].get(m)) for m in results.metrics])
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None or math.isnan(v) else repr(float(v))


def _json_value(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) or math.isinf(v) else float(v)


def to_json_dict(results: Results, settings: dict | None = None) -> dict:
    """JSON-ready dict: settings, aggregated summary per metric, per-track values (NaN → null)."""
    return {
        "metrics": list(results.metrics),
        "stems": list(STEMS),
        "systems": list(results.systems),
        "tracks": list(results.tracks),
        "settings": settings or {},
        "notes": list(results.notes),
        "seconds": {k: round(v, 3) for k, v in results.seconds.items()},
        "summary": {
            m: {sys: {k: _json_value(v) for k, v in row.items()} for sys, row in results.aggregate(m).items()}
            for m in results.metrics
        },
        "per_track": {
            sys: {
                t: {stem: {m: _json_value(v) for m, v in vals.items()} for stem, vals in per.items()}
                for t, per in results.scores[sys].items()
            }
            for sys in results.systems
        },
    }


def write_outputs(results: Results, out_dir: str | Path, settings: dict | None = None) -> list[Path]:
    """Write ``results.md``, ``results.csv`` and ``results.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results.md": to_markdown(results),
        "results.csv": to_csv(results),
        "results.json": json.dumps(to_json_dict(results, settings), indent=2) + "\n",
    }
    paths = []
    for name, text in files.items():
        path = out / name
        paths.append(write_text(path, text))
    return paths


def merge(parts: Iterable[Results], metrics: Sequence[str]) -> Results:
    """Concatenate results of disjoint system sets (e.g. baselines + checkpoints)."""
    merged = Results(metrics=tuple(metrics))
    for part in parts:
        for system in part.systems:
            for track, per in part.scores[system].items():
                merged.add(system, track, per)
        merged.notes += part.notes
        for key, value in part.seconds.items():
            merged.seconds[key] = merged.seconds.get(key, 0.0) + value
    return merged
