"""Inventory of the sound sources (Debian packages) and their split assignment.

Why a single table: the test split must only use soundfonts, drum kits and voices that
train and valid never use, so a score on test measures generalisation to unheard
instruments. Keeping the assignment in one place makes that rule checkable
(``check_disjoint``) and lets the README and ``corpus.json`` quote it verbatim.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

SPLITS = ("train", "valid", "test")
# train and valid share one source pool (valid is an in-distribution held-out set of songs);
# test has its own pool.
POOL = {"train": "seen", "valid": "seen", "test": "unseen"}


@dataclass(frozen=True)
class SoundFont:
    name: str
    path: str
    package: str
    licence: str
    melodic: bool  # has the 128 GM melodic programs on bank 0
    drum_presets: tuple[tuple[int, int], ...]  # (bank, program) of drum kits


@dataclass(frozen=True)
class HydrogenKit:
    name: str
    folder: str
    licence: str


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str  # "festival" or "espeak"
    ident: str  # festival voice function / espeak-ng voice+variant
    licence: str


SF2 = "/usr/share/sounds/sf2"
SF3 = "/usr/share/sounds/sf3"
H2 = "/usr/share/hydrogen/data/drumkits"
_GM_KITS = ((128, 0), (128, 8), (128, 16), (128, 24), (128, 25), (128, 32), (128, 40))

SOUNDFONTS: dict[str, list[SoundFont]] = {
    "seen": [
        SoundFont("FluidR3_GM", f"{SF2}/FluidR3_GM.sf2", "fluid-soundfont-gm", "MIT",
                  True, _GM_KITS),
        # MuseScore General descends from FluidR3Mono: both stay on the seen side.
        SoundFont("MuseScore_General", f"{SF3}/MuseScore_General_Full.sf3",
                  "musescore-general-soundfont", "MIT", True, _GM_KITS),
        SoundFont("AVL_Black_Pearl", f"{SF2}/Black_Pearl_4_LV2.sf2",
                  "avldrums.lv2-soundfont", "GPL-2+", False, ((0, 0),)),
    ],
    "unseen": [
        SoundFont("TimGM6mb", f"{SF2}/TimGM6mb.sf2", "timgm6mb-soundfont", "GPL-2",
                  True, _GM_KITS),
        SoundFont("csound_GMbank", f"{SF2}/sf_GMbank.sf2", "csound-soundfont",
                  "LGPL-2.1", True, _GM_KITS),
        SoundFont("AVL_Red_Zeppelin", f"{SF2}/Red_Zeppelin_4_LV2.sf2",
                  "avldrums.lv2-soundfont", "GPL-2+", False, ((0, 0),)),
    ],
}

# Hydrogen kits with at least kick, snare and hi-hat (percussion-only kits left out).
# "The Black Pearl 1.0" is the same Pearl kit as AVL Black Pearl: both are "seen".
HYDROGEN: dict[str, list[HydrogenKit]] = {
    "seen": [
        HydrogenKit("h2_Audiophob", f"{H2}/Audiophob", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_Colombo", f"{H2}/ColomboAcousticDrumkit", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_ElectricEmpire", f"{H2}/ElectricEmpireKit", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_Millo1", f"{H2}/Millo-Drums_v.1", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_Millo2", f"{H2}/Millo_MultiLayered2", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_Millo3", f"{H2}/Millo_MultiLayered3", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_BlackPearl", f"{H2}/The Black Pearl 1.0", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_VariBreaks", f"{H2}/VariBreaks", "GPL-2+ (Debian; drumkit.xml)"),
    ],
    "unseen": [
        HydrogenKit("h2_Forzee", f"{H2}/ForzeeStereo", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_BJA_Pacific", f"{H2}/BJA_Pacific", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_HardElectro1", f"{H2}/HardElectro1", "GPL-2+ (Debian; drumkit.xml)"),
        HydrogenKit("h2_rumpf", f"{H2}/rumpf_kit_z01_h2", "GPL-2+ (Debian; drumkit.xml)"),
    ],
}

VOICES: dict[str, list[Voice]] = {
    "seen": [
        Voice("festival_kal", "festival", "kal_diphone", "festvox-kallpc16k: free (CMU)"),
        Voice("espeak_en-us+m3", "espeak", "en-us+m3", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-us+f2", "espeak", "en-us+f2", "GPL-3 (espeak-ng)"),
        Voice("espeak_en+klatt4", "espeak", "en+klatt4", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-us+f4", "espeak", "en-us+f4", "GPL-3 (espeak-ng)"),
    ],
    "unseen": [
        Voice("festival_ked", "festival", "ked_diphone", "festvox-kdlpc16k: free (CMU)"),
        Voice("espeak_en-us+m7", "espeak", "en-us+m7", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-gb-x-rp+f3", "espeak", "en-gb-x-rp+f3", "GPL-3 (espeak-ng)"),
        Voice("espeak_en+klatt2", "espeak", "en+klatt2", "GPL-3 (espeak-ng)"),
    ],
}

# Corpus v2 adds espeak-ng accents/variants (re-sung by WORLD, see v2vocals.py). Kept in a
# separate table so that v1's pools, and so v1's songs, stay exactly as they were.
VOICES_V2_EXTRA: dict[str, list[Voice]] = {
    "seen": [
        Voice("espeak_en-gb-scotland+m1", "espeak", "en-gb-scotland+m1", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-029+f5", "espeak", "en-029+f5", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-us+Michael", "espeak", "en-us+Michael", "GPL-3 (espeak-ng)"),
        Voice("espeak_en+Annie", "espeak", "en+Annie", "GPL-3 (espeak-ng)"),
    ],
    "unseen": [
        Voice("espeak_en-gb-x-gbcwmd+m4", "espeak", "en-gb-x-gbcwmd+m4", "GPL-3 (espeak-ng)"),
        Voice("espeak_en-us+Alicia", "espeak", "en-us+Alicia", "GPL-3 (espeak-ng)"),
    ],
}

DEBIAN_PACKAGES = (
    "fluidsynth libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont "
    "timgm6mb-soundfont csound-soundfont avldrums.lv2-soundfont hydrogen-drumkits "
    "festival festvox-kallpc16k festvox-kdlpc16k espeak-ng"
).split()


def check_available() -> None:
    """Fail loudly (not skip) when a Debian source is missing: CI installs them."""
    missing = []
    for pool in SOUNDFONTS.values():
        missing += [s.path for s in pool if not os.path.exists(s.path)]
    for pool in HYDROGEN.values():
        missing += [k.folder for k in pool if not os.path.exists(k.folder + "/drumkit.xml")]
    for tool in ("text2wave", "espeak-ng"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        raise RuntimeError(
            "missing sound sources: " + ", ".join(missing)
            + "\nrun: sudo bash recipes/corpus/install-deps.sh"
        )


def check_disjoint(pieces: dict[str, list[str]] | None = None) -> None:
    """The test pool shares no soundfont file, kit folder, voice (v1 or v2) or — when
    ``pieces`` (pool -> composition names, corpus v2) is given — composition with the
    seen pool (espeak voices are compared as voice+variant: the engine is shared)."""
    v2 = {p: VOICES[p] + VOICES_V2_EXTRA[p] for p in ("seen", "unseen")}
    for table, key in ((SOUNDFONTS, "path"), (HYDROGEN, "folder"), (VOICES, "ident"),
                       (v2, "ident")):
        seen = {getattr(x, key) for x in table["seen"]}
        unseen = {getattr(x, key) for x in table["unseen"]}
        if not seen.isdisjoint(unseen):
            raise RuntimeError(f"sources on both sides of the split: {seen & unseen}")
    if pieces is not None:
        both = set(pieces["seen"]) & set(pieces["unseen"])
        if both:
            raise RuntimeError(f"compositions on both sides of the split: {sorted(both)}")


def melodic_fonts(split: str) -> list[SoundFont]:
    return [s for s in SOUNDFONTS[POOL[split]] if s.melodic]


def drum_fonts(split: str) -> list[SoundFont]:
    return list(SOUNDFONTS[POOL[split]])


def hydrogen_kits(split: str) -> list[HydrogenKit]:
    return HYDROGEN[POOL[split]]


def voices(split: str) -> list[Voice]:
    return VOICES[POOL[split]]


def voices_v2(split: str) -> list[Voice]:
    return VOICES[POOL[split]] + VOICES_V2_EXTRA[POOL[split]]
