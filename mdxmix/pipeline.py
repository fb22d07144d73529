"""`Separator`: upstream separators + checkpoint mixer → four stereo stems.

The work is done block by block so that memory does not grow with the song:
only the stereo mixture is held whole (it is needed for the normalisation statistics);
upstream stems are computed for one block at a time (with a few seconds of context on
each side so block edges are invisible) and dropped once the mixer has read past them;
the mixer engine streams finished output, which the caller appends to its files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .audio import PcmSamples, Samples, check_finite, read_audio, resample, resample_chunks, to_stereo
from .cache import CacheWriter, StemCache, audio_key
from .checkpoint import CheckpointMeta, check_upstreams, load_checkpoint
from .device import pick_device
from .errors import UsageError, UserError
from .mixer import AgnosticMixer, Mixer
from .mixer.consistency import check_mode, settle
from .mixer.engine import mix_stream
from .mixer.ensembles import RULES, ensemble_stems
from .mixer.normalize import Normalizer
from .registry import Registry
from .stems import AUDIO_CHANNELS, SAMPLE_RATE, STEMS
from .upstream import Upstream, UpstreamSpec, build_upstream
from .upstream.base import check_provides
from .upstream.stem_files import StemFiles
from .weightfiles import upstream_search_path

ProgressCallback = Callable[[int, int], None]
# Upstreams get at least this many samples (zero-padded after the song): STFT-based
# separators cannot frame a few milliseconds of audio, and silence after the end changes nothing before it.
UPSTREAM_MIN_FRAMES = SAMPLE_RATE


@dataclass(frozen=True)
class SeparationReport:
    """What one song's separation took, for logs and `--json`."""

    frames: int  # 44.1 kHz samples separated
    upstream_runs: int  # upstream calls made (0 when the cache held every upstream's stems)

# Stems add back to the input. Chosen by museval SDR of the bundled default on 4 valid songs of
# the v1 corpus (README, "Stems that add up"): spectral 4.15 dB, none 4.10, even 4.05, energy 4.04.
DEFAULT_CONSISTENCY = "spectral"


