"""Train one upstream separator on the "upstream-train" songs; stop and restart at will.

Why it looks like this: on a 2-core CPU an upstream needs many hours, spread over
sessions that are killed without warning. So a run lives in a folder (`--run`, default
`<out>.run/`) holding `state.pt` (model, Adam, step, training seconds, RNG states),
`last.safetensors`, `best.safetensors` (lowest validation L1) and `log.jsonl`; rerunning
**the same command** continues from the last checkpoint until `--minutes` of *training*
time (the process's CPU time in training steps, summed over all restarts, so a run that
shares the CPU with other jobs gets the same budget as one alone; with `--threads 1` it
equals wall time on an idle core) are spent, then writes `--out` (the best file when
validation ran, else the last). SIGTERM/SIGINT save a checkpoint before exiting.

Loop: every step draws `--batch` random crops of `--min-seconds`..`--max-seconds` (one
length per step) from the songs. With probability `--remix` each stem of a crop comes
from a different random song/offset (Demucs-style remixing); each stem gets a random gain
(0.5–1.5) and a random L/R swap; the mixture is the sum of the stems (the corpus's
mixtures are exactly that). Loss: L1 between estimated and true stem waveforms. Adam;
the learning rate is constant for the first 70 % of the budget, then falls linearly to
10 % of `--lr`. Validation every `--valid-every` minutes: fixed crops of the corpus's
valid songs (the same crops for the whole run), L1 and global SDR per stem.

    python recipes/upstreams/train_upstream.py demucs   --out /work/data/upstreams/hdemucs16.safetensors
    python recipes/upstreams/train_upstream.py spectral --out /work/data/upstreams/spectral4.safetensors
    python recipes/upstreams/train_upstream.py spectral --stems vocals --n-fft 4096 --hop 1024 \
        --out /work/data/upstreams/spectral_vocals.safetensors
    # corpus v2, warm start from the bundled file, 8 h of training over as many restarts as needed:
    python recipes/upstreams/train_upstream.py spectral --corpus /work/data/corpus_v2 \
        --init /work/data/weights_v1/spectral4.safetensors --minutes 480 --out /work/data/upstreams_v2/spectral4.safetensors
    # an Open-Unmix-style model (mdxmix/upstream/umx.py; n_fft 4096, hop 1024, 3 BiLSTM layers by default)
    python recipes/upstreams/train_upstream.py umx --corpus /work/data/corpus_v2 --hidden 256 \
        --minutes 480 --out /work/data/upstreams_v2/umx4.safetensors

A fresh `umx` run starts every target's input mean/scale from the magnitudes of 8 training
crops (as Open-Unmix does from its training set), drawn with their own RNG (seed + 1), so the
crops the training draws do not depend on it.

Without `--songs`, the upstream-train songs are the even-numbered train songs of
`--corpus` (split_corpus.py's rule), re-scanned every 50 steps while a corpus renders.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from split_corpus import split, train_songs  # noqa: E402

from mdxmix.stems import STEMS  # noqa: E402
from mdxmix.upstream.spectral import SpectralConfig, SpectralMaskNet, load_spectral, save_spectral  # noqa: E402
from mdxmix.upstream.umx import OpenUnmixNet, UMXConfig, load_umx, save_umx  # noqa: E402

SR = 44100
RESCAN_STEPS = 50
SILENT_POWER = 1e-6  # mean power below -60 dBFS: a stem that is not playing in this crop


class CropSampler:
    """Random stem crops from song folders, read straight from disk (no whole-song loads)."""

    def __init__(self, folders: list[Path], stems: tuple[str, ...], rng: np.random.Generator, remix: float,
                 solo: float = 0.0) -> None:
        self.stems, self.rng, self.remix, self.solo = stems, rng, remix, solo
        self.folders: list[Path] = []
        self.frames: list[int] = []
        self.set_folders(folders)

    def set_folders(self, folders: list[Path]) -> None:
        """Take a (re-scanned) song list; only a changed list is measured again."""
        if folders == self.folders:
            return
        self.folders = folders
        self.frames = [sf.info(str(f / "mixture.wav")).frames for f in folders]

    def _read(self, song: int, stem: str, start: int, length: int) -> np.ndarray:
        audio, _ = sf.read(str(self.folders[song] / f"{stem}.wav"), start=start, stop=start + length,
                           dtype="float32", always_2d=True)
        return audio.T

    def crop(self, length: int) -> np.ndarray:
        """(4, 2, length) stems in STEMS order, augmented; with probability `solo`, one audible stem alone.

        Why solo crops: musicians also feed a separator one instrument alone (a guitar track, a
        drum loop), where the right answer is that instrument in its own stem and silence in
        the others; song crops seldom show an instrument without the rest of the band. (The
        draw is skipped when `solo` is 0, so runs without it keep their random stream.)"""
        solo = self.solo > 0 and self.rng.random() < self.solo
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
        audible = [i for i in range(len(STEMS)) if float(np.mean(out[i] ** 2)) > SILENT_POWER] if solo else []
        if audible:
            keep = audible[int(self.rng.integers(len(audible)))]
            out[[i for i in range(len(STEMS)) if i != keep]] = 0.0
        return out

    def batch(self, size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixture (B, 2, L), targets (B, len(stems), 2, L)) for the model's stems."""
        stems = torch.from_numpy(np.stack([self.crop(length) for _ in range(size)]))
        index = [STEMS.index(s) for s in self.stems]
        return stems.sum(1), stems[:, index]


