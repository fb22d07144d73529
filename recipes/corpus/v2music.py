"""Corpus v2 song generator: the styles musicians feed a separator, with real arrangements.

Why a second generator: v1's ten styles are all "band plus keys" at one dynamic level,
with no distorted guitars, no solos, no electronic production and no rap. v2 keeps
v1's harmony, voice-leading, groove and melody machinery (``music.SongBuilder``) and adds
style templates — rock, metal (double kick, palm-muted power chords, doubled rhythm
guitars), pop, electronic (four-on-the-floor, synth bass, pads side-chained to the kick),
folk (strummed and picked acoustic guitars, fiddle/mandolin), jazz (swing ride, walking
upright bass, rootless piano comping, horn solos), hip-hop (boom-bap, 808 bass, rap
verses with sung hooks) — and arrangement dynamics: solos, breaks where the band stops,
parts that drop in and out per section. Parts carry a ``role`` that tells the production
stage (``v2fx``) which chain to use (amp distortion for ``gtr_*``, side-chain for
``pad_sc``...). Real compositions (Bach chorales from the music21 corpus) come from
``v2chorale``. Symbolic only, a pure function of the seed.
"""

from __future__ import annotations

import numpy as np
from fluid import Note
from music import (
    GROOVES,
    PROGRESSIONS,
    SCALES,
    Hit,
    Part,
    Song,
    SongBuilder,
    _chord,
    _pattern_steps,
    _voice,
    fit_plan,
    lay_out,
)

