"""Corpus v2 production: per-track chains, sends and a mastering bus with pedalboard.

Why pedalboard: Spotify's maintained effects library (JUCE DSP in C++) gives the
guitar-amp distortion, compressors, EQs, chorus, delay, reverb and limiter of a real
mix at a few hundred times real time, instead of hand-written DSP. Every plugin is a
fresh instance per call, and all parameters are drawn from the song's generator, so a
song is still a pure function of its seed.

Stems must add up exactly to the mixture, but a bus compressor/limiter is non-linear.
The bus is therefore applied as a *gain envelope*: pedalboard's compressor + limiter run
on the summed mix, the per-64-sample gain they applied is measured as the ratio of
output to input energy, and that one envelope multiplies every stem. Linear bus effects
(the mastering EQ) are run per stem, which is the same as running them on the sum. The
mixture is then the float32 sum of the processed stems, exactly as in v1. The loudness
of each master is drawn from a style-dependent range and reached with ``pyloudnorm``
(ITU-R BS.1770) by adjusting the limiter's input gain.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
from fluid import SR
from pedalboard import (
    Chorus,
    Compressor,
    Delay,
    Distortion,
    HighpassFilter,
    HighShelfFilter,
    Limiter,
    LowpassFilter,
    LowShelfFilter,
    PeakFilter,
    Pedalboard,
    Phaser,
    Reverb,
)
from scipy.ndimage import minimum_filter1d

# integrated loudness ranges (LUFS) of the masters, by style family
LOUDNESS = {"loud": (-12.0, -7.0), "dynamic": (-18.0, -11.0)}
LOUD_STYLES = {"rock", "metal", "pop", "electronic", "hiphop", "chorale-rock"}


def loudness_range(style: str) -> tuple[float, float]:
    return LOUDNESS["loud" if style in LOUD_STYLES else "dynamic"]


def run(board: Pedalboard, x: np.ndarray, span: tuple[int, int] | None = None) -> np.ndarray:
    """Process (n, 2) float32 through ``board`` (channels-last in and out).

    ``span`` limits the work to the samples [a, b) where a part plays (plus its tail);
    the rest stays silent, as it would through the plugin.
    """
    if span is not None:
        a, b = span
        out = np.zeros_like(x)
        if b > a:
            out[a:b] = board(np.ascontiguousarray(x[a:b], dtype=np.float32), SR)
        return out
    return board(np.ascontiguousarray(x, dtype=np.float32), SR)


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def part_chain(role: str, program: int, style: str, rng: np.random.Generator
               ) -> tuple[Pedalboard, dict]:
    """Insert chain of one 'other' part, chosen by its role (what a mix engineer uses)."""
    fx: list = []
    desc: dict = {}
    if role.startswith("gtr_rhythm") or role == "gtr_lead":
        driven = program in (29, 30)
        heavy = style == "metal"
        drive = _u(rng, 24, 40) if heavy else _u(rng, 12, 30)
        if driven:
            drive -= 10
        mid = _u(rng, -6, -1) if heavy else _u(rng, -2, 3)
        cab = _u(rng, 4200, 7000)
        fx += [HighpassFilter(_u(rng, 70, 130)), Distortion(drive_db=drive),
               HighpassFilter(90), PeakFilter(_u(rng, 500, 900), mid, 0.8),
               PeakFilter(_u(rng, 2200, 3800), _u(rng, 0, 5), 1.0),
               LowpassFilter(cab), LowpassFilter(cab * 1.2)]
        desc = {"amp_drive_db": round(drive, 1), "mid_db": round(mid, 1), "cab_hz": round(cab)}
        if role == "gtr_lead":
            d = _u(rng, 0.22, 0.45)
            fx += [Delay(delay_seconds=d, feedback=_u(rng, 0.15, 0.4), mix=_u(rng, 0.15, 0.3))]
            desc["delay_s"] = round(d, 3)
    elif role == "gtr_clean":
        if rng.random() < 0.35:
            fx.append(Distortion(drive_db=_u(rng, 4, 10)))
            desc["crunch"] = True
        fx += [HighpassFilter(_u(rng, 90, 160)), Compressor(_u(rng, -24, -14), _u(rng, 2, 4)),
               PeakFilter(_u(rng, 2000, 4000), _u(rng, 0, 4), 1.0)]
        if rng.random() < 0.5:
            fx.append(Chorus(rate_hz=_u(rng, 0.3, 1.5), depth=_u(rng, 0.1, 0.3), mix=0.4))
            desc["chorus"] = True
    elif role in ("pad", "pad_sc", "strings", "organ"):
        fx += [HighpassFilter(_u(rng, 120, 300)), LowShelfFilter(250, _u(rng, -4, 0))]
        if rng.random() < 0.5:
            fx.append(Chorus(rate_hz=_u(rng, 0.2, 1.0), depth=_u(rng, 0.15, 0.4), mix=0.5))
            desc["chorus"] = True
        if role == "organ" and rng.random() < 0.4:
            fx.insert(0, Distortion(drive_db=_u(rng, 3, 9)))
    elif role in ("keys", "piano_comp"):
        fx += [HighpassFilter(_u(rng, 60, 150)), Compressor(_u(rng, -22, -12), _u(rng, 1.5, 3)),
               PeakFilter(_u(rng, 250, 500), _u(rng, -4, 0), 1.0)]
        if rng.random() < 0.15:
            fx.append(Phaser(rate_hz=_u(rng, 0.2, 1.0), mix=0.4))
    elif role in ("arp", "synth_lead", "riff"):
        fx += [HighpassFilter(_u(rng, 100, 250))]
        if rng.random() < 0.6:
            fx.append(Delay(delay_seconds=_u(rng, 0.15, 0.4), feedback=_u(rng, 0.2, 0.45),
                            mix=_u(rng, 0.15, 0.3)))
            desc["delay"] = True
        if rng.random() < 0.3:
            fx.append(Chorus(mix=0.4))
    else:  # strum, pick, horn_lead, folk_lead
        fx += [HighpassFilter(_u(rng, 70, 140)), Compressor(_u(rng, -22, -12), _u(rng, 2, 4)),
               HighShelfFilter(_u(rng, 6000, 9000), _u(rng, -1, 4))]
    return Pedalboard(fx), desc


def stem_chain(stem: str, style: str, rng: np.random.Generator) -> tuple[Pedalboard, dict]:
    """Insert chain of a whole stem (drums bus, bass, vocal bus)."""
    if stem == "drums":
        th = _u(rng, -22, -8)
        board = [Compressor(th, _u(rng, 2, 5), _u(rng, 3, 30), _u(rng, 80, 250)),
                 LowShelfFilter(_u(rng, 60, 120), _u(rng, -1, 5)),
                 PeakFilter(_u(rng, 300, 600), _u(rng, -5, 0), 1.2),
                 HighShelfFilter(_u(rng, 6000, 10000), _u(rng, -2, 4))]
        return Pedalboard(board), {"comp_db": round(th, 1)}
    if stem == "bass":
        th = _u(rng, -26, -12)
        board = [HighpassFilter(_u(rng, 28, 45)),
                 Compressor(th, _u(rng, 3, 8), _u(rng, 3, 20), _u(rng, 60, 200)),
                 PeakFilter(_u(rng, 600, 1200), _u(rng, -3, 4), 1.0),
                 LowpassFilter(_u(rng, 3000, 9000))]
        desc = {"comp_db": round(th, 1)}
        if style in ("rock", "metal", "chorale-rock") and rng.random() < 0.6:
            board.insert(1, Distortion(drive_db=_u(rng, 4, 14)))
            desc["drive"] = True
        return Pedalboard(board), desc
    if stem == "vocals":
        th = _u(rng, -28, -14)
        board = [HighpassFilter(_u(rng, 80, 140)),
                 Compressor(th, _u(rng, 3, 7), _u(rng, 2, 10), _u(rng, 50, 150)),
                 PeakFilter(_u(rng, 250, 450), _u(rng, -4, 0), 1.0),
                 PeakFilter(_u(rng, 2500, 5000), _u(rng, 1, 5), 1.0),
                 HighShelfFilter(_u(rng, 8000, 12000), _u(rng, 0, 4))]
        return Pedalboard(board), {"comp_db": round(th, 1)}
    return Pedalboard([]), {}


def master_eq(rng: np.random.Generator) -> tuple[list, dict]:
    """The song's mastering EQ (tilt): linear, so it is run per stem, ahead of the bus."""
    p = {"low_hz": _u(rng, 60, 150), "low_db": _u(rng, -1.5, 2.5),
         "high_hz": _u(rng, 7000, 12000), "high_db": _u(rng, -1.5, 3.0)}
    return [LowShelfFilter(p["low_hz"], p["low_db"]),
            HighShelfFilter(p["high_hz"], p["high_db"])], p


