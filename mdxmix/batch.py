"""Separating many songs with one loaded model: outputs, skipping, failures, parallel jobs.

A song's failure of any kind (a user error, a full disk, a bug) becomes that song's failed
result — one line, one JSON record — and the batch goes on. Only an interrupt (Ctrl-C,
SIGTERM, SIGHUP) stops the batch, after every running song has removed its temporaries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from .ahead import run_ahead
from .atomic import sweep_stale, write_text
from .audio import STDIN, AudioInfo, Samples, read_audio, resample, resample_chunks
from .device import cpu_thread_share, default_jobs
from .errors import INTERRUPT, UsageError, UserError, first_line
from .inputs import Song
from .mixer.consistency import settle
from .naming import MARKER_TEXT, OUTPUT_MARKER, output_path
from .outputs import OutputFormat, SongOutput
from .pipeline import SeparationReport, Separator
from .stems import SAMPLE_RATE, STEMS


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


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def write_song(separator: Separator, audio: Samples, info: AudioInfo, output: SongOutput, *,
               progress: Callable[[int, int], None] | None = None, track: str | None = None) -> SeparationReport:
    """Stream the stems of a (2, N) input into `output` at the input's rate and length, then commit.

    Names in `output` are stems, or `no_<stem>` for the input minus that stem (computed at
    the input's rate, so the pair adds back to the input). Nothing is committed unless the
    whole song went through; an interrupt stops it at the next block.
    """
    rate, frames = info.sample_rate, audio.shape[-1]
    reports: list[SeparationReport] = []
    position = 0
    try:
        mixture = audio if rate == SAMPLE_RATE else resample(audio[:, :], rate, SAMPLE_RATE)
        stream = separator.stream(mixture, on_progress=progress, on_report=reports.append, track=track,
                                  source_rate=rate)  # track and rate find the song's --stems-from files
        chunks = (chunk.numpy() for chunk in stream)
        if separator.device.type == "cuda":  # the device separates the next batch while this thread writes
            chunks = run_ahead(chunks)
        # closed on the way out: a song that fails stops the GPU path's worker thread at once
        with closing(chunks):
            for block in resample_chunks(chunks, SAMPLE_RATE, rate, frames=frames):
                INTERRUPT.check()
                if separator.consistency != "none":  # add up at the input's own rate: resampling is not invertible
                    block = settle(torch.from_numpy(block), audio[:, position : position + block.shape[1]]).numpy()
                for name in output.destinations:
                    stem = name[3:] if name.startswith("no_") else name
                    index = STEMS.index(stem)
                    data = block[2 * index : 2 * index + 2]
                    if name.startswith("no_"):
                        data = audio[:, position : position + block.shape[1]].numpy() - data
                    output.write(name, data)
                position += block.shape[1]
        output.commit()
    except BaseException:
        output.abort()
        raise
    return reports[0] if reports else SeparationReport(frames=0, upstream_runs=0)


def separate_song(separator: Separator, song: Song, plan: OutputPlan, *, stream: BinaryIO | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Result:
    """One song, start to finish: any error becomes a failed Result; only an interrupt propagates."""
    started = time.perf_counter()
    elapsed = lambda: round(time.perf_counter() - started, 3)  # noqa: E731
    try:
        INTERRUPT.check()
        paths = {name: output_path(plan.out, plan.template, folder=separator.name, track=song.track, stem=name,
                                   ext=plan.fmt.ext, checkpoint=separator.name)
                 for name in plan.names} if plan.stdout is None else {}
        if paths and not plan.overwrite and all(_exists(p) for p in paths.values()):
            return Result(song.source, "skipped", {k: str(v) for k, v in paths.items()})
        audio, info = read_audio(song.source, compact=True)  # a 16-bit song held as int16: half the memory
        fmt = plan.fmt.for_input(info.subtype, info.sample_rate)
        if paths:
            mark_output_root(plan.out)
            for folder in {p.parent for p in paths.values()}:
                sweep_stale(folder)  # temporaries of a run that was killed
            output = SongOutput(dict(paths), rate=info.sample_rate, fmt=fmt)
        else:
            assert plan.stdout is not None
            output = SongOutput({plan.stdout: None}, rate=info.sample_rate, fmt=fmt, stream=stream)
        with output:  # whatever happens, no staged stem outlives the song
            track = None if song.source == STDIN else Path(song.source).stem
            report = write_song(separator, audio, info, output, progress=progress, track=track)
        outputs = {k: str(v) for k, v in paths.items()} or {plan.stdout or "": "-"}
        return Result(song.source, "ok", outputs, elapsed(), report.upstream_runs)
    except UserError as exc:
        return Result(song.source, "failed", seconds=elapsed(), error=" ".join(str(exc).split()), exception=exc)
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen fault fails this song, not the batch
        message = f"internal error: {type(exc).__name__}: {first_line(exc)} (rerun with --verbose for details)"
        return Result(song.source, "failed", seconds=elapsed(), error=message, exception=exc)


def mark_output_root(out: Path) -> None:
    """Leave the marker that keeps later folder searches out of this output folder."""
    marker = out / OUTPUT_MARKER
    if not marker.exists():
        write_text(marker, MARKER_TEXT)


def run_batch(separator: Separator, songs: list[Song], plan: OutputPlan, *, jobs: int | None = 1,
              stream: BinaryIO | None = None, progress: ProgressFactory | None = None,
              on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Separate every song, `jobs` at a time (None: `default_jobs`), sharing the one loaded model.

    `on_result` sees the results in the order of `songs` whatever order they finish in (a
    result waits for the songs before it), so `--json` lines and reports are the same with
    any `-j`. An interrupt sets `INTERRUPT`; songs running in worker threads stop at their next
    block and clean up, and the interrupt is raised again once they have.
    """
    jobs = default_jobs(len(songs)) if jobs is None else jobs
    lock = threading.Lock()
    results: list[Result | None] = [None] * len(songs)
    reported = 0

    def one(index: int) -> None:
        nonlocal reported
        song = songs[index]
        result = separate_song(separator, song, plan, stream=stream, progress=progress(song.track) if progress else None)
        with lock:
            results[index] = result
            while on_result is not None and reported < len(songs) and results[reported] is not None:
                on_result(results[reported])
                reported += 1

    # on a CPU, the free cores shared between the songs instead of oversubscribing
    with cpu_thread_share(min(jobs, len(songs)), enabled=separator.device.type == "cpu"):
        _run(one, len(songs), jobs)
    return [result for result in results if result is not None]


def _run(one: Callable[[int], None], count: int, jobs: int) -> None:
    """`one(index)` for every index, `jobs` at a time in threads; an interrupt stops the others."""
    if jobs <= 1 or count <= 1:
        for index in range(count):
            one(index)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, index) for index in range(count)]
            try:
                for future in futures:
                    future.result()
            except BaseException as exc:
                INTERRUPT.set(getattr(exc, "signum", 2))  # the songs still running stop at their next block
                for future in futures:
                    future.cancel()
                raise