# style -> tempo range, swing, bass patterns, structures key, minor probability
V2_STYLES: dict[str, dict] = {
    "rock": {"tempo": (96, 150), "swing": 0.0, "bass": ["root8", "kick", "octave"], "minor": 0.4},
    "metal": {"tempo": (100, 190), "swing": 0.0, "bass": ["root16", "root8"], "minor": 0.9},
    "pop": {"tempo": (88, 128), "swing": 0.0, "bass": ["kick", "root8", "octave", "synco"],
            "minor": 0.35},
    "electronic": {"tempo": (118, 132), "swing": 0.0, "bass": ["offbeat", "octave", "root8"],
                   "minor": 0.6},
    "folk": {"tempo": (80, 132), "swing": 0.0, "bass": ["rootfifth", "root4", "walk"],
             "minor": 0.35},
    "jazz": {"tempo": (100, 190), "swing": 0.3, "bass": ["walk"], "minor": 0.4},
    "hiphop": {"tempo": (76, 98), "swing": 0.14, "bass": ["kick", "sub"], "minor": 0.65},
}
V2_GROOVES: dict[str, list[dict[str, str]]] = {
    "rock": GROOVES["rock"] + [{"kick": "x-----x-x-x-----", "snare": "----x-------x---",
                                "ohat": "x-x-x-x-x-x-x-x-"}],
    "metal": [{"kick": "xxxxxxxxxxxxxxxx", "snare": "----x-------x---", "ride": "x---x---x---x---"},
              {"kick": "x-xxx-xxx-xxx-xx", "snare": "----x-------x---", "crash": "x-------x-------"},
              {"kick": "xoxoxoxoxoxoxoxo", "snare": "--x---x---x---x-", "hat": "x-x-x-x-x-x-x-x-"}],
    "pop": GROOVES["pop"],
    "electronic": [{"kick": "x---x---x---x---", "clap": "----x-------x---",
                    "hat": "--x---x---x---x-", "pedal": "o-o-o-o-o-o-o-o-"},
                   {"kick": "x---x---x---x---", "snare": "----x-------x---",
                    "ohat": "--x---x---x---x-", "hat": "xo.oxo.oxo.oxo.o"}],
    "folk": [{"kick": "x-------x-------", "rim": "----x-------x---", "hat": "x-o-x-o-x-o-x-o-"},
             {"kick": "x-----x---x-----", "snare": "----.-------x---", "ride": "x-o-x-o-x-o-x-o-"}],
    "jazz": [{"kick": "x-------..------", "pedal": "----x-------x---", "ride": "x---x-ox--x---xo"},
             {"kick": "x---------x-----", "snare": "-----.-----.--.-", "pedal": "----x-------x---",
              "ride": "x---x-ox--x---xo"}],
    "hiphop": GROOVES["hiphop"] + [{"kick": "x--------xx-----", "snare": "----x-------x---",
                                    "hat": "x.x.x.x.x.x.x.x."}],
}
V2_STRUCTURES: dict[str, list[list[tuple[str, int]]]] = {
    "band": [
        [("intro", 4), ("verse", 8), ("pre", 4), ("chorus", 8), ("verse", 8), ("chorus", 8),
         ("solo", 8), ("break", 2), ("chorus", 8), ("outro", 4)],
        [("intro", 8), ("verse", 16), ("chorus", 8), ("break", 4), ("verse", 8), ("chorus", 8),
         ("solo", 8), ("chorus", 8), ("outro", 4)],
        [("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 8),
         ("chorus", 16), ("outro", 4)],
    ],
    "electronic": [
        [("intro", 8), ("verse", 8), ("chorus", 16), ("break", 8), ("verse", 8), ("chorus", 16),
         ("outro", 8)],
        [("intro", 8), ("verse", 16), ("pre", 4), ("chorus", 16), ("break", 4), ("solo", 8),
         ("chorus", 16), ("outro", 8)],
    ],
    "jazz": [
        [("intro", 4), ("verse", 16), ("chorus", 8), ("solo", 16), ("verse", 8), ("chorus", 8),
         ("outro", 4)],
        [("intro", 2), ("verse", 8), ("verse", 8), ("solo", 16), ("solo", 8), ("verse", 8),
         ("outro", 4)],
    ],
}
# GM programs per part role (clean guitars get the amp in v2fx; 29/30 are already driven)
PROGRAMS = {
    "gtr_rhythm": [27, 28, 26, 29, 30, 27, 28], "gtr_lead": [27, 29, 30, 26],
    "gtr_clean": [27, 26, 25], "strum": [24, 25], "pick": [24, 25, 46, 105],
    "keys": [0, 1, 2, 4, 5], "organ": [16, 17, 18, 19], "pad": [48, 49, 50, 88, 89, 92, 95],
    "pad_sc": [50, 89, 90, 91, 94, 95, 51], "arp": [80, 81, 84, 87, 8, 11, 98],
    "synth_lead": [80, 81, 84, 87], "horn_lead": [65, 66, 56, 57, 64, 71, 73],
    "folk_lead": [110, 105, 22, 73, 21, 40], "piano_comp": [0, 1, 4],
    "strings": [48, 49, 40, 42], "riff": [61, 62, 56, 65, 80, 81, 29, 30],
}
BASS_V2 = {"rock": [33, 34, 33], "metal": [34, 33, 29], "pop": [33, 34, 38, 35],
           "electronic": [38, 39, 81, 87], "folk": [32, 33, 35], "jazz": [32, 32, 33],
           "hiphop": [38, 39, 33]}
# other parts per style: (role, probability of appearing); first entries always appear
TEMPLATES: dict[str, list[tuple[str, float]]] = {
    "rock": [("gtr_rhythm", 1.0), ("gtr_lead", 1.0), ("keys", 0.3), ("organ", 0.3),
             ("gtr_clean", 0.3)],
    "metal": [("gtr_rhythm", 1.0), ("gtr_lead", 1.0), ("pad", 0.25), ("strings", 0.2)],
    "pop": [("keys", 0.8), ("gtr_clean", 0.5), ("pad", 0.6), ("arp", 0.4), ("strings", 0.3),
            ("synth_lead", 0.3)],
    "electronic": [("pad_sc", 1.0), ("arp", 0.8), ("synth_lead", 0.7), ("keys", 0.3)],
    "folk": [("strum", 1.0), ("pick", 0.6), ("folk_lead", 0.8), ("strings", 0.2),
             ("keys", 0.2)],
    "jazz": [("piano_comp", 1.0), ("horn_lead", 1.0), ("gtr_clean", 0.3), ("organ", 0.15)],
    "hiphop": [("keys", 0.6), ("strings", 0.4), ("pad", 0.5), ("riff", 0.5),
               ("synth_lead", 0.2)],
}
# v1 style whose kick pattern the v1 bass patterns follow
V1_KIN = {"rock": "rock", "metal": "punk", "pop": "pop", "electronic": "disco",
          "folk": "ballad", "jazz": "shuffle", "hiphop": "hiphop"}
SOLO_ROLES = {"gtr_lead", "synth_lead", "horn_lead", "folk_lead"}


class SongBuilderV2(SongBuilder):
    """v1's builder with v2 styles, parts and arrangement (see module docstring)."""

    def __init__(self, seed: int, duration: float | None = None,
                 style: str | None = None) -> None:
        super().__init__(seed, duration)
        self.force_style = style

    def build(self) -> Song:  # noqa: C901 (one linear recipe)
        rng = self.rng
        self.style = self.force_style or str(rng.choice(list(V2_STYLES)))
        st = V2_STYLES[self.style]
        tlo, thi = st["tempo"]
        tempo = float(rng.integers(tlo, thi + 1))
        self.swing = st["swing"] * float(rng.uniform(0.6, 1.0))
        self.step = 60.0 / tempo / 4
        bar = 16 * self.step
        mode = "minor" if rng.random() < st["minor"] else "major"
        key = int(rng.integers(0, 12))
        if self.target is not None and self.target < 40:
            n = int(np.ceil(self.target / bar)) + 1
            plan = [("chorus", n)]
        else:
            kind = ("electronic" if self.style == "electronic" else
                    "jazz" if self.style == "jazz" else "band")
            opts = V2_STRUCTURES[kind]
            plan = list(opts[int(rng.integers(len(opts)))])
            want = self.target if self.target else float(rng.uniform(120, 240))
            fit_plan(plan, bar, want, min_sections=4)
        sections, bars, b0 = lay_out(plan, bar)
        duration = self.target if self.target else b0 * bar + 2.0
        song = Song(self.seed, self.style, tempo, key, mode, float(duration), sections)
        progs = {n: PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
                 for n in ("intro", "verse", "pre", "chorus", "bridge", "break", "outro", "solo")}
        seventh = bool(rng.random() < (0.9 if self.style == "jazz" else 0.15))
        if self.style == "metal":
            seventh = False
        self.chords, self.bar_section = [], []
        for name, _, nb in bars:
            prog = progs[name]
            for i in range(nb):
                self.chords.append(_chord(key, mode, prog[i % len(prog)], seventh))
                self.bar_section.append(name)
        self.n_bars, self.bar = b0, bar
        self.key, self.mode = key, mode
        self.scale = [(key + s) % 12 for s in SCALES[mode]]
        self.active = self._arrangement_v2(bars)
        self._make_drums_v2(song)
        self._make_bass_v2(song, str(rng.choice(st["bass"])))
        self._make_others_v2(song)
        self._make_vocals(song)
        song.rap = self.style == "hiphop" and rng.random() < 0.8  # type: ignore[attr-defined]
        return song

    def _arrangement_v2(self, bars: list[tuple[str, int, int]]) -> dict[str, list[bool]]:
        rng = self.rng
        act = {s: [] for s in ("drums", "bass", "other", "vocals", "backing")}
        short = len(bars) == 1
        for name, _, nb in bars:
            on = {"drums": True, "bass": True, "other": True, "vocals": True, "backing": False}
            if short:
                on["backing"] = True
            elif name == "intro":
                on["vocals"] = False
                on["drums"] = bool(rng.random() < 0.5)
                on["bass"] = bool(rng.random() < 0.6)
            elif name == "solo":
                on["vocals"] = False
            elif name == "break":  # the band stops or thins out for a few bars
                kind = int(rng.integers(3))
                on["drums"] = kind != 0
                on["bass"] = kind == 2
                on["vocals"] = bool(rng.random() < 0.4)
            elif name == "bridge":
                on["drums"] = bool(rng.random() < 0.6)
            elif name == "outro":
                on["vocals"] = bool(rng.random() < 0.3)
            elif name == "chorus":
                on["backing"] = bool(rng.random() < 0.75)
            for s in act:
                act[s] += [on[s]] * nb
        return act

    def _make_drums_v2(self, song: Song) -> None:
        rng = self.rng
        grooves = V2_GROOVES[self.style]
        g_verse = grooves[int(rng.integers(len(grooves)))]
        g_chorus = grooves[int(rng.integers(len(grooves)))]
        half = self.style == "metal" and song.tempo > 160 and rng.random() < 0.5
        prev = None
        for b in range(self.n_bars):
            sec = self.bar_section[b]
            if not self.active["drums"][b]:
                prev = sec
                continue
            g = g_chorus if sec in ("chorus", "solo") else g_verse
            last = b + 1 >= self.n_bars or self.bar_section[b + 1] != sec
            fill = last and self.n_bars > 4 and rng.random() < 0.75
            for role, pat in g.items():
                if half and role == "kick":
                    pat = pat.replace("x", "o")
                for stp, vel in _pattern_steps(pat):
                    if fill and stp >= 8 and role in ("snare", "kick", "rim", "clap"):
                        continue
                    v = int(np.clip(vel + rng.normal(0, 8), 20, 127))
                    song.hits.append(Hit(role, max(0.0, self.t(b, stp) + self.jitter()), v))
            if fill:
                toms = ["snare", "tom_h", "tom_m", "tom_l"]
                dens = 16 if self.style == "metal" else 8
                for k in range(dens):
                    stp = 8 + k * 8 / dens
                    if rng.random() < 0.8:
                        role = toms[min(3, int(k * 4 / dens))] if rng.random() < 0.6 else "snare"
                        song.hits.append(Hit(role, self.t(b, stp) + self.jitter(),
                                             int(rng.integers(70, 120))))
            if sec != prev:
                song.hits.append(Hit("crash", self.t(b, 0), 112))
            prev = sec
        song.hits.sort(key=lambda h: h.start)
        song.hits = [h for h in song.hits if h.start < song.duration]

    def _make_bass_v2(self, song: Song, pattern: str) -> None:
        rng = self.rng
        if pattern in ("root8", "root4", "rootfifth", "octave", "kick", "synco", "walk"):
            n0 = len(song.parts)
            own, self.style = self.style, V1_KIN[self.style]  # v1 reads its kick pattern
            try:
                self._make_bass(song, pattern)  # v1 patterns
            finally:
                self.style = own
            p = song.parts[n0]
            p.program = int(rng.choice(BASS_V2[self.style]))
            if self.style == "jazz":
                p.role = "upright"
            return
        notes: list[Note] = []
        for b in range(self.n_bars):
            if not self.active["bass"][b]:
                continue
            root = 28 + (self.chords[b][0] - 28) % 12
            if pattern == "root16":  # metal: chug with the kick
                seq = [(s, 0.8, root) for s in range(16)]
            elif pattern == "offbeat":  # electronic: bass on the off-beats
                seq = [(s, 1.6, root + (12 if rng.random() < 0.3 else 0)) for s in (2, 6, 10, 14)]
            else:  # "sub": long 808 notes with a slide down at the end of the bar
                seq = [(0, 6, root), (7, 3, root), (10, 5, root + (7 if rng.random() < 0.4 else 0))]
            for s, ln, p in seq:
                notes.append(Note(int(p), max(0.0, self.t(b, s) + self.jitter(0.003)),
                                  ln * self.step * 0.9, int(np.clip(rng.normal(100, 8), 60, 127))))
        song.parts.append(Part("bass", pattern, int(rng.choice(BASS_V2[self.style])), notes, 0.0))

    # --- other parts -----------------------------------------------------------------
    def _make_others_v2(self, song: Song) -> None:
        rng = self.rng
        roles = [r for i, (r, p) in enumerate(TEMPLATES[self.style])
                 if i == 0 or rng.random() < p]
        if self.style in ("rock", "metal") and "gtr_rhythm" in roles:
            roles.insert(1, "gtr_rhythm2")  # double-tracked rhythm guitar, panned opposite
        pans = {"gtr_rhythm": -0.8, "gtr_rhythm2": 0.8}
        spread = list(rng.permutation(np.linspace(-0.6, 0.6, max(len(roles), 2))))
        for i, role in enumerate(roles):
            base = "gtr_rhythm" if role == "gtr_rhythm2" else role
            program = int(rng.choice(PROGRAMS[base]))
            if role == "gtr_rhythm2":
                notes = song.parts[-1].notes  # the same riff played again
            else:
                notes = self._part_notes(base, song)
            pan = pans.get(role, float(spread[i % len(spread)]))
            if role == "gtr_rhythm2":  # another take: own timing, maybe another guitar
                notes = [Note(n.pitch, max(0.0, n.start + self.jitter(0.006)), n.dur,
                              int(np.clip(n.vel + rng.normal(0, 6), 30, 127))) for n in notes]
            if notes:
                song.parts.append(Part("other", role, program, notes, pan))

    def _sections_on(self, role: str) -> set[str]:
        """Which sections a part plays in (parts drop in and out)."""
        rng = self.rng
        if role in SOLO_ROLES:
            base = {"solo", "intro"} if rng.random() < 0.5 else {"solo"}
            if rng.random() < 0.4:
                base |= {"outro", "chorus"}
            return base
        allsec = {"intro", "verse", "pre", "chorus", "bridge", "break", "outro"}
        out = {s for s in allsec if rng.random() < 0.8} | {"chorus", "solo"}
        return out

    def _part_notes(self, role: str, song: Song) -> list[Note]:  # noqa: C901
        rng = self.rng
        plays = self._sections_on(role)
        short = len(set(self.bar_section)) == 1
        notes: list[Note] = []
        prev = None
        pent = [0, 3, 5, 7, 10] if self.mode == "minor" else [0, 2, 4, 7, 9]
        lead_scale = [(self.key + p) % 12 for p in pent]
        gallop = rng.random() < 0.4
        strums = [[0, 4, 6, 8, 12, 14], [0, 3, 6, 8, 10, 12, 14], [0, 4, 8, 10, 12]]
        strum_pat = strums[int(rng.integers(len(strums)))]
        cur = 76
        for b in range(self.n_bars):
            sec = self.bar_section[b]
            if not self.active["other"][b] or (not short and sec not in plays):
                continue
            if role in SOLO_ROLES and not short and sec not in ("solo",) and rng.random() < 0.3:
                continue
            ch = self.chords[b]
            vel = int(np.clip(rng.normal(88, 8), 50, 120))
            t = self.t
            if role == "gtr_rhythm":  # power chords: root, fifth, octave
                r = 40 + (ch[0] - 40) % 12
                chord = [r, r + 7, r + 12]
                if self.style == "metal":
                    steps = ([0, 3, 4, 8, 11, 12] if gallop else list(range(16)))
                    for s in steps:
                        for j, p in enumerate(chord):
                            notes.append(Note(p, t(b, s) + self.jitter(0.002) + 0.003 * j,
                                              self.step * 0.7, vel))
                else:
                    for s in (range(0, 16, 2) if rng.random() < 0.7 else (0, 3, 6, 8, 10, 12, 14)):
                        for j, p in enumerate(chord):
                            notes.append(Note(p, t(b, s) + self.jitter(0.003) + 0.004 * j,
                                              self.step * 1.8, vel))
            elif role in SOLO_ROLES:  # improvised-sounding lines, chord tones on the beat
                s = 0.0
                dens = {"gtr_lead": 1.0, "synth_lead": 2.0, "horn_lead": 2.0,
                        "folk_lead": 2.0}[role]
                if rng.random() < 0.3:
                    dens *= 2
                lo, hi = (64, 88) if role != "horn_lead" else (58, 82)
                while s < 16:
                    ln = float(rng.choice([dens, dens, dens * 2, dens * 3]))
                    if rng.random() < 0.15:
                        s += ln
                        continue
                    strong = s % 4 == 0
                    pcs = [c % 12 for c in ch] if strong else lead_scale
                    cur += int(rng.choice([-3, -2, -1, 1, 2, 3, 0]))
                    cur = int(np.clip(cur, lo, hi))
                    cand = [p for p in range(lo, hi + 1) if p % 12 in pcs]
                    cur = min(cand, key=lambda p: abs(p - cur))
                    notes.append(Note(cur, t(b, s) + self.jitter(0.008), self.step * ln * 0.92,
                                      int(np.clip(vel + rng.normal(0, 10), 40, 127))))
                    s += ln
            elif role == "strum":
                v = _voice(ch, 48, 71, prev)
                prev = v
                for s in strum_pat:
                    down = (s // 2) % 2 == 0
                    order = v if down else v[::-1]
                    for j, p in enumerate(order):
                        notes.append(Note(p, t(b, s) + self.jitter(0.004) + 0.012 * j,
                                          self.step * 1.9, int(vel * (1 if down else 0.8))))
            elif role in ("pick", "arp"):
                v = _voice(ch, 50 if role == "pick" else 57, 79, prev)
                prev = v
                seq = v + [v[0] + 12] + v[1:][::-1]
                stepw = 2 if role == "pick" or rng.random() < 0.5 else 1
                for k, s in enumerate(range(0, 16, stepw)):
                    notes.append(Note(seq[k % len(seq)], t(b, s) + self.jitter(0.004),
                                      self.step * stepw * (1.8 if role == "pick" else 0.9), vel))
            elif role in ("pad", "pad_sc", "strings", "organ"):
                v = _voice(ch, 52, 76, prev)
                prev = v
                for p in v:
                    notes.append(Note(p, t(b, 0), self.bar * 0.98, vel - 15))
            elif role in ("keys", "piano_comp", "gtr_clean"):
                v = _voice(ch, 52, 76, prev)
                prev = v
                if role == "piano_comp":  # jazz: rootless voicing, syncopated stabs
                    v = v[1:] if len(v) > 3 else v
                    rh = [(0, 2), (6, 1.5), (10, 3)] if rng.random() < 0.5 else [(3, 2), (8, 3), (14, 1.5)]
                elif role == "gtr_clean":
                    rh = [(s, 1.5) for s in range(2, 16, 4)] if rng.random() < 0.5 else [(0, 7.5), (8, 7.5)]
                else:
                    rh = [(0, 3), (3, 3), (6, 2), (10, 2), (12, 3)] if rng.random() < 0.5 else \
                        [(s, 1.6) for s in range(0, 16, 2)]
                for s, ln in rh:
                    for j, p in enumerate(v):
                        notes.append(Note(p, t(b, s) + self.jitter(0.003) + 0.006 * j,
                                          self.step * ln, int(np.clip(vel + rng.normal(0, 6), 30, 127))))
            elif role == "riff":
                for k, s in enumerate((0, 3, 6, 10)):
                    p = 60 + lead_scale[(k + b) % len(lead_scale)]
                    notes.append(Note(p, t(b, s) + self.jitter(), self.step * 1.8, vel))
        return notes


def make_song_v2(seed: int, duration: float | None = None, style: str | None = None) -> Song:
    """The v2 symbolic song for ``seed`` (``duration`` < 40 s: one short section)."""
    return SongBuilderV2(seed, duration, style).build()
