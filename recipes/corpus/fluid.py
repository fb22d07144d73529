"""Minimal ctypes binding to libfluidsynth, rendering note lists to float32 stereo.

Why our own binding: the PyPI ``pyfluidsynth`` wrapper only exposes 16-bit dithered output
and adds a dependency; the recipe needs float output (so stems sum exactly) and only a
dozen C calls. Chorus and reverb are switched off (the mixing stage adds its own
effects), which also makes rendering bit-exact from run to run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SR = 44100
_BLOCK = 4096


def _load_lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("fluidsynth") or "libfluidsynth.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:  # fail loudly: CI installs it with install-deps.sh
        raise RuntimeError(
            "libfluidsynth not found; run `bash recipes/corpus/install-deps.sh`"
        ) from exc
    vp, ip, cp, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_double
    sigs = {
        "new_fluid_settings": ([], vp),
        "fluid_settings_setnum": ([vp, cp, d], ip),
        "fluid_settings_setint": ([vp, cp, ip], ip),
        "fluid_settings_setstr": ([vp, cp, cp], ip),
        "new_fluid_synth": ([vp], vp),
        "fluid_synth_sfload": ([vp, cp, ip], ip),
        "fluid_synth_program_select": ([vp, ip, ip, ip, ip], ip),
        "fluid_synth_noteon": ([vp, ip, ip, ip], ip),
        "fluid_synth_noteoff": ([vp, ip, ip], ip),
        "fluid_synth_cc": ([vp, ip, ip, ip], ip),
        "fluid_synth_pitch_bend": ([vp, ip, ip], ip),
        "fluid_synth_pitch_wheel_sens": ([vp, ip, ip], ip),
        "fluid_synth_system_reset": ([vp], ip),
        "fluid_synth_write_float": ([vp, ip, vp, ip, ip, vp, ip, ip], ip),
        "fluid_synth_get_sfont_by_id": ([vp, ip], vp),
        "fluid_sfont_get_preset": ([vp, ip, ip], vp),
        "fluid_preset_get_name": ([vp], cp),
        "fluid_synth_get_active_voice_count": ([vp], ip),
        "fluid_synth_add_sfont": ([vp, vp], ip),
        "fluid_synth_remove_sfont": ([vp, vp], ip),
        "delete_fluid_synth": ([vp], None),
    }
    for fn, (args, res) in sigs.items():
        f = getattr(lib, fn)
        f.argtypes, f.restype = args, res
    lib.fluid_set_log_function.argtypes = [ctypes.c_int, vp, vp]
    for level in (2, 3, 4):  # silence WARN/INFO/DBG ("no preset on channel 5" etc.)
        lib.fluid_set_log_function(level, None, None)
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load_lib()
    return _lib


@dataclass(frozen=True)
class Note:
    """One MIDI note in seconds; ``bend`` is an optional pitch-bend value (0..16383)."""

    pitch: int
    start: float
    dur: float
    vel: int


class Synth:
    """One fluidsynth instance with one soundfont loaded; reused for many parts."""

    def __init__(self, sf_path: str) -> None:
        L = lib()
        self._settings = self._make_settings()
        # the holder synth owns the loaded soundfont for the life of the process
        self._holder = L.new_fluid_synth(self._settings)
        sfid = L.fluid_synth_sfload(self._holder, sf_path.encode(), 0)
        if sfid < 0:
            raise RuntimeError(f"fluidsynth could not load {sf_path}")
        self._sfont = L.fluid_synth_get_sfont_by_id(self._holder, sfid)
        self.path = sf_path

    @staticmethod
    def _make_settings() -> int:
        L = lib()
        s = L.new_fluid_settings()
        L.fluid_settings_setnum(s, b"synth.sample-rate", float(SR))
        L.fluid_settings_setint(s, b"synth.reverb.active", 0)
        L.fluid_settings_setint(s, b"synth.chorus.active", 0)
        L.fluid_settings_setint(s, b"synth.polyphony", 256)
        L.fluid_settings_setint(s, b"synth.cpu-cores", 1)
        L.fluid_settings_setnum(s, b"synth.gain", 0.5)
        return s

    def preset_name(self, bank: int, program: int) -> str | None:
        L = lib()
        p = L.fluid_sfont_get_preset(self._sfont, bank, program)
        if not p:
            return None
        return L.fluid_preset_get_name(p).decode("latin-1")

    def render(self, notes: list[Note], bank: int, program: int, total: float,
               tail: float = 2.0, bend: list[tuple[float, float]] | None = None,
               bend_range: int = 4) -> np.ndarray:
        """Render ``notes`` with one preset into a (n, 2) float32 array of ``total`` s.

        ``bend``: (seconds, semitones) points of the channel's pitch bend, each held until
        the next, within ``bend_range`` semitones either way (a monophonic line's expression).
        """
        L = lib()
        # A fresh synth per part: a reused one carries voice state from the previous
        # part into the first block of new voices, which breaks bit-exact rebuilds.
        syn = L.new_fluid_synth(self._settings)
        sfid = L.fluid_synth_add_sfont(syn, self._sfont)
        chan = 9 if bank == 128 else 0
        if L.fluid_synth_program_select(syn, chan, sfid, bank, program) != 0:
            L.fluid_synth_remove_sfont(syn, self._sfont)
            L.delete_fluid_synth(syn)
            raise RuntimeError(f"preset {bank}:{program} missing in {self.path}")
        # (sample, order, key or bend value, velocity): at one sample, notes end first, then the
        # bend moves, then notes start (so a note starts at its bent pitch)
        events: list[tuple[int, int, int, int]] = []
        for n in notes:
            on = int(round(n.start * SR))
            off = int(round((n.start + n.dur) * SR))
            events.append((on, 2, n.pitch, n.vel))
            events.append((max(off, on + 1), 0, n.pitch, 0))
        if bend:
            L.fluid_synth_pitch_wheel_sens(syn, chan, bend_range)
            for t, semitones in bend:
                value = int(round(8192 + 8192 * semitones / bend_range))
                events.append((int(round(t * SR)), 1, min(16383, max(0, value)), 0))
        events.sort()
        n_total = int(round(total * SR))
        n_out = n_total + int(tail * SR)
        out = np.zeros((2, n_out), dtype=np.float32)
        pos = 0

        def advance(to: int) -> None:
            nonlocal pos
            to = min(to, n_out)
            while pos < to:
                k = min(_BLOCK, to - pos)
                lp = out[0, pos:].ctypes.data
                rp = out[1, pos:].ctypes.data
                L.fluid_synth_write_float(syn, k, lp, 0, 1, rp, 0, 1)
                pos += k

        for t, kind, key, vel in events:
            advance(t)
            if kind == 2:
                L.fluid_synth_noteon(syn, chan, key, max(1, min(127, vel)))
            elif kind == 1:
                L.fluid_synth_pitch_bend(syn, chan, key)
            else:
                L.fluid_synth_noteoff(syn, chan, key)
        advance(n_out)
        L.fluid_synth_remove_sfont(syn, self._sfont)  # the holder still owns it
        L.delete_fluid_synth(syn)
        return out[:, :n_total].T.copy()


@lru_cache(maxsize=8)
def synth_for(sf_path: str) -> Synth:
    """Per-process cache: loading a 150 MB soundfont costs more than rendering a part."""
    return Synth(sf_path)
