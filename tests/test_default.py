"""The bundled default in weights/: complete, pinned, and separating the demo song offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mdxmix.checkpoint import read_meta
from mdxmix.pipeline import Separator
from mdxmix.registry import Registry
from mdxmix.stems import STEMS
from mdxmix.weightfiles import file_sha256, weights_dir

ROOT = Path(__file__).resolve().parent.parent


def test_registry_pins_every_bundled_file_and_names_a_default():
    registry = json.loads((weights_dir() / "registry.json").read_text())
    assert registry["default"] in registry["checkpoints"]
    for name, entry in registry["checkpoints"].items():
        path = weights_dir() / entry["file"]
        assert file_sha256(path) == entry["sha256"], name
        for spec in read_meta(path).upstreams:  # each upstream a checkpoint needs is bundled, with its pinned hash
            assert spec.sha256 is not None and file_sha256(weights_dir() / spec.model) == spec.sha256, spec.id


def test_default_mixes_four_upstreams_and_was_trained_apart_from_them():
    meta = read_meta(Registry.load().checkpoint_path("default")[1])
    assert meta.mixer_kind == "mdx_mixer"
    assert [u.family for u in meta.upstreams] == ["demucs-file", "spectral-file", "spectral-file", "spleeter-file"]
    assert meta.upstreams[2].stems == meta.upstreams[3].stems == ("vocals",)
    assert meta.provenance["leakage_warnings"] == []  # mixer-train songs disjoint from upstream-train songs


def test_default_separates_five_seconds_of_the_demo_song(tmp_path):
    audio, rate = sf.read(ROOT / "examples" / "demo.wav", dtype="float32", frames=5 * 44100, always_2d=True)
    separator = Separator("default", device="cpu", cache=None)
    stems = separator.separate(torch.from_numpy(audio.T.copy()), rate)
    assert list(stems) == list(STEMS)
    total = sum(stems.values())
    for stem in STEMS:
        assert stems[stem].shape == (2, 5 * 44100) and torch.isfinite(stems[stem]).all()
        assert float(stems[stem].pow(2).mean()) > 1e-6  # every stem carries signal on this song
    # The stems explain the mixture: what they leave out is well below the mixture's energy.
    residual = float((total - torch.from_numpy(audio.T)).pow(2).mean()) / float(np.mean(audio**2))
    assert residual < 0.5
