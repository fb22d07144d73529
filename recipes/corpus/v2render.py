"""Corpus v2: one song from seed to stems (``render_song_v2``) and the resumable driver.

Why a module beside ``render.py``: v1's songs must stay byte-identical (the frozen v1
test split), so v1's code path is left alone and v2 lives here: its own generator
(``v2music``, ``v2chorale``), singers (``v2vocals``), production (``v2fx``) and a worker
pool whose processes live for the whole run. v1 forked one process per song from a
parent holding ~2.4 GB of decoded soundfonts (405 s of system time on the v1 corpus);
here the parent loads no soundfont, each worker loads the ones it meets once, and
nothing a worker keeps between songs changes a song's bytes (fluidsynth gets a fresh
synth per part, TTS runs in fresh subprocesses, effects are fresh plugin instances).

Resumable: a song is written to ``<dir>.partial`` and renamed when complete, and its
manifest entry goes to ``<root>/manifest/<split>/<name>.json`` first; a rerun of the same
command skips every song whose folder and entry exist, then rewrites ``corpus.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time

import numpy as np
import sources
from drums import render_hydrogen, render_sf_kit
from fluid import SR, synth_for
from mixing import STEMS, active_rms, automation, balance, width
from music import WORDS, Song, Syllable
from progress import collect
from v2chorale import chorales, make_chorale_song
from v2expression import RANGE, STYLES as LEAD_STYLES, lead_bend
from v2fx import master, master_eq, part_chain, reverb, run, send, sidechain, stem_chain, tempo_delay
from v2music import V2_STYLES, make_song_v2
from v2vocals import make_singer, sing_line
from wavio import write_pcm16_set

VERSION = 2
SPLIT_ID = {"train": 0, "valid": 1, "test": 2}
CHORALE_SHARE = 0.15
VOCAB = tuple(sorted({"".join(w.split("|")) for w in WORDS}))
# level of each 'other' part inside the other stem (dB), before a random +-2 dB
ROLE_DB = {"gtr_rhythm": 0, "gtr_rhythm2": 0, "gtr_lead": 2, "pad": -4, "pad_sc": -2,
           "strings": -3, "organ": -3, "keys": -1, "piano_comp": -1, "gtr_clean": -2,
           "arp": -3, "synth_lead": 0, "horn_lead": 1, "folk_lead": 0, "strum": 0,
           "pick": -2, "riff": -2}
# stem balance per style (dB), before a random +-2 dB
STYLE_DB = {"metal": {"other": 2, "vocals": -1}, "rock": {"other": 1},
            "hiphop": {"drums": 1, "bass": 2, "other": -2, "vocals": 1},
            "electronic": {"bass": 1, "drums": 1}, "jazz": {"drums": -3, "vocals": -1},
            "folk": {"drums": -4}}
ELECTRONIC_KITS = {"h2_ElectricEmpire", "h2_VariBreaks", "h2_HardElectro1"}


def song_seed(seed: int, split: str, index: int) -> int:
    """v2 songs use their own seed stream (the trailing 2), never v1's songs again."""
    return int(np.random.SeedSequence([seed, SPLIT_ID[split], index, VERSION]
                                      ).generate_state(1)[0])


def make_song(sseed: int, split: str, duration: float | None) -> Song:
    """The symbolic song: a chorale arrangement (15 %) or a generated song of one style."""
    rng = np.random.default_rng([sseed, 0])
    if rng.random() < CHORALE_SHARE:
        song = make_chorale_song(sseed, sources.POOL[split], duration)
    else:
        style = list(V2_STYLES)[int(rng.integers(len(V2_STYLES)))]
        song = make_song_v2(sseed, duration, style)
    song.melody = [s for s in song.melody if s.start < song.duration]
    song.harmony = [s for s in song.harmony if s.start < song.duration]
    return song


