"""How a song's stems are written: formats, clipping, pairs that add back, all-or-nothing.

While the song streams, every stem goes into a hidden temporary file in its destination
folder, already in its final sample format (and for WAV and FLAC its final container, see
`_Staging`). When the song is complete, a stem that must be rescaled (`rescale` needs the
stem's peak, so it cannot be applied while streaming) is rescaled in place (WAV) or encoded
again (FLAC), MP3s and add-back pairs are encoded from their staging, and only when every
stem is finished are they renamed into place together (`atomic.publish`, which puts the old files
back if one rename fails). A failed or interrupted song therefore leaves none of its
stems, and a re-run with `--overwrite` that fails leaves the previous ones.
"""

from __future__ import annotations

import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import lameenc
import numpy as np
import soundfile as sf

from .atomic import Staged, is_disk_full, publish, temp_path
from .errors import AudioError, UsageError, first_line

CLIP_MODES = ("rescale", "clamp", "none")
BLOCK = 1 << 18
# MP3 stores only these rates, and each MPEG version only a range of bitrates (kbit/s).
MP3_BITRATES = {(32000, 44100, 48000): (32, 320), (16000, 22050, 24000): (8, 160), (8000, 11025, 12000): (8, 64)}


@dataclass(frozen=True)
class OutputFormat:
    """The container and sample format of written stems."""

    container: str = "WAV"  # WAV, FLAC or MP3
    subtype: str = "auto"  # PCM_16, PCM_24, FLOAT, or auto = the input's precision (ignored for MP3)
    mp3_bitrate: int = 320
    clip_mode: str = "rescale"

    @property
    def ext(self) -> str:
        return {"WAV": "wav", "FLAC": "flac", "MP3": "mp3"}[self.container]

    @property
    def holds_beyond_full_scale(self) -> bool:
        """Float WAV keeps values beyond ±1; every other format clips them."""
        return self.container == "WAV" and self.subtype == "FLOAT"

    @classmethod
    def from_flags(cls, *, int24: bool = False, float32: bool = False, flac: bool = False, mp3: bool = False,
                   mp3_bitrate: int = 320, clip_mode: str = "rescale") -> "OutputFormat":
        if sum([flac, mp3]) > 1:
            raise UsageError("choose one of --flac and --mp3")
        if int24 and float32:
            raise UsageError("choose one of --int24 and --float32")
        if clip_mode not in CLIP_MODES:
            raise UsageError(f"--clip-mode {clip_mode!r}: use {', '.join(CLIP_MODES)}")
        if mp3 and (int24 or float32):
            raise UsageError("--mp3 cannot be combined with --int24 or --float32")
        if flac and float32:
            raise UsageError("FLAC stores integers: use --flac with or without --int24, not --float32")
        subtype = "PCM_24" if int24 else "FLOAT" if float32 else "auto"
        container = "FLAC" if flac else "MP3" if mp3 else "WAV"
        if mp3 and not 8 <= mp3_bitrate <= 320:
            raise UsageError("--mp3-bitrate must be between 8 and 320 kbit/s")
        return cls(container=container, subtype=subtype, mp3_bitrate=mp3_bitrate, clip_mode=clip_mode)

    def for_input(self, subtype: str, rate: int) -> "OutputFormat":
        """The one place that settles the sample format for one song (its subtype and rate).

        `auto` keeps 24-bit and float precision of the input (float as 24-bit in FLAC,
        which stores integers) and is 16-bit otherwise. MP3 keeps the input's rate, so a
        rate or bitrate MP3 cannot store fails the song instead of being changed silently.
        """
        if self.container == "MP3":
            allowed = next((span for rates, span in MP3_BITRATES.items() if rate in rates), None)
            if allowed is None:
                raise AudioError(f"MP3 cannot store {rate} Hz audio; use WAV or --flac for this song")
            if not allowed[0] <= self.mp3_bitrate <= allowed[1]:
                raise AudioError(f"MP3 at {rate} Hz takes {allowed[0]}-{allowed[1]} kbit/s, not --mp3-bitrate {self.mp3_bitrate}")
            return replace(self, subtype="PCM_16")
        if self.subtype != "auto":
            return self
        keep = {"PCM_24": "PCM_24", "PCM_32": "FLOAT", "FLOAT": "FLOAT", "DOUBLE": "FLOAT"}.get(subtype, "PCM_16")
        if self.container == "FLAC" and keep == "FLOAT":
            keep = "PCM_24"
        return replace(self, subtype=keep)


