#!/usr/bin/env python
"""Render a multitrack corpus in the MUSDB18-HQ layout from real instrument samples.

    python recipes/corpus/render.py --root /work/data/corpus \
        --hours-train 3 --hours-valid 0.5 --hours-test 0.5 --seed 0 --jobs 2
    python recipes/corpus/render.py --root /tmp/c --songs 2 --duration 10 --split train
    python recipes/corpus/render.py --demo /work/data/demo.wav --duration 25 --seed 7
    python recipes/corpus/render.py --version 2 --root /work/data/corpus_v2 \
        --hours-train 10 --hours-valid 1 --hours-test 1 --seed 0 --jobs 2   # resumable

Writes ``<root>/{train,valid,test}/<song>/{mixture,drums,bass,other,vocals}.wav``
(44.1 kHz, stereo, float32) and ``<root>/corpus.json``. Why this driver exists: it is
the only place that knows about splits, seeds, processes and files; the music, sound
and mix modules are pure functions of a song seed. Each song is rendered in its own
fresh worker process (espeak-ng keeps state between calls), with the soundfonts loaded
once in the parent and shared by fork, so a song's bytes depend only on (seed, split,
index) and not on ``--jobs`` or scheduling. That is version 1, the default, kept
byte-identical for the frozen v1 splits; ``--version 2`` hands over to ``v2render``
(produced-record songs, long-lived workers, resumable; see README.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sources  # noqa: E402
from drums import render_hydrogen, render_sf_kit  # noqa: E402
from fluid import SR, synth_for  # noqa: E402
from mixing import STEMS, active_rms, add_reverb, automation, balance, compress, eq, finish, pan_mono, reverb_ir, width  # noqa: E402
from music import Song, make_song  # noqa: E402
from progress import collect  # noqa: E402
from vocals import sing_espeak, sing_festival  # noqa: E402
from wavio import write_float32  # noqa: E402

SPLIT_ID = {"train": 0, "valid": 1, "test": 2}
VERSION = 1


def song_seed(seed: int, split: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, SPLIT_ID[split], index]).generate_state(1)[0])


def choose_sources(song: Song, split: str, sseed: int) -> dict:
    """Pick soundfonts/kit/voice for every part of ``song`` from the split's pool."""
    rng = np.random.default_rng([sseed, 1])
    mel = sources.melodic_fonts(split)
    parts = []
    for p in song.parts:
        f = mel[int(rng.integers(len(mel)))]
        parts.append({"stem": p.stem, "role": p.role, "program": p.program,
                      "soundfont": f.name, "path": f.path})
    if rng.random() < 0.45:
        kits = sources.hydrogen_kits(split)
        k = kits[int(rng.integers(len(kits)))]
        drums = {"kind": "hydrogen", "kit": k.name, "path": k.folder}
    else:
        fonts = sources.drum_fonts(split)
        f = fonts[int(rng.integers(len(fonts)))]
        bank, prog = f.drum_presets[int(rng.integers(len(f.drum_presets)))]
        drums = {"kind": "soundfont", "kit": f"{f.name}:{bank}:{prog}", "path": f.path,
                 "bank": bank, "program": prog}
    vs = sources.voices(split)
    fest = [v for v in vs if v.engine == "festival"]
    esp = [v for v in vs if v.engine == "espeak"]
    pool = fest if rng.random() < 0.4 else esp
    v = pool[int(rng.integers(len(pool)))]
    return {"parts": parts, "drums": drums,
            "voice": {"name": v.name, "engine": v.engine, "ident": v.ident}}


def _fx_params(rng: np.random.Generator) -> dict:
    """Mix decisions for one song (stored in the manifest)."""
    return {
        "gain_db": {"drums": float(rng.uniform(-3, 2)), "bass": float(rng.uniform(-4, 1)),
                    "other": float(rng.uniform(-5, 0)), "vocals": float(rng.uniform(-2, 3))},
        "reverb": {"rt60": float(rng.uniform(0.4, 2.5)), "predelay": float(rng.uniform(0, .04)),
                   "damp_hz": float(rng.uniform(3000, 9000))},
        "send": {"drums": float(rng.uniform(0.0, 0.25)), "bass": float(rng.uniform(0, 0.05)),
                 "other": float(rng.uniform(0.05, 0.4)), "vocals": float(rng.uniform(0.1, 0.5))},
        "width": {"drums": float(rng.uniform(0.6, 1.3)), "other": float(rng.uniform(0.8, 1.5)),
                  "vocals": float(rng.uniform(0.0, 0.4))},
        "comp": {k: (float(rng.uniform(-20, -6)), float(rng.uniform(2, 6))) for k in STEMS},
        "fade_out": bool(rng.random() < 0.4),
        "peak": float(rng.uniform(0.6, 0.95)),
    }