def reverb(rng: np.random.Generator) -> tuple[Pedalboard, dict]:
    """The song's reverb return (one room, shared by all sends; 100 % wet)."""
    p = {"room": _u(rng, 0.3, 0.92), "damping": _u(rng, 0.2, 0.8), "width": _u(rng, 0.7, 1.0),
         "predelay_s": _u(rng, 0.0, 0.04)}
    return Pedalboard([Reverb(room_size=p["room"], damping=p["damping"], wet_level=1.0,
                              dry_level=0.0, width=p["width"])]), p


def send(x: np.ndarray, board: Pedalboard, level: float, predelay: float) -> np.ndarray:
    """x plus ``level`` of its reverb (reverb is linear, so sends per stem add up)."""
    if level <= 0:
        return x
    wet = run(board, x)
    d = int(predelay * SR)
    if d:
        wet = np.concatenate([np.zeros((d, 2), np.float32), wet[:-d]])
    return x + np.float32(level) * wet


def tempo_delay(x: np.ndarray, tempo: float, rng: np.random.Generator) -> np.ndarray:
    """A tempo-synced vocal delay throw (1/8 or 1/4 note)."""
    d = 60.0 / tempo * (0.5 if rng.random() < 0.5 else 1.0)
    return run(Pedalboard([Delay(delay_seconds=d, feedback=_u(rng, 0.15, 0.35),
                                 mix=_u(rng, 0.08, 0.18))]), x)


