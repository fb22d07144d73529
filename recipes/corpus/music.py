"""Song generator: structure, harmony, grooves, bass, accompaniment, sung melody + lyrics.

Why a generator and not random notes: a separator learns from what co-occurs in real
mixes — bass on chord roots under the kick, drums locked to a groove, a pad holding the
same harmony the singer outlines, vocals absent in the intro and doubled in the chorus.
This module only makes symbolic music (times in seconds); it knows nothing about sound.
Everything is drawn from one ``numpy.random.Generator`` so a song is a pure function of
its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from fluid import Note

NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}
PROGRESSIONS = {
    "major": [[0, 4, 5, 3], [5, 3, 0, 4], [0, 3, 4, 3], [1, 4, 0, 5], [0, 5, 3, 4],
              [0, 3, 0, 4], [3, 4, 2, 5], [0, 2, 3, 4], [3, 0, 4, 5]],
    "minor": [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 6], [0, 5, 3, 4], [0, 3, 6, 2],
              [5, 6, 0, 0], [0, 2, 3, 4]],
}
# style -> (tempo range, swing, bass patterns, comp patterns)
STYLES: dict[str, tuple[tuple[int, int], float, list[str], list[str]]] = {
    "rock": ((100, 160), 0.0, ["root8", "kick", "root4"], ["eighths", "halfs"]),
    "pop": ((90, 130), 0.0, ["kick", "root8", "octave"], ["pop", "halfs", "eighths"]),
    "funk": ((90, 120), 0.08, ["synco", "octave"], ["funk", "stabs"]),
    "disco": ((110, 130), 0.0, ["octave", "root8"], ["offbeat", "stabs"]),
    "hiphop": ((70, 100), 0.18, ["kick", "root4"], ["halfs", "stabs"]),
    "reggae": ((70, 95), 0.1, ["walk", "kick"], ["skank"]),
    "shuffle": ((90, 140), 0.33, ["walk", "rootfifth"], ["offbeat", "halfs"]),
    "ballad": ((70, 95), 0.0, ["rootfifth", "root4"], ["arpeggio", "halfs"]),
    "dnb": ((160, 180), 0.0, ["root4", "rootfifth"], ["halfs", "stabs"]),
    "punk": ((150, 180), 0.0, ["root8"], ["eighths"]),
}
# 16-step drum patterns per style: role -> pattern ('x' accent, 'o' normal, '.' ghost)
GROOVES: dict[str, list[dict[str, str]]] = {
    "rock": [{"kick": "x-------x-x-----", "snare": "----x-------x---", "hat": "x-o-x-o-x-o-x-o-"},
             {"kick": "x-----x-x-------", "snare": "----x-------x--.", "ride": "x-o-x-o-x-o-x-o-"}],
    "pop": [{"kick": "x-----x-x-------", "snare": "----x-------x---", "hat": "xoxoxoxoxoxoxoxo"},
            {"kick": "x---x---x---x---", "clap": "----x-------x---", "hat": "--x---x---x---x-"}],
    "funk": [{"kick": "x--x--x---x--x--", "snare": "----x--.-.--x--.", "hat": "xoxoxoxoxoxoxoxo"},
             {"kick": "x-x----x--x-----", "snare": "----x-.-.---x-..", "hat": "xoxoxoxoxoxoxoxo"}],
    "disco": [{"kick": "x---x---x---x---", "snare": "----x-------x---", "hat": "o-o-o-o-o-o-o-o-",
               "ohat": "--x---x---x---x-"}],
    "hiphop": [{"kick": "x------x--x-----", "snare": "----x-------x---", "hat": "x-x-x-x-x-x-x-x-"},
               {"kick": "x--x----x-x---x-", "snare": "----x-------x---", "hat": "xoxoxoxoxoxoxoxo"}],
    "reggae": [{"kick": "--------x-------", "rim": "--------x-------", "hat": "x-o-x-o-x-o-x-o-"}],
    "shuffle": [{"kick": "x-------x-------", "snare": "----x-------x---", "ride": "x-o-x-o-x-o-x-o-"}],
    "ballad": [{"kick": "x-------x-x-----", "rim": "----x-------x---", "hat": "x-o-x-o-x-o-x-o-"},
               {"kick": "x---------x-----", "snare": "----x-------x---", "ride": "x-o-x-o-x-o-x-o-"}],
    "dnb": [{"kick": "x---------x-----", "snare": "----x-------x---", "hat": "x-xox-xox-xox-xo"},
            {"kick": "x-x-------x-----", "snare": "----x--.-.--x---", "hat": "xoxoxoxoxoxoxoxo"}],
    "punk": [{"kick": "x-x-x-x-x-x-x-x-", "snare": "----x-------x---", "hat": "x-x-x-x-x-x-x-x-"},
             {"kick": "x---x-x-x---x-x-", "snare": "----x-------x---", "crash": "x-------x-------"}],
}
GM_DRUM = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "hat": 42, "pedal": 44,
           "ohat": 46, "tom_l": 43, "tom_m": 47, "tom_h": 50, "crash": 49, "ride": 51}
BASS_PROGRAMS = {"default": [32, 33, 34, 35], "funk": [36, 37, 33], "disco": [33, 38, 36],
                 "dnb": [38, 39, 33], "hiphop": [38, 39, 33, 35], "ballad": [32, 33, 35]}
OTHER_ROLES = {
    "pad": [48, 49, 50, 89, 88, 92, 95, 19, 16],
    "comp": [0, 1, 2, 4, 5, 7, 24, 25, 26, 27, 28, 29, 30, 16, 17, 18],
    "arp": [0, 4, 8, 11, 12, 24, 25, 46, 80, 81, 98],
    "riff": [56, 61, 62, 65, 66, 68, 71, 73, 80, 81, 29, 30],
}
BACKING_PROGRAMS = [52, 53, 54]  # GM choir aahs, voice oohs, synth voice
STRUCTURES = [
    [("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 4),
     ("chorus", 8), ("outro", 4)],
    [("intro", 4), ("verse", 8), ("pre", 4), ("chorus", 8), ("verse", 8), ("pre", 4),
     ("chorus", 8), ("outro", 4)],
    [("intro", 8), ("verse", 16), ("chorus", 8), ("break", 4), ("verse", 8), ("chorus", 8),
     ("chorus", 8), ("outro", 4)],
    [("intro", 2), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 16), ("outro", 2)],
]
WORDS = (
    "love heart night light fire rain sky home road dream time day way fall run stay "
    "go know feel need want hold you me my your we our all the a in on to with and "
    "now here there down up out through be free stars moon sea "
    "wind cold gold blue sun rise shine burn cry call lost found "
    "one more last first long slow fast wild true strong heart|beat "
    "fore|ver ne|ver ev|ery to|night bro|ken o|pen si|lence mo|ment lo|ver "
    "sha|dow mid|night su|mmer win|ter ri|ver ci|ty wo|man ba|by sto|ry "
    "ho|ly fee|ling mor|ning dan|cing ca|rry be|lieve a|lone a|gain a|way "
    "to|ge|ther e|ve|ry|thing yes|ter|day "
).split()


@dataclass
class Hit:
    role: str
    start: float
    vel: int


@dataclass
class Syllable:
    text: str  # whole word on its first syllable, "" on continuation syllables
    word_index: int
    pitch: int  # MIDI pitch to sing
    start: float
    dur: float
    beats: float


@dataclass
class Part:
    """One instrument line that is rendered with one GM program."""

    stem: str
    role: str
    program: int
    notes: list[Note]
    pan: float = 0.0
    bend: list[tuple[float, float]] = field(default_factory=list)  # (s, semitones): a lead's pitch expression


@dataclass
class Song:
    seed: int
    style: str
    tempo: float
    key: int
    mode: str
    duration: float
    sections: list[tuple[str, float, float]]
    parts: list[Part] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    melody: list[Syllable] = field(default_factory=list)
    harmony: list[Syllable] = field(default_factory=list)
    vocal_range: str = "low"
    lyrics: list[str] = field(default_factory=list)

    @property
    def key_name(self) -> str:
        return NOTE_NAMES[self.key] + ("" if self.mode == "major" else "m")


def _chord(key: int, mode: str, degree: int, seventh: bool) -> list[int]:
    """Pitch classes (relative to C) of the diatonic triad/seventh on ``degree``."""
    sc = SCALES[mode]
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    return [(key + sc[i % 7] + 12 * (i // 7)) for i in idx]


def _voice(chord: list[int], lo: int, hi: int, prev: list[int] | None) -> list[int]:
    """Place chord tones in [lo, hi], closest to the previous voicing (voice leading)."""
    best, best_cost = None, 1e9
    for inv in range(len(chord)):
        pcs = chord[inv:] + [c + 12 for c in chord[:inv]]
        for octv in range(2, 8):
            v = [p % 12 + 12 * octv + (12 if p % 12 < pcs[0] % 12 else 0) for p in pcs]
            v = sorted(v)
            if v[0] < lo or v[-1] > hi:
                continue
            centre = (lo + hi) / 2
            cost = (abs(np.mean(v) - np.mean(prev)) if prev else abs(np.mean(v) - centre))
            if cost < best_cost:
                best, best_cost = v, cost
    return best if best else sorted(lo + (p - lo) % 12 for p in chord)


def _pattern_steps(pat: str) -> list[tuple[int, int]]:
    vel = {"x": 115, "o": 90, ".": 50}
    return [(i, vel[c]) for i, c in enumerate(pat) if c in vel]


def fit_plan(plan: list[tuple[str, int]], bar: float, want: float, *, min_sections: int) -> None:
    """Shorten (drop the sections before the last) or lengthen (add choruses) `plan` to about `want` s."""
    while sum(b for _, b in plan) * bar > want + 8 * bar and len(plan) > min_sections:
        plan.pop(-2)
    while sum(b for _, b in plan) * bar < want - 8 * bar:
        plan.insert(-1, ("chorus", 8))


def lay_out(plan: list[tuple[str, int]], bar: float) -> tuple[list, list, int]:
    """Sections as (name, start s, end s), the same as (name, first bar, bars), and the total bars."""
    sections, bars = [], []
    b0 = 0
    for name, nb in plan:
        sections.append((name, b0 * bar, (b0 + nb) * bar))
        bars.append((name, b0, nb))
        b0 += nb
    return sections, bars, b0


class SongBuilder:
    """Builds one :class:`Song`; each ``_make_*`` method writes one layer."""

    def __init__(self, seed: int, duration: float | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.target = duration

    # --- timing helpers -------------------------------------------------------------
    def t(self, bar: int, step: float) -> float:
        """Seconds of 16th-step ``step`` in ``bar`` with swing applied to odd 8ths/16ths."""
        s = step
        frac = s - int(s)
        if int(s) % 2 == 1 and frac == 0:
            s = s + self.swing
        return (bar * 16 + s) * self.step

    def jitter(self, sd: float = 0.004) -> float:
        return float(self.rng.normal(0.0, sd))

    def build(self) -> Song:
        rng = self.rng
        self.style = str(rng.choice(list(STYLES)))
        (tlo, thi), self.swing, bass_pats, comp_pats = STYLES[self.style]
        tempo = float(rng.integers(tlo, thi + 1))
        self.step = 60.0 / tempo / 4
        bar = 16 * self.step
        mode = str(rng.choice(["major", "minor"], p=[0.6, 0.4]))
        key = int(rng.integers(0, 12))
        if self.target is not None and self.target < 40:
            # short song for tests/demos: everything plays from bar 0
            n = int(np.ceil(self.target / bar)) + 1
            plan = [("chorus", n)]
        else:
            plan = list(STRUCTURES[int(rng.integers(len(STRUCTURES)))])
            want = self.target if self.target else float(rng.uniform(120, 240))
            fit_plan(plan, bar, want, min_sections=3)
        sections, bars, b0 = lay_out(plan, bar)
        duration = self.target if self.target else b0 * bar + 2.0
        song = Song(self.seed, self.style, tempo, key, mode, float(duration), sections)
        # harmony: one progression per section type, one chord per bar
        progs = {n: PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
                 for n in ("intro", "verse", "pre", "chorus", "bridge", "break", "outro")}
        seventh = bool(rng.random() < (0.6 if self.style in ("funk", "shuffle") else 0.2))
        self.chords: list[list[int]] = []
        self.bar_section: list[str] = []
        for name, _b, nb in bars:
            prog = progs[name]
            for i in range(nb):
                deg = prog[i % len(prog)]
                self.chords.append(_chord(key, mode, deg, seventh))
                self.bar_section.append(name)
        self.n_bars = b0
        self.bar = bar
        self.scale = [(key + s) % 12 for s in SCALES[mode]]
        self.active = self._arrangement(bars)
        self._make_drums(song)
        self._make_bass(song, str(rng.choice(bass_pats)))
        self._make_others(song, comp_pats)
        self._make_vocals(song)
        return song

    def _arrangement(self, bars: list[tuple[str, int, int]]) -> dict[str, list[bool]]:
        """Which stems play in each bar: intros without vocals, breakdowns without drums."""
        rng = self.rng
        act = {s: [] for s in ("drums", "bass", "other", "vocals", "backing")}
        short = len(bars) == 1
        for name, _, nb in bars:
            on = {"drums": True, "bass": True, "other": True, "vocals": True, "backing": False}
            if not short:
                if name == "intro":
                    on["vocals"] = False
                    on["drums"] = bool(rng.random() < 0.5)
                    on["bass"] = bool(rng.random() < 0.6)
                elif name in ("bridge", "break"):
                    on["drums"] = bool(rng.random() < 0.4)
                    on["vocals"] = bool(rng.random() < 0.5)
                elif name == "outro":
                    on["vocals"] = bool(rng.random() < 0.3)
                elif name == "chorus":
                    on["backing"] = bool(rng.random() < 0.7)
            else:
                on["backing"] = True
            for s in act:
                act[s] += [on[s]] * nb
        return act

    # --- layers ---------------------------------------------------------------------
    def _make_drums(self, song: Song) -> None:
        rng = self.rng
        grooves = GROOVES[self.style]
        g_verse = grooves[int(rng.integers(len(grooves)))]
        g_chorus = grooves[int(rng.integers(len(grooves)))]
        prev = None
        for b in range(self.n_bars):
            sec = self.bar_section[b]
            if not self.active["drums"][b]:
                prev = sec
                continue
            g = g_chorus if sec == "chorus" else g_verse
            last_of_section = b + 1 >= self.n_bars or self.bar_section[b + 1] != sec
            fill = last_of_section and len(self.chords) > 4 and rng.random() < 0.7
            for role, pat in g.items():
                for st, vel in _pattern_steps(pat):
                    if fill and st >= 8 and role in ("snare", "kick", "rim", "clap"):
                        continue
                    v = int(np.clip(vel + rng.normal(0, 8), 20, 127))
                    song.hits.append(Hit(role, max(0.0, self.t(b, st) + self.jitter()), v))
            if fill:
                toms = ["snare", "tom_h", "tom_m", "tom_l"]
                for st in range(8, 16):
                    if rng.random() < 0.8:
                        role = toms[min(3, (st - 8) // 2)] if rng.random() < 0.6 else "snare"
                        song.hits.append(Hit(role, self.t(b, st) + self.jitter(),
                                             int(rng.integers(70, 120))))
            if sec != prev:
                song.hits.append(Hit("crash", self.t(b, 0), 110))
            prev = sec
        # the short (test) song has one section: make sure it has no empty drum stem
        song.hits.sort(key=lambda h: h.start)
        song.hits = [h for h in song.hits if h.start < song.duration]

    def _make_bass(self, song: Song, pattern: str) -> None:
        rng = self.rng
        progs = BASS_PROGRAMS.get(self.style, BASS_PROGRAMS["default"])
        program = int(rng.choice(progs))
        notes: list[Note] = []
        kick = GROOVES[self.style][0].get("kick", "x-------x-------")
        legato = 0.9 if pattern in ("walk", "rootfifth", "root4") else 0.6
        for b in range(self.n_bars):
            if not self.active["bass"][b]:
                continue
            ch = self.chords[b]
            root = 28 + (ch[0] - 28) % 12  # E1..D#2
            if root < 33 and rng.random() < 0.5:
                root += 12
            fifth = root + 7
            nxt = self.chords[(b + 1) % len(self.chords)][0]
            seq: list[tuple[float, float, int]] = []  # (step, len_steps, pitch)
            if pattern == "root8":
                seq = [(s, 2, root) for s in range(0, 16, 2)]
            elif pattern == "root4":
                seq = [(s, 4, root if s != 12 or rng.random() < 0.5 else fifth)
                       for s in range(0, 16, 4)]
            elif pattern == "rootfifth":
                seq = [(0, 8, root), (8, 8, fifth if rng.random() < 0.7 else root + 12)]
            elif pattern == "octave":
                seq = [(s, 2, root + (12 if (s // 2) % 2 else 0)) for s in range(0, 16, 2)]
            elif pattern == "kick":
                steps = [i for i, c in enumerate(kick) if c != "-"] or [0, 8]
                seq = [(s, 2, root) for s in steps]
            elif pattern == "synco":
                for s in (0, 3, 6, 8, 10, 11, 14):
                    seq.append((s, 1.5, root if s in (0, 8) else
                                int(rng.choice([root, root + 12, fifth, root + 10]))))
            elif pattern == "walk":
                tones = [root, root + (ch[1] - ch[0]) % 12, fifth]
                approach = 28 + (nxt - 28) % 12
                approach += -1 if rng.random() < 0.5 else 1
                seq = [(0, 4, tones[0]), (4, 4, tones[1]), (8, 4, tones[2]), (12, 4, approach)]
            for st, ln, p in seq:
                start = self.t(b, st) + self.jitter()
                notes.append(Note(int(p), max(0.0, start), ln * self.step * legato,
                                  int(np.clip(rng.normal(95, 10), 50, 127))))
        song.parts.append(Part("bass", pattern, program, notes, float(rng.uniform(-0.1, 0.1))))

    def _make_others(self, song: Song, comp_pats: list[str]) -> None:
        rng = self.rng
        n = int(rng.integers(1, 5))
        roles = ["pad" if rng.random() < 0.5 else "comp"]
        pool = ["pad", "comp", "arp", "riff"]
        while len(roles) < n:
            roles.append(str(rng.choice(pool)))
        pans = np.linspace(-0.7, 0.7, len(roles)) if len(roles) > 1 else [0.0]
        pans = list(rng.permutation(pans))
        for i, role in enumerate(roles):
            program = int(rng.choice(OTHER_ROLES[role]))
            comp = str(rng.choice(comp_pats))
            notes = self._other_notes(role, comp)
            song.parts.append(Part("other", f"{role}:{comp}" if role == "comp" else role,
                                   program, notes, float(pans[i])))

    def _other_notes(self, role: str, comp: str) -> list[Note]:
        rng = self.rng
        notes: list[Note] = []
        prev = None
        lo, hi = (52, 76) if role != "riff" else (60, 84)
        # a part may sit out some sections (more realistic arrangements)
        sits_out = {s for s in ("intro", "verse", "bridge") if rng.random() < 0.25}
        motif = [int(x) for x in rng.integers(0, 7, size=4)]
        motif_rhythm = sorted(rng.choice(np.arange(0, 16, 2), size=4, replace=False))
        for b in range(self.n_bars):
            if not self.active["other"][b] or self.bar_section[b] in sits_out and len(
                    self.chords) > 8:
                continue
            v = _voice(self.chords[b], lo, hi, prev)
            prev = v
            vel = int(np.clip(rng.normal(80, 8), 40, 120))
            if role == "pad":
                for p in v:
                    notes.append(Note(p, self.t(b, 0), self.bar * 0.98, vel - 10))
            elif role == "arp":
                seq = v + [v[0] + 12] + v[1:][::-1]
                step = 2 if rng.random() < 0.7 else 1
                for k, s in enumerate(range(0, 16, step)):
                    notes.append(Note(seq[k % len(seq)], self.t(b, s) + self.jitter(),
                                      self.step * step * 0.9, vel))
            elif role == "riff":
                for k, s in enumerate(motif_rhythm):
                    deg = motif[k] + (1 if b % 2 and k == 3 else 0)
                    p = 60 + self.scale[deg % 7] + (12 if self.scale[deg % 7] < 5 else 0)
                    notes.append(Note(p, self.t(b, s) + self.jitter(), self.step * 1.8, vel))
            else:  # comping rhythms
                rhythm = {
                    "eighths": [(s, 1.6) for s in range(0, 16, 2)],
                    "halfs": [(0, 7.5), (8, 7.5)],
                    "pop": [(0, 3), (3, 3), (6, 2), (10, 2), (12, 3)],
                    "funk": [(0, 1), (3, 1), (6, 1), (7, 1), (10, 1), (14, 1)],
                    "stabs": [(0, 1.5), (6, 1.5), (10, 1.5)],
                    "offbeat": [(s, 1.5) for s in range(2, 16, 4)],
                    "skank": [(4, 1.2), (12, 1.2)],
                    "arpeggio": [(s, 4) for s in range(0, 16, 4)],
                }[comp]
                for k, (s, ln) in enumerate(rhythm):
                    if comp == "arpeggio":
                        chord = [v[k % len(v)]]
                    else:
                        chord = v
                    for j, p in enumerate(chord):
                        notes.append(Note(p, self.t(b, s) + self.jitter(0.003) + 0.008 * j,
                                          self.step * ln, int(np.clip(vel + rng.normal(0, 6),
                                                                      30, 127))))
        return notes

    def _lyric_line(self, n_syl: int) -> list[list[str]]:
        """Words (as syllable lists) whose syllable count is exactly ``n_syl``."""
        words: list[list[str]] = []
        left = n_syl
        while left > 0:
            w = str(self.rng.choice(WORDS)).split("|")
            if len(w) <= left:
                words.append(w)
                left -= len(w)
        return words

    def _make_vocals(self, song: Song) -> None:
        rng = self.rng
        song.vocal_range = str(rng.choice(["low", "high"]))
        lo, hi = (50, 67) if song.vocal_range == "low" else (57, 74)
        cur = int(rng.integers(lo + 3, hi - 3))
        chorus_lines: list[list[list[str]]] = []
        line_no = 0
        b = 0
        word_idx = 0
        while b < self.n_bars:
            sec = self.bar_section[b]
            if not self.active["vocals"][b] or b + 1 >= self.n_bars:
                b += 1
                continue
            # a phrase covers two bars; syllables on an 8th grid of its first 1.5 bars
            n_syl = int(rng.integers(4, 10))
            if sec == "chorus" and len(chorus_lines) >= 2:
                words = chorus_lines[line_no % len(chorus_lines)]
                n_syl = sum(len(w) for w in words)
            else:
                words = self._lyric_line(n_syl)
                if sec == "chorus":
                    chorus_lines.append(words)
            line_no += 1
            grid = np.arange(0, 24, 2)
            first = int(rng.choice([0, 2, 4]))
            pos = sorted(rng.choice(grid[grid >= first][:-1], size=min(n_syl, len(
                grid[grid >= first]) - 1), replace=False))
            n_syl = len(pos)
            syl_list = [(w_i, s_i, syl) for w_i, w in enumerate(words) for s_i, syl in
                        enumerate(w)][:n_syl]
            song.lyrics.append(" ".join("".join(w) for w in words))
            for k, (st, (w_i, s_i, _syl)) in enumerate(zip(pos, syl_list)):
                end = pos[k + 1] if k + 1 < n_syl else min(st + 8, 30)
                ln = max(1, end - st)
                bar_k = b + int(st // 16)
                chord = self.chords[min(bar_k, self.n_bars - 1)]
                strong = st % 4 == 0
                cur += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
                cur = int(np.clip(cur, lo, hi))
                pcs = [c % 12 for c in chord] if strong else self.scale
                cand = [p for p in range(lo, hi + 1) if p % 12 in pcs]
                cur = min(cand, key=lambda p: abs(p - cur))
                start = self.t(b, st)
                word = "".join(words[w_i]) if s_i == 0 else ""
                song.melody.append(Syllable(word, word_idx + w_i, cur, start,
                                            ln * self.step * 0.95, ln / 4))
                if self.active["backing"][bar_k]:
                    third = [p for p in range(cur + 3, cur + 5) if p % 12 in self.scale]
                    hp = third[0] if third else cur + 4
                    song.harmony.append(Syllable(word, word_idx + w_i, hp, start,
                                                 ln * self.step * 0.95, ln / 4))
            word_idx += len(words)
            b += 2
        # backing choir pad (GM voice patches) holds chord tones where backing is active
        program = int(rng.choice(BACKING_PROGRAMS))
        notes: list[Note] = []
        for bb in range(self.n_bars):
            if self.active["backing"][bb] and self.active["vocals"][bb]:
                for p in _voice(self.chords[bb], 55, 72, None)[:3]:
                    notes.append(Note(p, self.t(bb, 0), self.bar * 0.97, 70))
        if notes:
            song.parts.append(Part("vocals", "choir", program, notes, 0.0))


def make_song(seed: int, duration: float | None = None) -> Song:
    """The symbolic song for ``seed``; ``duration`` (s) forces a short one-section song."""
    return SongBuilder(seed, duration).build()