def render_song(job: dict) -> dict:
    """Render one song to ``job['dir']``; returns its manifest entry."""
    t0 = time.time()
    sseed, split = job["song_seed"], job["split"]
    song = make_song(sseed, job.get("duration"))
    src = job["sources"]
    rng = np.random.default_rng([sseed, 2])
    fx = _fx_params(rng)
    total = song.duration
    n = int(round(total * SR))
    raw: dict[str, np.ndarray] = {k: np.zeros((n, 2), np.float32) for k in STEMS}

    # drums
    d = src["drums"]
    if d["kind"] == "hydrogen":
        dr = render_hydrogen(song.hits, d["path"], total)
    else:
        dr = render_sf_kit(song.hits, d["path"], d["bank"], d["program"], total)
    raw["drums"] += dr
    # pitched parts (bass, others, choir backing)
    for p, ps in zip(song.parts, src["parts"]):
        x = synth_for(ps["path"]).render(p.notes, 0, p.program, total)
        x = x / max(active_rms(x), 1e-6) * 0.1
        if p.stem == "other":
            x = eq(x, [("hp", float(rng.uniform(60, 200)), 0, 0.707),
                       ("peak", float(rng.uniform(300, 4000)), float(rng.uniform(-4, 4)), 1.0)])
            x = balance(x, p.pan)
        elif p.stem == "vocals":  # GM choir behind the singer
            x = width(x, 1.5) * 0.5
        raw[p.stem] += x
    # lead and harmony vocals
    v = src["voice"]
    if v["engine"] == "festival":
        lead = sing_festival(song.melody, song.tempo, v["ident"], total)
        harm = sing_festival(song.harmony, song.tempo, v["ident"], total) if song.harmony else None
    else:
        lead = sing_espeak(song.melody, v["ident"], total)
        harm = sing_espeak(song.harmony, v["ident"], total) if song.harmony else None
    lead = lead / max(active_rms(lead), 1e-6) * 0.1
    voc = pan_mono(lead, float(rng.uniform(-0.05, 0.05)))
    if harm is not None:
        harm = harm / max(active_rms(harm), 1e-6) * 0.1 * 10 ** (-6 / 20)
        hp = float(rng.uniform(0.3, 0.6)) * (1 if rng.random() < 0.5 else -1)
        voc = voc + pan_mono(harm, hp)
    choir = raw["vocals"]
    raw["vocals"] = voc + choir

    # per-stem chain: EQ -> compression -> width -> reverb -> level -> automation
    ir = reverb_ir(rng, fx["reverb"]["rt60"], fx["reverb"]["predelay"],
                   fx["reverb"]["damp_hz"])
    g_auto, levels = automation(n, song.sections, rng, fx["fade_out"] and not job.get(
        "duration"))
    stems: dict[str, np.ndarray] = {}
    for k in STEMS:
        x = raw[k]
        if k == "bass":
            x = eq(x, [("hp", 35, 0, 0.707), ("lp", float(rng.uniform(2500, 8000)), 0, 0.707)])
        elif k == "vocals":
            x = eq(x, [("hp", 100, 0, 0.707), ("peak", 3000, float(rng.uniform(0, 4)), 1.0),
                       ("highshelf", 8000, float(rng.uniform(-2, 4)), 0.707)])
        elif k == "drums":
            x = eq(x, [("lowshelf", 100, float(rng.uniform(-2, 4)), 0.707),
                       ("highshelf", 7000, float(rng.uniform(-3, 3)), 0.707)])
        th, ratio = fx["comp"][k]
        x = compress(x, th, ratio)
        if k in fx["width"]:
            x = width(x, fx["width"][k])
        x = add_reverb(x, ir, fx["send"][k])
        x = x / max(active_rms(x), 1e-6) * 0.1 * 10 ** (fx["gain_db"][k] / 20)
        stems[k] = (x * g_auto[:, None]).astype(np.float32)
    stems, mixture, scale = finish(stems, fx["peak"])

    out = job["dir"]
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_float32(os.path.join(tmp, "mixture.wav"), mixture, SR)
    for k in STEMS:
        write_float32(os.path.join(tmp, f"{k}.wav"), stems[k], SR)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return {
        "name": os.path.basename(out), "split": split, "index": job["index"],
        "song_seed": sseed, "duration_s": round(total, 3), "style": song.style,
        "tempo_bpm": song.tempo, "key": song.key_name,
        "sections": [[nm, round(a, 3), round(b, 3)] for nm, a, b in song.sections],
        "lyrics": song.lyrics[:4],
        "sources": {
            "drums": {kk: vv for kk, vv in src["drums"].items() if kk != "path"},
            "bass": [{kk: vv for kk, vv in p.items() if kk != "path"}
                     for p in src["parts"] if p["stem"] == "bass"],
            "other": [{kk: vv for kk, vv in p.items() if kk != "path"}
                      for p in src["parts"] if p["stem"] == "other"],
            "vocals": {"lead": v["name"], "harmony": v["name"] if harm is not None else None,
                       "choir": [{kk: vv for kk, vv in p.items() if kk != "path"}
                                 for p in src["parts"] if p["stem"] == "vocals"]},
        },
        "mix": {"scale": scale, "section_gain_db": levels, **{
            kk: vv for kk, vv in fx.items() if kk != "comp"}},
        "render_s": round(time.time() - t0, 2),
    }


