"""Mixture consistency: the stems add back to the input, and the residual goes where it belongs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st

from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer
from mdxmix.mixer.consistency import CONSISTENCY_MODES, make_consistent, settle
from mdxmix.mixer.engine import mix_tensor
from mdxmix.pipeline import Separator
from mdxmix.stems import STEMS

ROOT = Path(__file__).resolve().parent.parent
MODES = [m for m in CONSISTENCY_MODES if m != "none"]


def _stem_sum(y: torch.Tensor) -> torch.Tensor:
    return y.reshape(*y.shape[:-2], len(STEMS), 2, y.shape[-1]).sum(dim=-3)


@settings(max_examples=25, deadline=None)
@given(mode=st.sampled_from(MODES), batch=st.integers(1, 3), length=st.integers(4, 3000), seed=st.integers(0, 2**16))
def test_every_mode_makes_each_segment_add_up(mode, batch, length, seed):
    gen = torch.Generator().manual_seed(seed)
    stems = torch.randn(batch, 8, length, generator=gen)
    mixture = torch.randn(batch, 2, length, generator=gen)
    out = make_consistent(stems, mixture, mode)
    assert out.shape == stems.shape
    assert torch.allclose(_stem_sum(out), mixture, atol=1e-4)


def test_none_leaves_the_stems_alone():
    stems, mixture = torch.randn(2, 8, 100), torch.randn(2, 2, 100)
    assert make_consistent(stems, mixture, "none") is stems


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="spectral"):
        make_consistent(torch.zeros(1, 8, 10), torch.zeros(1, 2, 10), "magic")


def test_silent_stems_share_the_residual_evenly():
    mixture = torch.ones(1, 2, 64)
    for mode in ("energy", "spectral"):
        out = make_consistent(torch.zeros(1, 8, 64), mixture, mode)
        assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-5), mode


def test_spectral_mode_gives_a_residual_to_the_stem_it_sounds_like():
    """Stems at distinct frequencies; the mixture holds 50 % more vocals than the vocals stem."""
    n = 2**15
    t = torch.arange(n) / 44100.0
    tones = {stem: torch.sin(2 * torch.pi * f * t) for stem, f in zip(STEMS, (100.0, 400.0, 1600.0, 6400.0))}
    stems = torch.stack([tones[s] for s in STEMS for _ in range(2)]).unsqueeze(0)
    mixture = _stem_sum(stems) + 0.5 * torch.stack([tones["vocals"]] * 2).unsqueeze(0)
    out = make_consistent(stems, mixture, "spectral")[0].reshape(4, 2, n)
    gain = {s: float((out[i] * tones[s]).mean() / (tones[s] * tones[s]).mean()) for i, s in enumerate(STEMS)}
    assert gain["vocals"] == pytest.approx(1.5, abs=0.03)
    for stem in ("drums", "bass", "other"):
        assert gain[stem] == pytest.approx(1.0, abs=0.03), stem
    # The even mode, by contrast, smears it over all four.
    even = make_consistent(stems, mixture, "even")[0].reshape(4, 2, n)
    assert float((even[0] * tones["vocals"]).mean()) > 0.05


@pytest.mark.parametrize("mode", MODES)
def test_engine_output_adds_up_to_the_mixture_rows_edges_included(mode):
    torch.manual_seed(0)
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=6, segment=2**12))
    torch.nn.init.normal_(mixer.weight, std=0.5)
    x = torch.randn(6, 3 * 2**12 + 777)
    y = mix_tensor(x, mixer, consistency=mode)
    assert y.shape == (8, x.shape[-1])
    assert torch.allclose(_stem_sum(y), x[:2], atol=1e-4)
    plain = mix_tensor(x, mixer)
    assert float((_stem_sum(plain) - x[:2]).abs().max()) > 0.1  # without it they do not add up


def test_settle_closes_what_is_left_exactly():
    stems, mixture = torch.randn(8, 50), torch.randn(2, 50)
    assert torch.allclose(_stem_sum(settle(stems, mixture)), mixture, atol=1e-6)


def test_default_checkpoint_stems_add_up_to_a_real_song_at_its_own_rate(tmp_path):
    """The demo song resampled to 48 kHz: with consistency the four stems rebuild the input."""
    audio, rate = sf.read(ROOT / "examples" / "demo.wav", dtype="float32", frames=4 * 44100, always_2d=True)
    import soxr

    audio48 = soxr.resample(audio, rate, 48000).astype(np.float32)
    mixture = torch.from_numpy(audio48.T.copy())
    power = float(mixture.pow(2).mean())
    separator = Separator("default", device="cpu", cache=None, consistency="spectral")
    stems = separator.separate(mixture, 48000)
    residual = float((sum(stems.values()) - mixture).pow(2).mean()) / power
    assert 10 * np.log10(residual) < -60
    plain = Separator("default", device="cpu", cache=None, consistency="none").separate(mixture, 48000)
    assert 10 * np.log10(float((sum(plain.values()) - mixture).pow(2).mean()) / power) > -40
