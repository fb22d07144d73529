"""The upstream-agnostic mixer: order-free, any number of upstreams, the engine, checkpoints, cost."""

from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

from mdxmix.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from mdxmix.mixer import AgnosticConfig, AgnosticMixer, MDXMixer, MDXMixerConfig
from mdxmix.mixer.agnostic import average_weights, layout_channels
from mdxmix.mixer.engine import mix_tensor
from mdxmix.stems import STEMS
from mdxmix.upstream.base import UpstreamSpec

SMALL = AgnosticConfig(segment=2**12, folds=2**4, layers=2, width=32, token_hidden=16, channel_hidden=32, heads=4)


def trained_like(config: AgnosticConfig = SMALL, seed: int = 0) -> AgnosticMixer:
    """A mixer whose heads are not zero, so W_k really varies with the input and the set."""
    torch.manual_seed(seed)
    mixer = AgnosticMixer(config).eval()
    for head in (mixer.upstream_head, mixer.mixture_head):
        torch.nn.init.normal_(head.weight, std=0.05 * config.width)  # the heads divide their feature term by the width
        torch.nn.init.normal_(head.bias, std=0.3)
    return mixer


def blocks_of(x: torch.Tensor, layout) -> list[torch.Tensor]:
    """X's channel block of each upstream."""
    out, row = [], 2
    for stems in layout:
        out.append(x[:, row : row + 2 * len(stems)])
        row += 2 * len(stems)
    return out


stem_sets = st.lists(st.sampled_from(STEMS), min_size=1, max_size=4, unique=True).map(tuple)


@settings(max_examples=25, deadline=None)
@given(layout=st.lists(stem_sets, min_size=1, max_size=4).map(tuple), seed=st.integers(0, 2**16), data=st.data())
def test_permuting_the_upstreams_changes_nothing_in_the_output(layout, seed, data):
    mixer = trained_like(seed=seed % 7)
    torch.manual_seed(seed)
    x = torch.randn(2, layout_channels(layout), SMALL.segment)
    order = data.draw(st.permutations(range(len(layout))))
    blocks = blocks_of(x, layout)
    x_perm = torch.cat([x[:, :2]] + [blocks[i] for i in order], dim=1)
    layout_perm = tuple(layout[i] for i in order)
    with torch.no_grad():
        y, w = mixer(x, layout)
        y_perm, _ = mixer(x_perm, layout_perm)
    assert w.std(dim=0).max() > 1e-3 or len(layout) == 0  # the weights do depend on the segment
    torch.testing.assert_close(y_perm, y, atol=1e-5, rtol=0)


def test_a_fresh_mixer_is_the_average_of_the_upstreams_for_any_set():
    mixer = AgnosticMixer(SMALL)
    layout = (STEMS, ("vocals",), ("drums", "vocals"))
    w = mixer.estimate_weights(torch.randn(3, layout_channels(layout), SMALL.segment), layout)
    expected = average_weights(layout)
    torch.testing.assert_close(w, expected.expand_as(w), atol=0, rtol=0)
    # vocals: the mean of three estimates; drums: of two; bass and other: of one
    assert expected[2 + 6, 6] == expected[10, 6] == expected[12 + 2, 6] == 1 / 3
    assert expected[2, 0] == expected[12, 0] == 0.5
    # only vocals given: the other three stems share the rest of the mixture
    only = average_weights((("vocals",),))
    torch.testing.assert_close(only[0], torch.tensor([1 / 3, 0, 1 / 3, 0, 1 / 3, 0, 0, 0]))
    torch.testing.assert_close(only[2], torch.tensor([-1 / 3, 0, -1 / 3, 0, -1 / 3, 0, 1, 0]))


LAYOUTS = {
    "one four-stem": (STEMS,),
    "one single-stem": (("vocals",),),
    "two": (STEMS, ("bass",)),
    "four four-stem": (STEMS,) * 4,
    "four single-stem": (("vocals",), ("drums",), ("vocals",), ("other",)),
}


def test_one_two_and_four_upstreams_run_through_the_overlap_add_engine():
    mixer = trained_like()
    length = 3 * SMALL.segment + 777
    for name, layout in LAYOUTS.items():
        torch.manual_seed(1)
        x = torch.randn(layout_channels(layout), length)
        y = mix_tensor(x, mixer.bind(layout), batch_size=3)
        assert y.shape == (8, length) and torch.isfinite(y).all(), name
        # within the first segment's unshared part the output is exactly that segment's X·W
        with torch.no_grad():
            _, w = mixer(x[None, :, : SMALL.segment], layout)
        torch.testing.assert_close(y[:, :10], (w[0].T @ x[:, :10]), atol=1e-5, rtol=1e-4)
        fresh = AgnosticMixer(SMALL).bind(layout)  # a fresh mixer is time-invariant through the engine too
        torch.testing.assert_close(mix_tensor(x, fresh), average_weights(layout).T @ x, atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_keeps_outputs_and_frees_the_upstream_set(tmp_path):
    mixer = trained_like()
    default = [UpstreamSpec("demucs-file", "up.safetensors", STEMS, sha256="ab" * 32)]
    path = save_checkpoint(tmp_path / "agnostic.safetensors", mixer, CheckpointMeta(mixer.kind, {}, default))
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, AgnosticMixer) and meta.mixer_kind == "agnostic" and meta.any_upstreams
    assert read_meta(path).upstreams == default
    for layout in LAYOUTS.values():
        x = torch.randn(2, layout_channels(layout), SMALL.segment)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, layout)[0], mixer(x, layout)[0], atol=0, rtol=0)


def _flops(model, x, *args) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.estimate_weights(x, *args)
    return counter.get_total_flops()


def test_cost_per_segment_is_below_the_tiny_mdx_mixer_for_the_same_upstreams():
    agnostic = AgnosticMixer(AgnosticConfig.preset("tiny"))
    layouts = {**LAYOUTS, "bundled default": (STEMS, STEMS, ("vocals",))}
    for name, layout in layouts.items():
        channels = layout_channels(layout)
        x = torch.zeros(1, channels, 2**15)
        mdx = MDXMixer(MDXMixerConfig.preset("tiny", channels))
        ours, theirs = _flops(agnostic, x, layout), _flops(mdx, x)
        assert ours < theirs, f"{name}: {ours / 1e6:.0f} MFLOP vs tiny MDX-Mixer {theirs / 1e6:.0f}"


def test_one_adam_step_moves_w_by_about_the_learning_rate_not_width_times_it():
    # A fresh mixer's heads read LayerNorm'd features; unscaled, Adam's first step (every weight
    # moves by lr) moved entries of W_k by about 0.8·width·lr, and training never beat the start.
    config = AgnosticConfig.preset("tiny")
    torch.manual_seed(0)
    mixer = AgnosticMixer(config)
    layout = (STEMS, STEMS, ("vocals",))
    x, target = torch.randn(2, layout_channels(layout), config.segment), torch.randn(2, 8, config.segment)
    optimizer = torch.optim.Adam(mixer.parameters(), lr=1e-3)
    before = mixer.estimate_weights(x, layout).detach()
    (mixer(x, layout)[0] - target).abs().mean().backward()
    optimizer.step()
    step = (mixer.estimate_weights(x, layout).detach() - before).abs().max()
    assert 1e-4 < step < 5e-3, float(step)