def render_song_safe(job: dict) -> dict:
    """One bad song must not stop a 4-hour run: report the error, keep going."""
    try:
        return render_song(job)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"[:2000], "split": job["split"],
                "index": job["index"], "name": os.path.basename(job["dir"]),
                "duration_s": 0.0, "render_s": 0.0}


def plan(args: argparse.Namespace) -> list[dict]:
    """Songs to render: per split, seeds in order until the split's hours are reached."""
    jobs = []
    if args.songs is not None:
        targets = {args.split: None}
    else:
        targets = {"train": args.hours_train, "valid": args.hours_valid,
                   "test": args.hours_test}
    for split, hours in targets.items():
        total, i = 0.0, 0
        while (hours is None and i < args.songs) or (hours is not None and
                                                     total < hours * 3600):
            ss = song_seed(args.seed, split, i)
            song = make_song(ss, args.duration)
            name = f"{i:04d} - {song.style} {song.key_name} {int(song.tempo)}bpm"
            jobs.append({"split": split, "index": i, "song_seed": ss,
                         "duration": args.duration,
                         "sources": choose_sources(song, split, ss),
                         "dir": os.path.join(args.root, split, name)})
            total += song.duration
            i += 1
    return jobs


def preload(jobs: list[dict]) -> None:
    """Load every soundfont the jobs use once, in the parent (children share by fork)."""
    paths = set()
    for j in jobs:
        paths |= {p["path"] for p in j["sources"]["parts"]}
        if j["sources"]["drums"]["kind"] == "soundfont":
            paths.add(j["sources"]["drums"]["path"])
    for p in sorted(paths):
        synth_for(p)


