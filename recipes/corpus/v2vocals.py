"""Corpus v2 singers: speech from festival/espeak-ng re-sung along the melody by WORLD.

Why: v1's singers are festival's diphone singing mode and espeak words resampled to a
pitch: flat, robotic notes that a separator learns to spot and real singers never make.
Here every word is *spoken* once by a TTS voice, analysed with the WORLD vocoder
(``pyworld``: f0, spectral envelope, aperiodicity), and re-synthesised phrase by phrase
with a sung pitch contour: glides into notes, delayed vibrato, slow drift and jitter,
consonants leading the beat, stretched vowels, optional breaths before phrases, and a
per-singer formant shift and breathiness. The same machinery sings doubles (another
take: different jitter) and harmony lines, and raps (the speech's own contour, scaled).

Determinism: espeak-ng and festival run as fresh subprocesses (espeak's in-process state
made v1 need one process per song); WORLD and numpy are pure functions. So a word's
audio does not depend on what a worker rendered before, and worker processes can be
reused across songs.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from fluid import SR
from music import Syllable
from scipy.signal import lfilter, resample_poly

with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
    warnings.simplefilter("ignore")
    import pyworld

FP = 5.0  # WORLD frame period, ms
_FPS = 1000.0 / FP


@dataclass(frozen=True)
class WordFeat:
    f0: np.ndarray  # (frames,) Hz, 0 = unvoiced
    sp: np.ndarray  # (frames, bins) spectral envelope
    ap: np.ndarray  # (frames, bins) aperiodicity
    fs: int


@dataclass(frozen=True)
class Singer:
    """How one singer of one song sings (drawn per song; recorded in the manifest)."""

    engine: str  # festival | espeak
    ident: str
    formant: float  # spectral-envelope stretch (>1: smaller vocal tract)
    breathy: float  # 0..1 extra aperiodicity
    vib_rate: float  # Hz
    vib_depth: float  # cents
    glide: float  # s, portamento time constant
    jitter: float  # s, timing s.d.


def _speak_espeak(word: str, ident: str) -> tuple[np.ndarray, int]:
    res = subprocess.run(["espeak-ng", "-v", ident, "-s", "140", "--stdout", word],
                         capture_output=True, check=True)
    x, fs = sf.read(io.BytesIO(res.stdout), dtype="float64")
    return x, fs


def _speak_festival(words: tuple[str, ...], ident: str) -> dict[str, tuple[np.ndarray, int]]:
    """All ``words`` in one festival run (start-up costs more than a word)."""
    out: dict[str, tuple[np.ndarray, int]] = {}
    with tempfile.TemporaryDirectory() as td:
        scm = [f"(voice_{ident})"]
        for i, w in enumerate(words):
            scm.append(f'(utt.save.wave (utt.synth (Utterance Text "{w}")) "{td}/{i}.wav" '
                       f"'riff)")
        path = os.path.join(td, "run.scm")
        with open(path, "w") as f:
            f.write("\n".join(scm) + "\n")
        subprocess.run(["festival", "--batch", path], capture_output=True, check=True)
        for i, w in enumerate(words):
            p = f"{td}/{i}.wav"
            if os.path.exists(p):
                x, fs = sf.read(p, dtype="float64")
                out[w] = (x, fs)
    return out


def _analyse(x: np.ndarray, fs: int) -> WordFeat:
    # trim silence (frames 40 dB under the peak) so that words start on their onset
    hop = fs // 200
    n = len(x) // hop
    e = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)) if n else np.ones(1)
    on = np.nonzero(e > e.max() * 0.01)[0]
    if len(on):
        x = x[max(0, on[0] * hop - hop): (on[-1] + 2) * hop]
    x = np.ascontiguousarray(x / max(np.max(np.abs(x)), 1e-6) * 0.5)
    f0, t = pyworld.dio(x, fs, f0_floor=60.0, f0_ceil=700.0, frame_period=FP)
    f0 = pyworld.stonemask(x, f0, t, fs)
    sp = pyworld.cheaptrick(x, f0, t, fs)
    ap = pyworld.d4c(x, f0, t, fs)
    return WordFeat(f0, sp, ap, fs)


_FEAT: dict[tuple[str, str], WordFeat] = {}
_SPOKEN: dict[tuple[str, str], tuple[np.ndarray, int]] = {}


def word_features(engine: str, ident: str, word: str, vocab: tuple[str, ...]) -> WordFeat:
    """WORLD features of ``word`` spoken by a voice (cached for the worker's life).

    festival speaks the whole vocabulary in one run the first time a voice is needed
    (its start-up costs more than a word); the analysis is done per word, on demand.
    """
    key = (ident, word)
    if key in _FEAT:
        return _FEAT[key]
    if engine == "festival":
        if (ident, "la") not in _SPOKEN:
            for w, xs in _speak_festival(tuple(sorted(set(vocab) | {"la"})), ident).items():
                _SPOKEN[(ident, w)] = xs
        if key not in _SPOKEN:
            _SPOKEN.update({(ident, w): xs for w, xs in _speak_festival((word,), ident).items()})
        x, fs = _SPOKEN.get(key, _SPOKEN[(ident, "la")])  # unsayable: sing "la"
    else:
        x, fs = _speak_espeak(word, ident)
    _FEAT[key] = _analyse(x, fs)
    return _FEAT[key]


def _formant_warp(sp: np.ndarray, alpha: float) -> np.ndarray:
    """sp'(f) = sp(f / alpha): alpha > 1 moves formants up (smaller singer)."""
    if abs(alpha - 1) < 1e-3:
        return sp
    bins = sp.shape[1]
    src = np.clip(np.arange(bins) / alpha, 0, bins - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, bins - 1)
    w = src - i0
    return sp[:, i0] * (1 - w) + sp[:, i1] * w


def _stretch_index(f0: np.ndarray, n_target: int, lead: int) -> np.ndarray:
    """Frame indices that play a syllable in ``n_target`` frames.

    Unvoiced frames at the start (consonants) keep their natural speed (``lead`` of them
    sound before the note); the voiced rest is stretched or squeezed to fill the note.
    """
    n = len(f0)
    voiced = np.nonzero(f0 > 0)[0]
    if len(voiced) == 0 or n_target <= 0:
        return np.linspace(0, n - 1, max(n_target, 1)).round().astype(int)
    c = min(int(voiced[0]), n - 1)  # consonant frames before the vowel
    tail = n - 1 - int(voiced[-1])  # unvoiced frames after it (final consonant)
    tail = min(tail, 12)
    body = max(n_target - c - tail, 1)
    v_idx = np.linspace(c, n - 1 - tail, body)
    return np.concatenate([np.arange(c), v_idx, np.arange(n - tail, n)]).round().astype(int)


def sing_line(melody: list[Syllable], singer: Singer, total: float, rng: np.random.Generator,
              vocab: tuple[str, ...], detune_cents: float = 0.0, rap: bool = False,
              breaths: bool = True) -> np.ndarray:
    """Sing ``melody`` (syllables with words) into a mono float32 track of ``total`` s."""
    out = np.zeros(int(round(total * SR)), dtype=np.float32)
    if not melody:
        return out
    # phrases: runs of syllables with gaps < 0.35 s are synthesised in one WORLD call
    phrases: list[list[Syllable]] = [[melody[0]]]
    for s in melody[1:]:
        p = phrases[-1][-1]
        if s.start - (p.start + p.dur) < 0.35:
            phrases[-1].append(s)
        else:
            phrases.append([s])
    for ph in phrases:
        y, fs, t0 = _sing_phrase(ph, singer, rng, vocab, detune_cents, rap, breaths)
        if fs != SR:
            g = np.gcd(fs, SR)
            y = resample_poly(y, SR // g, fs // g)
        a = int(round(t0 * SR))
        if a < 0:
            y, a = y[-a:], 0
        y = y[: max(0, len(out) - a)].astype(np.float32)
        out[a:a + len(y)] += y
    return out


def _sing_phrase(ph: list[Syllable], singer: Singer, rng: np.random.Generator,
                 vocab: tuple[str, ...], detune: float, rap: bool,
                 breaths: bool) -> tuple[np.ndarray, int, float]:
    # words of the phrase: a word = first syllable with text + its continuation syllables
    words: list[list[Syllable]] = []
    for s in ph:
        if s.text or not words:
            words.append([s])
        else:
            words[-1].append(s)
    feats = [word_features(singer.engine, singer.ident, w[0].text or "la", vocab)
             for w in words]
    fs = feats[0].fs
    lead_s = 0.08
    breath = breaths and not rap and rng.random() < 0.6
    pre = (float(rng.uniform(0.18, 0.35)) if breath else 0.0) + lead_s
    t0 = ph[0].start - pre
    t_end = ph[-1].start + ph[-1].dur + 0.25
    nf = int((t_end - t0) * _FPS) + 1
    bins = feats[0].sp.shape[1]
    f0 = np.zeros(nf)
    sp = np.full((nf, bins), 1e-12)
    ap = np.ones((nf, bins))
    target = np.zeros(nf)  # sung pitch (Hz) wherever a note is held
    for w, ft in zip(words, feats):
        # split the spoken word evenly into its syllables
        cuts = np.linspace(0, len(ft.f0), len(w) + 1).round().astype(int)
        for k, s in enumerate(w):
            seg = slice(cuts[k], max(cuts[k + 1], cuts[k] + 1))
            sf0, ssp, sap = ft.f0[seg], ft.sp[seg], ft.ap[seg]
            start = s.start + float(rng.normal(0, singer.jitter))
            n_note = max(int(s.dur * _FPS), 4)
            voiced = np.nonzero(sf0 > 0)[0]
            c = int(voiced[0]) if len(voiced) else 0
            lead = min(c, int(lead_s * _FPS))
            a = int((start - t0) * _FPS) - lead
            if rap:  # rhythm speech: natural length, at most the note's
                idx = np.linspace(0, len(sf0) - 1, min(len(sf0), n_note + lead)).round().astype(int)
            else:
                idx = _stretch_index(sf0, n_note + lead, lead)
            b = min(a + len(idx), nf)
            if b <= max(a, 0):
                continue
            lo = max(a, 0)
            idx = idx[lo - a: b - a]
            sp[lo:b] = ssp[idx]
            ap[lo:b] = sap[idx]
            f0[lo:b] = sf0[idx]
            if rap:
                target[lo:b] = -1.0  # keep the spoken contour
            else:
                target[lo + lead:b] = 440.0 * 2 ** ((s.pitch - 69 + detune / 100) / 12)
    if breath:  # an audible in-breath: whispered (fully aperiodic) vowel envelope
        nb = int((pre - lead_s) * _FPS)
        vf = [ft for ft in feats if np.any(ft.f0 > 0)]
        if vf and nb > 2:
            env = vf[0].sp[vf[0].f0 > 0].mean(axis=0) * 10 ** (float(rng.uniform(-30, -20)) / 10)
            shape = np.sin(np.linspace(0, np.pi, nb))[:, None] ** 2
            sp[:nb] = env[None, :] * shape + 1e-12
            ap[:nb] = 1.0
            f0[:nb] = 0.0
    f0 = _contour(f0, target, singer, rng, rap)
    sp = _formant_warp(sp, singer.formant)
    if singer.breathy > 0:
        ap = np.clip(ap + singer.breathy * (1 - ap) * 0.5, 0, 1)
    y = pyworld.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp),
                           np.ascontiguousarray(ap), fs, FP)
    return y, fs, t0


