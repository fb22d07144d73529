"""Tiny real models shared by the tests: a Demucs package and mixer checkpoints using it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxmix.checkpoint import CheckpointMeta, file_sha256, save_checkpoint
from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig
from mdxmix.stems import STEMS
from mdxmix.upstream.base import UpstreamSpec
from mdxmix.upstream.demucs_package import save_demucs_package

TINY_SEGMENT = 2**14


def tiny_demucs() -> torch.nn.Module:
    from demucs.hdemucs import HDemucs

    torch.manual_seed(0)
    return HDemucs(sources=list(STEMS), channels=4)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A folder holding a tiny Demucs package and two mixer checkpoints that use it."""
    folder = tmp_path_factory.mktemp("models")
    package = save_demucs_package(tiny_demucs(), folder / "tiny_hdemucs.safetensors")
    spec = UpstreamSpec(family="demucs-file", model=package.name, stems=STEMS, sha256=file_sha256(package))
    torch.manual_seed(1)
    mixer = MDXMixer(MDXMixerConfig(in_channels=10, segment=TINY_SEGMENT, folds=2**5, layers=2, token_hidden=32, channel_hidden=32))
    torch.nn.init.normal_(mixer.head.weight, std=0.01)
    torch.nn.init.normal_(mixer.head.bias, std=0.3)
    save_checkpoint(folder / "tiny_mdx.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [spec], provenance={"test": True}))
    conv = Conv1x1Mixer(Conv1x1Config(in_channels=10, segment=TINY_SEGMENT))
    torch.nn.init.normal_(conv.weight, std=0.3)
    save_checkpoint(folder / "tiny_conv.safetensors", conv, CheckpointMeta(conv.kind, {}, [spec]))
    return folder


def write_tone(path: Path, seconds: float, rate: int, channels: int = 2, subtype: str = "PCM_16") -> np.ndarray:
    """A deterministic test signal: two tones and a little noise, per channel."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    data = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.02 * rng.standard_normal(t.size) for c in range(channels)], 1)
    sf.write(path, data if channels > 1 else data[:, 0], rate, subtype=subtype)
    return data
