"""Sung vocals with words: festival's singing mode and espeak-ng driven note by note.

Why two engines: the vocals stem must contain sung melodies with lyrics (formants,
consonants, vibrato-free but pitched vowels), and a separator that only ever heard one
synthetic singer would learn that singer. Festival's ``text2wave -mode singing`` takes a
score (notes + beats + words) directly. espeak-ng has no singing mode, so we call its C
library in-process word by word with a flat intonation (range 0), choose its base-pitch
parameter from a per-voice calibration, fine-tune the pitch by resampling and fit the
word into its notes with the speaking rate. Both are deterministic.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
from fractions import Fraction
from functools import lru_cache
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
from fluid import SR
from music import Syllable
from scipy.signal import resample_poly

_FLATS = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]


def _note_name(midi: int) -> str:
    return f"{_FLATS[midi % 12]}{midi // 12 - 1}"


def _to_sr(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == SR:
        return x.astype(np.float32)
    g = np.gcd(sr, SR)
    return resample_poly(x, SR // g, sr // g).astype(np.float32)


# ----------------------------------------------------------------------------- festival
# festival's singing mode sings one octave below the written note (measured on
# kal/ked with daisy.xml), so the score is written an octave up.
_FESTIVAL_OCTAVE = 12


def festival_score(melody: list[Syllable], tempo: float) -> tuple[str, float]:
    """SINGING-markup XML for ``melody``; returns (xml, start time of the first note)."""
    beat = 60.0 / tempo
    words: list[tuple[str, list[int], list[float], float]] = []  # word, pitches, beats, rest
    for i, s in enumerate(melody):
        nxt = melody[i + 1].start if i + 1 < len(melody) else s.start + s.dur
        gap = nxt - s.start
        if gap <= s.dur * 1.3 + 1e-6:
            b, rest = gap / beat, 0.0
        else:
            b, rest = s.dur / beat, (gap - s.dur) / beat
        if s.text or not words:
            words.append((s.text or "la", [s.pitch], [b], rest))
        else:  # continuation syllable of the current word
            w, p, bb, r = words[-1]
            words[-1] = (w, p + [s.pitch], bb + [b], rest)
    lines = ['<?xml version="1.0"?>',
             '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
             '"Singing.v0_1.dtd" []>', f'<SINGING BPM="{tempo:.3f}">']
    for w, ps, bs, rest in words:
        notes = ",".join(_note_name(p + _FESTIVAL_OCTAVE) for p in ps)
        beats = ",".join(f"{b:.4f}" for b in bs)
        lines.append(f'<DURATION BEATS="{beats}"><PITCH NOTE="{notes}">{escape(w)}'
                     f'</PITCH></DURATION>')
        if rest > 1e-3:
            lines.append(f'<REST BEATS="{rest:.4f}"></REST>')
    lines.append("</SINGING>")
    return "\n".join(lines), melody[0].start if melody else 0.0


def _onset(x: np.ndarray, sr: int) -> int:
    """First sample whose 10 ms frame rises above -40 dB of the peak."""
    hop = sr // 100
    n = len(x) // hop
    if n == 0:
        return 0
    e = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    idx = np.nonzero(e > e.max() * 0.01)[0]
    return int(idx[0] * hop) if len(idx) else 0


def sing_festival(melody: list[Syllable], tempo: float, voice: str, total: float,
                  phrase_gap: float = 1.5) -> np.ndarray:
    """Render ``melody`` with a festival voice into a mono float32 track of ``total`` s.

    The melody is cut into groups at rests longer than ``phrase_gap`` seconds and each
    group is one festival run placed at its first note: festival drops leading rests, and
    re-anchoring every group keeps the voice on the beat for a whole song.
    """
    if shutil_which("text2wave") is None:
        raise RuntimeError("festival's text2wave missing; run recipes/corpus/install-deps.sh")
    out = np.zeros(int(round(total * SR)), dtype=np.float32)
    groups: list[list[Syllable]] = []
    for s in melody:
        if groups and s.start - (groups[-1][-1].start + groups[-1][-1].dur) < phrase_gap:
            groups[-1].append(s)
        else:
            groups.append([s])
    # One festival process renders all groups (one file each) to save start-up time.
    # festival stops at the first group it cannot sing (a word whose syllable count in
    # its lexicon differs from our notes, e.g. "every" = 3); that group is sung again
    # with the offending words given extra notes, then the batch resumes after it.
    with tempfile.TemporaryDirectory() as td:
        wavs: list[np.ndarray | None] = [None] * len(groups)
        todo = list(range(len(groups)))
        while todo:
            done = _festival_batch([groups[i] for i in todo], tempo, voice, td)
            for k, w in enumerate(done):
                wavs[todo[k]] = w
            if len(done) == len(todo):
                break
            bad = todo[len(done)]
            wavs[bad] = _festival_repair(groups[bad], tempo, voice, td)
            todo = todo[len(done) + 1:]
        for g, y in zip(groups, wavs):
            if y is None:
                continue
            a = int(round(g[0].start * SR))
            y = y[: max(0, len(out) - a)]
            out[a:a + len(y)] += y
    return out


def _festival_batch(groups: list[list[Syllable]], tempo: float, voice: str,
                    td: str) -> list[np.ndarray]:
    """Sing ``groups`` in one festival run; returns the waves up to the first failure."""
    scm = [f"(voice_{voice})",
           "(define (corpus_save utt) (utt.save.wave utt corpus_out 'riff) utt)",
           "(set! tts_hooks (list utt.synth corpus_save))"]
    for g_i, g in enumerate(groups):
        xml, _ = festival_score(g, tempo)
        path = os.path.join(td, f"g{g_i}.xml")
        with open(path, "w") as f:
            f.write(xml)
        scm.append(f'(set! corpus_out "{td}/g{g_i}.wav")')
        scm.append(f'(tts_file "{path}" \'singing)')
    script = os.path.join(td, "run.scm")
    with open(script, "w") as f:
        f.write("\n".join(scm) + "\n")
    subprocess.run(["festival", "--batch", script], capture_output=True, text=True)
    res = []
    for g_i in range(len(groups)):
        wav = f"{td}/g{g_i}.wav"
        if not os.path.exists(wav):
            break
        x, sr = sf.read(wav, dtype="float32")
        os.remove(wav)
        res.append(_to_sr(x[_onset(x, sr):], sr))
    return res


def _split_last(syls: list[Syllable]) -> list[Syllable]:
    """Give a word one more note by halving its last syllable."""
    s = syls[-1]
    a = Syllable(s.text if len(syls) == 1 else "", s.word_index, s.pitch, s.start,
                 s.dur / 2, s.beats / 2)
    b = Syllable("", s.word_index, s.pitch, s.start + s.dur / 2, s.dur / 2, s.beats / 2)
    return syls[:-1] + [a, b]


def _festival_repair(group: list[Syllable], tempo: float, voice: str,
                     td: str) -> np.ndarray | None:
    """Re-sing a failed group word by word, adding notes to words festival rejects."""
    words: list[list[Syllable]] = []
    for s in group:
        if s.text or not words:
            words.append([s])
        else:
            words[-1].append(s)
    fixed: list[Syllable] = []
    for w in words:
        cand = w
        for _ in range(3):
            if _festival_batch([cand], tempo, voice, td):
                break
            cand = _split_last(cand)
        else:
            cand = [Syllable("la" if i == 0 else "", x.word_index, x.pitch, x.start, x.dur,
                             x.beats) for i, x in enumerate(w)][:1]
        fixed += cand
    got = _festival_batch([fixed], tempo, voice, td)
    return got[0] if got else None


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


# ----------------------------------------------------------------------------- espeak-ng
class _Espeak:
    """In-process libespeak-ng (synchronous mode): ~1 ms a word instead of a process.

    espeak keeps generator state between calls (the same word twice differs), so a
    rendering is reproducible only as one fixed sequence of calls in a fresh process:
    ``render.py`` renders every song in its own worker process for that reason.
    """

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as exc:
            raise RuntimeError("libespeak-ng missing; run recipes/corpus/install-deps.sh"
                               ) from exc
        L = self.lib
        L.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                        ctypes.c_int]
        self.sr = L.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
        if self.sr <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                              ctypes.c_void_p)

        def cb(wav, n, events):  # noqa: ANN001
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._cb = CB(cb)
        L.espeak_SetSynthCallback(self._cb)
        L.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        L.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        L.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                   ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                   ctypes.c_void_p, ctypes.c_void_p]
        self.voice = None

    def say(self, text: str, voice: str, pitch: int, rate: int) -> np.ndarray:
        L = self.lib
        # set the voice on every call: it resets the wave generator (flutter phase etc.),
        # without which a word depends on what was said before it
        if L.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng voice {voice} missing")
        L.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
        L.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        L.espeak_SetParameter(4, 0, 0)  # espeakRANGE: monotone
        self._chunks = []
        b = text.encode() + b"\0"
        L.espeak_Synth(b, len(b), 0, 1, 0, 0, None, None)
        L.espeak_Synchronize()
        x = np.concatenate(self._chunks) if self._chunks else np.zeros(1, np.int16)
        return x.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def _espeak() -> _Espeak:
    return _Espeak()


def _f0(x: np.ndarray, sr: int) -> float:
    """Median YIN pitch of the loud frames (used for calibration only)."""
    n = int(0.05 * sr)
    lo, hi = int(sr / 700), int(sr / 60)
    vals = []
    thr = 0.3 * np.max(np.abs(x)) if len(x) else 0.0
    for s in range(0, len(x) - n - hi, n // 2):
        w = x[s:s + n]
        if np.max(np.abs(w)) < thr:
            continue
        d = np.array([np.sum((w[: n - hi] - w[t:t + n - hi]) ** 2) for t in range(hi)])
        cmnd = d[1:] * np.arange(1, hi) / np.maximum(np.cumsum(d[1:]), 1e-12)
        cand = np.nonzero(cmnd[lo:] < 0.2)[0]
        if len(cand):
            t = lo + cand[0]
            while t + 1 < len(cmnd) and cmnd[t + 1] < cmnd[t]:
                t += 1
            vals.append(sr / (t + 1))
    return float(np.median(vals)) if vals else float("nan")


@lru_cache(maxsize=16)
def _calibration(voice: str) -> tuple[np.ndarray, np.ndarray]:
    """Measured f0 (Hz) of espeak's pitch parameter 0..100 for ``voice``."""
    e = _espeak()
    ps = np.arange(0, 101, 10)
    f = np.array([_f0(e.say("aah", voice, int(p), 120), e.sr) for p in ps])
    ok = np.isfinite(f)  # very low settings of male voices fall below the 60 Hz floor
    ps, f = ps[ok], np.maximum.accumulate(f[ok])  # monotone for interpolation
    if len(ps) < 2:
        raise RuntimeError(f"could not calibrate espeak-ng voice {voice}")
    return ps, f