def choose_sources(song: Song, split: str, sseed: int) -> dict:
    """Soundfont per part, kit, singer from the split's pool (kits biased by style)."""
    rng = np.random.default_rng([sseed, 1])
    mel = sources.melodic_fonts(split)
    parts = []
    for p in song.parts:
        f = mel[int(rng.integers(len(mel)))]
        parts.append({"stem": p.stem, "role": p.role, "program": p.program,
                      "soundfont": f.name, "path": f.path})
    electronic = song.style in ("electronic", "hiphop")
    kits = sources.hydrogen_kits(split)
    if electronic and rng.random() < 0.5:
        pool = [k for k in kits if k.name in ELECTRONIC_KITS]
        k = pool[int(rng.integers(len(pool)))]
        drums = {"kind": "hydrogen", "kit": k.name, "path": k.folder}
    elif rng.random() < 0.45:
        pool = [k for k in kits if k.name not in ELECTRONIC_KITS] if not electronic else kits
        k = pool[int(rng.integers(len(pool)))]
        drums = {"kind": "hydrogen", "kit": k.name, "path": k.folder}
    else:
        fonts = sources.drum_fonts(split)
        f = fonts[int(rng.integers(len(fonts)))]
        presets = f.drum_presets
        want = {"electronic": [(128, 24), (128, 25)], "hiphop": [(128, 25), (128, 24)],
                "jazz": [(128, 32), (128, 40)]}.get(song.style)
        if want and f.melodic and rng.random() < 0.7:
            presets = tuple(want)
        bank, prog = presets[int(rng.integers(len(presets)))]
        drums = {"kind": "soundfont", "kit": f"{f.name}:{bank}:{prog}", "path": f.path,
                 "bank": bank, "program": prog}
    vs = sources.voices_v2(split)
    v = vs[int(rng.integers(len(vs)))]
    return {"parts": parts, "drums": drums,
            "voice": {"name": v.name, "engine": v.engine, "ident": v.ident}}


def _norm(x: np.ndarray, db: float = 0.0) -> np.ndarray:
    """Scale to an active RMS of 0.1 (+ ``db``), in place where x is float32."""
    g = np.float32(0.1 * 10 ** (db / 20) / max(active_rms(x), 1e-6))
    if x.dtype == np.float32:
        x *= g
        return x
    return (x * g).astype(np.float32)


