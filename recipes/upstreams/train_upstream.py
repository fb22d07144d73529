"""Train one small upstream separator on the "upstream-train" songs; one simple loop.

Why this is enough: the bundled upstreams only need to be *different*, modest
separators that the mixer can combine; they are trained on a CPU in minutes.

Loop: every step draws `--batch` random crops of `--min-seconds`..`--max-seconds`
(one length per step) from the listed songs. With probability `--remix` each stem of a
crop comes from a different random song/offset (Demucs-style remixing, more variety from
few songs); each stem gets a random gain (0.5–1.5) and a random L/R swap; the mixture is
the sum of the stems (the corpus's mixtures are exactly that). Loss: L1 between
estimated and true stem waveforms (for the mask model the estimate is the masked mixture
STFT turned back to audio, so this is an L1 on what is scored). Adam, constant lr.
Stops at `--minutes` of wall clock or `--steps`, whichever comes first; the model file is
written atomically every `--save-every` minutes and at the end, so an interrupted run
still leaves a usable file. Logs one JSON line per `--log-every` steps.

    python recipes/upstreams/train_upstream.py demucs   --out /work/data/upstreams/hdemucs16.safetensors
    python recipes/upstreams/train_upstream.py spectral --out /work/data/upstreams/spectral4.safetensors
    python recipes/upstreams/train_upstream.py spectral --stems vocals --n-fft 4096 --hop 1024 \
        --out /work/data/upstreams/spectral_vocals.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mdxmix.stems import STEMS  # noqa: E402
from mdxmix.upstream.spectral import SpectralConfig, SpectralMaskNet, save_spectral  # noqa: E402

SR = 44100


class CropSampler:
    """Random stem crops from song folders, read straight from disk (no whole-song loads)."""

    def __init__(self, folders: list[Path], stems: tuple[str, ...], rng: np.random.Generator, remix: float) -> None:
        self.stems, self.rng, self.remix = stems, rng, remix
        self.set_folders(folders)

    def set_folders(self, folders: list[Path]) -> None:
        self.folders = folders
        self.frames = [sf.info(str(f / "mixture.wav")).frames for f in folders]

    def _read(self, song: int, stem: str, start: int, length: int) -> np.ndarray:
        audio, _ = sf.read(str(self.folders[song] / f"{stem}.wav"), start=start, stop=start + length,
                           dtype="float32", always_2d=True)
        return audio.T

    def crop(self, length: int) -> np.ndarray:
        """(4, 2, length) stems in STEMS order, augmented."""
        remix = self.rng.random() < self.remix
        song = int(self.rng.integers(len(self.folders)))
        start = int(self.rng.integers(max(1, self.frames[song] - length)))
        out = np.zeros((len(STEMS), 2, length), np.float32)
        for i, stem in enumerate(STEMS):
            if remix:
                song = int(self.rng.integers(len(self.folders)))
                start = int(self.rng.integers(max(1, self.frames[song] - length)))
            x = self._read(song, stem, start, length)
            if self.rng.random() < 0.5:
                x = x[::-1]
            out[i, :, : x.shape[1]] = x * self.rng.uniform(0.5, 1.5)
        return out

    def batch(self, size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixture (B, 2, L), targets (B, len(stems), 2, L)) for the model's stems."""
        stems = torch.from_numpy(np.stack([self.crop(length) for _ in range(size)]))
        index = [STEMS.index(s) for s in self.stems]
        return stems.sum(1), stems[:, index]


def read_song_list(corpus: Path, list_file: Path) -> list[Path]:
    names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    return [corpus / "train" / n for n in names]


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[str, ...]]:
    stems = tuple(args.stems.split("+")) if args.stems else STEMS
    if args.family == "demucs":
        from demucs.hdemucs import HDemucs

        if stems != STEMS:
            raise SystemExit("the demucs recipe trains all four stems")
        return HDemucs(sources=list(STEMS), channels=args.channels, segment=args.segment), stems
    config = SpectralConfig(stems=stems, n_fft=args.n_fft, hop=args.hop, hidden=args.hidden, layers=args.layers)
    return SpectralMaskNet(config), stems


def save(model: torch.nn.Module, family: str, out: Path, half: bool) -> None:
    """Both writers are atomic (mdxmix.atomic: a temp name in the same folder, then rename)."""
    if family == "demucs":
        from mdxmix.upstream.demucs_package import save_demucs_package

        save_demucs_package(model, out, half=half)
    else:
        save_spectral(model, out, half=half)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("family", choices=["demucs", "spectral"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, default=Path("/work/data/corpus"))
    ap.add_argument("--songs", type=Path, default=Path("/work/data/upstreams/upstream_train_songs.txt"),
                    help="upstream-train song names (from split_corpus.py); re-read every 50 steps if it changes")
    ap.add_argument("--stems", default="", help="e.g. vocals or drums+bass (default: all four)")
    ap.add_argument("--minutes", type=float, default=16.0)
    ap.add_argument("--steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=6.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--remix", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--half", action="store_true", help="store float16 weights")
    ap.add_argument("--save-every", type=float, default=4.0, help="minutes")
    ap.add_argument("--log-every", type=int, default=10)
    # demucs
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--segment", type=float, default=6.0)
    # spectral
    ap.add_argument("--n-fft", type=int, default=2048)
    ap.add_argument("--hop", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model, stems = build(args)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    songs_mtime = args.songs.stat().st_mtime
    sampler = CropSampler(read_song_list(args.corpus, args.songs), stems, rng, args.remix)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"event": "start", "family": args.family, "stems": stems, "params": n_params,
                      "songs": len(sampler.folders), "args": {k: str(v) for k, v in vars(args).items()}}), flush=True)

    start = last_save = time.time()
    step, running, data_time = 0, 0.0, 0.0
    model.train()
    while step < args.steps and time.time() - start < args.minutes * 60:
        if step % 50 == 0 and args.songs.stat().st_mtime != songs_mtime:
            songs_mtime = args.songs.stat().st_mtime
            sampler.set_folders(read_song_list(args.corpus, args.songs))
        t0 = time.time()
        length = int(rng.uniform(args.min_seconds, args.max_seconds) * SR)
        mixture, target = sampler.batch(args.batch, length)
        data_time += time.time() - t0
        estimate = model(mixture)
        loss = (estimate - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        running += loss.item()
        if step % args.log_every == 0:
            elapsed = time.time() - start
            print(json.dumps({"step": step, "loss": round(running / args.log_every, 6), "elapsed_s": round(elapsed, 1),
                              "s_per_step": round(elapsed / step, 3), "data_s_per_step": round(data_time / step, 3),
                              "songs": len(sampler.folders)}), flush=True)
            running = 0.0
        if time.time() - last_save > args.save_every * 60:
            save(model.eval(), args.family, args.out, args.half)
            model.train()
            last_save = time.time()
    model.eval()
    save(model, args.family, args.out, args.half)
    elapsed = time.time() - start
    print(json.dumps({"event": "done", "steps": step, "elapsed_s": round(elapsed, 1),
                      "s_per_step": round(elapsed / max(step, 1), 3), "params": n_params,
                      "file": str(args.out), "bytes": args.out.stat().st_size}), flush=True)


if __name__ == "__main__":
    main()
