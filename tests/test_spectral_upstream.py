"""The spectral-mask upstream family: shapes, file round trip, refusal, chunking, registry."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mdxmix.errors import CheckpointError, UpstreamError
from mdxmix.stems import STEMS
from mdxmix.upstream import UpstreamSpec, build_upstream
from mdxmix.upstream.base import Upstream
from mdxmix.upstream.parse import parse_upstream
from mdxmix.upstream.spectral import (
    SpectralConfig,
    SpectralMaskNet,
    SpectralUpstream,
    load_local_spectral,
    load_spectral,
    save_spectral,
)
from mdxmix.weightfiles import file_sha256

SR = 44100


def tiny(stems=STEMS, seed: int = 0) -> SpectralMaskNet:
    torch.manual_seed(seed)
    model = SpectralMaskNet(SpectralConfig(stems=stems, n_fft=512, hop=128, hidden=16, layers=3)).eval()
    with torch.no_grad():  # random, non-trivial masks (the default init gives near-uniform ones)
        model.decoder.weight.normal_(std=0.5)
    return model


@pytest.fixture()
def noise() -> torch.Tensor:
    return torch.randn(2, 2 * SR, generator=torch.Generator().manual_seed(1)) * 0.1


def test_adapter_gives_declared_stems_at_input_length(noise):
    for stems in (STEMS, ("vocals",)):
        up = SpectralUpstream(tiny(stems), "tiny")
        assert isinstance(up, Upstream)
        out = up.separate(noise[:, : 2 * SR - 37])  # a length that is not a multiple of the hop
        assert tuple(out) == stems
        assert all(v.shape == (2, 2 * SR - 37) and v.dtype == torch.float32 for v in out.values())
        assert all(torch.isfinite(v).all() for v in out.values())


def test_four_stem_softmax_masks_add_back_to_the_mixture(noise):
    out = SpectralUpstream(tiny(), "tiny").separate(noise)
    assert torch.allclose(sum(out.values()), noise, atol=1e-5)


def test_save_load_round_trip_is_identical(tmp_path, noise):
    model = tiny(("vocals", "drums"))
    path = save_spectral(model, tmp_path / "m.safetensors")
    again = load_spectral(path)
    assert again.config == model.config
    with torch.no_grad():
        assert torch.equal(model(noise[None]), again(noise[None]))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["config"])["stems"] == ["vocals", "drums"]


def test_half_file_is_half_the_size_and_close(tmp_path, noise):
    model = tiny()
    full = save_spectral(model, tmp_path / "f.safetensors")
    half = save_spectral(model, tmp_path / "h.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with torch.no_grad():
        a, b = model(noise[None]), load_spectral(half)(noise[None])
    assert (a - b).abs().max() < 1e-2 * noise.abs().max()


def test_file_naming_another_class_or_a_bad_config_is_refused(tmp_path):
    model = tiny()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    cfg = model.config.to_json()
    foreign = tmp_path / "foreign.safetensors"
    save_file(state, str(foreign), metadata={"format": "mdxmix.spectral/1", "class": "os.system", "config": cfg})
    with pytest.raises(UpstreamError, match="not a spectral-mask model"):
        load_spectral(foreign)
    demucs_like = tmp_path / "demucs.safetensors"
    save_file(state, str(demucs_like), metadata={"klass": "demucs.hdemucs.HDemucs", "args": "[]", "kwargs": "{}"})
    with pytest.raises(UpstreamError, match="not a spectral-mask model"):
        load_spectral(demucs_like)
    wrong = json.loads(cfg) | {"hidden": 32}
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(state, str(mismatched), metadata={"format": "mdxmix.spectral/1", "class": "mdxmix.upstream.spectral.SpectralMaskNet",
                                                "config": json.dumps(wrong)})
    with pytest.raises(UpstreamError, match="do not match"):
        load_spectral(mismatched)
    extra = tmp_path / "extra.safetensors"
    save_file(state, str(extra), metadata={"format": "mdxmix.spectral/1", "class": "mdxmix.upstream.spectral.SpectralMaskNet",
                                           "config": json.dumps(json.loads(cfg) | {"evil": 1})})
    with pytest.raises(UpstreamError, match="unknown config fields"):
        load_spectral(extra)
    not_st = tmp_path / "junk.safetensors"
    not_st.write_bytes(b"\x80\x04junk")
    with pytest.raises(UpstreamError, match="not a safetensors file"):
        load_spectral(not_st)


def test_chunked_processing_equals_processing_at_once():
    """Every layer is local in time and each chunk gets receptive-field + STFT context, so
    the only difference is float rounding (different conv/FFT sizes): tolerance 1e-5."""
    model = tiny()
    x = torch.randn(2, 7 * SR + 123, generator=torch.Generator().manual_seed(2)) * 0.1
    at_once = SpectralUpstream(model, "tiny", chunk_seconds=60).separate(x)
    chunked = SpectralUpstream(model, "tiny", chunk_seconds=1.3).separate(x)
    for stem in STEMS:
        assert (at_once[stem] - chunked[stem]).abs().max() < 1e-5


def test_build_upstream_and_cli_spec(tmp_path, noise):
    path = save_spectral(tiny(("vocals",)), tmp_path / "voc.safetensors")
    sha = file_sha256(path)
    up = build_upstream(UpstreamSpec("spectral-file", path.name, ("vocals",), sha), [tmp_path])
    assert up.stems == ("vocals",) and up.separate(noise)["vocals"].shape == noise.shape
    with pytest.raises(UpstreamError, match="produces"):
        build_upstream(UpstreamSpec("spectral-file", path.name, ("drums",), sha), [tmp_path])
    with pytest.raises(CheckpointError):
        build_upstream(UpstreamSpec("spectral-file", path.name, ("vocals",), "0" * 64), [tmp_path])
    spec, folder = parse_upstream(f"spectral-file:{path}:vocals")
    assert (spec.family, spec.model, spec.stems, spec.sha256, folder) == ("spectral-file", "voc.safetensors", ("vocals",), sha, tmp_path.resolve())
    assert isinstance(load_local_spectral(path, "x"), SpectralUpstream)