class BlockedInput:
    """Serves the normalised X[:, a:b] to the engine, computing upstream stems per block.

    With a `StemCache`, an upstream whose stems for this mixture are cached is read from
    the cache instead of run; one that is not is run block by block and its stems are
    written to the cache as they come, so the next run with any checkpoint that uses the
    same upstream skips it.

    Blocks are built on `device`: on a GPU the mixture block goes up once, the upstreams
    return their stems there, and X never comes back to the host. With `prefetch`, the
    next block's upstreams run in a worker thread (on their own CUDA stream) while the
    engine mixes the current one; that holds one more block of X, so it is meant for GPUs.
    """

    def __init__(self, mixture: Samples, upstreams: list[Upstream], stems_used: list[tuple[str, ...]],
                 normalizer: Normalizer, *, block: int, context: int, cache: StemCache | None = None,
                 include_mixture: bool = True, device: torch.device | str = "cpu", prefetch: bool = False,
                 provided: list[dict] | None = None) -> None:
        self.mixture = mixture
        self.device = torch.device(device)
        self.include_mixture = include_mixture  # False: X is the upstream stems alone (paper Table 6)
        self.upstreams: list[Upstream | None] = list(upstreams)
        self.stems_used = list(stems_used)
        self.normalizer = normalizer
        self.length = mixture.shape[-1]
        # One block when the song is only a little longer than a block: no context overhead.
        self.block = self.length if self.length <= block * 1.25 else block
        self.context = context
        self.blocks: dict[int, tuple[int, Tensor]] = {}  # index → (first sample held, X from there to the block's end)
        self.total_blocks = max(1, -(-self.length // self.block))
        self.cached: list[dict | None] = [None] * len(upstreams)
        self.writers: list[CacheWriter | None] = [None] * len(upstreams)
        self.upstream_runs = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mdxmix-upstreams") if prefetch and self.total_blocks > 1 else None
        self._pending: dict[int, Future] = {}
        self._stream = torch.cuda.Stream(self.device) if self._pool is not None and self.device.type == "cuda" else None
        if cache is not None:
            key = audio_key(mixture)
            for i, upstream in enumerate(upstreams):
                self.cached[i] = cache.get(upstream.name, key, frames=self.length, stems=tuple(upstream.stems))
                if self.cached[i] is None:
                    self.writers[i] = cache.writer(upstream.name, key, tuple(upstream.stems), self.length)
        # Stems that exist already (`--stems-from` folders) come after the upstreams run here; like
        # cache entries they are only read, so they need no upstream object and no cache writer.
        for stems in provided or []:
            self.upstreams.append(None)
            self.stems_used.append(tuple(stems))
            self.cached.append(stems)
            self.writers.append(None)

    def read(self, start: int, stop: int) -> Tensor:
        first, last = start // self.block, (stop - 1) // self.block
        for index in [i for i in self.blocks if i < first]:
            del self.blocks[index]  # the engine reads monotonically: earlier blocks are done
        pieces = []
        for index in range(first, last + 1):
            if index not in self.blocks:
                self._keep_from(start)
                self.blocks[index] = (index * self.block, self._take(index))
            base, block = self.blocks[index]
            pieces.append(block[:, max(start, base) - base : min(stop, index * self.block + self.block) - base])
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def _keep_from(self, start: int) -> None:
        """Before a new block is made, cut the held ones down to what is still to be read (from `start` on).

        The engine reads monotonically, so of the previous block only the tail that the current
        batch of segments spans is needed; holding all of it while the next block's upstreams run
        put two blocks of X at the peak.
        """
        for index, (base, block) in list(self.blocks.items()):
            if start > base:
                self.blocks[index] = (start, block[:, start - base :].clone())

    def _take(self, index: int) -> Tensor:
        """Block `index`, from the worker when it was prefetched; then start on the next one."""
        future = self._pending.pop(index, None)
        if future is None:
            for pending in self._pending.values():
                pending.result()  # never run two blocks' upstreams (and cache writes) at once
            block = self._compute(index)
        else:
            block = future.result()
            if self._stream is not None:  # made on the worker's stream, used on this one
                block.record_stream(torch.cuda.current_stream(self.device))
        following = index + 1
        if self._pool is not None and following < self.total_blocks and following not in self._pending:
            self._pending[following] = self._pool.submit(self._compute_aside, following)
        return block

    def _compute_aside(self, index: int) -> Tensor:
        if self._stream is None:
            return self._compute(index)
        with torch.cuda.stream(self._stream):
            block = self._compute(index)
        self._stream.synchronize()  # the worker waits, not the engine
        return block

    def _compute(self, index: int) -> Tensor:
        start, stop = index * self.block, min((index + 1) * self.block, self.length)
        lo, hi = max(0, start - self.context), min(self.length, stop + self.context)
        around = self.mixture[:, lo:hi].to(self.device, non_blocking=True)  # one host→device copy per block
        channels = [around[:, start - lo : stop - lo]] if self.include_mixture else []
        for i, (upstream, stems) in enumerate(zip(self.upstreams, self.stems_used)):
            cached = self.cached[i]
            if cached is not None:
                channels += [torch.from_numpy(np.asarray(cached[s][:, start:stop], dtype=np.float32)).to(self.device)
                             for s in stems]
                _release_pages(cached)
                continue
            piece = around
            if piece.shape[-1] < UPSTREAM_MIN_FRAMES:
                piece = torch.nn.functional.pad(piece, (0, UPSTREAM_MIN_FRAMES - piece.shape[-1]))
            separated = upstream.separate(piece)
            trim_heap()
            self.upstream_runs += 1
            block = {s: separated[s][:, start - lo : stop - lo].to(self.device, torch.float32) for s in upstream.stems}
            channels += [block[s] for s in stems]
            writer = self.writers[i]
            if writer is not None:
                writer.write(start, block)
                if index == self.total_blocks - 1:
                    writer.commit()
                    self.writers[i] = None
        x = torch.cat(channels, dim=0)
        # In place: `forward` made two more block-sized copies of X (≈ 0.4 GB at 20 channels) at the peak.
        return x.sub_(self.normalizer.mean).div_(self.normalizer.std)

    def close(self) -> None:
        """Stop the worker; drop cache entries left unfinished (an interrupted or failed run)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
        for writer in self.writers:
            if writer is not None:
                writer.abort()
        self.writers = [None] * len(self.writers)


def _libc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (macOS, musl): nothing to trim


_MALLOC_TRIM = _libc_trim()


def trim_heap() -> None:
    """Give the memory an upstream freed back to the system (glibc's `malloc_trim`).

    An upstream's activations (HDemucs ≈ 0.35 GiB per 6-s chunk) are freed in pieces that
    glibc keeps in its heaps, fragmented: measured on three 66-s blocks, the process peaked
    0.78 → 0.81 → 0.83 GiB above its start and kept 0.6 GiB; trimmed after each upstream,
    0.68 GiB every block and 0.29 GiB kept. A few milliseconds per call.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _release_pages(stems: dict) -> None:
    """Unmap the pages a block read from memory-mapped cache entries, so they stop counting as ours.

    Read pages of a file mapping stay in the process (a whole hour-long entry, 2.5 GB, by the
    end of a song); the kernel keeps them in its page cache, so this costs nothing but a later
    re-read's minor faults. Arrays that are not memory maps (stems from files) are left alone.
    """
    maps = {id(m): m for m in (getattr(array, "_mmap", None) for array in stems.values()) if m is not None}
    for mapped in maps.values():
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError, ValueError):
            return  # a platform without madvise, or a map already closed: only memory is at stake


class Separator:
    """The public Python API: `Separator("default").separate_file("song.wav")`."""

    def __init__(self, checkpoint: str | Path | None = "default", *, device: str = "auto",
                 batch_size: int | None = None, block_seconds: float = 60.0, context_seconds: float = 3.0,
                 precision: str = "fp32", upstreams: list[Upstream] | None = None,
                 cache: StemCache | None = None, consistency: str | None = None,
                 prefetch: bool | None = None, specs: list[UpstreamSpec] | None = None,
                 search: list[Path] | None = None, stem_files: list[StemFiles] | None = None,
                 ensemble: str | None = None) -> None:
        """`specs` and `stem_files` replace the checkpoint's upstreams (a mixer of kind agnostic takes any;
        another checkpoint only its own); `ensemble` combines the upstreams with a fixed rule instead of the mixer."""
        if consistency is not None:  # a usage error, found before any model is loaded
            try:
                check_mode(consistency)
            except ValueError as exc:
                raise UsageError(f"--consistency: {exc}") from exc
        # A registered name is resolved (downloaded if needed) and sha256-checked by the registry.
        self.name, path = Registry.load().checkpoint_path(None if checkpoint is None else str(checkpoint))
        self.mixer: Mixer
        self.meta: CheckpointMeta
        self.mixer, self.meta = load_checkpoint(path)
        self.checkpoint_path = Path(path)
        self.device = pick_device(device)
        self.mixer.to(self.device)
        if precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"unknown precision '{precision}' (use fp32, bf16 or fp16)")
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        # On a GPU a batch is one kernel sequence and one host copy: ~2 M samples of segments per
        # batch (64 for the default's T=2^15, 16 for the paper's 2^18); on a CPU 4 is as fast as more.
        self.batch_size = batch_size or (max(16, 2**21 // int(self.mixer.segment)) if self.device.type == "cuda" else 4)
        # Upstreams of the next block run beside the mixing of this one on a GPU; on a CPU the
        # two would only take cores from each other (and hold one more block in memory).
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        self.block = int(block_seconds * SAMPLE_RATE)
        self.context = int(context_seconds * SAMPLE_RATE)
        self.specs = list(self.meta.upstreams if specs is None else specs)
        self.stem_files = list(stem_files or [])
        self.ensemble = _check_ensemble(ensemble)
        free = self.meta.any_upstreams or self.ensemble is not None
        if self.stem_files and not free:
            raise UsageError(f"--stems-from needs a mixer that takes any upstreams ('{self.name}' takes only its own) or --ensemble")
        if upstreams is None:
            folders = [*(search or []), *upstream_search_path(self.checkpoint_path)]
            upstreams = [build_upstream(spec, folders, self.device) for spec in self.specs]
        if free:
            for spec, upstream in zip(self.specs, upstreams, strict=True):
                check_provides(spec, upstream)
        else:
            check_upstreams(self.meta, upstreams, f"checkpoint '{self.name}'")
        if not self.specs and not self.stem_files and free:
            raise UsageError("no upstreams: name some with --upstream or --stems-from")
        if self.ensemble is not None:
            self.name = f"ensemble-{self.ensemble}"
        self.upstreams = upstreams
        self.cache = cache
        if consistency is None:  # the default needs the mixture in X; a Table 6 mixer goes without
            consistency = DEFAULT_CONSISTENCY if self.meta.mixture else "none"
        self.consistency = consistency
        if self.consistency != "none" and not self.meta.mixture:
            raise UserError(f"checkpoint '{self.name}' does not take the mixture, so --consistency must be none")

    def stream(self, mixture: Samples, *, on_progress: ProgressCallback | None = None,
               on_weights: Callable[[list[int], Tensor], None] | None = None,
               on_report: Callable[[SeparationReport], None] | None = None,
               track: str | None = None, source_rate: int = SAMPLE_RATE) -> Iterator[Tensor]:
        """(2, N) 44.1 kHz mixture → consecutive (8, n) chunks of de-normalised stems.

        `on_report`, when given, receives a `SeparationReport` once the song is complete.
        `track` (the input's file name without extension) and `source_rate` find and check
        the song's stems in `--stems-from` folders. `mixture` may be `PcmSamples` (a 16-bit
        song in half the memory; its samples are finite by construction).
        """
        if mixture.dim() != 2 or mixture.shape[0] != AUDIO_CHANNELS:
            raise ValueError(f"expected a (2, N) mixture, got {tuple(mixture.shape)}")
        mixture = mixture.float()
        if not isinstance(mixture, PcmSamples):
            check_finite(mixture, "the mixture")
        normalizer = Normalizer.of(mixture)
        provided = self._stem_files_of(track, mixture.shape[-1], source_rate)
        source = BlockedInput(mixture, self.upstreams, [s.stems for s in self.specs], normalizer, block=self.block,
                              context=self.context, cache=self.cache, include_mixture=self.meta.mixture,
                              device=self.device, prefetch=self.prefetch, provided=provided)
        done = 0
        try:
            for chunk in self._chunks(source, mixture.shape[-1], tuple(source.stems_used), normalizer, on_weights):
                stems = normalizer.inverse(chunk).cpu()  # de-normalised on the device: one copy per batch
                if self.consistency != "none":
                    stems = settle(stems, mixture[:, done : done + stems.shape[-1]])
                done += stems.shape[-1]
                if on_progress is not None:
                    on_progress(done, mixture.shape[-1])
                yield stems
        finally:
            source.close()
        if on_report is not None:
            on_report(SeparationReport(frames=int(mixture.shape[-1]), upstream_runs=source.upstream_runs))

    def _stem_files_of(self, track: str | None, frames: int, source_rate: int) -> list[dict]:
        if not self.stem_files:
            return []
        if track is None:
            raise UsageError("--stems-from finds a song's stems by its file name; it cannot be used with stdin")
        return [files.open(track, frames, source_rate) for files in self.stem_files]

    def _chunks(self, source: BlockedInput, length: int, layout: tuple, normalizer: Normalizer,
                on_weights: Callable[[list[int], Tensor], None] | None) -> Iterator[Tensor]:
        """Normalised (8, n) output chunks: the mixer through the engine, or the fixed ensemble rule.

        An ensemble's stems are made to add up by `settle` alone (an even split of what is left).
        """
        if self.ensemble is not None:
            yield from _ensemble_chunks(source, length, layout, self.ensemble, normalizer, self.block, self.context)
            return
        mixer = self.mixer.bind(layout) if isinstance(self.mixer, AgnosticMixer) else self.mixer
        yield from mix_stream(source.read, length, mixer, batch_size=self.batch_size, device=self.device,
                              dtype=self.dtype, on_weights=on_weights, consistency=self.consistency, to_host=False)

    def separate(self, audio: Tensor, sample_rate: int = SAMPLE_RATE, *, track: str | None = None) -> dict[str, Tensor]:
        """(channels, N) at any rate → {stem: (2, N)} at that rate, held in memory (`track`: see `stream`)."""
        mixture = resample(to_stereo(audio.float().cpu()), sample_rate, SAMPLE_RATE)
        chunks = (chunk.numpy() for chunk in self.stream(mixture, track=track, source_rate=sample_rate))
        out = np.concatenate(list(resample_chunks(chunks, SAMPLE_RATE, sample_rate, frames=audio.shape[-1])), axis=1)
        stems = torch.from_numpy(out)
        if self.consistency != "none":  # resampling round trips are not exact: add up at the input's rate
            stems = settle(stems, to_stereo(audio.float().cpu()))
        return {stem: stems[2 * i : 2 * i + 2] for i, stem in enumerate(STEMS)}

    def separate_file(self, path: str | Path) -> dict[str, Tensor]:
        """Read a file and return its stems at the file's sample rate."""
        audio, info = read_audio(path)
        return self.separate(audio, info.sample_rate, track=None if str(path) == "-" else Path(path).stem)


def _check_ensemble(rule: str | None) -> str | None:
    if rule is not None and rule not in RULES:
        raise UsageError(f"--ensemble {rule!r}: use one of {', '.join(RULES)}")
    return rule


def _ensemble_chunks(source: BlockedInput, length: int, layout: tuple, rule: str, normalizer: Normalizer,
                     block: int, context: int) -> Iterator[Tensor]:
    """The fixed rule over blocks read with `context` on each side (so STFT rules see no block edges)."""
    for start in range(0, length, block):
        stop = min(start + block, length)
        lo, hi = max(0, start - context), min(length, stop + context)
        x = normalizer.inverse(source.read(lo, hi)).cpu().numpy()
        if not source.include_mixture:
            raise UsageError("--ensemble needs the mixture; this checkpoint was trained without it")
        y = ensemble_stems(x, layout, rule)[:, start - lo : stop - lo]
        yield normalizer.forward(torch.from_numpy(np.ascontiguousarray(y)))