def write_failure(exc: BaseException, where: Path | str) -> str:
    """One line for a failed write; a full disk says so (libsndfile's own errors do not)."""
    folder = Path(where) if Path(where).is_dir() else Path(where).parent
    full = is_disk_full(exc)
    if not full and isinstance(exc, (sf.LibsndfileError, RuntimeError)):
        try:
            full = shutil.disk_usage(folder).free < (1 << 20)
        except OSError:
            full = False
    return f"cannot write {where}: {'no space left on device' if full else first_line(exc)}"


class _Staging:
    """One stem beside its destination, written as it streams, with its running peak.

    A stem is staged in its final sample format (16/24-bit or float; for MP3 the 16-bit PCM
    the encoder takes) and, for WAV and FLAC, in its final container: when nothing has to be
    rescaled the staged file *is* the output and is only renamed, so a song needs no more
    temporary disk than its outputs (a float32 staging file was 2× a 16-bit output, and the
    encoded copy came on top). Samples that the format clips are kept exactly on the side
    (`over`), so a rescale afterwards gets them right; the others are rescaled from their
    stored integers (at most one step from rescaling the float). A stem of an add-back pair
    (`--two-stems`) is staged as float32: the pair's arithmetic needs both exact.
    """

    def __init__(self, destination: Path | None, rate: int, subtype: str = "FLOAT", container: str = "WAV", *,
                 direct: bool = False) -> None:
        folder = destination.parent if destination is not None else Path(tempfile.gettempdir())
        self.where = destination if destination is not None else "stdout"
        self.path = temp_path(destination if destination is not None else folder / "stdout")
        self.subtype, self.container = subtype, container
        self.direct = direct  # staged as the output itself: renamed into place, not encoded again
        self.peak = 0.0
        self.frames = 0
        self.over: list[tuple[np.ndarray, np.ndarray]] = []  # (flat sample index, exact value) of clipped samples
        self.created = _missing_folders(folder)  # deepest first: what a failed song takes away again
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.file = sf.SoundFile(str(self.path), "w", samplerate=rate, channels=2, subtype=subtype, format=container)
        except (OSError, sf.LibsndfileError) as exc:
            self.path.unlink(missing_ok=True)
            raise AudioError(write_failure(exc, self.where)) from exc

    def write(self, data: np.ndarray) -> None:
        """Append a (2, n) float block."""
        self.peak = max(self.peak, float(np.abs(data).max(initial=0.0)))
        frames = np.ascontiguousarray(data.T, dtype=np.float32)
        if self.subtype in PCM_BITS:
            flat = frames.reshape(-1)
            clipped = np.flatnonzero(np.abs(flat) >= 1.0 - 2.0 ** (1 - PCM_BITS[self.subtype]))
            if clipped.size:
                self.over.append((clipped + 2 * self.frames, flat[clipped].copy()))
            frames = to_pcm(np.clip(frames, -1.0, 1.0), self.subtype)
        try:
            self.file.write(frames)
        except (OSError, sf.LibsndfileError) as exc:
            raise AudioError(write_failure(exc, self.where)) from exc
        self.frames += data.shape[1]

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def blocks(self) -> Iterator[np.ndarray]:
        """The staged stem as (n, 2) float32 blocks, clipped samples restored to their exact values."""
        self.close()
        restore = _Restore(self.over)
        position = 0
        for block in sf.blocks(str(self.path), blocksize=BLOCK, dtype="float32", always_2d=True):
            yield restore(block, position)
            position += block.shape[0]

    def rescale_in_place(self, fmt: OutputFormat, scale: float) -> None:
        """Apply `scale` to a staged PCM WAV where it lies: the file becomes the output without a copy."""
        self.close()
        restore = _Restore(self.over)
        with sf.SoundFile(str(self.path), "r+") as file:
            position = 0
            while position < file.frames:
                file.seek(position)
                block = restore(file.read(BLOCK, dtype="float32", always_2d=True), position)
                file.seek(position)
                file.write(to_pcm(_finish(block, fmt, scale), self.subtype))
                position += block.shape[0]

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class _Restore:
    """Puts the exact values of clipped samples back into blocks read from a staged PCM file."""

    def __init__(self, over: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.index = np.concatenate([i for i, _ in over]) if over else np.zeros(0, dtype=np.int64)
        self.values = np.concatenate([v for _, v in over]) if over else np.zeros(0, dtype=np.float32)

    def __call__(self, block: np.ndarray, position: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.index, [2 * position, 2 * (position + block.shape[0])])
        if hi > lo:
            block = np.array(block, dtype=np.float32)
            block.reshape(-1)[self.index[lo:hi] - 2 * position] = self.values[lo:hi]
        return block


def _rescale(peak: float, fmt: OutputFormat) -> float:
    """demucs's `rescale`: divide by 1.01·peak when the peak exceeds 1, so nothing clips."""
    if fmt.clip_mode != "rescale" or fmt.holds_beyond_full_scale:
        return 1.0
    return 1.0 / max(1.01 * peak, 1.0)


class SongOutput:
    """Every stem of one song: staged while streaming, encoded and put in place together.

    `destinations` maps names (a stem, or `no_<stem>` for the input minus that stem) to
    final paths; with `stream`, the one stem is written to it as WAV instead.
    """

    def __init__(self, destinations: dict[str, Path | None], *, rate: int, fmt: OutputFormat,
                 stream: BinaryIO | None = None) -> None:
        self.destinations, self.rate, self.fmt, self.stream = destinations, rate, fmt, stream
        self.staging: dict[str, _Staging] = {}
        paired = {n for n in destinations if (n.startswith("no_") and n[3:] in destinations) or f"no_{n}" in destinations}
        direct = fmt.container in ("WAV", "FLAC") and stream is None
        try:
            for name, path in destinations.items():
                self.staging[name] = (_Staging(path, rate) if name in paired else
                                      _Staging(path, rate, fmt.subtype, fmt.container if direct else "WAV", direct=direct))
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> "SongOutput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, name: str, data: np.ndarray) -> None:
        """Append a (2, n) float block to one stem; a non-finite sample fails the song."""
        if not np.isfinite(data).all():
            raise AudioError(f"the separation of this song produced NaN or infinite samples in {name}; nothing was written")
        self.staging[name].write(data)

    def commit(self) -> dict[str, Path | None]:
        """Encode every stem, then put all of them in place at once (or none)."""
        try:
            for staging in self.staging.values():
                staging.close()
            sources = self._final_blocks()
            if self.stream is not None:
                (name, blocks), = sources.items()
                try:
                    _write_wav_stream(blocks, self.stream, self.fmt, self.rate, self.staging[name])
                except (OSError, ValueError) as exc:
                    raise AudioError(write_failure(exc, "stdout")) from exc
                return {name: None}
            encoded: list[tuple[Path, Path]] = []
            try:
                for name, blocks in sources.items():
                    destination = self.destinations[name]
                    assert destination is not None
                    encoded.append(self._finished(self.staging[name], blocks, destination))
                try:
                    publish(encoded)
                except OSError as exc:
                    raise AudioError(f"cannot put the stems in place in {encoded[0][1].parent}: {first_line(exc)}; "
                                     "none of this song's stems were kept") from exc
            finally:
                for tmp, _ in encoded:
                    tmp.unlink(missing_ok=True)
            return {name: self.destinations[name] for name in sources}
        finally:
            self.abort()

    def _finished(self, staging: _Staging, blocks: Callable[[], Iterator[np.ndarray]],
                  destination: Path) -> tuple[Path, Path]:
        """(finished temporary, destination) of one stem: the staged file itself when it is in the output's
        format (rescaled in place if a WAV must be), else a file encoded from it."""
        fmt = self.fmt
        scale = _rescale(staging.peak, fmt)
        try:
            if staging.direct and (scale == 1.0 or fmt.container == "WAV"):
                if scale != 1.0:
                    staging.rescale_in_place(fmt, scale)
                staging.close()
                return staging.path, destination
            staged = Staged(destination)
            try:
                _encode(blocks(), staged.tmp, fmt, self.rate)
            except BaseException:
                staged.tmp.unlink(missing_ok=True)
                raise
            if staging.direct:  # a rescaled FLAC: its staging goes as soon as the replacement is there
                staging.remove()
            return staged.tmp, destination
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(write_failure(exc, destination)) from exc

    def abort(self) -> None:
        """Remove every staged file, and the folders this song created if they are left empty
        (after a commit they hold the stems, so they stay)."""
        for staging in self.staging.values():
            staging.remove()
        for folder in sorted({f for staging in self.staging.values() for f in staging.created},
                             key=lambda f: len(f.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:  # not empty (the outputs, or another program's files), or already gone
                pass

    def _final_blocks(self) -> dict[str, Callable[[], Iterator[np.ndarray]]]:
        """Per stem, a function giving its final blocks (scaled, clipped as the format needs).

        A `no_<stem>` written together with `<stem>` is the input minus the stem *as
        written* (scaled, and quantised exactly as libsndfile will store it), so the pair
        adds back to the input within half a quantisation step. When either of the two
        would clip, both share one rescale factor, and the pair adds back to the input
        times that factor.
        """
        fmt, out = self.fmt, {}
        scales = {name: _rescale(s.peak, fmt) for name, s in self.staging.items()}
        step = {"PCM_16": 2.0**-15, "PCM_24": 2.0**-23}.get(fmt.subtype) if fmt.container != "MP3" else None
        for name, staging in self.staging.items():
            stem = self.staging.get(name[3:]) if name.startswith("no_") else None
            if stem is None:
                out.setdefault(name, lambda s=staging, f=scales[name]: (_finish(b, fmt, f) for b in s.blocks()))
                continue
            # the complement of the rescaled stem: input - scale·stem = complement + (1 - scale)·stem
            shift, peak = 1.0 - scales[name[3:]], staging.peak
            if shift:
                peak = max((float(np.abs(c + shift * v).max(initial=0.0)) for c, v in zip(staging.blocks(), stem.blocks())), default=0.0)
            shared = _rescale(peak, fmt)
            factor = scales[name[3:]] * shared
            quantised = lambda v, f=factor: _quantise(_finish(v, fmt, f), step)  # noqa: E731
            out[name[3:]] = lambda s=stem, q=quantised: (q(v) for v in s.blocks())
            out[name] = lambda c=staging, s=stem, q=quantised, f=shared: (
                _finish(f * (cb + vb) - q(vb), fmt, 1.0) for cb, vb in zip(c.blocks(), s.blocks()))
        return {name: out[name] for name in self.staging}


PCM_BITS = {"PCM_16": 16, "PCM_24": 24}


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def to_pcm(block: np.ndarray, subtype: str) -> np.ndarray:
    """Float in [-1, 1) → integers of `subtype`, rounded to nearest (libsndfile's own WAV conversion floors,
    a DC bias of half a step), as int16, or int32 holding 24 bits in its top bytes the way libsndfile reads it."""
    bits = PCM_BITS[subtype]
    ints = np.clip(np.round(block.astype(np.float64) * 2.0 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return ints.astype(np.int16) if bits == 16 else (ints.astype(np.int32) << 8)


def _quantise(block: np.ndarray, step: float | None) -> np.ndarray:
    """The values a PCM file will hold for `block` (see `to_pcm`)."""
    if step is None:
        return block
    return (np.clip(np.round(block.astype(np.float64) / step), -1.0 / step, 1.0 / step - 1.0) * step).astype(np.float32)


def _finish(block: np.ndarray, fmt: OutputFormat, scale: float) -> np.ndarray:
    """Apply the rescale factor, then clamp where the format cannot hold values beyond ±1."""
    block = block * scale if scale != 1.0 else block
    if fmt.clip_mode in ("clamp", "rescale") and not fmt.holds_beyond_full_scale:
        block = np.clip(block, -1.0, 1.0)
    return block


def _encode(blocks: Iterator[np.ndarray], final: Path, fmt: OutputFormat, rate: int) -> None:
    if fmt.container == "MP3":
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(fmt.mp3_bitrate)
        encoder.set_in_sample_rate(rate)
        encoder.set_out_sample_rate(rate)  # LAME otherwise lowers the rate for low bitrates
        encoder.set_channels(2)
        encoder.set_quality(2)
        with open(final, "wb") as handle:
            for block in blocks:
                handle.write(encoder.encode(to_pcm(block, "PCM_16").tobytes()))
            handle.write(encoder.flush())
        return
    with sf.SoundFile(str(final), "w", samplerate=rate, channels=2, subtype=fmt.subtype, format=fmt.container) as out:
        for block in blocks:
            out.write(to_pcm(block, fmt.subtype) if fmt.subtype in PCM_BITS else block)


def _write_wav_stream(blocks: Callable[[], Iterator[np.ndarray]], stream: BinaryIO, fmt: OutputFormat, rate: int,
                      staging: _Staging) -> None:
    """A WAV on a pipe: the length is known, so the header is written first and never revisited."""
    frames = sf.info(str(staging.path)).frames
    width, code = {"PCM_16": (2, 1), "PCM_24": (3, 1), "FLOAT": (4, 3)}[fmt.subtype]
    data_bytes = frames * 2 * width
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, code, 2, rate, rate * 2 * width, 2 * width, 8 * width)
    header += b"data" + struct.pack("<I", data_bytes)
    stream.write(header)
    for block in blocks():
        if fmt.subtype == "FLOAT":
            stream.write(block.astype("<f4").tobytes())
        elif fmt.subtype == "PCM_16":
            stream.write(to_pcm(block, "PCM_16").astype("<i2").tobytes())
        else:
            ints = (to_pcm(block, "PCM_24") >> 8).astype("<i4")
            stream.write(ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
    stream.flush()


def stdout_stream() -> BinaryIO:
    return sys.stdout.buffer
