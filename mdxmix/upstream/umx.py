"""An Open-Unmix-style separator family ("umx-file"), trained here, stored as safetensors.

Why this family: the mixer gains most from upstreams that make *different* mistakes. Open-Unmix
(Stöter, Uhlich, Liutkus, Mitsufuji 2019) is the classic recurrent spectrogram model: unlike the
TCN of `spectral.py` it sees its whole input through a bidirectional LSTM and works on plain
magnitudes (no log compression), with a separate network per target; the paper cites it [13]
among the amplitude-spectrogram separators. This is our own implementation of that architecture
(the `openunmix` package cannot be installed next to our torch: it needs torchaudio).

One target network (`TargetNet`), per STFT frame and for both channels at once:
magnitudes of the bins up to `bandwidth` Hz → + learned mean, × learned scale (per bin; the
training recipe starts them from data statistics, as Open-Unmix does) → Linear(2·bins → hidden,
no bias) → BatchNorm → tanh → `layers` LSTM layers (bidirectional, hidden/2 per direction) →
concatenated with their own input (skip) → Linear(2·hidden → hidden) → BatchNorm → ReLU →
Linear(hidden → 2·all bins) → BatchNorm → × learned output scale + learned output mean (per bin)
→ ReLU = r ≥ 0. Open-Unmix's magnitude estimate of the target is Ŝ = r ⊙ |X|.

From estimates to stems (mixture phase, no multichannel Wiener EM): with all four stems the
masks are Ŝ_s / Σ_t Ŝ_t, Open-Unmix's own `softmask` post-processing with zero EM iterations, so
the masks sum to one in every bin and the stems add back to the mixture; for a subset of the
stems (e.g. vocals alone) there is nothing to normalise against, so the mask is Ŝ/|X| = r clipped
to [0, 1] (a magnitude larger than the mixture's is never right for one source among others).
Both are computed from r, where |X| cancels, so silent bins (|X| = 0) get finite masks (equal
shares, resp. min(r, 1)) instead of 0/0. The masked complex spectra go through the inverse STFT.

Files are safetensors whose metadata holds `format`, `class` and the JSON `config`; BatchNorm
running statistics are part of the state. The loader refuses any other class or format and never
unpickles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UpstreamError
from ..stems import STEMS
from .base import JsonConfig, load_config_model, save_config_model
from .spectral import StftFrames

FORMAT = "mdxmix.umx/1"
CLASS_NAME = "mdxmix.upstream.umx.OpenUnmixNet"
CHANNELS = 2
MASK_EPS = 1e-6
MIN_STD = 1e-3  # input statistics: a scale of at most 1/MIN_STD stays finite in a float16 file


@dataclass(frozen=True)
class UMXConfig(JsonConfig):
    """Everything needed to rebuild an `OpenUnmixNet`; stored as JSON in the file."""

    stems: tuple[str, ...] = STEMS
    sample_rate: int = 44100
    n_fft: int = 4096
    hop: int = 1024
    hidden: int = 256  # Open-Unmix uses 512
    layers: int = 3
    bandwidth: float = 16000.0  # Hz; only bins up to here enter the network (every bin gets a mask)
    unidirectional: bool = False
    dropout: float = 0.4  # between LSTM layers, as in Open-Unmix
    mask: str = "auto"  # "ratio" (Ŝ_s / Σ Ŝ), "clip" (min(Ŝ/|X|, 1)), or "auto": ratio iff the stems are all four

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        if not self.stems or any(s not in STEMS for s in self.stems) or len(set(self.stems)) != len(self.stems):
            raise ValueError(f"stems must be distinct names from {STEMS}, got {list(self.stems)}")
        if self.mask not in ("auto", "ratio", "clip"):
            raise ValueError(f"mask must be auto, ratio or clip, got {self.mask!r}")
        if self.mask == "ratio" and len(self.stems) < 2:
            raise ValueError("a ratio mask needs at least two stems to share the mixture")
        if self.n_fft % self.hop:
            raise ValueError("n_fft must be a multiple of hop")
        if self.layers < 1 or self.hidden < 2 or (not self.unidirectional and self.hidden % 2):
            raise ValueError("layers must be >= 1 and hidden even (it is split between the two LSTM directions)")
        if not 0 < self.bandwidth <= self.sample_rate / 2 or not 0 <= self.dropout < 1:
            raise ValueError("bandwidth must be in (0, sample_rate/2] and dropout in [0, 1)")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def max_bin(self) -> int:
        """How many bins (from 0 Hz) enter the network: those at or below `bandwidth`."""
        return min(self.bins, int(self.bandwidth * self.n_fft / self.sample_rate) + 1)

    @property
    def mask_kind(self) -> str:
        if self.mask != "auto":
            return self.mask
        return "ratio" if set(self.stems) == set(STEMS) else "clip"


class TargetNet(nn.Module):
    """One target's Open-Unmix network: mixture magnitudes → r ≥ 0 (the estimate is r ⊙ |X|)."""

    def __init__(self, config: UMXConfig) -> None:
        super().__init__()
        c, hidden = config, config.hidden
        self.max_bin, self.hidden = c.max_bin, hidden
        self.input_mean = nn.Parameter(torch.zeros(c.max_bin))
        self.input_scale = nn.Parameter(torch.ones(c.max_bin))
        self.fc1 = nn.Linear(CHANNELS * c.max_bin, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(hidden, hidden if c.unidirectional else hidden // 2, num_layers=c.layers,
                            bidirectional=not c.unidirectional, batch_first=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, CHANNELS * c.bins, bias=False)
        self.bn3 = nn.BatchNorm1d(CHANNELS * c.bins)
        self.output_scale = nn.Parameter(torch.ones(c.bins))
        self.output_mean = nn.Parameter(torch.ones(c.bins))

    def forward(self, mag: Tensor) -> Tensor:
        """(B, 2, bins, T) magnitudes → (B, 2, bins, T) non-negative ratios r."""
        b, ch, bins, t = mag.shape
        x = mag[:, :, : self.max_bin].permute(0, 3, 1, 2)  # (B, T, 2, max_bin)
        x = (x + self.input_mean) * self.input_scale
        h = torch.tanh(self.bn1(self.fc1(x.reshape(b * t, ch * self.max_bin)))).reshape(b, t, self.hidden)
        h = torch.cat([h, self.lstm(h)[0]], dim=-1).reshape(b * t, 2 * self.hidden)
        h = F.relu(self.bn2(self.fc2(h)))
        h = self.bn3(self.fc3(h)).reshape(b, t, ch, bins)
        return F.relu(h * self.output_scale + self.output_mean).permute(0, 2, 3, 1)


class OpenUnmixNet(StftFrames, nn.Module):
    """(batch, 2, samples) → (batch, stems, 2, samples): one Open-Unmix network per stem, mixture phase."""

    def __init__(self, config: UMXConfig) -> None:
        super().__init__()
        self.config = config
        self.targets = nn.ModuleDict({stem: TargetNet(config) for stem in config.stems})
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def estimates(self, mag: Tensor) -> Tensor:
        """Open-Unmix's magnitude estimates Ŝ = r ⊙ |X|: (B, 2, bins, T) → (B, stems, 2, bins, T)."""
        return torch.stack([net(mag) for net in self.targets.values()], dim=1) * mag[:, None]

    def masks(self, mag: Tensor) -> Tensor:
        """(B, 2, bins, T) → (B, stems, 2, bins, T): Ŝ_s / Σ Ŝ (summing to one) or min(Ŝ/|X|, 1)."""
        ratios = torch.stack([net(mag) for net in self.targets.values()], dim=1)
        if self.config.mask_kind == "ratio":
            return (ratios + MASK_EPS / len(self.targets)) / (ratios.sum(dim=1, keepdim=True) + MASK_EPS)
        return ratios.clamp(max=1.0)

    def forward(self, mixture: Tensor) -> Tensor:
        spec = self.stft(mixture)
        return self.istft(self.masks(spec.abs()) * spec[:, None], mixture.shape[-1])

    @torch.no_grad()
    def set_input_statistics(self, mixture: Tensor) -> None:
        """Start every target's input mean/scale at −mean and 1/std of these mixtures' magnitudes, per bin."""
        mag = self.stft(mixture).abs()[:, :, : self.config.max_bin]  # (B, 2, max_bin, T)
        per_bin = mag.transpose(0, 2).reshape(self.config.max_bin, -1)
        mean, std = per_bin.mean(dim=1), per_bin.std(dim=1).clamp(min=MIN_STD)
        for net in self.targets.values():
            net.input_mean.copy_(-mean)
            net.input_scale.copy_(1.0 / std)


# --- files ------------------------------------------------------------------------------
def save_umx(model: OpenUnmixNet, path: str | Path, *, half: bool = False) -> Path:
    """Write the model (BatchNorm statistics included) as safetensors with the config as JSON metadata, atomically."""
    return save_config_model(model, path, FORMAT, CLASS_NAME, half=half)


def load_umx(path: str | Path) -> OpenUnmixNet:
    """Read a file written by `save_umx`; anything else is an `UpstreamError`."""
    return load_config_model(path, FORMAT, CLASS_NAME, lambda text: OpenUnmixNet(UMXConfig.from_json(text)),
                             "an Open-Unmix-style model")


# --- the adapter --------------------------------------------------------------------------
def crossfade_chunks(run: Callable[[Tensor], Tensor], mixture: Tensor, chunk: int, overlap: int) -> Tensor:
    """`run` ((1, 2, L) → (1, S, 2, L)) over chunks of `chunk` samples that overlap by `overlap`.

    Neighbouring chunks are joined by a linear cross-fade over their overlap (weights that add
    to one), so a difference between two chunks' estimates turns into a ramp, never a step.
    A mixture of at most `chunk` samples is one call of `run`, exactly as at once.
    """
    n = mixture.shape[-1]
    if n <= chunk:
        return run(mixture[None])[0]
    step = chunk - overlap
    starts = list(range(0, n - chunk, step))
    starts.append(starts[-1] + step)  # the last chunk ends at n and is longer than `overlap`
    ramp = (torch.arange(overlap, device=mixture.device, dtype=torch.float32) + 0.5) / overlap
    out = None
    for k, start in enumerate(starts):
        stop = min(n, start + chunk)
        est = run(mixture[None, :, start:stop])[0]
        weight = torch.ones(stop - start, device=est.device)
        if k > 0:
            weight[:overlap] = ramp.to(est.device)
        if k < len(starts) - 1:
            weight[-overlap:] = 1.0 - ramp.to(est.device)
        if out is None:
            out = torch.zeros(*est.shape[:-1], n, device=est.device)
        out[..., start:stop] += est * weight
    return out


class UMXUpstream:
    """Runs an `OpenUnmixNet` on a whole song in overlapping chunks joined by a cross-fade.

    Unlike the TCN of `spectral.py`, a BiLSTM is not local in time: every frame depends on the
    whole input, so no finite context makes chunked output equal to output at once. Chunks are
    still needed to bound memory (the LSTM activations grow with the input). Each chunk sees
    `overlap` seconds of its neighbour, and the two estimates are cross-faded there, so the
    join is continuous; what changes is that a frame's context is its chunk, not the song (the
    trained model saw 3-6 s crops, so 30-s chunks give it more context than it was trained on).
    A song no longer than a chunk is processed at once.
    """

    def __init__(self, model: OpenUnmixNet, name: str, device: torch.device | str = "cpu", *,
                 chunk_seconds: float | None = None, overlap_seconds: float = 2.0) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        cfg = model.config
        self.sample_rate = cfg.sample_rate
        self.stems = cfg.stems
        if chunk_seconds is None:  # a GPU takes a whole pipeline block (60 s + context) in one call
            chunk_seconds = 120.0 if self.device.type == "cuda" else 30.0
        self.chunk = max(cfg.n_fft, int(chunk_seconds * cfg.sample_rate))
        self.overlap = min(self.chunk // 2, max(cfg.n_fft, int(overlap_seconds * cfg.sample_rate)))

    def _run(self, piece: Tensor) -> Tensor:
        return self.model(piece.float().to(self.device))

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        n = mixture.shape[-1]
        short = self.model.config.n_fft - n  # the STFT's reflect padding needs n_fft/2 + 1 samples: pad silence after
        padded = F.pad(mixture, (0, short)) if short > 0 else mixture
        with torch.no_grad():
            out = crossfade_chunks(self._run, padded, self.chunk, self.overlap)[..., :n].to(mixture.device)
        return {stem: out[i] for i, stem in enumerate(self.stems)}


def load_local_umx(path: Path, name: str, device: torch.device | str = "cpu") -> UMXUpstream:
    """An Open-Unmix-style model file on disk as an upstream."""
    return UMXUpstream(load_umx(path), name, device)


__all__ = [
    "UMXConfig", "OpenUnmixNet", "TargetNet", "UMXUpstream", "crossfade_chunks", "load_local_umx", "load_umx",
    "save_umx",
]
