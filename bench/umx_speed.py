"""Cost of the Open-Unmix-style upstream (`mdxmix/upstream/umx.py`) on this machine.

For each `--hidden`: parameters, float16 file size, process CPU seconds (and wall seconds) for
the adapter to separate `--seconds` of `examples/demo.wav` (looped; CPU chunking: 30-s chunks,
2-s cross-fade; best of 2 after a warm-up), how far that chunked output is from the model run
on the whole input (energy of the difference relative to the output, dB), and seconds per
training step (forward, L1 loss, backward, Adam) for a batch of 4 crops of 6 s. Random
weights: speed does not depend on them.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/umx_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mdxmix.upstream.umx import OpenUnmixNet, UMXConfig, UMXUpstream, save_umx

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.wav"


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.time()
    fn()
    return time.process_time() - c0, time.time() - w0


def separate_cost(model: OpenUnmixNet, x: torch.Tensor) -> dict:
    up = UMXUpstream(model.eval(), "bench")
    up.separate(x[:, : 5 * 44100])  # warm-up
    cpu, wall = min(timed(lambda: up.separate(x)) for _ in range(2))
    chunked = torch.stack(list(up.separate(x).values()))
    with torch.no_grad():
        whole = model(x[None])[0]
    apart = 10 * math.log10((chunked - whole).pow(2).sum().item() / whole.pow(2).sum().item())
    minutes = x.shape[-1] / 44100 / 60
    return {"cpu_s_per_audio_min": round(cpu / minutes, 2), "wall_s_per_audio_min": round(wall / minutes, 2),
            "chunked_vs_whole_db": round(apart, 1)}


def train_cost(model: OpenUnmixNet, steps: int = 3) -> dict:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.randn(4, len(model.config.stems), 2, 6 * 44100, generator=torch.Generator().manual_seed(1)) * 0.05
    mixture = target.sum(1)

    def step() -> None:
        loss = (model(mixture) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    runs = [timed(step) for _ in range(steps)]
    return {"train_step_cpu_s": round(float(np.mean([r[0] for r in runs])), 2),
            "train_step_wall_s": round(float(np.mean([r[1] for r in runs])), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    audio, rate = sf.read(str(DEMO), dtype="float32", always_2d=True)
    n = int(args.seconds * rate)
    x = torch.from_numpy(np.tile(audio.T, (1, -(-n // audio.shape[0])))[:, :n].copy())
    for hidden in args.hidden:
        torch.manual_seed(0)
        model = OpenUnmixNet(UMXConfig(hidden=hidden))
        with tempfile.TemporaryDirectory() as tmp:
            size = save_umx(model, Path(tmp) / "m.safetensors", half=True).stat().st_size
        row = {"hidden": hidden, "params": sum(p.numel() for p in model.parameters()), "file_fp16_bytes": size,
               "threads": args.threads, **separate_cost(model, x), **train_cost(model)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
