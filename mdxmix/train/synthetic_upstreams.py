"""Synthetic separators: estimates made from the true stems with controlled, time-varying faults.

Why: the agnostic mixer must learn what to do with separators it has never seen, from
poor ones to near-oracle ones, but a project can only train a handful of real upstreams.
A synthetic separator takes the reference stems of a training segment and degrades each
stem the way real separators fail, with a strength set by one `quality` number in [0, 1]
and varying over time (control points every `control_seconds`, linearly interpolated):

* **leakage**: a share of every other stem is added (the most common fault);
* **level errors**: the stem's gain wanders by a few dB;
* **band-limiting**: the spectrum above a wandering cut-off frequency is attenuated;
* **smearing**: the magnitude spectrogram is blurred over neighbouring frames (the stem's
  own transients spread; the phase is kept);
* **artefacts**: random time-frequency bins are dropped (the "musical noise" of masks).

Quality 0 gives roughly -5 dB SDR and quality 1 roughly +20 dB on real music; the test
measures the range produced.

That `leak` kind alone teaches a mixer little about real separators: its stems do not add
up to the mixture and its faults are independent per stem, while the separators people run
(spectrogram masks, Demucs) share one budget: what one stem misses lands in another. So a
second kind, `mask`, separates like a corrupted mask network: each stem is the mixture's
spectrogram times a soft mask, the masks of the four stems a softmax over stems of the true
log powers, flattened (sharpness 0.1 at quality 0, 1 = the ideal ratio mask at quality 1)
and disturbed by smooth random fields in time and frequency, with a wandering gain. Its
stems add up to the mixture (up to the gain), like the project's real upstreams, and it
spans about -5 dB to +13 dB SDR (tests/test_synthetic_upstreams.py). Everything is a function of the reference stems and a seeded
generator, so training runs are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..stems import SAMPLE_RATE, STEMS

N_FFT = 1024
HOP = 256


@dataclass(frozen=True)
class SyntheticUpstream:
    """One synthetic separator: which stems it gives and how good it is (0 poor … 1 near-oracle)."""

    stems: tuple[str, ...]
    quality: float
    seed: int
    control_seconds: float = 0.25
    kind: str = "leak"  # "leak": added leakage and per-stem faults; "mask": a corrupted soft mask of the mixture

    def separate(self, references: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """(4, 2, N) reference stems in `STEMS` order → {stem: (2, N)} degraded estimates."""
        generator = generator or torch.Generator().manual_seed(self.seed)
        length = references.shape[-1]
        spec = stft(references)
        if self.kind == "mask":
            estimates = masked(spec, self.quality, generator, self.control_points(length))[[STEMS.index(s) for s in self.stems]]
        elif self.kind == "leak":
            estimates = torch.stack([degrade(spec, STEMS.index(stem), self.quality, generator, self.control_points(length))
                                     for stem in self.stems])
        else:
            raise ValueError(f"unknown synthetic separator kind {self.kind!r}")
        waves = torch.istft(estimates.flatten(0, 1), N_FFT, HOP, window=torch.hann_window(N_FFT), length=length)
        return dict(zip(self.stems, waves.view(len(self.stems), -1, length)))

    def control_points(self, length: int) -> int:
        return max(2, math.ceil(length / (self.control_seconds * SAMPLE_RATE)) + 1)


def random_synthetic(generator: torch.Generator, mask_share: float = 0.5) -> SyntheticUpstream:
    """A random synthetic separator: four stems (60 %), one stem (25 %) or two (15 %), any quality,
    of kind `mask` with probability `mask_share`, else `leak`."""
    draw = float(torch.rand((), generator=generator))
    order = torch.randperm(len(STEMS), generator=generator).tolist()
    count = 4 if draw < 0.6 else 1 if draw < 0.85 else 2
    stems = tuple(STEMS[i] for i in sorted(order[:count]))
    quality = float(torch.rand((), generator=generator))
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    kind = "mask" if float(torch.rand((), generator=generator)) < mask_share else "leak"
    return SyntheticUpstream(stems, quality, seed, kind=kind)


def _envelope(frames: int, points: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """A random value in [low, high] at each control point, linearly interpolated over `frames`."""
    values = low + (high - low) * torch.rand(points, generator=generator)
    if points == 1:
        return values.expand(frames)
    position = torch.linspace(0, points - 1, frames)
    left = position.floor().long().clamp(max=points - 2)
    frac = position - left
    return values[left] * (1 - frac) + values[left + 1] * frac


def stft(references: Tensor) -> Tensor:
    """(4, 2, N) → complex (4, 2, bins, frames)."""
    length = references.shape[-1]
    spec = torch.stft(references.reshape(-1, length).float(), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    return spec.view(*references.shape[:2], *spec.shape[-2:])


def degrade(spec: Tensor, index: int, quality: float, generator: torch.Generator, points: int) -> Tensor:
    """The spectrogram (2, bins, frames) of an estimate of stem `index` from the references' (4, 2, bins, frames)."""
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must be in [0, 1], got {quality}")
    bad = 1.0 - quality
    bins, frames = spec.shape[-2:]
    env = lambda low, high: _envelope(frames, points, low, high, generator)  # noqa: E731

    # leakage: each other stem at -(3 + 23 q) dB ± 6 dB, varying over time
    leak_db = 3.0 + 23.0 * quality
    estimate = spec[index].clone()
    for other in range(spec.shape[0]):
        if other != index:
            estimate = estimate + spec[other] * 10 ** (-env(leak_db - 6, leak_db + 6) / 20)
    # smearing: blur the magnitude over up to 1 + 8·bad frames, keep the phase
    width = 1 + 2 * round(4 * bad ** 2 * float(torch.rand((), generator=generator)) + 4 * bad ** 2)
    if width > 1:
        kernel = torch.ones(1, 1, width) / width
        magnitude = estimate.abs().reshape(-1, 1, frames)
        blurred = torch.nn.functional.conv1d(torch.nn.functional.pad(magnitude, (width // 2, width // 2), mode="replicate"), kernel)
        estimate = torch.polar(blurred.view_as(estimate.real), estimate.angle())
    # band-limiting: above a cut-off from about 2 kHz (q=0) to beyond Nyquist (q=1) the spectrum falls by 12-40 dB
    freqs = torch.linspace(0, SAMPLE_RATE / 2, bins)[:, None]
    top = 2000.0 + 28000.0 * quality ** 1.5
    cutoff = env(0.8 * top, 1.2 * top)[None, :]
    floor = 10 ** (-(12 + 28 * bad) / 20)
    estimate = estimate * torch.where(freqs > cutoff, floor, 1.0)
    # artefacts: drop random bins with a time-varying probability up to 0.5·bad
    drop = env(0.0, 0.5 * bad ** 1.5)[None, :]
    estimate = estimate * (torch.rand(bins, frames, generator=generator) >= drop).float()
    # level error: gain wandering by ±(0.3 + 5 bad) dB
    spread = 0.3 + 5.0 * bad
    return estimate * 10 ** (env(-spread, spread) / 20)[None, :]


def _smooth_field(shape: tuple[int, ...], bins: int, frames: int, points: int, generator: torch.Generator) -> Tensor:
    """Smooth N(0, 1) noise of `shape` + (bins, frames): 8 random values over frequency, `points` over time, interpolated."""
    coarse = torch.randn(*shape, 8, points, generator=generator)
    flat = coarse.reshape(-1, 1, 8, points)
    fine = torch.nn.functional.interpolate(flat, size=(bins, frames), mode="bilinear", align_corners=True)
    return fine.view(*shape, bins, frames)


def masked(spec: Tensor, quality: float, generator: torch.Generator, points: int) -> Tensor:
    """Estimates (4, 2, bins, frames) of all four stems: corrupted soft masks times the mixture (see the module docstring)."""
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must be in [0, 1], got {quality}")
    bad = 1.0 - quality
    stems, channels, bins, frames = spec.shape
    power = spec.abs() ** 2
    log_power = torch.log(power + 1e-8 * float(power.max()) + 1e-20)
    sharpness = 0.1 + 0.9 * quality
    noise = _smooth_field((stems, 1), bins, frames, points, generator) * (3.0 * bad)
    masks = torch.softmax(sharpness * log_power + noise, dim=0)
    spread = 0.2 + 2.0 * bad  # a wandering gain of ±spread dB per stem
    gain = 10 ** (torch.stack([_envelope(frames, points, -spread, spread, generator) for _ in range(stems)]) / 20)
    return masks * spec.sum(dim=0, keepdim=True) * gain[:, None, None, :]
