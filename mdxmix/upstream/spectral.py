"""A spectrogram-mask separator family ("spectral-file"), small enough to train on a CPU.

Why this family next to Demucs: the paper's mixer gains most when its upstreams make
*different* mistakes. Demucs works mostly on the waveform; this model only ever
re-weights the mixture's STFT bins (mixture phase, masks in [0, 1]), the way Open-Unmix
and the MDX-Net mask models do, so its errors are of another kind (no phase repair,
smeared transients, but no waveform artefacts).

Architecture (`SpectralMaskNet`): log-magnitude of each STFT frame (both channels) →
per-bin affine → linear encoder to `hidden` → `layers` residual blocks of dilated 1-D
convolutions over time (dilation 1, 2, 4, …, each block LayerNorm → conv → GELU → 1×1
conv, a TCN) → linear decoder to one mask per stem, channel and bin → softmax over stems
(when the stems are all four, so the stems add back to the mixture) or sigmoid (a subset,
e.g. vocals only). Every layer is local in time, so the output at a frame depends only on
`receptive_frames` frames around it: the adapter can process a song in chunks with that
much context and get the same result as at once (no BiLSTM, no whole-signal statistics).

Files are safetensors whose metadata holds `format`, `class` and the JSON `config`; the
loader refuses any other class or format and never unpickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UpstreamError
from ..stems import STEMS
from .base import JsonConfig, load_config_model, save_config_model

FORMAT = "mdxmix.spectral/1"
CLASS_NAME = "mdxmix.upstream.spectral.SpectralMaskNet"


@dataclass(frozen=True)
class SpectralConfig(JsonConfig):
    """Everything needed to rebuild a `SpectralMaskNet`; stored as JSON in the file."""

    stems: tuple[str, ...] = STEMS
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    hidden: int = 256
    layers: int = 6
    kernel: int = 3
    mask: str = "auto"  # "softmax", "sigmoid", or "auto": softmax iff the stems are all four

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        if not self.stems or any(s not in STEMS for s in self.stems) or len(set(self.stems)) != len(self.stems):
            raise ValueError(f"stems must be distinct names from {STEMS}, got {list(self.stems)}")
        if self.mask not in ("auto", "softmax", "sigmoid"):
            raise ValueError(f"mask must be auto, softmax or sigmoid, got {self.mask!r}")
        if self.n_fft % self.hop or self.kernel % 2 == 0:
            raise ValueError("n_fft must be a multiple of hop and kernel must be odd")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def mask_kind(self) -> str:
        if self.mask != "auto":
            return self.mask
        return "softmax" if set(self.stems) == set(STEMS) else "sigmoid"

    @property
    def receptive_frames(self) -> int:
        """Frames on each side of a frame that can influence its mask."""
        return sum((self.kernel // 2) * 2**i for i in range(self.layers))


class FrameNorm(nn.Module):
    """LayerNorm over channels of every frame separately (keeps the model local in time)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class TemporalBlock(nn.Module):
    """Residual dilated conv block: x + 1x1(GELU(conv_dilated(norm(x))))."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.norm = FrameNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.act = nn.GELU()
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(self.act(self.conv(self.norm(x))))


class StftFrames:
    """The STFT pair of the mask models trained here (`config.n_fft`, `config.hop`, a `window` buffer)."""

    def stft(self, x: Tensor) -> Tensor:
        """(B, 2, N) → complex (B, 2, bins, frames), centred frames with reflect padding."""
        b, ch, n = x.shape
        spec = torch.stft(x.reshape(b * ch, n), self.config.n_fft, self.config.hop, window=self.window,
                          center=True, return_complex=True)
        return spec.reshape(b, ch, *spec.shape[-2:])

    def istft(self, spec: Tensor, length: int) -> Tensor:
        """complex (..., bins, frames) → (..., length)."""
        lead = spec.shape[:-2]
        wav = torch.istft(spec.reshape(-1, *spec.shape[-2:]), self.config.n_fft, self.config.hop,
                          window=self.window, center=True, length=length)
        return wav.reshape(*lead, length)


class SpectralMaskNet(StftFrames, nn.Module):
    """(batch, 2, samples) → (batch, stems, 2, samples) by masking the mixture STFT."""

    def __init__(self, config: SpectralConfig) -> None:
        super().__init__()
        self.config = config
        c, bins = config, config.bins
        self.input_mean = nn.Parameter(torch.zeros(2 * bins))
        self.input_scale = nn.Parameter(torch.ones(2 * bins))
        self.encoder = nn.Conv1d(2 * bins, c.hidden, 1)
        self.blocks = nn.Sequential(*[TemporalBlock(c.hidden, c.kernel, 2**i) for i in range(c.layers)])
        self.out_norm = FrameNorm(c.hidden)
        self.decoder = nn.Conv1d(c.hidden, len(c.stems) * 2 * bins, 1)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    # --- the network ----------------------------------------------------------------
    def masks(self, mag: Tensor) -> Tensor:
        """Magnitudes (B, 2, bins, T) → masks (B, stems, 2, bins, T)."""
        b, ch, bins, t = mag.shape
        feats = torch.log1p(mag).reshape(b, ch * bins, t)
        feats = (feats - self.input_mean[:, None]) * self.input_scale[:, None]
        h = self.blocks(self.encoder(feats))
        logits = self.decoder(self.out_norm(h)).reshape(b, len(self.config.stems), ch, bins, t)
        if self.config.mask_kind == "softmax":
            return torch.softmax(logits, dim=1)
        return torch.sigmoid(logits)

    def forward(self, mixture: Tensor) -> Tensor:
        spec = self.stft(mixture)
        masked = self.masks(spec.abs()) * spec[:, None]
        return self.istft(masked, mixture.shape[-1])


# --- files ------------------------------------------------------------------------------
def save_spectral(model: SpectralMaskNet, path: str | Path, *, half: bool = False) -> Path:
    """Write the model as safetensors (config as JSON metadata), atomically (temp + rename)."""
    return save_config_model(model, path, FORMAT, CLASS_NAME, half=half)


def load_spectral(path: str | Path) -> SpectralMaskNet:
    """Read a file written by `save_spectral`; anything else is an `UpstreamError`."""
    return load_config_model(path, FORMAT, CLASS_NAME, lambda text: SpectralMaskNet(SpectralConfig.from_json(text)),
                             "a spectral-mask model")


# --- the adapter --------------------------------------------------------------------------
class SpectralUpstream:
    """Runs a `SpectralMaskNet` on a whole song in chunks of `chunk_seconds`.

    Each chunk is extended by enough context for the STFT and the convolutions'
    receptive field, and only its centre is kept, so memory is bounded by the chunk size
    and the result matches processing at once (up to float rounding).
    """

    def __init__(self, model: SpectralMaskNet, name: str, device: torch.device | str = "cpu", *,
                 chunk_seconds: float | None = None) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        cfg = model.config
        self.sample_rate = cfg.sample_rate
        self.stems = cfg.stems
        hop = cfg.hop
        # A GPU takes a whole pipeline block (60 s + context) in one call. On a CPU a chunk's masks,
        # logits and masked spectra peak at ~24 MiB per second of audio (four stems), so 10 s (+0.8 s
        # context each side) holds ~0.25 GiB where 30 s held 0.7 GiB, for ~10 % more of a cheap model.
        if chunk_seconds is None:
            chunk_seconds = 120.0 if self.device.type == "cuda" else 10.0
        self.chunk = max(hop, int(chunk_seconds * cfg.sample_rate) // hop * hop)
        # frames of context each side, plus the STFT window half, rounded up to whole hops
        self.context = (cfg.receptive_frames + cfg.n_fft // hop + 1) * hop

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        n = mixture.shape[-1]
        out = torch.zeros(len(self.stems), 2, n, device=mixture.device)  # stems stay where the mixture is
        with torch.no_grad():
            for start in range(0, n, self.chunk):
                stop = min(n, start + self.chunk)
                a, b = max(0, start - self.context), min(n, stop + self.context)
                piece = mixture[:, a:b].float().to(self.device)[None]
                est = self.model(piece)[0]
                out[:, :, start:stop] = est[:, :, start - a : start - a + (stop - start)].to(out.device)
        return {stem: out[i] for i, stem in enumerate(self.stems)}


def load_local_spectral(path: Path, name: str, device: torch.device | str = "cpu") -> SpectralUpstream:
    """A spectral-mask model file on disk as an upstream."""
    return SpectralUpstream(load_spectral(path), name, device)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "SpectralConfig", "SpectralMaskNet", "StftFrames", "SpectralUpstream", "count_parameters", "load_local_spectral",
    "load_spectral", "save_spectral",
]
