"""Seconds and peak memory of the mixer stage and of the whole pipeline.

Each measurement runs in a fresh subprocess so that its peak resident memory
(ru_maxrss) is its own. The upstream is a Demucs `HDemucs(channels=16)` with random
weights (9.3 M parameters, the size class of the bundled upstreams); the speed of a
network does not depend on its weights.

    .venv/bin/python bench/pipeline_bench.py                 # 60 s and 600 s, tiny and small presets; paper preset on 60 s
    .venv/bin/python bench/pipeline_bench.py --paper-long    # also the paper preset on 600 s (≈1 h on 2 CPU cores)
    .venv/bin/python bench/pipeline_bench.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
from pathlib import Path
from mdxmix.mixer import MDXMixer, MDXMixerConfig
from mdxmix.mixer.engine import mix_stream
stage, preset, seconds, device, batch, precision, workdir = sys.argv[1:8]
seconds, batch = float(seconds), int(batch)
torch.manual_seed(0)
n = int(seconds * 44100)
mixture = torch.randn(2, n) * 0.1
dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
if stage == "mixer":
    channels = 20
    cfg = MDXMixerConfig.preset(preset, channels)
    mixer = MDXMixer(cfg).to(device).eval()
    torch.nn.init.normal_(mixer.head.weight, std=0.01)
    def read(a, b):  # X is made on the fly: the stage measured is the mixer alone
        g = torch.Generator().manual_seed(a)
        return torch.randn(channels, b - a, generator=g)
    start = time.perf_counter()
    total = sum(c.shape[-1] for c in mix_stream(read, n, mixer, batch_size=batch, device=device, dtype=dtype))
    if device.startswith("cuda"): torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result = {"upstream_s": None}
else:
    from demucs.hdemucs import HDemucs
    from mdxmix.checkpoint import CheckpointMeta, save_checkpoint
    from mdxmix.weightfiles import file_sha256
    from mdxmix.pipeline import Separator
    from mdxmix.upstream.base import UpstreamSpec
    from mdxmix.upstream.demucs_package import save_demucs_package
    work = Path(workdir)
    package = save_demucs_package(HDemucs(sources=["drums", "bass", "other", "vocals"], channels=16), work / "up.safetensors")
    spec = UpstreamSpec("demucs-file", package.name, ("drums", "bass", "other", "vocals"), sha256=file_sha256(package))
    cfg = MDXMixerConfig.preset(preset, 10)
    mixer = MDXMixer(cfg)
    save_checkpoint(work / "mix.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [spec]))
    sep = Separator(work / "mix.safetensors", device=device, batch_size=batch, precision=precision)
    upstream_s = 0.0
    original = sep.upstreams[0].separate
    def timed(x):
        global upstream_s
        t = time.perf_counter(); out = original(x); upstream_s += time.perf_counter() - t
        return out
    sep.upstreams[0].separate = timed
    start = time.perf_counter()
    total = sum(c.shape[-1] for c in sep.stream(mixture))
    elapsed = time.perf_counter() - start
    result = {"upstream_s": round(upstream_s, 2)}
assert total == n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device.startswith("cuda"):
    result["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
result.update(stage=stage, preset=preset, audio_s=seconds, device=device, precision=precision, seconds=round(elapsed, 2), peak_rss_mib=round(peak))
print(json.dumps(result))
"""


def run(stage: str, preset: str, seconds: float, device: str, batch: int, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run([sys.executable, "-c", CHILD, stage, preset, str(seconds), device, str(batch), precision, work],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{stage}/{preset}/{seconds}s failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--durations", default="60,600", help="comma-separated seconds of audio")
    parser.add_argument("--paper-long", action="store_true", help="also run the paper preset on the longest duration")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--only", default=None, help="comma-separated STAGE:PRESET rows to run, e.g. pipeline:tiny,mixer:paper")
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    plan = [("mixer", preset, d) for preset in ("tiny", "small") for d in durations]
    plan += [("mixer", "paper", d) for d in durations if d == min(durations) or args.paper_long]
    plan += [("pipeline", "tiny", d) for d in durations]
    if args.only:
        wanted = {tuple(item.split(":")) for item in args.only.split(",")}
        plan = [(stage, preset, d) for stage, preset, d in plan if (stage, preset) in wanted]
    rows = []
    for stage, preset, seconds in plan:
        row = run(stage, preset, seconds, args.device, args.batch, args.precision)
        if row["upstream_s"]:
            row["pipeline_over_upstream"] = round(row["seconds"] / row["upstream_s"], 2)
        row["realtime_factor"] = round(seconds / row["seconds"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    print("\n| stage | preset | audio | seconds | × real time | peak RSS MiB | upstream s | pipeline / upstream |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['preset']} | {r['audio_s']:.0f} s | {r['seconds']} | {r['realtime_factor']} | "
              f"{r['peak_rss_mib']} | {r['upstream_s'] or '–'} | {r.get('pipeline_over_upstream', '–')} |")


if __name__ == "__main__":
    main()
