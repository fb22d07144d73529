"""The Open-Unmix-style upstream family: shapes, stems that add up, files, refusal, chunking, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import save_file

from mdxmix.errors import CheckpointError, UpstreamError
from mdxmix.stems import STEMS
from mdxmix.upstream import FAMILIES, UpstreamSpec, build_upstream
from mdxmix.upstream.base import Upstream
from mdxmix.upstream.parse import FILE_FAMILIES, parse_upstream
from mdxmix.upstream.spectral import SpectralConfig, SpectralMaskNet, load_spectral, save_spectral
from mdxmix.upstream.umx import (
    OpenUnmixNet,
    UMXConfig,
    UMXUpstream,
    crossfade_chunks,
    load_local_umx,
    load_umx,
    save_umx,
)
from mdxmix.weightfiles import file_sha256

SR = 44100
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.wav"


def tiny(stems=STEMS, seed: int = 0, n_fft: int = 512, layers: int = 2) -> OpenUnmixNet:
    """A small model with non-trivial input statistics and BatchNorm running statistics."""
    torch.manual_seed(seed)
    model = OpenUnmixNet(UMXConfig(stems=stems, n_fft=n_fft, hop=n_fft // 4, hidden=16, layers=layers,
                                   bandwidth=12000.0, dropout=0.0))
    x = torch.randn(3, 2, 8 * n_fft, generator=torch.Generator().manual_seed(seed + 100)) * 0.2
    model.set_input_statistics(x)
    model.train()
    with torch.no_grad():
        for _ in range(10):  # moves the BatchNorm running statistics away from their defaults
            model(x)
        for net in model.targets.values():  # random, non-trivial masks (the default init gives near-equal ones)
            net.output_scale.normal_(0.0, 4.0)
    return model.eval()


def noise(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, n, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_config_crops_the_network_input_to_the_bandwidth():
    cfg = UMXConfig()
    assert (cfg.bins, cfg.max_bin) == (2049, 1487)  # 1486 · 44100/4096 = 15999.6 Hz; 1487 · … > 16 kHz
    model = OpenUnmixNet(UMXConfig(stems=("vocals",), hidden=8, layers=1))
    assert model.targets["vocals"].fc1.in_features == 2 * 1487 and model.targets["vocals"].fc3.out_features == 2 * 2049
    assert UMXConfig().mask_kind == "ratio" and UMXConfig(stems=("vocals",)).mask_kind == "clip"
    for bad in ({"stems": ("voice",)}, {"mask": "softmax"}, {"hop": 1000}, {"hidden": 15}, {"bandwidth": 30000.0},
                {"stems": ("vocals",), "mask": "ratio"}):
        with pytest.raises(ValueError):
            UMXConfig(**bad)


@settings(max_examples=12, deadline=None)
@given(length=st.integers(min_value=257, max_value=12000), seed=st.integers(0, 2**16))
def test_four_stems_have_the_mixture_length_and_add_back_to_it(length, seed):
    model = tiny()
    x = noise(length, seed)[None]
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 4, 2, length) and out.dtype == torch.float32
    assert (out.sum(dim=1) - x).abs().max() <= 1e-4 * x.abs().max()
    assert (out[0, 0] - out[0, 3]).abs().max() > 0.05 * x.abs().max()  # not four equal quarters


def test_masks_are_shares_of_the_mixture_or_clipped_ratios():
    x = noise(SR // 2)[None]
    model, vocals = tiny(), tiny(("vocals",))
    with torch.no_grad():
        mag = model.stft(x).abs()
        mag[..., 5] = 0.0  # a silent frame: masks stay finite
        shares, ratio = model.masks(mag), vocals.masks(mag)
        estimates = vocals.estimates(mag)
    assert torch.allclose(shares.sum(dim=1), torch.ones_like(mag), atol=1e-6)
    assert shares.min() >= 0 and torch.isfinite(shares).all() and shares.std() > 0.05
    assert ratio.min() >= 0 and ratio.max() <= 1 and (ratio == 1).any() and (ratio < 1).any()
    loud = mag[:, None] > 1e-3  # the estimate is r·|X|; where it stays below |X| it equals the mask's share
    below = loud & (estimates < mag[:, None])
    assert torch.allclose((estimates / mag[:, None].clamp(min=1e-3))[below], ratio[below], rtol=1e-4)


def test_adapter_gives_declared_stems_at_input_length():
    for stems in (STEMS, ("vocals",)):
        up = UMXUpstream(tiny(stems), "tiny")
        assert isinstance(up, Upstream)
        for n in (SR - 37, 100):  # not a multiple of the hop; shorter than the FFT
            out = up.separate(noise(n))
            assert tuple(out) == stems
            assert all(v.shape == (2, n) and v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    with pytest.raises(UpstreamError, match="expects a"):
        up.separate(torch.zeros(1, 2, 1000))


def test_save_load_round_trip_is_identical(tmp_path):
    model = tiny(("vocals", "drums"))
    path = save_umx(model, tmp_path / "m.safetensors")
    again = load_umx(path)
    assert again.config == model.config and not again.training
    before, after = model.state_dict(), again.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert before["targets.vocals.bn3.running_var"].sub(1).abs().max() > 1e-3  # BatchNorm statistics were saved
    x = noise(SR)[None]
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert json.loads(load_umx_meta(path)["config"])["stems"] == ["vocals", "drums"]


def load_umx_meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def test_half_file_is_half_the_size_and_close(tmp_path):
    model = tiny()
    full = save_umx(model, tmp_path / "f.safetensors")
    half = save_umx(model, tmp_path / "h.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = noise(SR)[None]
    with torch.no_grad():
        a, b = model(x), load_umx(half)(x)
    assert (a - b).abs().max() < 1e-2 * x.abs().max()


def test_other_formats_and_corrupt_files_are_refused(tmp_path):
    spectral = save_spectral(SpectralMaskNet(SpectralConfig(n_fft=512, hop=128, hidden=8, layers=1)), tmp_path / "s.safetensors")
    with pytest.raises(UpstreamError, match="not an Open-Unmix-style model"):
        load_umx(spectral)
    umx = save_umx(tiny(), tmp_path / "u.safetensors")
    with pytest.raises(UpstreamError, match="not a spectral-mask model"):
        load_spectral(umx)
    model = tiny()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "mdxmix.umx/1", "class": "mdxmix.upstream.umx.OpenUnmixNet", "config": model.config.to_json()}
    cases = {"os.system": ({**meta, "class": "os.system"}, "not an Open-Unmix-style model"),
             "wider": ({**meta, "config": json.dumps(json.loads(meta["config"]) | {"hidden": 32})}, "do not match"),
             "evil": ({**meta, "config": json.dumps(json.loads(meta["config"]) | {"evil": 1})}, "unknown config fields"),
             "no-bn": (meta, "do not match")}
    for name, (metadata, message) in cases.items():
        kept = {k: v for k, v in state.items() if not (name == "no-bn" and "running_mean" in k)}
        save_file(kept, str(tmp_path / f"{name}.safetensors"), metadata=metadata)
        with pytest.raises(UpstreamError, match=message):
            load_umx(tmp_path / f"{name}.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04junk" + bytes(100))
    with pytest.raises(UpstreamError, match="not a safetensors file"):
        load_umx(junk)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(umx.read_bytes()[: umx.stat().st_size // 2])
    with pytest.raises(UpstreamError):
        load_umx(truncated)


@pytest.mark.parametrize(("n", "chunk", "overlap"), [(1000, 300, 50), (1001, 300, 50), (651, 300, 50), (5000, 1000, 499)])
def test_crossfade_weights_add_to_one(n, chunk, overlap):
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(n))
    calls = []
    out = crossfade_chunks(lambda piece: calls.append(piece.shape[-1]) or piece[:, None].repeat(1, 3, 1, 1), x, chunk, overlap)
    assert out.shape == (3, 2, n) and torch.allclose(out, x.expand(3, 2, n), atol=1e-6)
    assert len(calls) > 1 and max(calls) <= chunk and min(calls) > overlap


def test_crossfade_join_is_a_ramp_not_a_step():
    """Chunks whose estimates disagree by a constant meet in a linear ramp over the overlap."""
    n, chunk, overlap = 2000, 700, 200
    level = iter([0.0, 1.0, -1.0, 0.5])
    out = crossfade_chunks(lambda piece: torch.full((1, 1, 2, piece.shape[-1]), next(level)), torch.zeros(2, n), chunk, overlap)
    steps = out[0, 0].diff().abs()
    assert steps.max() <= 2.0 / overlap + 1e-6  # the largest disagreement (1 → −1) spread over 200 samples
    assert out[0, 0, 250].item() == 0.0 and out[0, 0, 800].item() == 1.0 and out[0, 0, 1300].item() == -1.0
    assert out[0, 0, 1999].item() == 0.5


def test_a_song_shorter_than_a_chunk_is_processed_at_once():
    model = tiny()
    x = noise(3 * SR + 11)
    with torch.no_grad():
        whole = model(x[None])[0]
    out = UMXUpstream(model, "tiny", chunk_seconds=4).separate(x)
    assert all(torch.equal(out[s], whole[i]) for i, s in enumerate(STEMS))


def test_chunked_song_is_close_to_at_once():
    """A BiLSTM sees its chunk, not the song: chunked output is close to, not equal to, output at once.

    (That the join itself is a ramp is `test_crossfade_join_is_a_ramp_not_a_step`.)
    """
    model = tiny(n_fft=1024)
    audio, _ = sf.read(str(DEMO), frames=8 * SR, dtype="float32", always_2d=True)
    x = torch.from_numpy(audio.T.copy())
    with torch.no_grad():
        whole = model(x[None])[0]
    up = UMXUpstream(model, "tiny", chunk_seconds=3, overlap_seconds=0.5)
    chunked = torch.stack(list(up.separate(x).values()))
    error = (chunked - whole).pow(2).sum() / whole.pow(2).sum()
    assert 0 < error < 1e-2  # below -20 dB (measured: -30 dB)
    assert torch.allclose(chunked.sum(dim=0), x, atol=1e-4)  # the cross-fade keeps the stems adding up


def test_build_upstream_parses_a_file_and_separates_real_audio(tmp_path):
    path = save_umx(tiny(n_fft=4096, layers=1), tmp_path / "umx4.safetensors")
    sha = file_sha256(path)
    assert "umx-file" in FILE_FAMILIES and "umx-file" in FAMILIES
    spec, folder = parse_upstream(f"umx-file:{path}")
    assert (spec.family, spec.model, spec.stems, spec.sha256, folder) == ("umx-file", "umx4.safetensors", STEMS, sha, tmp_path.resolve())
    up = build_upstream(spec, [folder])
    audio, rate = sf.read(str(DEMO), frames=5 * SR + 3, dtype="float32", always_2d=True)
    x = torch.from_numpy(audio.T.copy())
    out = up.separate(x)
    assert rate == SR and tuple(out) == STEMS
    assert all(v.shape == x.shape and torch.isfinite(v).all() for v in out.values())
    assert (sum(out.values()) - x).abs().max() <= 1e-4 * x.abs().max()
    voc = save_umx(tiny(("vocals",)), tmp_path / "voc.safetensors")
    spec, folder = parse_upstream(f"umx-file:{voc}:vocals")
    assert build_upstream(spec, [folder]).stems == ("vocals",)
    with pytest.raises(UpstreamError, match="produces"):
        build_upstream(UpstreamSpec("umx-file", voc.name, ("drums",), spec.sha256), [tmp_path])
    with pytest.raises(CheckpointError):
        build_upstream(UpstreamSpec("umx-file", voc.name, ("vocals",), "0" * 64), [tmp_path])
    assert isinstance(load_local_umx(voc, "x"), UMXUpstream)


def test_a_few_adam_steps_reduce_the_waveform_loss_on_a_fixed_batch():
    """The training recipe's loss (L1 between stem waveforms) goes down: the masks are learnable."""
    torch.manual_seed(3)
    model = OpenUnmixNet(UMXConfig(n_fft=512, hop=128, hidden=16, layers=1, bandwidth=16000.0)).train()
    t = torch.arange(SR // 2) / SR
    g = torch.Generator().manual_seed(4)
    stems = torch.stack([torch.randn(len(t), generator=g) * 0.1 * (torch.rand(len(t), generator=g) < 0.01),  # clicks
                         0.3 * torch.sin(2 * torch.pi * 60 * t), 0.1 * torch.sin(2 * torch.pi * 880 * t),
                         0.2 * torch.sin(2 * torch.pi * 330 * t + 3 * torch.sin(2 * torch.pi * 5 * t))])
    target = torch.stack([stems, 0.7 * stems], dim=1)[None].repeat(2, 1, 1, 1)  # (2, 4, 2, N)
    target[1] = target[1].roll(SR // 8, dims=-1)
    mixture = target.sum(dim=1)
    model.set_input_statistics(mixture)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = (model(mixture) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    quarter = (mixture[:, None] / 4 - target).abs().mean().item()
    assert losses[-1] < 0.6 * min(losses[0], quarter), (quarter, losses)  # measured over 5 seeds: 0.23-0.36
