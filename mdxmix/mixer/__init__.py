"""The mixers (which estimate W_k) and the engine that applies them to whole tracks."""

from __future__ import annotations

from typing import Union

from torch import nn

from .conv1x1 import Conv1x1Config, Conv1x1Mixer
from .mdx_mixer import PRESETS, MDXMixer, MDXMixerConfig, apply_weights, describe_preset, fold

Mixer = Union[MDXMixer, Conv1x1Mixer]

MIXER_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    MDXMixer.kind: (MDXMixer, MDXMixerConfig),
    Conv1x1Mixer.kind: (Conv1x1Mixer, Conv1x1Config),
}


def build_mixer(kind: str, config: dict) -> Mixer:
    """Build a mixer from its kind name and a plain config dict (as stored in checkpoints)."""
    if kind not in MIXER_KINDS:
        raise ValueError(f"unknown mixer kind {kind!r}; known: {', '.join(MIXER_KINDS)}")
    model_cls, config_cls = MIXER_KINDS[kind]
    return model_cls(config_cls(**config))


__all__ = [
    "Conv1x1Config",
    "Conv1x1Mixer",
    "MDXMixer",
    "MDXMixerConfig",
    "MIXER_KINDS",
    "Mixer",
    "PRESETS",
    "apply_weights",
    "build_mixer",
    "describe_preset",
    "fold",
]
