"""Real compositions for corpus v2: Bach chorales from the music21 corpus, arranged.

Why: generated harmony follows a few textbook progressions; a separator should also hear
real voice leading (passing tones, suspensions, moving inner voices). music21 ships ~400
four-part chorales offline (MusicXML, 0.2-0.4 s to parse each). A chorale becomes a song
by giving its voices to the stems: soprano sung with lyrics (lead vocal), alto as a
harmony vocal in choruses, alto + tenor on keys/pads/guitars (other), the bass voice an
octave down on a bass instrument, plus a drum groove; the chorale is repeated as
verse / chorus / solo passes with different arrangements.

Splits: chorales are assigned to pools by their sorted index (every fifth one is
``unseen``, for test only), and ``check_disjoint`` in ``sources.py`` checks that no
chorale is in both.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache

import numpy as np
from fluid import Note
from music import Hit, Part, Song, SongBuilder, Syllable, _pattern_steps, _voice
from v2music import PROGRAMS, V2_GROOVES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from music21 import corpus as m21corpus

ARRANGEMENTS = ("folk", "pop", "rock")


@lru_cache(maxsize=1)
def chorale_names() -> tuple[str, ...]:
    """File names of the Bach chorales music21 ships (sorted, so the split is stable)."""
    paths = m21corpus.getComposer("bach")
    return tuple(sorted(os.path.basename(str(p)) for p in paths
                        if os.path.basename(str(p)).startswith("bwv")))


def chorales(pool: str) -> list[str]:
    """Chorales of one source pool: every fifth (sorted) is ``unseen``."""
    names = chorale_names()
    return [n for i, n in enumerate(names) if (i % 5 == 4) == (pool == "unseen")]


@lru_cache(maxsize=64)
def load(name: str) -> dict | None:
    """Voices of a 4/4 SATB chorale as (midi, start, dur) in quarters, or None."""
    paths = [p for p in m21corpus.getComposer("bach") if os.path.basename(str(p)) == name]
    if not paths:
        return None
    s = m21corpus.parse(paths[0])
    ts = list(s.recurse().getElementsByClass("TimeSignature"))
    if not ts or ts[0].ratioString != "4/4":
        return None
    voices = {}
    for part in s.parts:
        nm = (part.partName or "").lower()
        for v in ("soprano", "alto", "tenor", "bass"):
            if nm.startswith(v) and v not in voices:
                notes = []
                for n in part.stripTies().flatten().notes:
                    if n.isNote:
                        notes.append((int(n.pitch.midi), float(n.offset), float(n.quarterLength)))
                voices[v] = notes
    if len(voices) != 4 or not all(voices.values()):
        return None
    ks = list(s.recurse().getElementsByClass("KeySignature"))
    k = ks[0].asKey() if ks else None
    tonic = int(k.tonic.pitchClass) if k else 0
    mode = "minor" if k is not None and k.mode == "minor" else "major"
    length = max(o + d for v in voices.values() for _, o, d in v)
    return {"voices": voices, "length_q": length, "key": tonic, "mode": mode}


def make_chorale_song(seed: int, pool: str, duration: float | None = None) -> Song:
    """A song arranged from the chorale that ``seed`` picks from ``pool``'s chorales."""
    names = chorales(pool)
    h = SongBuilder(seed, duration)  # its rng, lyric and timing helpers
    rng = h.rng
    start = int(rng.integers(len(names)))
    ch = None
    for k in range(len(names)):  # first 4/4 SATB chorale from a seeded start
        name = names[(start + k) % len(names)]
        ch = load(name)
        if ch:
            break
    assert ch is not None
    arr = str(rng.choice(ARRANGEMENTS))
    tempo = float(rng.integers(66, 104))
    q = 60.0 / tempo
    plen = ch["length_q"] * q
    if duration is not None and duration < 40:
        passes = ["chorus"] * int(np.ceil(duration / plen))
    else:
        want = duration or float(rng.uniform(120, 220))
        n = max(2, int(round(want / plen)))
        order = ["verse", "chorus", "solo" if rng.random() < 0.5 else "verse", "chorus"]
        passes = [order[i % 4] for i in range(n)]
        if n > 2 and rng.random() < 0.5:
            passes[-1] = "outro"
    total = duration if duration else len(passes) * plen + 2.0
    sections = [(nm, i * plen, (i + 1) * plen) for i, nm in enumerate(passes)]
    song = Song(seed, f"chorale-{arr}", tempo, ch["key"], ch["mode"], float(total), sections)
    song.source_piece = name  # type: ignore[attr-defined]
    song.rap = False  # type: ignore[attr-defined]
    v = ch["voices"]
    h.step = q / 4
    h.swing = 0.0

    def notes_of(voice: str, shift: int, t0: float, vel: int) -> list[Note]:
        return [Note(p + shift, t0 + o * q + h.jitter(0.004), d * q * 0.95,
                     int(np.clip(vel + rng.normal(0, 6), 30, 127))) for p, o, d in v[voice]]

    bass_prog = int(rng.choice([32, 33, 34, 35] if arr != "folk" else [32, 33]))
    inner_role = {"folk": "strings", "pop": "keys", "rock": "organ"}[arr]
    inner_prog = int(rng.choice(PROGRAMS[inner_role]))
    comp_role = {"folk": "strum", "pop": "gtr_clean", "rock": "gtr_rhythm"}[arr]
    comp_prog = int(rng.choice(PROGRAMS[comp_role]))
    lead_prog = int(rng.choice(PROGRAMS["gtr_lead" if arr == "rock" else "folk_lead"]))
    bass, inner, comp, lead = [], [], [], []
    groove = V2_GROOVES["folk" if arr == "folk" else arr][0]
    short = duration is not None and duration < 40
    lyric_words = 0
    for nm, a, _ in sections:
        bass += notes_of("bass", -12, a, 95)
        inner += notes_of("alto", 0, a, 70) + notes_of("tenor", 0, a, 70)
        full = short or nm in ("chorus", "solo", "outro")
        if full:  # strum/rhythm on every beat: the chord sounding at that beat
            for beat in range(int(ch["length_q"])):
                pcs = sorted({p for vv in v.values() for p, o, d in vv if o <= beat < o + d})
                if not pcs:
                    continue
                vc = _voice(pcs, 48 if comp_role != "gtr_rhythm" else 40, 71, None)
                if comp_role == "gtr_rhythm":
                    r = 40 + (min(pcs) - 40) % 12
                    vc = [r, r + 7, r + 12]
                for j, p in enumerate(vc):
                    comp.append(Note(p, a + beat * q + h.jitter(0.004) + 0.01 * j, q * 0.9,
                                     int(np.clip(rng.normal(85, 6), 40, 120))))
        if nm == "solo" and not short:
            lead += notes_of("soprano", 12, a, 95)
        # drums: the groove in every full pass, kick and hat only in verses
        nbars = int(ch["length_q"] // 4)
        for bar in range(nbars):
            for role, pat in groove.items():
                if not full and role not in ("kick", "hat", "rim", "ride"):
                    continue
                for stp, vel in _pattern_steps(pat):
                    song.hits.append(Hit(role, a + (bar * 16 + stp) * h.step + h.jitter(),
                                         int(np.clip(vel - (0 if full else 20), 20, 127))))
        if nm in ("solo",) and not short:
            continue
        # vocals: soprano with words, alto harmony in full passes
        words: list[list[str]] = []
        sop = v["soprano"]
        while sum(len(w) for w in words) < len(sop):
            words += h._lyric_line(min(8, len(sop) - sum(len(w) for w in words)))
        syl = [(wi, si) for wi, w in enumerate(words) for si in range(len(w))]
        alto = v["alto"]
        for k, (p, o, d) in enumerate(sop):
            wi, si = syl[k]
            text = "".join(words[wi]) if si == 0 else ""
            st = a + o * q
            song.melody.append(Syllable(text, lyric_words + wi, p, st, d * q * 0.95, d))
            if full:
                ap = [pp for pp, oo, dd in alto if oo <= o < oo + dd]
                if ap:
                    song.harmony.append(Syllable(text, lyric_words + wi, ap[0], st,
                                                 d * q * 0.95, d))
        lyric_words += len(words)
        song.lyrics.append(" ".join("".join(w) for w in words[:6]))
    song.parts = [Part("bass", "chorale_bass", bass_prog, bass, 0.0),
                  Part("other", inner_role, inner_prog, inner, float(rng.uniform(-0.4, 0.4)))]
    if comp:
        cpan = -0.8 if comp_role == "gtr_rhythm" else float(rng.uniform(-0.6, 0.6))
        song.parts.append(Part("other", comp_role, comp_prog, comp, cpan))
        if comp_role == "gtr_rhythm":
            song.parts.append(Part("other", "gtr_rhythm2", comp_prog, comp, 0.8))
    if lead:
        song.parts.append(Part("other", "gtr_lead" if arr == "rock" else "folk_lead", lead_prog,
                               lead, 0.0))
    song.hits.sort(key=lambda x: x.start)
    song.hits = [x for x in song.hits if x.start < song.duration]
    song.vocal_range = "high"
    return song