def _contour(f0: np.ndarray, target: np.ndarray, singer: Singer, rng: np.random.Generator,
             rap: bool) -> np.ndarray:
    """Sung f0 per frame: glides between notes, delayed vibrato, drift; 0 where unvoiced."""
    voiced = f0 > 0
    out = np.zeros_like(f0)
    if rap:
        shift = float(rng.uniform(0.85, 1.2))
        out[voiced] = f0[voiced] * shift
        return out
    held = target > 0
    if not np.any(held):
        return out
    # carry the target into unvoiced/consonant frames so that glides are continuous
    idx = np.where(held, np.arange(len(target)), 0)
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(held))
    idx[:first] = first
    tgt = np.log(target[idx])
    # portamento: one-pole smoothing of the log-pitch steps (glide into each note)
    a = np.exp(-1.0 / max(singer.glide * _FPS, 1.0))
    sm = lfilter([1 - a], [1, -a], tgt, zi=[a * tgt[0]])[0]
    # vibrato grows in after each note onset
    onset = np.r_[True, np.diff(tgt) != 0]
    since = np.arange(len(tgt)) - np.maximum.accumulate(np.where(onset, np.arange(len(tgt)), 0))
    grow = np.clip((since / _FPS - 0.18) / 0.25, 0, 1)
    t = np.arange(len(tgt)) / _FPS
    ph = float(rng.uniform(0, 2 * np.pi))
    rate = singer.vib_rate * (1 + 0.05 * np.sin(2 * np.pi * 0.4 * t + ph))
    vib = singer.vib_depth / 1200 * np.log(2) * grow * np.sin(2 * np.pi * np.cumsum(rate) / _FPS + ph)
    drift = np.cumsum(rng.normal(0, 0.6, len(tgt))) / np.sqrt(len(tgt)) * 8  # cents
    drift = drift / 1200 * np.log(2)
    flutter = rng.normal(0, 4, len(tgt)) / 1200 * np.log(2)  # frame jitter, cents
    hz = np.exp(sm + vib + drift + flutter)
    out[voiced] = hz[voiced]
    return out


def make_singer(engine: str, ident: str, rng: np.random.Generator, high: bool) -> Singer:
    return Singer(engine=engine, ident=ident,
                  formant=float(rng.uniform(1.02, 1.15) if high else rng.uniform(0.9, 1.03)),
                  breathy=float(rng.uniform(0.0, 0.35)),
                  vib_rate=float(rng.uniform(4.8, 6.5)), vib_depth=float(rng.uniform(15, 60)),
                  glide=float(rng.uniform(0.02, 0.07)), jitter=float(rng.uniform(0.005, 0.02)))
