"""Seconds per minute of audio of the mdxnet-onnx, resunet and roformer adapters on this machine.

Each adapter runs a network of the published model's size and shape with random weights
(speed does not depend on the weights) on noise, through the same code path as a real
model; the first call is a warm-up on 2 s and is not counted.

* mdxnet-onnx: KUIELab-MDX-Net leaderboard A (paper model C), four Conv-TDF networks of
  kuielab's configuration (L=11, l=3, g=32, bn=8, dim_f=2048: 7.42 M parameters, 29.69 MB
  as float32, the size of each published 29,703,204-byte file), dim_t and n_fft per
  network from the catalog, exported to ONNX; also the vocals network alone.
* resunet: ResUNet143 Subband-time at bytesep's size (102.6 M parameters).
* roformer: the catalog's two configs (viperx BS-RoFormer, Kimberley Jensen Mel-RoFormer).

    .venv/bin/python bench/families_speed.py --seconds 20          # all
    .venv/bin/python bench/families_speed.py --only mdxnet --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from mdxmix.upstream.catalog import KNOWN_MODELS
from mdxmix.upstream.mdxnet_onnx import load_mdxnet_onnx
from mdxmix.upstream.resunet import ResUNet143Subband, ResUNetUpstream
from mdxmix.upstream.roformer import RoformerUpstream, build_roformer, roformer_from_catalog

SR = 44100


class ConvTDF(nn.Module):
    """l × (3x3 conv, BN, ReLU), plus a time-distributed fully connected bottleneck over frequency."""

    def __init__(self, c: int, layers: int, f: int, bn: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()) for _ in range(layers)])
        self.tdf = nn.Sequential(nn.Linear(f, f // bn, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                 nn.Linear(f // bn, f, bias=False), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x):
        x = self.convs(x)
        return x + self.tdf(x)


class ConvTDFNet(nn.Module):
    """MDX-Net's U-Net of Conv-TDF blocks (KUIELab), input/output (B, 4, dim_f, dim_t)."""

    def __init__(self, L: int, layers: int = 3, g: int = 32, bn: int = 8, dim_f: int = 2048) -> None:
        super().__init__()
        self.n = L // 2
        self.first = nn.Sequential(nn.Conv2d(4, g, 1), nn.BatchNorm2d(g), nn.ReLU())
        f, c = dim_f, g
        self.down_dense, self.down = nn.ModuleList(), nn.ModuleList()
        for _ in range(self.n):
            self.down_dense.append(ConvTDF(c, layers, f, bn))
            self.down.append(nn.Sequential(nn.Conv2d(c, c + g, 2, stride=2), nn.BatchNorm2d(c + g), nn.ReLU()))
            f, c = f // 2, c + g
        self.mid = ConvTDF(c, layers, f, bn)
        self.up_dense, self.up = nn.ModuleList(), nn.ModuleList()
        for _ in range(self.n):
            self.up.append(nn.Sequential(nn.ConvTranspose2d(c, c - g, 2, stride=2), nn.BatchNorm2d(c - g), nn.ReLU()))
            f, c = f * 2, c - g
            self.up_dense.append(ConvTDF(c, layers, f, bn))
        self.final = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        x = self.first(x).transpose(-1, -2)  # (B, C, T, F): the TDF layers act on frequency
        skips = []
        for dense, down in zip(self.down_dense, self.down):
            x = dense(x)
            skips.append(x)
            x = down(x)
        x = self.mid(x)
        for dense, up, skip in zip(self.up_dense, self.up, reversed(skips)):
            x = dense(up(x) * skip)
        return self.final(x.transpose(-1, -2))


def export_tdf(path: Path, L: int, dim_t: int) -> int:
    net = ConvTDFNet(L).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 4, 2048, dim_t),), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    return sum(p.numel() for p in net.parameters())


def timed(up, seconds: float) -> dict:
    torch.manual_seed(0)
    up.separate(torch.randn(2, SR // 2) * 0.1)  # warm-up
    x = torch.randn(2, int(seconds * SR)) * 0.1
    start, cpu0 = time.perf_counter(), time.process_time()
    out = up.separate(x)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    assert all(torch.isfinite(v).all() for v in out.values())
    # CPU seconds (all threads) are what the work costs; wall seconds depend on what else runs on the machine.
    return {"audio_s": seconds, "wall_s": round(wall, 1), "s_per_min": round(wall * 60 / seconds, 1),
            "cpu_s_per_min": round(cpu * 60 / seconds, 1), "load_avg_1min": round(os.getloadavg()[0], 1)}


def bench_mdxnet(seconds: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files, params = [], {}
        for stem, L in (("drums", 11), ("bass", 11), ("other", 11), ("vocals", 11)):
            settings = KNOWN_MODELS["kuielab_a"].settings["networks"][f"kuielab_a_{stem}.onnx"]
            path = Path(tmp) / f"{stem}.onnx"
            params[stem] = export_tdf(path, L, settings["dim_t"])
            files.append((path, settings))
        vocals = [f for f in files if f[0].stem == "vocals"]
        for overlap in (0.0, 0.25):
            rows.append({"adapter": "mdxnet-onnx", "model": f"kuielab_a vocals network (overlap {overlap})",
                         "params": params["vocals"], **timed(load_mdxnet_onnx(vocals, "v", overlap=overlap), seconds)})
        rows.append({"adapter": "mdxnet-onnx", "model": "kuielab_a, 4 networks (overlap 0.25)",
                     "params": sum(params.values()), **timed(load_mdxnet_onnx(files, "a"), seconds)})
    return rows


def bench_resunet(seconds: float) -> list[dict]:
    model = ResUNet143Subband()
    return [{"adapter": "resunet", "model": "ResUNet143 Subband-time (10 s segments)",
             "params": sum(p.numel() for p in model.parameters()), **timed(ResUNetUpstream(model, "r"), seconds)}]


def bench_roformer(seconds: float) -> list[dict]:
    """Full-size RoFormers are too slow on 2 cores for minutes of audio: time `seconds` of audio
    (4 s is one network call on one 8 s chunk) and state the cost per minute at steady state,
    where every chunk_size/num_overlap seconds of song cost one such call."""
    rows = []
    for name in ("bs_roformer_viperx_1297", "mel_roformer_kj_vocals"):
        config = roformer_from_catalog(KNOWN_MODELS[name].settings)
        model = build_roformer(config)
        up = RoformerUpstream(model, config, name)
        step_s = config.chunk_size / config.num_overlap / SR
        row = timed(up, seconds)
        calls = len(range(0, int(seconds * SR), int(step_s * SR)))
        per_call_cpu = row["cpu_s_per_min"] * seconds / 60 / calls
        rows.append({"adapter": "roformer", "model": f"{name} (8 s chunks, overlap 2)",
                     "params": sum(p.numel() for p in model.parameters()), **row, "network_calls": calls,
                     "steady_cpu_s_per_min": round(per_call_cpu * 60 / step_s, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio length to time")
    parser.add_argument("--only", choices=["mdxnet", "resunet", "roformer"], action="append")
    args = parser.parse_args()
    print(json.dumps({"torch_threads": torch.get_num_threads()}))
    for name, fn in (("mdxnet", bench_mdxnet), ("resunet", bench_resunet), ("roformer", bench_roformer)):
        if args.only and name not in args.only:
            continue
        for row in fn(args.seconds):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
