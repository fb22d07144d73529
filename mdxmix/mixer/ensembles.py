"""Fixed ensemble rules over several estimates of one stem, and per-source-best selection.

These are the baselines an MDX-Mixer has to beat: they combine the same upstream stems
without learning anything. Definitions follow the ensemble scripts of
Music-Source-Separation-Training (``ensemble.py``) and python-audio-separator
(``separator/ensembler.py``), read on GitHub:

* ``wave_avg`` / ``wave_median``: sample-wise mean / median of the waveforms.
* ``wave_min`` / ``wave_max``: per sample, the value with the smallest / largest
  *absolute* value (its sign kept), as both tools' ``min_wave`` / ``max_wave`` do.
* ``spec_<stat>_<phase>``: ``stat`` ∈ {avg, median, min, max} of the STFT *magnitudes*,
  combined with a phase: ``mix`` = the mixture's phase, ``avg`` = the phase of the averaged
  complex spectrogram, ``own`` (min/max only) = the phase of the bin that was selected,
  which is exactly the tools' ``min_fft`` / ``max_fft``. (Their ``avg_fft`` averages complex
  spectrograms, which by linearity of the STFT equals ``wave_avg``; not repeated here.)

STFT: n_fft 2048, hop 1024, periodic Hann window, centred with zero padding — the
``librosa.stft(n_fft=2048, hop_length=1024)`` call both tools make (librosa ≥ 0.10 pads with
zeros); inverted with ``torch.istft`` to the input length.

Arrays are ``(samples, channels)``; every estimate of one call must have the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..stems import STEMS

N_FFT: int = 2048
HOP: int = 1024

WAVE_RULES: tuple[str, ...] = ("wave_avg", "wave_median", "wave_min", "wave_max")
SPEC_RULES: tuple[str, ...] = tuple(
    f"spec_{stat}_{phase}" for phase in ("mix", "avg") for stat in ("avg", "median", "min", "max")
) + ("spec_min_own", "spec_max_own")
RULES: tuple[str, ...] = WAVE_RULES + SPEC_RULES


def _stack(estimates: Sequence[np.ndarray]) -> np.ndarray:
    if len(estimates) == 0:
        raise ValueError("an ensemble needs at least one estimate")
    shapes = {np.shape(e) for e in estimates}
    if len(shapes) != 1:
        raise ValueError(f"estimates differ in shape: {sorted(shapes)}")
    return np.stack([np.asarray(e) for e in estimates])


def _pick_by_abs(x: np.ndarray, largest: bool) -> np.ndarray:
    """Along axis 0, the element with the smallest/largest absolute value."""
    idx = np.argmax(np.abs(x), axis=0) if largest else np.argmin(np.abs(x), axis=0)
    return np.take_along_axis(x, idx[None], axis=0)[0]


def _stft(x: np.ndarray) -> torch.Tensor:
    """(samples, channels) → complex (channels, freq, frames)."""
    t = torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32))
    return torch.stft(
        t,
        n_fft=N_FFT,
        hop_length=HOP,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    wave = torch.istft(spec, n_fft=N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), center=True, length=length)
    return wave.numpy().T


def ensemble(estimates: Sequence[np.ndarray], rule: str, mixture: np.ndarray | None = None) -> np.ndarray:
    """Combine estimates of one stem with a fixed ``rule`` (one of :data:`RULES`).

    ``mixture`` is needed only by the ``spec_*_mix`` rules.
    """
    x = _stack(estimates)
    if rule == "wave_avg":
        return x.mean(axis=0)
    if rule == "wave_median":
        return np.median(x, axis=0)
    if rule == "wave_min":
        return _pick_by_abs(x, largest=False)
    if rule == "wave_max":
        return _pick_by_abs(x, largest=True)
    if rule not in SPEC_RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; known: {', '.join(RULES)}")
    _, stat, phase = rule.split("_")
    length = x.shape[1]
    specs = torch.stack([_stft(e) for e in x])  # (n, channels, freq, frames)
    mags = specs.abs()
    if phase == "own":
        pick = mags.argmax(dim=0) if stat == "max" else mags.argmin(dim=0)
        return _istft(torch.take_along_dim(specs, pick[None], dim=0)[0], length).astype(x.dtype)
    if stat == "avg":
        mag = mags.mean(dim=0)
    elif stat == "median":
        # numpy's median (mean of the two middles for an even count), like the tools';
        # torch.median would return the lower middle and torch.quantile caps input size.
        mag = torch.from_numpy(np.median(mags.numpy(), axis=0))
    elif stat == "min":
        mag = mags.min(dim=0).values
    else:
        mag = mags.max(dim=0).values
    if phase == "mix":
        if mixture is None:
            raise ValueError(f"rule {rule} needs the mixture")
        if np.shape(mixture) != x.shape[1:]:
            raise ValueError(f"mixture shape {np.shape(mixture)} differs from estimates {x.shape[1:]}")
        angle = torch.angle(_stft(np.asarray(mixture)))
    else:
        angle = torch.angle(specs.mean(dim=0))
    return _istft(torch.polar(mag, angle), length).astype(x.dtype)


def per_source_best(validation: Mapping[str, Mapping[str, float]], stems: Sequence[str]) -> dict[str, str]:
    """For each stem, the upstream with the highest score.

    ``validation`` is ``{upstream: {stem: aggregated score}}``. mdxmix passes scores on the
    validation split, so the choice can be run on unseen songs. The paper's per-source best
    (8.09 dB) instead takes the per-stem maxima of its *test* table, an oracle; mdxmix adds
    that row separately, labelled as such (``runner.add_oracle_selection``). An upstream
    without a stem, or with a NaN score, cannot be chosen for it; ties go to the upstream
    listed first. A stem no upstream produces is left out of the result.
    """
    choice: dict[str, str] = {}
    for stem in stems:
        best_name, best_val = None, -np.inf
        for name, scores in validation.items():
            v = scores.get(stem)
            if v is None or np.isnan(v):
                continue
            if v > best_val:
                best_name, best_val = name, v
        if best_name is not None:
            choice[stem] = best_name
    return choice


def ensemble_stems(x: np.ndarray, layout: Sequence[Sequence[str]], rule: str) -> np.ndarray:
    """Four stems (8, n) from X = [mixture | each upstream's stems] (2+C, n) with a fixed `rule`.

    Why: `mdxmix separate --ensemble RULE` offers the non-learned combination peers offer,
    over any upstreams. Each stem is `rule` over the upstreams that give it; a stem no
    upstream gives is the rest of the mixture (mixture minus the stems that are given),
    split evenly between the missing stems, the same rule the agnostic mixer starts from.
    """
    mixture = x[:2].T
    estimates: dict[str, list[np.ndarray]] = {stem: [] for stem in STEMS}
    row = 2
    for stems in layout:
        for stem in stems:
            estimates[stem].append(x[row : row + 2].T)
            row += 2
    if row != x.shape[0]:
        raise ValueError(f"X has {x.shape[0]} channels, the layout {list(layout)} needs {row}")
    out = {stem: ensemble(found, rule, mixture) for stem, found in estimates.items() if found}
    missing = [stem for stem in STEMS if stem not in out]
    if missing:
        rest = (mixture - sum(out.values(), np.zeros_like(mixture))) / len(missing)
        out.update({stem: rest for stem in missing})
    return np.concatenate([out[stem].T for stem in STEMS]).astype(np.float32)
