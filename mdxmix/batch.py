"""Separating many songs with one loaded model: outputs, skipping, failures, parallel jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from .audio import output_subtype, read_audio
from .errors import UsageError, UserError
from .inputs import Song
from .outputs import OutputFormat, StemSink, output_path
from .pipeline import Separator
from .stems import STEMS


@dataclass(frozen=True)
class OutputPlan:
    """Which stems to write, where, and how."""

    out: Path
    template: str
    fmt: OutputFormat
    names: tuple[str, ...] = STEMS  # stems, or "no_<stem>" for input minus that stem
    stdout: str | None = None  # write only this stem, as WAV, to stdout
    overwrite: bool = False

    @classmethod
    def build(cls, *, out: Path, template: str, fmt: OutputFormat, stems: str | None, two_stems: str | None,
              stdout: str | None, overwrite: bool) -> "OutputPlan":
        if stems and two_stems:
            raise UsageError("choose one of --stems and --two-stems")
        names: tuple[str, ...] = STEMS
        if two_stems:
            if two_stems not in STEMS:
                raise UsageError(f"--two-stems {two_stems!r}: use one of {', '.join(STEMS)}")
            names = (two_stems, f"no_{two_stems}")
        elif stems:
            names = tuple(s.strip() for s in stems.split(",") if s.strip())
            unknown = [s for s in names if s not in STEMS]
            if unknown or not names:
                raise UsageError(f"--stems {stems!r}: use a comma-separated subset of {', '.join(STEMS)}")
        if stdout is not None:
            allowed = set(STEMS) | {f"no_{s}" for s in STEMS}
            if stdout not in allowed:
                raise UsageError(f"--stdout {stdout!r}: use a stem name ({', '.join(STEMS)}) or no_<stem>")
            if fmt.container != "WAV":
                raise UsageError("--stdout writes WAV; drop --flac/--mp3 (pipe into an encoder instead)")
            names = (stdout,)
        return cls(out=out, template=template, fmt=fmt, names=names, stdout=stdout, overwrite=overwrite)


@dataclass
class Result:
    input: str
    status: str  # ok, skipped, failed
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    upstream_runs: int | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)  # for --verbose


ProgressFactory = Callable[[str], Callable[[int, int], None]]


def separate_song(separator: Separator, song: Song, plan: OutputPlan, *, stream: BinaryIO | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Result:
    """One song, start to finish; user errors become a failed Result, never an exception."""
    started = time.perf_counter()
    fmt_ext = plan.fmt.ext
    base = plan.out / separator.name
    try:
        paths = {name: output_path(base, plan.template, track=song.track, stem=name, ext=fmt_ext, checkpoint=separator.name)
                 for name in plan.names} if plan.stdout is None else {}
        if paths and not plan.overwrite and all(p.exists() for p in paths.values()):
            return Result(song.source, "skipped", {k: str(v) for k, v in paths.items()})
        audio, info = read_audio(song.source)
        fmt = plan.fmt
        if fmt.subtype == "auto":
            keep = output_subtype(info)
            fmt = OutputFormat(fmt.container, "PCM_24" if fmt.container == "FLAC" and keep == "FLOAT" else keep,
                               fmt.mp3_bitrate, fmt.clip_mode)
        if plan.stdout is not None:
            sinks = {plan.stdout: StemSink(None, rate=info.sample_rate, fmt=fmt, stream=stream)}
        else:
            sinks = {}
            try:
                for name, path in paths.items():
                    sinks[name] = StemSink(path, rate=info.sample_rate, fmt=fmt)
            except BaseException:
                for sink in sinks.values():
                    sink.abort()
                raise
        stats: dict = {}
        written = separator.write_stems(audio, info, sinks, on_progress=progress, stats=stats)
        outputs = {k: str(v) if v is not None else "-" for k, v in written.items()}
        return Result(song.source, "ok", outputs, round(time.perf_counter() - started, 3), stats.get("upstream_runs"))
    except UserError as exc:
        return Result(song.source, "failed", seconds=round(time.perf_counter() - started, 3), error=" ".join(str(exc).split()), exception=exc)


def run_batch(separator: Separator, songs: list[Song], plan: OutputPlan, *, jobs: int = 1,
              stream: BinaryIO | None = None, progress: ProgressFactory | None = None,
              on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Separate every song, `jobs` at a time, sharing the one loaded model."""
    lock = threading.Lock()
    results: list[Result | None] = [None] * len(songs)

    def one(index: int) -> None:
        song = songs[index]
        result = separate_song(separator, song, plan, stream=stream, progress=progress(song.track) if progress else None)
        results[index] = result
        if on_result is not None:
            with lock:
                on_result(result)

    if jobs <= 1 or len(songs) <= 1:
        for index in range(len(songs)):
            one(index)
    else:
        if separator.device.type == "cpu":  # share the cores between the songs instead of oversubscribing
            torch.set_num_threads(max(1, torch.get_num_threads() // jobs))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, range(len(songs))))
    return [r for r in results if r is not None]
