"""Time `mdxmix eval` scoring on a 30-minute, 4-stem test split, and check the fast
museval-style SDR against museval itself.

Writes a synthetic MUSDB18-HQ-layout split (tonal + percussive + noisy stems with silent
stretches, 16-bit WAV) and one estimates folder (references filtered, mixed with leakage
from the other stems and noise), unless --data/--estimates point at real ones.

    /work/venv/bin/python bench/eval_speed.py --minutes 30 --tracks 8 --jobs 2 --museval-tracks 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxmix.evaluate.dataset import EstimatesFolder
from mdxmix.evaluate.metrics import frame_median, framewise_sdr, framewise_sdr_museval
from mdxmix.evaluate.runner import score_systems
from mdxmix.musdb import MusdbSplit
from mdxmix.stems import SAMPLE_RATE, STEMS

SR = SAMPLE_RATE


def _stem(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    if kind == "drums":
        x = np.zeros(n)
        for start in range(0, n, SR // 2):
            hit = rng.standard_normal(min(SR // 4, n - start)) * np.exp(-np.arange(min(SR // 4, n - start)) / 2000)
            x[start : start + hit.size] += hit
    elif kind == "bass":
        x = np.sin(2 * np.pi * (55 + 20 * np.sin(2 * np.pi * 0.1 * t)) * t)
    elif kind == "other":
        x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 277, 330, 440), 1))
        x = x + 0.2 * rng.standard_normal(n)
    else:
        x = np.sin(2 * np.pi * 300 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
        for start in range(0, n, 20 * SR):  # verses with silent gaps
            x[start : start + 4 * SR] = 0.0
    pan = rng.uniform(0.3, 0.7)
    return (0.2 * np.stack([x * pan, x * (1 - pan)], axis=1)).astype(np.float32)


def make_split(root: Path, est: Path, minutes: float, tracks: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR / tracks)
    for i in range(tracks):
        name = f"track{i:02d}"
        (root / "test" / name).mkdir(parents=True, exist_ok=True)
        (est / name).mkdir(parents=True, exist_ok=True)
        refs = {s: _stem(s, n, rng) for s in STEMS}
        for s, x in refs.items():
            sf.write(root / "test" / name / f"{s}.wav", x, SR, subtype="PCM_16")
        sf.write(root / "test" / name / "mixture.wav", sum(refs.values()), SR, subtype="PCM_16")
        for s, x in refs.items():
            leak = sum(v for k, v in refs.items() if k != s) * rng.uniform(0.05, 0.2)
            smooth = np.convolve(x[:, 0], np.ones(8) / 8, mode="same")[:, None] * np.array([[1.0, 0.97]], np.float32)
            y = 0.9 * smooth + leak + 0.01 * rng.standard_normal(x.shape)
            y[x.sum(axis=1) == 0] = 0.0  # separators often output silence where the stem is silent
            sf.write(est / name / f"{s}.wav", y.astype(np.float32), SR, subtype="PCM_16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mdxmix-eval-bench"))
    ap.add_argument("--data", type=Path, help="existing MUSDB-layout root (uses its 'test' split)")
    ap.add_argument("--estimates", type=Path, help="existing estimates folder for --data")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--museval-tracks", type=int, default=2, help="tracks also scored by museval itself")
    args = ap.parse_args()

    data, est = args.data, args.estimates
    if data is None:
        data, est = args.workdir / "data", args.workdir / "est"
        if not (data / "test").is_dir():
            t0 = time.perf_counter()
            make_split(data, est, args.minutes, args.tracks)
            print(f"generated {args.minutes} min in {args.tracks} tracks: {time.perf_counter() - t0:.1f} s")
    split = MusdbSplit(data, "test")
    tracks = split.tracks()
    audio_s = sum(sf.info(str(split.folder / t / "vocals.wav")).duration for t in tracks)
    report: dict = {"audio_minutes": round(audio_s / 60, 2), "tracks": len(tracks), "jobs": args.jobs}
    for metrics in (("global",), ("museval",), ("global", "museval")):
        t0 = time.perf_counter()
        res = score_systems(split, {"est": EstimatesFolder(est)}, tracks, metrics=metrics, jobs=args.jobs, progress=False)
        report["+".join(metrics)] = {
            "wall_s": round(time.perf_counter() - t0, 2),
            "worker_s": {k: round(v, 2) for k, v in res.seconds.items() if k != "wall"},
            "summary": {m: {k: round(v, 3) for k, v in res.aggregate(m)["est"].items()} for m in metrics},
        }
        print(json.dumps({"+".join(metrics): report["+".join(metrics)]}))

    agreement = []
    for track in tracks[: args.museval_tracks]:
        refs, ests = split.references(track), EstimatesFolder(est)(track)
        t0 = time.perf_counter()
        fast = framewise_sdr(refs, ests)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = framewise_sdr_museval(refs, ests)
        t_mus = time.perf_counter() - t0
        seconds = refs["vocals"].shape[0] / SR
        row = {
            "track": track,
            "seconds": round(seconds, 1),
            "fast_s": round(t_fast, 3),
            "museval_s": round(t_mus, 1),
            "max_abs_diff_track_median_db": max(abs(frame_median(fast[s]) - frame_median(ref[s])) for s in STEMS),
            "max_abs_diff_frame_db": float(max(np.nanmax(np.abs(fast[s] - ref[s])) for s in STEMS)),
            "same_nan_frames": all(np.array_equal(np.isnan(fast[s]), np.isnan(ref[s])) for s in STEMS),
        }
        agreement.append(row)
        print(json.dumps(row))
    if agreement:
        per_audio_s = sum(r["museval_s"] for r in agreement) / sum(r["seconds"] for r in agreement)
        report["museval_package_extrapolated_30min_single_process_s"] = round(per_audio_s * 1800, 0)
    report["museval_agreement"] = agreement
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