def sing_espeak(melody: list[Syllable], voice: str, total: float) -> np.ndarray:
    """Render ``melody`` word by word with espeak-ng at the notes' pitches."""
    e = _espeak()
    ps, fs = _calibration(voice)
    out = np.zeros(int(round(total * SR)), dtype=np.float32)
    i = 0
    cache: dict[tuple[str, int, int], np.ndarray] = {}
    while i < len(melody):
        s = melody[i]
        j = i + 1
        while j < len(melody) and not melody[j].text:
            j += 1
        word = s.text or "la"
        dur = melody[j - 1].start + melody[j - 1].dur - s.start
        hz = 440.0 * 2 ** ((s.pitch - 69) / 12)
        # keep the singer in its own range: sing an octave down/up rather than chipmunk
        while hz > fs[-1] * 1.12:
            hz /= 2
        while hz < fs[0] / 1.12:
            hz *= 2
        p = int(np.clip(np.interp(hz, fs, ps), 0, 100))
        got = float(np.interp(p, ps, fs))
        ratio = hz / got  # fine-tune by resampling (changes length by the same ratio)
        rate = 175
        key = (word, p, rate)
        if key not in cache:
            cache[key] = e.say(word, voice, p, rate)
        x = cache[key]
        # slow the speaking rate so that the word fills its notes (sung, not spoken)
        natural = len(x) / e.sr / ratio
        if natural < dur * 0.8:
            rate = int(np.clip(175 * natural / (dur * 0.9), 80, 175))
            key = (word, p, rate)
            if key not in cache:
                cache[key] = e.say(word, voice, p, rate)
            x = cache[key]
        x = x[_onset(x, e.sr):]
        # small-integer ratio keeps the polyphase filter short (pitch error < 6 cents)
        fr = Fraction(SR / (ratio * e.sr)).limit_denominator(160)
        y = resample_poly(x, fr.numerator, fr.denominator).astype(np.float32)
        n = min(len(y), int((dur + 0.15) * SR))
        y = y[:n]
        fade = min(n, int(0.03 * SR))
        if fade:
            y[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        a = int(round(s.start * SR))
        y = y[: max(0, len(out) - a)]
        out[a:a + len(y)] += y
        i = j
    return out
