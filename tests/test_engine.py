"""The overlap-add engine: exact identity for fixed weights, streaming, edges."""

from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st

from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer
from mdxmix.mixer.engine import mix_stream, mix_tensor, overlap_window, segment_starts


class VaryingMixer(torch.nn.Module):
    """A mixer whose W depends on the segment content, to test that the OLA is a weighted mean."""

    def __init__(self, in_channels: int, segment: int) -> None:
        super().__init__()
        self.segment = segment
        self.base = torch.randn(in_channels, 8)

    def estimate_weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.unsqueeze(0) * x.mean(dim=(1, 2)).view(-1, 1, 1)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=3000),
    segment=st.sampled_from([16, 64, 256]),
    channels=st.integers(min_value=2, max_value=12),
    batch=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_fixed_weights_reproduce_x_times_w(length, segment, channels, batch, seed):
    torch.manual_seed(seed)
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=channels, segment=segment))
    torch.nn.init.normal_(mixer.weight)
    x = torch.randn(channels, length)
    y = mix_tensor(x, mixer, batch_size=batch)
    assert y.shape == (8, length)
    torch.testing.assert_close(y, mixer.weight.T @ x, atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(length=st.integers(min_value=1, max_value=5000), segment=st.sampled_from([16, 100, 1024]))
def test_segments_cover_every_sample_and_end_on_the_track(length, segment):
    hop = segment // 4
    starts = segment_starts(length, segment, hop)
    covered = torch.zeros(length, dtype=torch.int32)
    for s in starts:
        covered[s : s + segment] += 1
    assert int(covered.min()) >= 1
    assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:]))
    assert all(b - a <= hop for a, b in zip(starts, starts[1:]))
    if length >= segment:
        assert starts[-1] == length - segment
    if length > 2 * segment:
        assert int(covered[segment:-segment].min()) >= 4  # the interior sees all four overlapping segments


def test_window_is_strictly_positive_and_symmetric():
    for segment in (4, 64, 2**18):
        w = overlap_window(segment)
        assert w.shape == (segment,) and float(w.min()) > 0
        torch.testing.assert_close(w, w.flip(0))


def test_output_is_weighted_mean_of_segment_outputs():
    """With content-dependent W, each sample is Σ w_k(t)·X(t)W_k / Σ w_k(t) (checked by brute force)."""
    torch.manual_seed(0)
    segment, length, channels = 64, 300, 4
    mixer = VaryingMixer(channels, segment)
    x = torch.randn(channels, length)
    y = mix_tensor(x, mixer, batch_size=2)
    window = overlap_window(segment)
    num, den = torch.zeros(8, length), torch.zeros(length)
    for s in segment_starts(length, segment, segment // 4):
        w = mixer.estimate_weights(x[None, :, s : s + segment])[0]
        num[:, s : s + segment] += (w.T @ x[:, s : s + segment]) * window
        den[s : s + segment] += window
    torch.testing.assert_close(y, num / den, atol=1e-5, rtol=1e-5)


def test_engine_streams_without_reading_the_whole_track_first():
    """Memory stays bounded: output comes out long before the end of the input is read."""
    segment, length = 256, 256 * 400
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=3, segment=segment))
    x = torch.randn(3, length)
    furthest = []

    def read(a, b):
        furthest.append(b)
        return x[:, a:b]

    stream = mix_stream(read, length, mixer, batch_size=4)
    first = next(stream)
    assert first.shape[-1] > 0 and max(furthest) <= 4 * segment
    sizes = [first.shape[-1]] + [c.shape[-1] for c in stream]
    assert sum(sizes) == length
    assert max(sizes) <= segment * 2  # no chunk holds more than a few segments


def test_track_shorter_than_a_segment_is_padded_not_dropped():
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=2, segment=1024))
    torch.nn.init.normal_(mixer.weight)
    x = torch.randn(2, 10)
    torch.testing.assert_close(mix_tensor(x, mixer), mixer.weight.T @ x, atol=1e-6, rtol=1e-5)
