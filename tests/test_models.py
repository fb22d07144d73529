"""Shape contracts, folding, gradients and the documented parameter counts of the mixers."""

from __future__ import annotations

import pytest
import torch

from mdxmix.checkpoint import count_parameters
from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig, build_mixer, fold
from mdxmix.mixer.mdx_mixer import MixerBlock, Mlp


@pytest.mark.parametrize("segment,folds,channels", [(64, 4, 2), (256, 8, 4), (1024, 16, 10), (2048, 128, 20)])
def test_mdx_mixer_shapes(segment, folds, channels):
    cfg = MDXMixerConfig(in_channels=channels, segment=segment, folds=folds, layers=2)
    mixer = MDXMixer(cfg)
    torch.nn.init.normal_(mixer.head.weight, std=0.1)
    x = torch.randn(3, channels, segment)
    y, w = mixer(x)
    assert y.shape == (3, 8, segment) and w.shape == (3, channels, 8)
    torch.testing.assert_close(y, torch.einsum("bct,bco->bot", x, w))
    assert cfg.tokens == segment // folds and cfg.features == channels * folds


def test_fold_stacks_contiguous_pieces_along_features():
    x = torch.arange(2 * 3 * 12, dtype=torch.float32).view(2, 3, 12)
    z = fold(x, 4)  # T/F = 3 tokens, 3·4 = 12 features
    assert z.shape == (2, 3, 12)
    for c in range(3):
        for f in range(4):
            for t in range(3):
                assert z[1, t, c * 4 + f] == x[1, c, f * 3 + t]


def test_mixer_block_is_the_mlp_mixer_layer():
    """The block's token mixing (`TokenMixingMlp`: W·z, for speed) equals MLP-Mixer's textbook layer:
    LayerNorm → MLP over the transposed tokens → skip; LayerNorm → MLP over the features → skip."""
    torch.manual_seed(0)
    block = MixerBlock(tokens=32, features=12, d_token=16, d_channel=24, dropout=0.0)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 32, 12)
    reference = x + Mlp.forward(block.mlp_tokens, block.norm1(x).transpose(1, 2)).transpose(1, 2)
    reference = reference + block.mlp_channels(block.norm2(reference))
    torch.testing.assert_close(block(x), reference, atol=1e-5, rtol=1e-5)
    assert (block(x) - x).abs().mean() > 0.1  # both MLPs contribute: the comparison is not trivial


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    mixer = MDXMixer(MDXMixerConfig(in_channels=6, segment=256, folds=8, layers=2, dropout=0.2))
    torch.nn.init.normal_(mixer.head.weight, std=0.1)  # at init the head is zero, which blocks gradients below it
    x = torch.randn(2, 6, 256)
    y, _ = mixer(x)
    (y - torch.randn_like(y)).abs().mean().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_fresh_mdx_mixer_is_a_time_invariant_mixer():
    """Zero-initialised head weight: W_k equals the head bias for every segment."""
    mixer = MDXMixer(MDXMixerConfig(in_channels=4, segment=64, folds=4, layers=1))
    torch.nn.init.normal_(mixer.head.bias)
    w = mixer.estimate_weights(torch.randn(5, 4, 64))
    torch.testing.assert_close(w, mixer.head.bias.view(1, 4, 8).expand(5, -1, -1))


def test_paper_preset_parameter_count():
    """T=2^18, F=2^7, N=8, D_T=T/F=2048, D_C=(2+C)F; C=18 (three 4-stem models + vocals) → 2+C=20."""
    cfg = MDXMixerConfig.preset("paper", 20)
    assert (cfg.segment, cfg.folds, cfg.layers, cfg.dropout, cfg.d_token, cfg.d_channel) == (2**18, 2**7, 8, 0.0, 2048, 2560)
    with torch.device("meta"):
        mixer = MDXMixer(cfg)
    tokens, feats = 2048, 2560
    per_layer = (2 * tokens * tokens + tokens + tokens) + (2 * feats * feats + feats + feats) + 4 * feats
    expected = 8 * per_layer + 2 * feats + feats * 160 + 160
    assert count_parameters(mixer) == expected == 172_536_992


def test_conv1x1_shapes_and_build_from_dict():
    mixer = build_mixer("conv1x1", {"in_channels": 6, "segment": 128})
    assert isinstance(mixer, Conv1x1Mixer)
    y, w = mixer(torch.randn(2, 6, 128))
    assert y.shape == (2, 8, 128) and w.shape == (2, 6, 8)
    with pytest.raises(ValueError):
        build_mixer("transformer", {})
    with pytest.raises(ValueError):
        MDXMixerConfig(in_channels=4, segment=100, folds=8)
    with pytest.raises(ValueError):
        Conv1x1Config(in_channels=1)


def test_tiny_and_small_presets_parameter_counts():
    """The documented sizes of the CPU presets for 2+C=20 input channels."""
    assert count_parameters(MDXMixer(MDXMixerConfig.preset("tiny", 20))) == 702_496
    assert count_parameters(MDXMixer(MDXMixerConfig.preset("small", 20))) == 4_957_856
    cfg = MDXMixerConfig.preset("tiny", 20, layers=3)
    assert (cfg.segment, cfg.folds, cfg.layers, cfg.d_token, cfg.d_channel) == (2**15, 2**5, 3, 64, 128)
