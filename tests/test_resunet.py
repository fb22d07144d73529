"""The resunet family: bytesep's ResUNet143 Subband-time built here, its .pth layout, chunking, names."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from mdxmix.errors import OfflineError, UpstreamError, UserError
from mdxmix.upstream import build_upstream
from mdxmix.upstream.base import Upstream
from mdxmix.upstream.parse import parse_upstream
from mdxmix.upstream.resunet import (
    PQMF,
    ResUNet143Subband,
    ResUNetConfig,
    ResUNetUpstream,
    count_parameters,
    load_resunet,
    save_resunet,
)

SMALL = ResUNetConfig(channels=(4, 4, 8, 8, 8, 8), center_blocks=1)


def identity(model: ResUNet143Subband) -> ResUNet143Subband:
    """Unit magnitude mask, zero phase rotation, no additive magnitude, in every subband."""
    with torch.no_grad():
        model.after_conv2.weight.zero_()
        bias = model.after_conv2.bias.zero_().view(model.config.subbands, 2, 4)
        bias[:, :, 0] = 30.0  # sigmoid → 1
        bias[:, :, 1] = 30.0  # tanh → 1: rotation by angle 0
    return model.eval()


def lowpass_noise(n: int, cutoff: float = 4000.0, seed: int = 0) -> torch.Tensor:
    """Noise below the subbands' top STFT bin (the one bin bytesep's network never estimates), faded in and out."""
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(seed))
    spec = torch.fft.rfft(x)
    spec[:, torch.fft.rfftfreq(n, 1 / 44100) > cutoff] = 0
    x = torch.fft.irfft(spec, n)
    fade = min(441, n // 2)
    ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, fade))
    x[:, :fade] *= ramp
    x[:, n - fade :] *= ramp.flip(0)
    return 0.3 * x


def save_bytesep_pth(model: ResUNet143Subband, path, extra_dft: bool = True):
    """A checkpoint in bytesep's layout: {"model": state} with torchlibrosa's DFT kernels and a step count."""
    state = dict(model.state_dict())
    if extra_dft:
        state["stft.conv_real.weight"] = torch.randn(257, 1, 512)
        state["istft.conv_real.weight"] = torch.randn(512, 512, 1)
    torch.save({"step": 500000, "model": state}, path)
    return path


def test_pqmf_default_bank_is_perfect_reconstruction():
    bank = PQMF(4, 64)
    x = torch.randn(3, 2, 4 * 1000)
    sub = bank.analysis(x)
    assert sub.shape == (3, 8, 1016)
    assert torch.equal(bank.synthesis(sub), x)


@pytest.mark.parametrize("n", [1000, 4001, 60007])
def test_identity_network_returns_the_input_edges_included(tmp_path, n):
    torch.manual_seed(0)
    path = save_bytesep_pth(identity(ResUNet143Subband(SMALL)), tmp_path / "voc.pth")
    spec, folder = parse_upstream(f"resunet:{path}")
    assert spec.stems == ("vocals",)
    up = build_upstream(spec, [folder])
    assert isinstance(up, ResUNetUpstream) and isinstance(up, Upstream)
    up.segment, up.context = 22048, 5512  # 0.5 s segments: several per song
    up.kept = up.segment - 2 * up.context
    x = lowpass_noise(n)
    y = up.separate(x)["vocals"]
    assert y.shape == x.shape and (y - x).abs().max() < 1e-4


def test_segments_give_what_the_network_gives_on_the_padded_song():
    """Segment centres with a quarter of context each side equal one pass over a long enough window."""
    torch.manual_seed(2)
    model = ResUNet143Subband(SMALL).eval()
    up = ResUNetUpstream(model, "r", segment_seconds=1.0)
    x = lowpass_noise(70000, cutoff=20000, seed=4)
    got = up.separate(x)["vocals"]
    assert got.shape == x.shape and torch.isfinite(got).all() and got.abs().max() > 1e-3
    k = 1  # the second segment's centre, recomputed by hand
    padded = torch.nn.functional.pad(x, (up.context, up.context + up.segment))
    with torch.no_grad():
        ref = model(padded[None, :, k * up.kept : k * up.kept + up.segment])[0, 0]
    assert torch.allclose(got[:, k * up.kept : (k + 1) * up.kept], ref[:, up.context : up.context + up.kept], atol=1e-5)


def test_bytesep_widths_are_read_from_the_checkpoint_and_safetensors_round_trip(tmp_path):
    torch.manual_seed(1)
    model = ResUNet143Subband(SMALL).eval()
    loaded = load_resunet(save_bytesep_pth(model, tmp_path / "m.pth"))
    assert loaded.config == SMALL
    x = lowpass_noise(8000, cutoff=20000)[None]
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(loaded(x), ref)
        again = load_resunet(save_resunet(loaded, tmp_path / "m.safetensors"))
        assert torch.equal(again(x), ref)


def test_full_size_network_matches_the_published_checkpoint_size():
    """bytesep's file is 414,046,363 bytes; ResUNet143's float32 weights plus torchlibrosa's DFT kernels
    (2x257x512 for the STFT, 2x512x512 for the inverse) come to within 0.2 % of it."""
    full = ResUNet143Subband(ResUNetConfig())
    state = sum(v.numel() for v in full.state_dict().values() if v.is_floating_point())
    dft = 2 * 257 * 512 + 2 * 512 * 512
    assert count_parameters(full) == 102_572_978
    assert math.isclose(4 * (state + dft), 414_046_363, rel_tol=0.002)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refusals(tmp_path):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": {"w": print}}))
    with pytest.raises(UpstreamError, match=r"weights_only=True") as err:
        load_resunet(evil)
    assert "\n" not in str(err.value)
    torch.save({"model": {"encoder_block1.conv_block1.conv1.weight": torch.zeros(4, 8, 3, 3)}}, tmp_path / "part.pth")
    with pytest.raises(UpstreamError, match="no encoder_block2"):
        load_resunet(tmp_path / "part.pth")
    with pytest.raises(ValueError, match="exactly one MUSDB stem"):
        ResUNetConfig(stems=("vocals", "drums"))


def test_catalogued_name_fails_offline_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MDXMIX_WEIGHTS", str(tmp_path))
    spec, folder = parse_upstream("resunet:resunet143_vocals")
    assert spec.stems == ("vocals",) and folder is None
    with pytest.raises(OfflineError) as err:
        build_upstream(spec, [])
    msg = str(err.value)
    assert "\n" not in msg and "resunet143_subbtandtime_vocals_8.7dB_500k_steps_v2.pth" in msg
    assert "zenodo.org/record/5804160" in msg and "no pinned hub mirror" in msg
    with pytest.raises(UserError, match="known: resunet143_vocals"):
        parse_upstream("resunet:resunet_xl")