def run(jobs: list[dict], n_jobs: int, progress: bool = True) -> list[dict]:
    preload(jobs)
    ctx = mp.get_context("fork")
    with ctx.Pool(n_jobs, maxtasksperchild=1) as pool:
        results, failed = collect(pool.imap_unordered(render_song_safe, jobs), len(jobs), progress)
    results.sort(key=lambda r: (SPLIT_ID[r["split"]], r["index"]))
    if failed and len(jobs) <= 8:  # small runs (tests, demo) must not hide a failure
        raise RuntimeError(f"{len(failed)} song(s) failed: {failed[0]['error']}")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="output folder (MUSDB18-HQ layout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--hours-train", type=float, default=3.0)
    ap.add_argument("--hours-valid", type=float, default=0.5)
    ap.add_argument("--hours-test", type=float, default=0.5)
    ap.add_argument("--songs", type=int, help="render N songs of --split instead of hours")
    ap.add_argument("--split", choices=list(SPLIT_ID), default="train",
                    help="split (and so source pool) for --songs / --demo")
    ap.add_argument("--duration", type=float,
                    help="force every song to this length in seconds (short test songs)")
    ap.add_argument("--demo", help="render one song of --split to this mixture path; its "
                                   "stems go to <dir>/<name>_stems/ (version 1 only)")
    ap.add_argument("--version", type=int, choices=(1, 2), default=1,
                    help="1: the frozen v1 corpus (default, byte-identical to earlier "
                         "renders); 2: produced-record corpus v2 (styles, pedalboard "
                         "production, WORLD singers; resumable)")
    ap.add_argument("--expressive-from", action="append", default=[], metavar="[SPLIT:]INDEX",
                    help="version 2: songs from this index on (of every split, or of SPLIT; "
                         "repeatable) play their lead parts with pitch bends, slides and vibrato "
                         "(v2expression.py); earlier songs are unchanged")
    args = ap.parse_args(argv)
    sources.check_available()
    sources.check_disjoint()
    if args.version == 2:
        if args.demo:
            ap.error("--demo renders version 1 songs only")
        if not args.root:
            ap.error("--root is required")
        return main_v2(args)
    t0 = time.time()
    if args.demo:
        ss = song_seed(args.seed, args.split, 0)
        song = make_song(ss, args.duration)
        stem_dir = os.path.splitext(args.demo)[0] + "_stems"
        job = {"split": args.split, "index": 0, "song_seed": ss, "duration": args.duration,
               "sources": choose_sources(song, args.split, ss), "dir": stem_dir}
        r = run([job], 1, progress=False)[0]
        shutil.copyfile(os.path.join(stem_dir, "mixture.wav"), args.demo)
        with open(os.path.join(stem_dir, "song.json"), "w") as f:
            json.dump(r, f, indent=1)
        print(json.dumps({k: r[k] for k in ("style", "tempo_bpm", "key", "duration_s")}))
        return 0
    if not args.root:
        ap.error("--root is required")
    jobs = plan(args)
    results = run(jobs, args.jobs)
    wall = time.time() - t0
    hours = {s: round(sum(r["duration_s"] for r in results if r["split"] == s) / 3600, 4)
             for s in SPLIT_ID}
    audio = sum(r["duration_s"] for r in results)
    manifest = {
        "version": VERSION, "seed": args.seed, "sample_rate": SR, "format": "float32 WAV",
        "command": " ".join(sys.argv), "hours": hours,
        "render": {"wall_s": round(wall, 1), "audio_s": round(audio, 1),
                   "realtime_factor": round(audio / wall, 2), "jobs": args.jobs},
        "pools": {
            "train+valid": {"soundfonts": [s.name for s in sources.SOUNDFONTS["seen"]],
                            "hydrogen": [k.name for k in sources.HYDROGEN["seen"]],
                            "voices": [v.name for v in sources.VOICES["seen"]]},
            "test": {"soundfonts": [s.name for s in sources.SOUNDFONTS["unseen"]],
                     "hydrogen": [k.name for k in sources.HYDROGEN["unseen"]],
                     "voices": [v.name for v in sources.VOICES["unseen"]]},
        },
        "songs": results,
    }
    os.makedirs(args.root, exist_ok=True)
    # the manifest is deterministic except for timings, which live under "render"
    with open(os.path.join(args.root, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"done: {hours} h in {wall:.0f} s wall = {audio / wall:.1f}x real time "
          f"({args.jobs} jobs)")
    return 0


def expressive_indices(values: list[str]) -> dict[str, int]:
    """`--expressive-from` values ("205" for every split, "valid:21" for one) as {split: index}."""
    out: dict[str, int] = {}
    for value in values:
        split, _, index = value.rpartition(":")
        if split and split not in SPLIT_ID or not index.isdigit():
            raise SystemExit(f"--expressive-from {value!r}: use INDEX or SPLIT:INDEX with a split of "
                             f"{', '.join(SPLIT_ID)}")
        out.update({s: int(index) for s in ([split] if split else SPLIT_ID)})
    return out


def main_v2(args: argparse.Namespace) -> int:
    """Corpus v2 (``v2render``): resumable, long-lived workers, same layout as v1."""
    import v2render  # noqa: PLC0415 (v2's music21/pedalboard/pyworld stay out of v1 runs)

    v2render.check_pools()
    t0 = time.time()
    targets = ({args.split: None} if args.songs is not None else
               {"train": args.hours_train, "valid": args.hours_valid, "test": args.hours_test})
    jobs = v2render.plan(args.root, args.seed, targets, args.songs, args.duration,
                         expressive_indices(args.expressive_from))
    new, failed = v2render.run_jobs(jobs, args.jobs)
    wall = time.time() - t0
    audio = sum(r["duration_s"] for r in new)
    render = {"wall_s": round(wall, 1), "audio_s": round(audio, 1), "jobs": args.jobs,
              "realtime_factor": round(audio / wall, 2) if audio else None,
              "songs_rendered_now": len(new), "songs_failed": len(failed)}
    m = v2render.write_manifest(args.root, jobs, args.seed, " ".join(sys.argv), render)
    print(f"done: {m['hours']} h in the corpus; this run {audio / 3600:.2f} h in {wall:.0f} s "
          f"wall = {audio / max(wall, 1e-9):.1f}x real time ({args.jobs} jobs), "
          f"{len(failed)} failed")
    if failed and len(jobs) <= 8:  # small runs (tests) must not hide a failure
        print(f"error: {failed[0]['error']}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
