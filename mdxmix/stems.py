"""Names and constants shared by every part of mdxmix.

The order of `STEMS` is the order of the mixer's eight output channels
(drums L/R, bass L/R, other L/R, vocals L/R), the order MUSDB18 uses.
"""

from __future__ import annotations

STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
SAMPLE_RATE: int = 44100
AUDIO_CHANNELS: int = 2
OUTPUT_CHANNELS: int = len(STEMS) * AUDIO_CHANNELS
