"""Drum stem: recorded kits, either Hydrogen drumkits (own sampler) or soundfont kits.

Why a sampler here: hydrogen-drumkits ships multi-velocity-layer recordings of real kits
as WAV/FLAC folders with a ``drumkit.xml``, which fluidsynth cannot read. Mapping each
kit instrument to a groove role (kick, snare, hat, ...) by its name and playing the
velocity layer that matches each hit gives a far larger variety of recorded drums than
the GM kits alone. Soundfont kits (GM bank 128, AVL drumkits) go through fluidsynth.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
from fluid import SR, Note, synth_for
from music import GM_DRUM, Hit
from scipy.signal import resample_poly

ROLE_PATTERNS: list[tuple[str, str]] = [
    ("kick", r"kick|bass ?drum|bassdrum"),
    ("snare", r"snare(?!.*(roll|rim|jazz))|^d3"),
    ("rim", r"stick|rim"),
    ("clap", r"clap"),
    ("ohat", r"open|op$|ohh|semi"),
    ("hat", r"closed|hat.*cl|hh.*cl|cl.*hh|closed hh|hi-?hat|hh"),
    ("crash", r"crash|china"),
    ("ride", r"ride"),
    ("tom_h", r"tom.*(hi|high|1\b)|hi.*tom|high tom"),
    ("tom_m", r"tom.*(mid|2\b)|mid.*tom|middle tom"),
    ("tom_l", r"tom.*(low|floor|3\b)|floor|low tom"),
]
FALLBACK = {"rim": "snare", "clap": "snare", "ohat": "hat", "ride": "hat", "crash": "ohat",
            "tom_h": "snare", "tom_m": "tom_h", "tom_l": "tom_m", "pedal": "hat"}
PAN = {"kick": 0.0, "snare": 0.05, "rim": 0.05, "clap": 0.0, "hat": -0.35, "ohat": -0.35,
       "ride": 0.4, "crash": -0.3, "tom_h": -0.2, "tom_m": 0.15, "tom_l": 0.35}
MAX_LEN = {"crash": 3.0, "ride": 2.0, "ohat": 0.8}


@dataclass
class Layer:
    path: str
    lo: float
    hi: float
    gain: float


def _ns_strip(root: ET.Element) -> None:
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]


@lru_cache(maxsize=32)
def kit_map(folder: str) -> dict[str, list[Layer]]:
    """Role -> velocity layers of one Hydrogen kit (first matching instrument wins)."""
    root = ET.parse(os.path.join(folder, "drumkit.xml")).getroot()
    _ns_strip(root)
    found: dict[str, list[Layer]] = {}
    for inst in root.iter("instrument"):
        name = (inst.findtext("name") or "").strip().lower()
        gain = float(inst.findtext("gain") or 1) * float(inst.findtext("volume") or 1)
        layers = []
        for lay in inst.iter("layer"):
            fn = lay.findtext("filename")
            if fn:
                layers.append(Layer(os.path.join(folder, fn), float(lay.findtext("min") or 0),
                                    float(lay.findtext("max") or 1),
                                    gain * float(lay.findtext("gain") or 1)))
        if not layers:  # old format: one <filename> per instrument
            fn = inst.findtext("filename")
            if fn:
                layers = [Layer(os.path.join(folder, fn), 0.0, 1.0, gain)]
        layers = [la for la in layers if os.path.exists(la.path)]
        if not layers or not name:
            continue
        for role, pat in ROLE_PATTERNS:
            if role not in found and re.search(pat, name):
                found[role] = sorted(layers, key=lambda la: la.lo)
                break
    for need in ("kick", "snare", "hat"):
        if need not in found:
            raise RuntimeError(f"kit {folder} has no {need}")
    return found


@lru_cache(maxsize=512)
def _sample(path: str) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x[:, :2] if x.shape[1] >= 2 else np.repeat(x, 2, axis=1)
    if sr != SR:
        g = np.gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g, axis=0).astype(np.float32)
    return x


def render_hydrogen(hits: list[Hit], folder: str, total: float) -> np.ndarray:
    """Place the velocity-matched layer of each hit; pan pieces across the stereo image."""
    km = kit_map(folder)
    n = int(round(total * SR))
    out = np.zeros((n + 4 * SR, 2), dtype=np.float32)
    for h in hits:
        role = h.role
        while role not in km:
            role = FALLBACK.get(role, "snare")
        v = h.vel / 127.0
        layers = km[role]
        lay = next((la for la in layers if la.lo <= v <= la.hi), layers[-1])
        x = _sample(lay.path)
        m = min(len(x), int(MAX_LEN.get(role, 1.2) * SR))
        a = int(round(h.start * SR))
        if a >= n:
            continue
        pan = PAN.get(h.role, 0.0)
        g = lay.gain * (0.35 + 0.65 * v) ** 1.5
        gl, gr = g * np.sqrt((1 - pan) / 2) * 1.41, g * np.sqrt((1 + pan) / 2) * 1.41
        seg = x[:m]
        if m < len(x):  # short fade where a long cymbal is cut
            seg = seg.copy()
            f = min(m, int(0.05 * SR))
            seg[-f:] *= np.linspace(1, 0, f, dtype=np.float32)[:, None]
        if a < 0:  # a hit humanised to before the song's start keeps only its tail
            seg, a, m = seg[-a:], 0, m + a
            if m <= 0:
                continue
        out[a:a + m, 0] += seg[:, 0] * gl
        out[a:a + m, 1] += seg[:, 1] * gr
    return out[:n]


def render_sf_kit(hits: list[Hit], sf_path: str, bank: int, program: int,
                  total: float) -> np.ndarray:
    """GM-mapped kit in a soundfont (bank 128 presets, or the AVL kits on bank 0)."""
    notes = [Note(GM_DRUM[h.role], h.start, 0.3, h.vel) for h in hits]
    return synth_for(sf_path).render(notes, bank, program, total)