def sidechain(n: int, kick_times: list[float], depth_db: float, release: float) -> np.ndarray:
    """Gain curve that ducks by ``depth_db`` on every kick and recovers (EDM pumping)."""
    g = np.zeros(n, dtype=np.float64)
    idx = np.array([int(t * SR) for t in kick_times if 0 <= t * SR < n], dtype=np.int64)
    if len(idx) == 0:
        return np.ones(n, dtype=np.float32)
    g[idx] = 1.0
    # each kick starts a decaying duck; take the strongest (max) of overlapping ducks
    k = int(release * 4 * SR)
    dec = np.exp(-np.arange(k) / (release * SR))
    env = np.zeros(n)
    for i in idx:
        seg = dec[: n - i]
        np.maximum(env[i:i + len(seg)], seg, out=env[i:i + len(seg)])
    att = int(0.004 * SR)  # 4 ms attack
    env = np.convolve(env, np.ones(att) / att)[:n]
    return (10 ** (-depth_db * env / 20)).astype(np.float32)


def _gain_envelope(x: np.ndarray, y: np.ndarray, hop: int = 64, radius: int = 8) -> np.ndarray:
    """The gain the bus applied to turn x into y, as a smooth envelope (<= that gain).

    pedalboard's compressor and limiter multiply each sample by a gain, so |y|/|x| is that
    gain wherever x is not near zero; per 64-sample frame the smallest gain of both
    channels is kept. A limiter without look-ahead moves its gain within a waveform cycle
    (that is its distortion of the mix); copied onto every stem, that jitter would put
    -46 dB of intermodulation into each stem below 150 Hz (measured). So the frame gains
    are min-filtered over +-``radius`` frames and then averaged over +-(radius - 1): every
    value averaged for frame f or its neighbours covers frame f, so every sample still
    gets at least the reduction the limiter gave it (peaks stay under the ceiling), and
    the envelope only moves at a few tens of Hz.
    """
    n = len(x)
    m = -(-n // hop)
    pad = m * hop - n
    ax = np.abs(np.pad(x, ((0, pad), (0, 0)))).reshape(m, hop * 2)
    ay = np.abs(np.pad(y, ((0, pad), (0, 0)))).reshape(m, hop * 2)
    valid = ax > max(float(ax.max()), 1e-9) * 1e-3
    r = np.where(valid, ay / np.maximum(ax, 1e-12), np.inf).min(axis=1)
    has = np.isfinite(r)
    if not np.any(has):
        return np.ones(n, np.float32)
    idx = np.arange(m)
    r = np.interp(idx, idx[has], r[has])  # quiet frames: the gain around them
    r = np.minimum(r, 1.0)
    r = minimum_filter1d(r, 2 * radius + 1, mode="nearest")
    ra = radius - 1
    w = 2 * ra + 1
    c = np.cumsum(np.pad(r, (ra + 1, ra), mode="edge"))
    r = (c[w:] - c[:-w]) / w  # moving average inside the min-filter's window
    t = (idx + 0.5) * hop
    return np.interp(np.arange(n), t, r).astype(np.float32)


def master(stems: dict[str, np.ndarray], style: str, rng: np.random.Generator
           ) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Mastering bus on stems: bus comp + limiter as one gain envelope, loudness to a
    drawn target. Returns stems, their exact float32 sum, and the settings. (The
    mastering EQ is linear and sits at the end of every stem's chain: ``master_eq``.)
    """
    lo, hi = loudness_range(style)
    target = _u(rng, lo, hi)
    comp = {"threshold_db": _u(rng, -18, -6), "ratio": _u(rng, 1.5, 4),
            "attack_ms": _u(rng, 5, 30), "release_ms": _u(rng, 80, 300)}
    ceiling = _u(rng, -1.5, -0.3)
    lim_release = _u(rng, 40, 200)
    meter = pyloudnorm.Meter(SR)
    mix = sum(stems.values())
    pre_db = target - meter.integrated_loudness(mix)
    env = np.ones(len(mix), np.float32)
    got = target
    for _ in range(3):  # the limiter eats loudness: re-aim the input gain (twice at most)
        g = np.float32(10 ** (pre_db / 20))
        bus = Pedalboard([Compressor(comp["threshold_db"], comp["ratio"], comp["attack_ms"],
                                     comp["release_ms"]),
                          Limiter(threshold_db=ceiling, release_ms=lim_release)])
        x = mix * g
        y = run(bus, x)
        env = _gain_envelope(x, y) * g
        got = meter.integrated_loudness(mix * env[:, None])
        if abs(got - target) < 0.5:
            break
        pre_db += target - got
    out = {k: (v * env[:, None]).astype(np.float32) for k, v in stems.items()}
    mixture = np.zeros_like(out["drums"])
    for k in ("drums", "bass", "other", "vocals"):
        mixture += out[k]
    peak = float(np.max(np.abs(mixture)))
    safety = 1.0
    if peak > 0.999:  # the envelope is measured, not exact: never let the sum clip
        safety = 0.999 / peak
        out = {k: v * np.float32(safety) for k, v in out.items()}
        mixture = np.zeros_like(out["drums"])
        for k in ("drums", "bass", "other", "vocals"):
            mixture += out[k]
    # the sum of the scaled stems is mix * env up to float32 rounding: measured above
    lufs = float(meter.integrated_loudness(mixture)) if safety < 1.0 else float(got)
    info = {"target_lufs": round(target, 2), "lufs": round(lufs, 2), "bus_comp": {
        k: round(v, 2) for k, v in comp.items()}, "limiter_ceiling_db": round(ceiling, 2),
        "safety_gain": round(safety, 4), "peak": round(float(np.max(np.abs(mixture))), 4)}
    return out, mixture, info

