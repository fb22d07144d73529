"""Real recorded instruments (Debian's sonic-pi-samples, CC0), each separated alone by the default.

The right answer is known for a solo instrument: all of it in one stem, and the stems adding
back to the clip. The shares asserted here are a floor under what the bundled default does
today (README, "Where the default is still weak"), not the goal (70 % in the right stem).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from real_recordings import CLIPS, SAMPLES, VALID_CLIPS, load_clip  # noqa: E402

from mdxmix.pipeline import Separator  # noqa: E402
from mdxmix.stems import STEMS  # noqa: E402

SECONDS = 4.0

if not all((SAMPLES / c.file).is_file() for c in CLIPS):
    if os.environ.get("CI"):  # CI's set-up installs them: their absence there is a failure
        raise RuntimeError(f"{SAMPLES} lacks the real-recording clips; .ci/setup installs sonic-pi-samples")
    pytest.skip("sonic-pi-samples is not installed (sudo apt-get install sonic-pi-samples)", allow_module_level=True)


@pytest.fixture(scope="module")
def separated() -> dict[str, tuple[np.ndarray, dict[str, torch.Tensor]]]:
    separator = Separator("default", device="cpu", cache=None)
    out = {}
    for clip in CLIPS:
        audio, rate = load_clip(SAMPLES / clip.file, SECONDS)
        out[clip.file] = audio, separator.separate(torch.from_numpy(audio), rate)
    return out


def _shares(stems: dict[str, torch.Tensor]) -> dict[str, float]:
    energy = {s: float(stems[s].double().pow(2).sum()) for s in STEMS}
    return {s: e / sum(energy.values()) for s, e in energy.items()}


def test_the_stems_of_every_real_recording_add_back_to_it(separated):
    for clip in CLIPS:
        audio, stems = separated[clip.file]
        residual = float((sum(stems.values()) - torch.from_numpy(audio)).double().pow(2).sum())
        assert 10 * np.log10(residual / float(np.sum(audio.astype(np.float64) ** 2))) < -20, clip.file


def test_real_recordings_mostly_land_in_their_own_stem(separated):
    right = {clip.file: _shares(separated[clip.file][1])[clip.stem] for clip in CLIPS}
    # 4-s clips, the default over the v3 upstreams: mean 47 %, Amen 97 %, tabla 97 %, choir 100 %,
    # guitar fifths 60 %, Em9 41 %. The default before it (v2 upstreams) had mean 51 %, fifths 51 %
    # and guitar harmonics 63 %, which now go to vocals (11 %): a regression on these test clips,
    # reported in the README; the new default was chosen on the valid clips (73 % against 72 %)
    # and the valid songs. The floors sit a few points under today's, so numerics cannot trip
    # them but a further regression does.
    assert np.mean(list(right.values())) >= 0.43, right
    # The clearest cases, each well above chance (25 %). A slide guitar, guitar harmonics and a
    # low piano chord are the known weakness (vocals and bass take them today): no floor.
    assert right["ambi_choir.flac"] >= 0.9, right
    assert right["loop_amen_full.flac"] >= 0.85, right
    assert right["loop_tabla.flac"] >= 0.85, right
    assert right["guit_e_fifths.flac"] >= 0.55, right


def test_the_clips_chosen_on_are_not_the_clips_reported():
    assert VALID_CLIPS and not {c.file for c in VALID_CLIPS} & {c.file for c in CLIPS}
    assert all((SAMPLES / c.file).is_file() for c in VALID_CLIPS)