def _pan(x: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of a mono float32 track (float32 throughout: songs are long)."""
    th = (pan + 1) * np.pi / 4
    out = np.empty((len(x), 2), np.float32)
    np.multiply(x, np.float32(np.cos(th) * 1.41), out=out[:, 0])
    np.multiply(x, np.float32(np.sin(th) * 1.41), out=out[:, 1])
    return out


def _span(notes: list, n: int, tail: float = 4.0) -> tuple[int, int]:
    a = int(max(0.0, min(x.start for x in notes) - 0.05) * SR)
    b = int(min(n, (max(x.start + x.dur for x in notes) + tail) * SR))
    return a, max(a, b)


def _express(song: Song, sseed: int) -> dict[str, bool]:
    """Pitch bends, slides and vibrato on the song's lead parts, from their own random stream
    (so the rest of the song is what it would be without); returns {lead role: any expression}."""
    rng = np.random.default_rng([sseed, 5])
    expressed: dict[str, bool] = {}
    for part in song.parts:
        part.bend = lead_bend(part.role, part.notes, rng)
        if part.role in LEAD_STYLES and part.notes:
            expressed[part.role] = expressed.get(part.role, False) or bool(part.bend)
    return expressed


def _in_sections(syls: list[Syllable], song: Song, names: set[str]) -> list[Syllable]:
    spans = [(a, b) for nm, a, b in song.sections if nm in names]
    return [s for s in syls if any(a <= s.start < b for a, b in spans)]


def _vocals(song: Song, src: dict, rng: np.random.Generator, total: float) -> tuple[
        np.ndarray, dict]:
    """Lead (sung or rapped), chorus doubles and harmony, panned into one stereo stem."""
    v = src["voice"]
    high = song.vocal_range == "high"
    singer = make_singer(v["engine"], v["ident"], rng, high)
    rap = bool(getattr(song, "rap", False))
    short = len(song.sections) == 1
    if rap and not short:
        rapped = [s for s in song.melody if s not in _in_sections(song.melody, song, {"chorus"})]
        sung = _in_sections(song.melody, song, {"chorus"})
        lead = sing_line(rapped, singer, total, rng, VOCAB, rap=True) + sing_line(
            sung, singer, total, rng, VOCAB)
    else:
        lead = sing_line(song.melody, singer, total, rng, VOCAB, rap=rap)
    voc = _pan(_norm(lead), float(rng.uniform(-0.05, 0.05)))
    info = {"singer": {k: (round(x, 3) if isinstance(x, float) else x)
                       for k, x in singer.__dict__.items()}, "rap": rap, "doubles": 0,
            "harmony": False}
    chorus = song.melody if short else _in_sections(song.melody, song, {"chorus"})
    if chorus and rng.random() < 0.7:  # double-tracked chorus: one or two more takes
        n_d = 1 if rng.random() < 0.5 else 2
        for k in range(n_d):
            d = sing_line(chorus, singer, total, rng, VOCAB, detune_cents=float(
                rng.normal(0, 8)), breaths=False)
            pan = float(rng.uniform(0.3, 0.8)) * (1 if k % 2 == 0 else -1)
            voc = voc + _pan(_norm(d, float(rng.uniform(-9, -4))), pan)
        info["doubles"] = n_d
    if song.harmony:
        h = sing_line(song.harmony, singer, total, rng, VOCAB, detune_cents=float(
            rng.normal(0, 6)), breaths=False)
        hp = float(rng.uniform(0.3, 0.7)) * (1 if rng.random() < 0.5 else -1)
        voc = voc + _pan(_norm(h, float(rng.uniform(-8, -4))), hp)
        info["harmony"] = True
    return voc, info


def render_song_v2(job: dict) -> dict:
    """Render one v2 song to ``job['dir']``; returns its manifest entry."""
    t0 = time.time()
    sseed, split = job["song_seed"], job["split"]
    song = make_song(sseed, split, job.get("duration"))
    expressive = _express(song, sseed) if job.get("expressive") else None
    src = choose_sources(song, split, sseed)
    rng = np.random.default_rng([sseed, 2])
    vrng = np.random.default_rng([sseed, 3])
    total = song.duration
    n = int(round(total * SR))
    stems: dict[str, np.ndarray] = {k: np.zeros((n, 2), np.float32) for k in STEMS}
    fx_info: dict = {"parts": []}

    d = src["drums"]
    if d["kind"] == "hydrogen":
        stems["drums"] = render_hydrogen(song.hits, d["path"], total)
    else:
        stems["drums"] = render_sf_kit(song.hits, d["path"], d["bank"], d["program"], total)
    kicks = [h.start for h in song.hits if h.role == "kick"]
    for p, ps in zip(song.parts, src["parts"]):
        if not p.notes:
            continue
        x = synth_for(ps["path"]).render(p.notes, 0, p.program, total, bend=p.bend, bend_range=RANGE)
        if active_rms(x) < 1e-5:
            continue
        x = _norm(x)
        if p.stem == "other":
            board, desc = part_chain(p.role, p.program, song.style, rng)
            x = run(board, x, _span(p.notes, n))
            x = balance(x, p.pan)
            if p.role == "pad_sc" and kicks:
                depth, rel = float(rng.uniform(6, 18)), float(rng.uniform(0.08, 0.2))
                x = x * sidechain(n, kicks, depth, rel)[:, None]
                desc["sidechain_db"] = round(depth, 1)
            x = _norm(x, ROLE_DB.get(p.role, 0) + float(rng.uniform(-2, 2)))
            fx_info["parts"].append({"role": p.role, **desc})
        elif p.stem == "vocals":  # GM choir pad behind the singers
            x = width(x, 1.4) * np.float32(10 ** (float(rng.uniform(-14, -8)) / 20))
        stems[p.stem] += x
    voc, vinfo = _vocals(song, src, vrng, total)
    stems["vocals"] = _norm(voc) + stems["vocals"]
    if rng.random() < 0.4:
        stems["vocals"] = tempo_delay(stems["vocals"], song.tempo, rng)
        vinfo["delay"] = True
    rv, rv_p = reverb(rng)
    sends = {"drums": float(rng.uniform(0.0, 0.2)), "bass": float(rng.uniform(0, 0.04)),
             "other": float(rng.uniform(0.05, 0.35)), "vocals": float(rng.uniform(0.1, 0.4))}
    g_auto, levels = automation(n, song.sections, rng, bool(rng.random() < 0.35) and not
                                job.get("duration"))
    style_db = STYLE_DB.get(song.style.replace("chorale-", ""), {})
    eq_plugins, eq_p = master_eq(rng)
    fx_info["master_eq"] = {k: round(v, 2) for k, v in eq_p.items()}
    gains = {}
    for k in STEMS:
        board, desc = stem_chain(k, song.style, rng)
        for plug in master_eq(np.random.default_rng([sseed, 4]))[0]:  # same EQ, fresh plugins
            board.append(plug)
        x = run(board, stems[k])
        if k == "drums":
            x = width(x, float(rng.uniform(0.7, 1.3)))
        x = send(x, rv, sends[k], rv_p["predelay_s"])
        gains[k] = round(style_db.get(k, 0) + float(rng.uniform(-2, 2)), 2)
        stems[k] = _norm(x, gains[k]) * g_auto[:, None]
        fx_info[k] = desc
    out_stems, _, minfo = master(stems, song.style, rng)

    out = job["dir"]
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    minfo["clipped_samples"] = write_pcm16_set(tmp, {k: out_stems[k] for k in STEMS}, SR)
    entry = {
        "name": os.path.basename(out), "split": split, "index": job["index"],
        "song_seed": sseed, "duration_s": round(total, 3), "style": song.style,
        "piece": getattr(song, "source_piece", None), "tempo_bpm": song.tempo,
        "key": song.key_name,
        "sections": [[nm, round(a, 3), round(b, 3)] for nm, a, b in song.sections],
        "lyrics": song.lyrics[:4],
        "sources": {
            "drums": {kk: vv for kk, vv in src["drums"].items() if kk != "path"},
            "bass": [{kk: vv for kk, vv in p.items() if kk != "path"}
                     for p in src["parts"] if p["stem"] == "bass"],
            "other": [{kk: vv for kk, vv in p.items() if kk != "path"}
                      for p in src["parts"] if p["stem"] == "other"],
            "vocals": {"voice": src["voice"]["name"], **vinfo,
                       "choir": [{kk: vv for kk, vv in p.items() if kk != "path"}
                                 for p in src["parts"] if p["stem"] == "vocals"]},
        },
        "mix": {"stem_gain_db": gains, "sends": {k: round(v, 3) for k, v in sends.items()},
                "reverb": {k: round(v, 3) for k, v in rv_p.items()},
                "section_gain_db": levels, "fx": fx_info, "master": minfo},
        "render_s": round(time.time() - t0, 2),
    }
    if expressive is not None:
        entry["expressive_leads"] = expressive
    if job.get("manifest"):
        _write_json(job["manifest"], entry)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return entry


def _write_json(path: str, obj: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def render_safe(job: dict) -> dict:
    """One bad song must not stop a many-hour run: report the error, keep going."""
    try:
        return render_song_v2(job)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"[:2000], "split": job["split"],
                "index": job["index"], "name": os.path.basename(job["dir"]),
                "duration_s": 0.0, "render_s": 0.0}


def plan(root: str, seed: int, targets: dict[str, float | None], songs: int | None,
         duration: float | None, expressive_from: dict[str, int] | None = None) -> list[dict]:
    """Songs per split in index order until the split's hours (or ``songs``) are reached.

    Songs of a split from index ``expressive_from[split]`` on get pitch expression on their
    lead parts (``v2expression``); earlier ones stay as first rendered."""
    expressive_from = expressive_from or {}
    jobs = []
    for split, hours in targets.items():
        total, i = 0.0, 0
        while (hours is None and i < (songs or 0)) or (hours is not None and
                                                       total < hours * 3600):
            ss = song_seed(seed, split, i)
            song = make_song(ss, split, duration)
            name = f"{i:04d} - {song.style} {song.key_name} {int(song.tempo)}bpm"
            jobs.append({"split": split, "index": i, "song_seed": ss, "duration": duration,
                         "expressive": split in expressive_from and i >= expressive_from[split],
                         "dir": os.path.join(root, split, name),
                         "manifest": os.path.join(root, "manifest", split, name + ".json")})
            total += song.duration
            i += 1
    return jobs


def _done(job: dict) -> bool:
    return os.path.isdir(job["dir"]) and os.path.exists(job["manifest"])


def run_jobs(jobs: list[dict], n_jobs: int, progress: bool = True) -> tuple[list[dict],
                                                                             list[dict]]:
    """Render the jobs not done yet with long-lived workers; returns (new, failed)."""
    todo = [j for j in jobs if not _done(j)]
    if progress and len(todo) < len(jobs):
        print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} songs already rendered",
              flush=True)
    if not todo:
        return [], []
    ctx = mp.get_context("fork")  # the parent holds no soundfont: forking is cheap
    with ctx.Pool(min(n_jobs, len(todo))) as pool:
        return collect(pool.imap_unordered(render_safe, todo), len(todo), progress)


def write_manifest(root: str, jobs: list[dict], seed: int, command: str,
                   render: dict) -> dict:
    """corpus.json from every planned song's entry (also those of earlier runs)."""
    songs = []
    for j in jobs:
        if _done(j):
            with open(j["manifest"]) as f:
                songs.append(json.load(f))
    songs.sort(key=lambda r: (SPLIT_ID[r["split"]], r["index"]))
    hours = {s: round(sum(r["duration_s"] for r in songs if r["split"] == s) / 3600, 4)
             for s in SPLIT_ID}
    pools = {}
    for pool, splits in (("train+valid", "seen"), ("test", "unseen")):
        pools[pool] = {"soundfonts": [s.name for s in sources.SOUNDFONTS[splits]],
                       "hydrogen": [k.name for k in sources.HYDROGEN[splits]],
                       "voices": [v.name for v in sources.VOICES[splits]
                                  + sources.VOICES_V2_EXTRA[splits]],
                       "chorales": chorales(splits)}
    manifest = {"version": VERSION, "seed": seed, "sample_rate": SR,
                "format": "16-bit PCM WAV (mixture = integer sum of the stems)", "command": command, "hours": hours, "render": render, "pools": pools,
                "songs": songs}
    _write_json(os.path.join(root, "corpus.json"), manifest)
    return manifest


def check_pools() -> None:
    sources.check_disjoint({"seen": chorales("seen"), "unseen": chorales("unseen")})
