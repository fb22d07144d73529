"""The Separator: block streaming equals whole-track processing; lengths and rates are kept."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from mdxmix.errors import CheckpointError
from mdxmix.mixer.normalize import Normalizer
from mdxmix.pipeline import BlockedInput, Separator
from mdxmix.stems import STEMS


class GainUpstream:
    """A pointwise upstream (stem = gain × mixture): exact at any block edge, so blocks can be compared."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sample_rate = 44100
        self.stems = STEMS
        self.calls = 0

    def separate(self, mixture):
        self.calls += 1
        return {stem: mixture * (0.1 * (i + 1)) for i, stem in enumerate(STEMS)}


def _separator(model_dir, **kwargs) -> Separator:
    upstream_id = "demucs-file:tiny_hdemucs.safetensors@" + _sha(model_dir)[:12]
    return Separator(model_dir / "tiny_mdx.safetensors", device="cpu", upstreams=[GainUpstream(upstream_id)], **kwargs)


def _sha(model_dir) -> str:
    from mdxmix.weightfiles import file_sha256

    return file_sha256(model_dir / "tiny_hdemucs.safetensors")


def test_blocks_give_the_same_output_as_one_pass(model_dir):
    torch.manual_seed(0)
    mixture = torch.randn(2, 44100 * 3) * 0.2
    whole = torch.cat(list(_separator(model_dir, block_seconds=60).stream(mixture)), dim=-1)
    blocked_sep = _separator(model_dir, block_seconds=0.37, context_seconds=0.05)
    blocked = torch.cat(list(blocked_sep.stream(mixture)), dim=-1)
    assert whole.shape == blocked.shape == (8, mixture.shape[-1])
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=1e-5)
    assert blocked_sep.upstreams[0].calls == -(-mixture.shape[-1] // int(0.37 * 44100))


def test_blocked_input_frees_blocks_the_engine_has_passed():
    mixture = torch.randn(2, 10_000)
    source = BlockedInput(mixture, [GainUpstream("g")], [("vocals",)], Normalizer.of(mixture), block=1000, context=10)
    for start in range(0, 9_000, 500):
        x = source.read(start, start + 1500)
        assert x.shape == (4, 1500)
        assert len(source.blocks) <= 3
    torch.testing.assert_close(source.read(9000, 9500)[2:], Normalizer.of(mixture).forward(mixture[:, 9000:9500] * 0.4))


@settings(max_examples=6, deadline=None)
@given(frames=st.integers(min_value=1, max_value=30_000), rate=st.sampled_from([8000, 22050, 44100, 48000]))
def test_separate_keeps_length_and_rate(model_dir, frames, rate):
    stems = _separator(model_dir).separate(torch.randn(1, frames) * 0.1, rate)
    assert list(stems) == list(STEMS)
    assert all(s.shape == (2, frames) and torch.isfinite(s).all() for s in stems.values())


def test_wrong_upstreams_are_refused(model_dir):
    with pytest.raises(CheckpointError, match="trained with upstreams"):
        Separator(model_dir / "tiny_mdx.safetensors", device="cpu", upstreams=[GainUpstream("demucs:htdemucs")])


def test_normalizer_maps_back_exactly():
    x = torch.randn(2, 1000) * 3 + 0.5
    norm = Normalizer.of(x)
    y = norm.forward(x)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-4
    torch.testing.assert_close(norm.inverse(y), x)
    assert Normalizer.of(torch.zeros(2, 10)).std == 1.0  # silence does not divide by zero


def test_public_api_separate_file(model_dir, tmp_path):
    from mdxmix import Separator as PublicSeparator

    from conftest import write_tone

    write_tone(tmp_path / "a.wav", 0.5, 16000)
    stems = PublicSeparator(model_dir / "tiny_conv.safetensors", device="cpu", cache=None).separate_file(tmp_path / "a.wav")
    assert list(stems) == list(STEMS) and all(s.shape == (2, 8000) for s in stems.values())
