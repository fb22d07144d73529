"""`Separator`: upstream separators + checkpoint mixer → four stereo stems.

The work is done block by block so that memory does not grow with the song:
only the stereo mixture is held whole (it is needed for the normalisation statistics);
upstream stems are computed for one block at a time (with a few seconds of context on
each side so block edges are invisible) and dropped once the mixer has read past them;
the mixer engine streams finished output, which the caller appends to its files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .audio import AtomicAudioWriter, AudioInfo, output_subtype, read_audio, resample
from .checkpoint import CheckpointMeta, load_checkpoint
from .errors import CheckpointError, UserError
from .mixer import Mixer
from .mixer.engine import EngineProgress, mix_stream
from .registry import Registry, weights_dir
from .stems import AUDIO_CHANNELS, SAMPLE_RATE, STEMS
from .upstream import Upstream, build_upstream

ProgressCallback = Callable[[int, int], None]


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA, then Apple MPS, then CPU; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible to PyTorch")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for but Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from exc


@dataclass(frozen=True)
class Normalizer:
    """The paper's per-track normalisation: mixture mean 0 and standard deviation 1.

    Every channel of X gets the same affine map, so sums of stems stay sums and the
    output is mapped back with the same numbers.
    """

    mean: float
    std: float

    @classmethod
    def of(cls, mixture: Tensor) -> "Normalizer":
        std = float(mixture.std()) if mixture.numel() > 1 else 0.0
        return cls(mean=float(mixture.mean()), std=std if std > 1e-8 else 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, y: Tensor) -> Tensor:
        return y * self.std + self.mean


class BlockedInput:
    """Serves the normalised X[:, a:b] to the engine, computing upstream stems per block."""

    def __init__(self, mixture: Tensor, upstreams: list[Upstream], stems_used: list[tuple[str, ...]],
                 normalizer: Normalizer, *, block: int, context: int,
                 on_block: Callable[[int, int], None] | None = None) -> None:
        self.mixture = mixture
        self.upstreams = upstreams
        self.stems_used = stems_used
        self.normalizer = normalizer
        self.length = mixture.shape[-1]
        # One block when the song is only a little longer than a block: no context overhead.
        self.block = self.length if self.length <= block * 1.25 else block
        self.context = context
        self.on_block = on_block
        self.blocks: dict[int, Tensor] = {}
        self.total_blocks = max(1, -(-self.length // self.block))

    def read(self, start: int, stop: int) -> Tensor:
        first, last = start // self.block, (stop - 1) // self.block
        for index in [i for i in self.blocks if i < first]:
            del self.blocks[index]  # the engine reads monotonically: earlier blocks are done
        pieces = []
        for index in range(first, last + 1):
            if index not in self.blocks:
                self.blocks[index] = self._compute(index)
            base = index * self.block
            pieces.append(self.blocks[index][:, max(start, base) - base : min(stop, base + self.block) - base])
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def _compute(self, index: int) -> Tensor:
        start, stop = index * self.block, min((index + 1) * self.block, self.length)
        lo, hi = max(0, start - self.context), min(self.length, stop + self.context)
        window = self.mixture[:, lo:hi]
        channels = [self.mixture[:, start:stop]]
        for upstream, stems in zip(self.upstreams, self.stems_used):
            separated = upstream.separate(window)
            channels += [separated[s][:, start - lo : stop - lo].float() for s in stems]
        if self.on_block is not None:
            self.on_block(index + 1, self.total_blocks)
        return self.normalizer.forward(torch.cat(channels, dim=0))


class Separator:
    """The public Python API: `Separator("default").separate_file("song.wav")`."""

    def __init__(self, checkpoint: str | Path | None = "default", *, device: str = "auto",
                 batch_size: int | None = None, block_seconds: float = 60.0, context_seconds: float = 3.0,
                 precision: str = "fp32", upstreams: list[Upstream] | None = None) -> None:
        registry = Registry.load()
        self.name, path = registry.checkpoint_path(None if checkpoint is None else str(checkpoint))
        ref = registry.checkpoints.get(self.name)
        self.mixer: Mixer
        self.meta: CheckpointMeta
        pinned = ref.sha256 if ref is not None and ref.file and Path(path).parent == registry.root else None
        self.mixer, self.meta = load_checkpoint(path, sha256=pinned)
        self.checkpoint_path = Path(path)
        self.device = pick_device(device)
        self.mixer.to(self.device)
        if precision not in ("fp32", "bf16", "fp16"):
            raise UserError(f"unknown precision '{precision}' (use fp32, bf16 or fp16)")
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 4)
        self.block = int(block_seconds * SAMPLE_RATE)
        self.context = int(context_seconds * SAMPLE_RATE)
        if upstreams is None:
            search = [self.checkpoint_path.parent, weights_dir()]
            upstreams = [build_upstream(spec, search, self.device) for spec in self.meta.upstreams]
        self._check_upstreams(upstreams)
        self.upstreams = upstreams

    def _check_upstreams(self, upstreams: list[Upstream]) -> None:
        want = [spec.id for spec in self.meta.upstreams]
        have = [u.name for u in upstreams]
        if want != have:
            raise CheckpointError(f"checkpoint '{self.name}' needs upstreams {want}, was given {have}")
        for spec, upstream in zip(self.meta.upstreams, upstreams):
            if upstream.sample_rate != SAMPLE_RATE:
                raise CheckpointError(f"upstream {spec.id} runs at {upstream.sample_rate} Hz; adapters must take {SAMPLE_RATE} Hz")
            missing = [s for s in spec.stems if s not in upstream.stems]
            if missing:
                raise CheckpointError(f"upstream {spec.id} does not produce {missing}")

    def stream(self, mixture: Tensor, *, on_progress: ProgressCallback | None = None,
               on_weights: Callable[[list[int], Tensor], None] | None = None) -> Iterator[Tensor]:
        """(2, N) 44.1 kHz mixture → consecutive (8, n) chunks of de-normalised stems."""
        if mixture.dim() != 2 or mixture.shape[0] != AUDIO_CHANNELS:
            raise ValueError(f"expected a (2, N) mixture, got {tuple(mixture.shape)}")
        mixture = mixture.float()
        normalizer = Normalizer.of(mixture)
        source = BlockedInput(mixture, self.upstreams, [s.stems for s in self.meta.upstreams], normalizer,
                              block=self.block, context=self.context)
        done = 0
        for chunk in mix_stream(source.read, mixture.shape[-1], self.mixer, batch_size=self.batch_size,
                                device=self.device, dtype=self.dtype, on_weights=on_weights):
            done += chunk.shape[-1]
            if on_progress is not None:
                on_progress(done, mixture.shape[-1])
            yield normalizer.inverse(chunk)

    def separate(self, audio: Tensor, sample_rate: int = SAMPLE_RATE) -> dict[str, Tensor]:
        """(channels, N) at any rate → {stem: (2, N)} at that rate, held in memory."""
        from .audio import to_stereo

        mixture = resample(to_stereo(audio.float().cpu()), sample_rate, SAMPLE_RATE)
        out = torch.cat(list(self.stream(mixture)), dim=-1)
        out = resample(out, SAMPLE_RATE, sample_rate)
        length = audio.shape[-1]
        out = torch.nn.functional.pad(out[:, :length], (0, max(0, length - out.shape[-1])))
        return {stem: out[2 * i : 2 * i + 2] for i, stem in enumerate(STEMS)}

    def separate_file(self, path: str | Path) -> dict[str, Tensor]:
        """Read a file and return its stems at the file's sample rate."""
        audio, info = read_audio(path)
        return self.separate(audio, info.sample_rate)

    def separate_to_files(self, audio: Tensor, info: AudioInfo, outputs: dict[str, Path], *,
                          subtype: str | None = None, on_progress: ProgressCallback | None = None) -> dict[str, Path]:
        """Stream the stems of a (2, N) input into files at the input's rate and length.

        `outputs` maps stem names to paths (a subset of the four is fine). Every file is
        written under a temporary name and renamed only when the whole song is done.
        """
        mixture = resample(audio, info.sample_rate, SAMPLE_RATE)
        subtype = subtype or output_subtype(info)
        writers: dict[str, AtomicAudioWriter] = {}
        try:
            for stem, path in outputs.items():
                writers[stem] = AtomicAudioWriter(path, source_rate=SAMPLE_RATE, target_rate=info.sample_rate,
                                                  frames=audio.shape[-1], subtype=subtype)
            for chunk in self.stream(mixture, on_progress=on_progress):
                for stem, writer in writers.items():
                    index = STEMS.index(stem)
                    writer.write(chunk[2 * index : 2 * index + 2])
            return {stem: writer.commit() for stem, writer in writers.items()}
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise


