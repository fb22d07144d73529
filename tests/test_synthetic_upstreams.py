"""Synthetic separators: the SDR range they produce, its order in quality, time variation, seeds."""

from __future__ import annotations

import numpy as np
import torch

from mdxmix.stems import STEMS
from mdxmix.train.synthetic_upstreams import SyntheticUpstream, random_synthetic

from conftest import synth_song


def references(seconds: float = 4.0, seed: int = 3) -> torch.Tensor:
    song = synth_song(seconds, seed)
    return torch.stack([torch.from_numpy(np.ascontiguousarray(song[s].T)) for s in STEMS])


def sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10((reference**2).sum() / ((reference - estimate) ** 2).sum()))


def test_sdr_spans_about_minus_5_to_plus_20_db_and_rises_with_quality():
    refs = references()
    by_quality = {}
    for quality in (0.0, 0.5, 1.0):
        values = []
        for seed in range(2):
            estimates = SyntheticUpstream(STEMS, quality, seed).separate(refs)
            values += [sdr(refs[i], estimates[s]) for i, s in enumerate(STEMS)]
        by_quality[quality] = values
    low, high = min(by_quality[0.0]), max(by_quality[1.0])
    assert -10.0 <= low <= -4.0, by_quality  # measured: -6.3 dB
    assert 17.0 <= high <= 30.0, by_quality  # measured: 25.5 dB
    means = [np.mean(v) for v in by_quality.values()]
    assert all(b > a + 4.0 for a, b in zip(means, means[1:])), means
    assert min(by_quality[1.0]) >= 12.0  # the best quality is a near-oracle for every stem


def test_faults_vary_over_time():
    refs = references(8.0)
    estimate = SyntheticUpstream(("vocals",), 0.3, 5).separate(refs)["vocals"]
    second = 44100
    per_second = [sdr(refs[3][:, a : a + second], estimate[:, a : a + second]) for a in range(0, 8 * second, second)
                  if refs[3][:, a : a + second].abs().max() > 0]
    assert max(per_second) - min(per_second) > 1.0, per_second


def test_same_seed_same_estimate_and_stems_as_asked():
    refs = references(2.0)
    one = SyntheticUpstream(("bass", "vocals"), 0.6, 11).separate(refs)
    two = SyntheticUpstream(("bass", "vocals"), 0.6, 11).separate(refs)
    assert list(one) == ["bass", "vocals"] and all(v.shape == (2, refs.shape[-1]) for v in one.values())
    torch.testing.assert_close(one["vocals"], two["vocals"], atol=0, rtol=0)
    drawn = [random_synthetic(torch.Generator().manual_seed(s)) for s in range(200)]
    counts = {n: sum(len(d.stems) == n for d in drawn) for n in (1, 2, 4)}
    assert counts[4] > counts[1] > counts[2] > 0 and sum(counts.values()) == 200
    assert min(d.quality for d in drawn) < 0.05 and max(d.quality for d in drawn) > 0.95


def test_mask_separators_add_up_to_the_mixture_and_span_a_realistic_range():
    refs = references()
    mixture = refs.sum(dim=0)
    means = []
    for quality in (0.0, 0.5, 1.0):
        values = []
        for seed in range(2):
            mask = SyntheticUpstream(STEMS, quality, seed, kind="mask").separate(refs)
            leak = SyntheticUpstream(STEMS, quality, seed).separate(refs)
            values += [sdr(refs[i], mask[s]) for i, s in enumerate(STEMS)]
            # what one stem misses lands in another, as with the mask networks people run
            assert sdr(mixture, sum(mask.values())) > 15.0
            if quality == 0.0:
                assert sdr(mixture, sum(leak.values())) < 5.0  # the leak kind adds leakage on top of the mixture
        means.append(float(np.mean(values)))
    assert means[0] < 2.0 and means[2] > 8.0 and means[0] < means[1] < means[2], means  # measured: 0.2, 11.4, 14.0 dB
    drawn = [random_synthetic(torch.Generator().manual_seed(s)) for s in range(100)]
    assert 30 < sum(d.kind == "mask" for d in drawn) < 70
    assert all(d.kind == "leak" for d in (random_synthetic(torch.Generator().manual_seed(s), mask_share=0.0) for s in range(20)))
