"""The mixers (which estimate W_k) and the engine that applies them to whole tracks."""

from __future__ import annotations

from typing import Union

from torch import nn

from .agnostic import AgnosticConfig, AgnosticMixer, BoundAgnosticMixer, Layout
from .conv1x1 import Conv1x1Config, Conv1x1Mixer
from .mdx_mixer import PRESETS, MDXMixer, MDXMixerConfig, apply_weights, describe_preset, fold

Mixer = Union[MDXMixer, Conv1x1Mixer, AgnosticMixer]

MIXER_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    MDXMixer.kind: (MDXMixer, MDXMixerConfig),
    Conv1x1Mixer.kind: (Conv1x1Mixer, Conv1x1Config),
    AgnosticMixer.kind: (AgnosticMixer, AgnosticConfig),
}


def build_mixer(kind: str, config: dict) -> Mixer:
    """Build a mixer from its kind name and a plain config dict (as stored in checkpoints)."""
    if kind not in MIXER_KINDS:
        raise ValueError(f"unknown mixer kind {kind!r}; known: {', '.join(MIXER_KINDS)}")
    model_cls, config_cls = MIXER_KINDS[kind]
    return model_cls(config_cls(**config))


__all__ = [
    "AgnosticConfig",
    "AgnosticMixer",
    "BoundAgnosticMixer",
    "Layout",
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
