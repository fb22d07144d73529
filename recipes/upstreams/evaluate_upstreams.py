"""Check that trained upstreams separate better than the trivial "mixture / 4" estimate.

For each model file and each of `--songs` songs (sorted, after the first `--skip`) of a corpus split,
prints the global SDR per stem, 10·log10(Σs² / Σ(s−ŝ)²) over the whole song, of the model
and of mixture/4. With `--half-out DIR` it also writes a float16 copy of each file there
and scores it, so "float16 changes nothing measurable" is a measured statement.

    python recipes/upstreams/evaluate_upstreams.py /work/data/upstreams/*.safetensors --split valid --songs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import soundfile as sf
import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mdxmix.evaluate.metrics import global_sdr  # noqa: E402
from mdxmix.stems import STEMS  # noqa: E402
from mdxmix.upstream.demucs_adapter import load_local_demucs  # noqa: E402
from mdxmix.upstream.demucs_package import load_demucs_package, save_demucs_package  # noqa: E402
from mdxmix.upstream.spectral import load_local_spectral, load_spectral, save_spectral  # noqa: E402
from mdxmix.upstream.umx import FORMAT as UMX_FORMAT, load_local_umx, load_umx, save_umx  # noqa: E402


def family_of(path: Path) -> str:
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if "klass" in meta:
        return "demucs"
    return "umx" if meta.get("format") == UMX_FORMAT else "spectral"


def load(path: Path):
    loaders = {"demucs": load_local_demucs, "umx": load_local_umx, "spectral": load_local_spectral}
    return loaders[family_of(path)](path, path.name)


def write_half(path: Path, out_dir: Path) -> Path:
    out = out_dir / path.name.replace(".f32", "")
    family = family_of(path)  # one header read
    if family == "demucs":
        tmp = out.with_name(out.name + ".partial")
        save_demucs_package(load_demucs_package(path), tmp, half=True)
        tmp.chmod(0o644)  # safetensors writes owner-only files; weights are meant to be shared
        tmp.replace(out)
    elif family == "umx":
        save_umx(load_umx(path), out, half=True)
    else:
        save_spectral(load_spectral(path), out, half=True)
    return out


def score(upstream, songs: list[Path], seconds: float | None) -> dict[str, list[float]]:
    result: dict[str, list[float]] = {}
    for song in songs:
        stop = int(seconds * 44100) if seconds else None
        mix, _ = sf.read(str(song / "mixture.wav"), stop=stop, dtype="float32", always_2d=True)
        out = upstream.separate(torch.from_numpy(mix.T.copy()))
        for stem in upstream.stems:
            ref, _ = sf.read(str(song / f"{stem}.wav"), stop=stop, dtype="float32", always_2d=True)
            result.setdefault(stem, []).append(global_sdr(ref, out[stem].numpy().T))
            result.setdefault(f"{stem}:mixture/4", []).append(global_sdr(ref, mix / 4))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--corpus", type=Path, default=Path("/work/data/corpus"))
    ap.add_argument("--split", default="valid")
    ap.add_argument("--songs", type=int, default=2)
    ap.add_argument("--skip", type=int, default=0,
                    help="start after this many songs (corpus v2's valid songs 0021-0030, the ones "
                         "with expressive leads: --skip 21 --songs 10)")
    ap.add_argument("--seconds", type=float, default=None, help="score only the first seconds of each song")
    ap.add_argument("--half-out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    songs = sorted(p for p in (args.corpus / args.split).iterdir() if p.is_dir())[args.skip: args.skip + args.songs]
    files = list(args.files)
    if args.half_out:
        args.half_out.mkdir(parents=True, exist_ok=True)
        files += [write_half(f, args.half_out) for f in args.files]
    for path in files:
        t0 = time.time()
        result = score(load(path), songs, args.seconds)
        row = {"file": str(path), "bytes": path.stat().st_size, "songs": [s.name for s in songs],
               "seconds": round(time.time() - t0, 1)}
        for stem in STEMS:
            if stem in result:
                row[stem] = [round(v, 2) for v in result[stem]]
                row[f"{stem}:mixture/4"] = [round(v, 2) for v in result[f"{stem}:mixture/4"]]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