def upstream_songs(args: argparse.Namespace) -> list[Path]:
    """The listed songs (`--songs`), or the even-numbered train songs of the corpus."""
    if args.songs is not None:
        names = [line.strip() for line in args.songs.read_text().splitlines() if line.strip()]
    else:
        names = split(train_songs(args.corpus))[0]
    return [args.corpus / "train" / n for n in names]


def valid_crops(corpus: Path, count: int, seconds: float, stems: tuple[str, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` fixed crops spread over the valid songs (same crops on every restart)."""
    songs = sorted(p for p in (corpus / "valid").iterdir() if (p / "mixture.wav").is_file())[:count]
    length, crops = int(seconds * SR), []
    for k in range(count if songs else 0):
        song = songs[k % len(songs)]
        frames = sf.info(str(song / "mixture.wav")).frames
        start = int((0.2 + 0.6 * ((k // len(songs)) * 0.37 % 1.0)) * max(0, frames - length))
        read = [sf.read(str(song / f"{s}.wav"), start=start, stop=start + length, dtype="float32",
                        always_2d=True)[0].T for s in STEMS]
        all_stems = torch.from_numpy(np.stack(read))
        crops.append((all_stems.sum(0, keepdim=True), all_stems[[STEMS.index(s) for s in stems]][None]))
    return crops


@torch.no_grad()
def validate(model: torch.nn.Module, crops: list, stems: tuple[str, ...]) -> dict:
    """Mean L1 and global SDR per stem (10·log10 Σs² / Σ(s−ŝ)² over all crops)."""
    model.eval()
    l1, signal_e, error_e = 0.0, torch.zeros(len(stems), dtype=torch.float64), torch.zeros(len(stems), dtype=torch.float64)
    for mixture, target in crops:
        estimate = model(mixture)
        l1 += (estimate - target).abs().mean().item()
        signal_e += target.double().pow(2).sum(dim=(0, 2, 3))
        error_e += (target - estimate).double().pow(2).sum(dim=(0, 2, 3))
    model.train()
    sdr = 10 * torch.log10((signal_e + 1e-8) / (error_e + 1e-8))
    return {"valid_l1": round(l1 / len(crops), 6), "valid_sdr": {s: round(v, 3) for s, v in zip(stems, sdr.tolist())}}


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """A fresh model, or the `--init` file's (warm start; its size wins over the flags)."""
    stems = tuple(args.stems.split("+")) if args.stems else STEMS
    if args.family == "demucs":
        from demucs.hdemucs import HDemucs

        from mdxmix.upstream.demucs_package import load_demucs_package

        if stems != STEMS:
            raise SystemExit("the demucs recipe trains all four stems")
        if args.init:
            return load_demucs_package(args.init).float(), stems
        return HDemucs(sources=list(STEMS), channels=args.channels, segment=args.segment), stems
    if args.init:
        model = (load_umx if args.family == "umx" else load_spectral)(args.init).float()
        if tuple(model.config.stems) != stems:
            raise SystemExit(f"--init has stems {model.config.stems}, --stems asks for {stems}")
        return model, stems
    if args.family == "umx":
        umx = UMXConfig(stems=stems, n_fft=args.n_fft, hop=args.hop, hidden=args.hidden, layers=args.layers,
                        bandwidth=args.bandwidth, dropout=args.dropout)
        return OpenUnmixNet(umx), stems
    config = SpectralConfig(stems=stems, n_fft=args.n_fft, hop=args.hop, hidden=args.hidden, layers=args.layers)
    return SpectralMaskNet(config), stems


def input_statistics(model: OpenUnmixNet, args: argparse.Namespace) -> None:
    """A fresh umx model's input mean/scale from 8 training crops (own RNG: the training draws stay as they are)."""
    sampler = CropSampler(upstream_songs(args), STEMS, np.random.default_rng(args.seed + 1), 0.0)
    mixture, _ = sampler.batch(8, int(args.max_seconds * SR))
    model.set_input_statistics(mixture)


def save(model: torch.nn.Module, family: str, out: Path, half: bool) -> None:
    """All writers are atomic (mdxmix.atomic: a temp name in the same folder, then rename)."""
    was_training = model.training
    model.eval()
    if family == "demucs":
        from mdxmix.upstream.demucs_package import save_demucs_package

        save_demucs_package(model, out, half=half)
    elif family == "umx":
        save_umx(model, out, half=half)
    else:
        save_spectral(model, out, half=half)
    model.train(was_training)


class Run:
    """The run folder: checkpoint state, model files and the log, all written atomically."""

    def __init__(self, folder: Path, family: str, half: bool) -> None:
        self.folder, self.family, self.half = folder, family, half
        folder.mkdir(parents=True, exist_ok=True)
        self.state_path = folder / "state.pt"
        self._lock = self._take_lock()

    def _take_lock(self):
        """One process per run folder: rerunning the resume command while the run is still
        training would have two processes overwrite each other's checkpoints. The kernel drops
        the lock when the process ends, however it ends."""
        handle = open(self.folder / "lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit(f"{self.folder}: another process is training this run; let it finish or stop it first") from None
        return handle

    def log(self, record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        with open(self.folder / "log.jsonl", "a") as f:
            f.write(line + "\n")

    def load(self, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator) -> dict:
        """Restore a checkpoint if one exists; returns the counters (step, train_s, best)."""
        if not self.state_path.exists():
            return {"step": 0, "train_s": 0.0, "best": None}
        state = torch.load(self.state_path, weights_only=True)  # tensors and plain values only
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        return state["counters"]

    def save(self, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator, counters: dict) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                    "numpy_rng": json.dumps(rng.bit_generator.state), "counters": counters}, tmp)
        save(model, self.family, self.folder / "last.safetensors", self.half)
        tmp.replace(self.state_path)

    def save_best(self, model: torch.nn.Module) -> None:
        save(model, self.family, self.folder / "best.safetensors", self.half)


def learning_rate(base: float, train_s: float, budget_s: float) -> float:
    """Constant, then a linear fall to 10 % over the last 30 % of the budget."""
    frac = train_s / max(budget_s, 1e-9)
    return base if frac < 0.7 else base * (1.0 - 0.9 * min(1.0, (frac - 0.7) / 0.3))


class Stop:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the end of the step."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("family", choices=["demucs", "spectral", "umx"])
    ap.add_argument("--out", type=Path, required=True, help="final model file (best by validation, else last)")
    ap.add_argument("--run", type=Path, default=None, help="run folder (default: <out>.run); rerun to continue")
    ap.add_argument("--corpus", type=Path, default=Path("/work/data/corpus"))
    ap.add_argument("--songs", type=Path, default=None,
                    help="upstream-train song names, one a line (default: even-numbered train songs); re-read every 50 steps")
    ap.add_argument("--init", type=Path, default=None, help="warm start from this model file (fresh runs only)")
    ap.add_argument("--stems", default="", help="e.g. vocals or drums+bass (default: all four)")
    ap.add_argument("--minutes", type=float, default=16.0, help="training CPU minutes, summed over restarts")
    ap.add_argument("--steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=6.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--remix", type=float, default=0.5)
    ap.add_argument("--solo", type=float, default=0.0,
                    help="chance that a training crop holds one audible stem alone (the others silent)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--half", action="store_true", help="store float16 weights")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the training forward (weights, Adam and validation stay float32); "
                         "1.3-1.5x the steps per CPU second where the CPU has AVX512-BF16 or AMX, slower where it has not")
    ap.add_argument("--save-every", type=float, default=4.0, help="minutes between checkpoints")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--valid-every", type=float, default=0.0, help="minutes between validations (0: none)")
    ap.add_argument("--valid-crops", type=int, default=12)
    ap.add_argument("--valid-seconds", type=float, default=6.0)
    # demucs
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--segment", type=float, default=6.0)
    # spectral and umx (defaults per family: spectral 2048/512/6 TCN blocks, umx 4096/1024/3 LSTM layers)
    ap.add_argument("--n-fft", type=int, default=None)
    ap.add_argument("--hop", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=256, help="spectral: TCN width; umx: Open-Unmix hidden size (it uses 512)")
    ap.add_argument("--layers", type=int, default=None)
    # umx
    ap.add_argument("--bandwidth", type=float, default=16000.0, help="umx: Hz of the bins that enter the network")
    ap.add_argument("--dropout", type=float, default=0.4, help="umx: dropout between LSTM layers")
    args = ap.parse_args(argv)
    n_fft, hop, layers = (4096, 1024, 3) if args.family == "umx" else (2048, 512, 6)
    args.n_fft = n_fft if args.n_fft is None else args.n_fft
    args.hop = hop if args.hop is None else args.hop
    args.layers = layers if args.layers is None else args.layers
    args.run = args.run or args.out.with_name(args.out.name + ".run")
    return args


def maybe_validate(run: Run, model: torch.nn.Module, crops: list, stems: tuple, counters: dict) -> None:
    """Validate, log, and keep the best model file by validation L1."""
    if not crops:
        return
    result = validate(model, crops, stems)
    counters["last_valid_s"] = counters["train_s"]
    if counters["best"] is None or result["valid_l1"] < counters["best"]:
        counters["best"] = result["valid_l1"]
        run.save_best(model)
    run.log({"step": counters["step"], "train_s": round(counters["train_s"], 1), **result, "best": counters["best"]})


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, sampler: CropSampler, rng: np.random.Generator,
               args: argparse.Namespace, lr: float) -> float:
    length = int(rng.uniform(args.min_seconds, args.max_seconds) * SR)
    mixture, target = sampler.batch(args.batch, length)
    for group in opt.param_groups:
        group["lr"] = lr
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        estimate = model(mixture)
    loss = (estimate.float() - target).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def finish(args: argparse.Namespace, run: Run, model: torch.nn.Module) -> None:
    """`--out` gets the best file when validation ran, the last one otherwise."""
    best, last = run.folder / "best.safetensors", run.folder / "last.safetensors"
    source = best if best.exists() else last
    if not source.exists():
        save(model, args.family, last, args.half)
        source = last
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(args.out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model, stems = build(args)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    run = Run(args.run, args.family, args.half)
    counters = run.load(model, opt, rng)
    if args.family == "umx" and counters["step"] == 0 and not args.init:
        input_statistics(model, args)
    sampler = CropSampler(upstream_songs(args), stems, rng, args.remix, args.solo)
    crops = valid_crops(args.corpus, args.valid_crops, args.valid_seconds, stems) if args.valid_every > 0 else []
    budget_s, stop = args.minutes * 60, Stop()
    run.log({"event": "start" if counters["step"] == 0 else "resume", "family": args.family, "stems": stems,
             "params": sum(p.numel() for p in model.parameters()), "songs": len(sampler.folders),
             "valid_crops": len(crops), **counters, "args": {k: str(v) for k, v in vars(args).items()}})
    if counters["step"] == 0 and crops:
        maybe_validate(run, model, crops, stems, counters)
    last_save, running = time.time(), 0.0
    while counters["step"] < args.steps and counters["train_s"] < budget_s and not stop.requested:
        if counters["step"] % RESCAN_STEPS == 0:
            sampler.set_folders(upstream_songs(args))
        t0 = time.process_time()
        lr = learning_rate(args.lr, counters["train_s"], budget_s)
        running += train_step(model, opt, sampler, rng, args, lr)
        counters["step"] += 1
        counters["train_s"] += time.process_time() - t0
        if counters["step"] % args.log_every == 0:
            run.log({"step": counters["step"], "loss": round(running / args.log_every, 6), "lr": lr,
                     "train_s": round(counters["train_s"], 1), "songs": len(sampler.folders)})
            running = 0.0
        if crops and counters["train_s"] - counters.get("last_valid_s", 0.0) >= args.valid_every * 60:
            maybe_validate(run, model, crops, stems, counters)
        if time.time() - last_save > args.save_every * 60:
            run.save(model, opt, rng, counters)
            last_save = time.time()
    run.save(model, opt, rng, counters)
    if stop.requested:
        run.log({"event": "stopped", **counters})
        raise SystemExit(143)
    if crops and counters.get("last_valid_s") != counters["train_s"]:
        maybe_validate(run, model, crops, stems, counters)
        run.save(model, opt, rng, counters)
    finish(args, run, model)
    run.log({"event": "done", **counters, "file": str(args.out), "bytes": args.out.stat().st_size})


if __name__ == "__main__":
    main()
