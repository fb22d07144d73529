"""Expressive pitch for the lead instruments: bends, slides and vibrato, as players make them.

Why: in corpus v2 only the singers' pitch moves (glides into notes, vibrato, drift); every
instrument plays MIDI notes at a fixed pitch. So "a line whose pitch moves is a voice" was a
shortcut the upstreams could learn, and they did: checked on real recordings
(`bench/real_recordings.py`), a slide guitar and guitar harmonics went 100 % to vocals with the
v2 vocals net. Real lead guitars bend strings and slide, horns scoop, fiddles and synth leads
glide and play vibrato. This module draws such a pitch-bend curve for one monophonic lead part.

The curve is a list of (seconds, semitones) points, one every `STEP` seconds wherever it is not
zero, rendered by `fluid.Synth.render(bend=...)` with a pitch-bend range of `RANGE` semitones.
Its draws come from their own random stream, so a song's other choices do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fluid import Note

STEP = 0.005  # s between pitch-bend updates (200 per second: smooth to the ear)
RANGE = 4  # semitones either way: whole-tone bends and slides of up to a major third


@dataclass(frozen=True)
class Style:
    """How one kind of player moves the pitch (chances per note, sizes)."""

    bend_up: float  # chance a note is reached by bending up from below (guitar) or scooped (horns)
    bend_from: tuple[float, ...]  # semitones below the note where such a bend starts
    bend_time: tuple[float, float]  # s the bend takes
    slide: float  # chance a note close after the last one slides there from the last pitch
    slide_time: tuple[float, float]
    vibrato: float  # chance a note long enough gets vibrato
    vibrato_depth: tuple[float, float]  # semitones, peak
    vibrato_rate: tuple[float, float]  # Hz


STYLES = {
    "gtr_lead": Style(0.3, (1.0, 2.0, 2.0), (0.06, 0.2), 0.25, (0.04, 0.12), 0.6, (0.15, 0.6), (4.5, 7.0)),
    "synth_lead": Style(0.05, (1.0, 2.0), (0.05, 0.12), 0.5, (0.05, 0.2), 0.5, (0.1, 0.4), (4.0, 6.5)),
    "horn_lead": Style(0.3, (0.5, 1.0), (0.04, 0.1), 0.15, (0.05, 0.12), 0.6, (0.1, 0.35), (4.5, 6.5)),
    "folk_lead": Style(0.1, (1.0, 2.0), (0.05, 0.12), 0.35, (0.05, 0.15), 0.7, (0.1, 0.4), (5.0, 7.0)),
}
PLAYED_STRAIGHT = 0.2  # share of lead parts played without any pitch expression


def lead_bend(role: str, notes: list[Note], rng: np.random.Generator) -> list[tuple[float, float]]:
    """The pitch-bend curve of a monophonic lead part (empty for other roles, and for some leads)."""
    style = STYLES.get(role)
    if style is None or not notes or rng.random() < PLAYED_STRAIGHT:
        return []
    points: list[tuple[float, float]] = []
    previous: Note | None = None
    for note in sorted(notes, key=lambda n: n.start):
        times = np.arange(0.0, note.dur, STEP)
        curve = _approach(style, note, previous, times, rng) + _vibrato(style, note, times, rng)
        curve = np.clip(curve, -RANGE, RANGE)
        if np.any(curve != 0.0):
            points += [(note.start + float(t), round(float(c), 4)) for t, c in zip(times, curve)]
            points.append((note.start + note.dur, 0.0))  # back to the written pitch after the note
        previous = note
    return points


def _approach(style: Style, note: Note, previous: Note | None, times: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """A slide from the last note's pitch, a bend up from below, or nothing."""
    gap = None if previous is None else note.start - (previous.start + previous.dur)
    interval = 0 if previous is None else previous.pitch - note.pitch
    if gap is not None and gap < 0.06 and 0 < abs(interval) <= RANGE and rng.random() < style.slide:
        start, length = float(interval), float(rng.uniform(*style.slide_time))
    elif rng.random() < style.bend_up:
        start, length = -float(rng.choice(style.bend_from)), float(rng.uniform(*style.bend_time))
    else:
        return np.zeros_like(times)
    progress = np.clip(times / length, 0.0, 1.0)
    return start * (1.0 - progress * progress * (3.0 - 2.0 * progress))  # smoothstep to the note


def _vibrato(style: Style, note: Note, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vibrato that grows in after the attack, on notes long enough to carry it."""
    if note.dur < 0.25 or rng.random() >= style.vibrato:
        return np.zeros_like(times)
    depth, rate = float(rng.uniform(*style.vibrato_depth)), float(rng.uniform(*style.vibrato_rate))
    delay = float(rng.uniform(0.08, 0.3))
    grow = np.clip((times - delay) / 0.15, 0.0, 1.0)
    if rng.random() < 0.5:  # guitar-style: the string is only pushed up, never below the note
        return depth * grow * 0.5 * (1.0 - np.cos(2 * np.pi * rate * (times - delay)))
    return depth * grow * np.sin(2 * np.pi * rate * (times - delay))
