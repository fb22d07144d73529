"""Where stems go and how they are encoded: templates, formats, clipping, stdout.

Every stem is first streamed as float32 into a hidden temporary WAV beside its
destination. When the song is complete the temporary file is turned into the final
format (16/24-bit or float WAV, FLAC, MP3) with the chosen clip handling — `rescale`
needs the stem's peak, so it cannot be applied while streaming — and renamed into place,
or copied to stdout. An interrupted run therefore never leaves a partial stem.
"""

from __future__ import annotations

import os
import shutil
import string
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
from torch import Tensor

from .errors import AudioError, UsageError, first_line

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = {"track", "stem", "ext", "checkpoint"}
CLIP_MODES = ("rescale", "clamp", "none")
BLOCK = 1 << 18


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


def check_template(template: str) -> None:
    """Refuse unknown fields, absolute paths and anything that could leave the output folder."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UsageError(f"--filename {template!r}: {exc}") from exc
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise UsageError(f"--filename {template!r}: unknown field(s) {sorted(unknown)}; use {{track}}, {{stem}}, {{ext}}, {{checkpoint}}")
    if "stem" not in fields:
        raise UsageError(f"--filename {template!r}: must contain {{stem}}, or every stem would overwrite the last")
    parts = Path(template).parts
    if Path(template).is_absolute() or ".." in parts or template.startswith("~"):
        raise UsageError(f"--filename {template!r}: must stay inside the output folder (no '..', '/' or '~' at the start)")


def output_path(out: Path, template: str, *, track: str, stem: str, ext: str, checkpoint: str) -> Path:
    """Fill the template; a track name that smuggles in separators cannot escape `out` either."""
    safe = lambda s: s.replace(os.sep, "_").replace("..", "_")  # noqa: E731
    relative = template.format(track=safe(track), stem=stem, ext=ext, checkpoint=safe(checkpoint))
    path = (out / relative).resolve()
    root = out.resolve()
    if root != path and root not in path.parents:
        raise UsageError(f"output {relative!r} would be written outside {out}")
    return out / relative


class StemSink:
    """One stem: float32 staging file now, final encoding at `commit`, never a partial output."""

    def __init__(self, destination: Path | None, *, rate: int, fmt: OutputFormat, stream: BinaryIO | None = None) -> None:
        self.destination = destination
        self.stream = stream
        self.rate = rate
        self.fmt = fmt
        folder = destination.parent if destination is not None else Path(tempfile.gettempdir())
        try:
            folder.mkdir(parents=True, exist_ok=True)
            prefix = f".{destination.name}." if destination is not None else ".mdxmix-stdout."
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".part.wav", dir=folder)
            os.close(fd)
            self.staging = Path(name)
            self.file = sf.SoundFile(str(self.staging), "w", samplerate=rate, channels=2, subtype="FLOAT", format="WAV")
        except (OSError, sf.LibsndfileError) as exc:
            self.abort()
            raise AudioError(f"cannot write {destination or 'stdout'}: {first_line(exc)}") from exc

    def write(self, block: Tensor | np.ndarray) -> None:
        data = block.numpy() if isinstance(block, Tensor) else block
        try:
            self.file.write(np.ascontiguousarray(data.T, dtype=np.float32))
        except (OSError, sf.LibsndfileError) as exc:
            self.abort()
            raise AudioError(f"cannot write {self.destination or 'stdout'}: {first_line(exc)}") from exc

    def commit(self) -> Path | None:
        """Encode the staged audio into its final form and put it in place."""
        self.file.close()
        try:
            scale = self._scale()
            if self.stream is not None:
                _write_wav_stream(self.staging, self.stream, self.fmt, scale)
                return None
            assert self.destination is not None
            final = self.destination.with_name(f".{self.destination.name}.enc.tmp")
            try:
                _encode(self.staging, final, self.fmt, scale)
                os.chmod(final, 0o666 & ~_umask())
                os.replace(final, self.destination)
            finally:
                if final.exists():
                    final.unlink()
            return self.destination
        except OSError as exc:
            raise AudioError(f"cannot write {self.destination or 'stdout'}: {first_line(exc)}") from exc
        finally:
            self._remove_staging()

    def abort(self) -> None:
        file = getattr(self, "file", None)
        if file is not None and not file.closed:
            file.close()
        self._remove_staging()

    def _remove_staging(self) -> None:
        staging = getattr(self, "staging", None)
        if staging is not None and staging.exists():
            staging.unlink()

    def _scale(self) -> float:
        """demucs's `rescale`: divide by 1.01·peak when the peak exceeds 1, so nothing clips."""
        if self.fmt.clip_mode != "rescale" or self.fmt.subtype == "FLOAT" and self.fmt.container == "WAV":
            return 1.0
        peak = 0.0
        for block in sf.blocks(str(self.staging), blocksize=BLOCK, dtype="float32", always_2d=True):
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
        return 1.0 / max(1.01 * peak, 1.0)



def finish_block(block: np.ndarray, fmt: OutputFormat, scale: float) -> np.ndarray:
    """Apply the rescale factor, then clamp where the format cannot hold values beyond ±1."""
    block = block * scale if scale != 1.0 else block
    if fmt.clip_mode in ("clamp", "rescale") and not (fmt.subtype == "FLOAT" and fmt.container == "WAV"):
        block = np.clip(block, -1.0, 1.0)
    return block


def _encode(staging: Path, final: Path, fmt: OutputFormat, scale: float) -> None:
    blocks = (finish_block(b, fmt, scale) for b in sf.blocks(str(staging), blocksize=BLOCK, dtype="float32", always_2d=True))
    rate = sf.info(str(staging)).samplerate
    if fmt.container == "MP3":
        import lameenc

        encoder = lameenc.Encoder()
        encoder.set_bit_rate(fmt.mp3_bitrate)
        encoder.set_in_sample_rate(rate)
        encoder.set_channels(2)
        encoder.set_quality(2)
        with open(final, "wb") as handle:
            for block in blocks:
                handle.write(encoder.encode((block * 32767).round().astype(np.int16).tobytes()))
            handle.write(encoder.flush())
        return
    if fmt.container == "WAV" and fmt.subtype == "FLOAT" and scale == 1.0:
        shutil.copyfile(staging, final)
        return
    with sf.SoundFile(str(final), "w", samplerate=rate, channels=2, subtype=fmt.subtype, format=fmt.container) as out:
        for block in blocks:
            out.write(block)


def _write_wav_stream(staging: Path, stream: BinaryIO, fmt: OutputFormat, scale: float) -> None:
    """A WAV on a pipe: the length is known, so the header is written first and never revisited."""
    info = sf.info(str(staging))
    width, code = {"PCM_16": (2, 1), "PCM_24": (3, 1), "FLOAT": (4, 3)}[fmt.subtype]
    data_bytes = info.frames * 2 * width
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, code, 2, info.samplerate, info.samplerate * 2 * width, 2 * width, 8 * width)
    header += b"data" + struct.pack("<I", data_bytes)
    stream.write(header)
    for block in sf.blocks(str(staging), blocksize=BLOCK, dtype="float32", always_2d=True):
        block = finish_block(block, fmt, scale)
        if fmt.subtype == "FLOAT":
            stream.write(block.astype("<f4").tobytes())
        elif fmt.subtype == "PCM_16":
            stream.write(np.clip(np.round(block * 32768), -32768, 32767).astype("<i2").tobytes())
        else:
            ints = np.clip(np.round(block * 8388608), -8388608, 8388607).astype("<i4")
            stream.write(ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
    stream.flush()


def stdout_stream() -> BinaryIO:
    return sys.stdout.buffer


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
