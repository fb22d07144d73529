"""Seconds and peak memory of the mixer stage, the whole pipeline, and the whole command.

Each measurement runs in a fresh subprocess so that its peak resident memory
(ru_maxrss) is its own. Rows:

* `mixer:<preset>` — the mixer stage alone. X (2+C = 20 channels of noise) is made
  once, before the clock starts, on the measured device, and served as views, so the
  row times the engine and the network, not a random-number generator or a host copy.
* `pipeline:<preset>` — `Separator.stream` on a noise mixture with one upstream, a
  Demucs `HDemucs(channels=16)` with random weights (9.3 M parameters, the size class of
  the bundled upstreams; a network's speed does not depend on its weights).
  `--upstream-size htdemucs` makes it an `HTDemucs()` of demucs' default size instead.
* `pipeline:default` — `Separator.stream` with the bundled default (its three upstreams
  and its mixer) on the demo song looped to the duration.
* `command:default` — the real `mdxmix` command in a subprocess on the demo song looped
  to the duration and written as a 16-bit WAV: start-up, model load, reading, separating
  and writing four stems, `--no-cache`. `seconds` is the wall time of the whole command,
  `inside_s` what the command reports for the song itself.

Pipeline rows also give `upstream_s` (time inside the upstreams' `separate`) and
`pipeline_over_upstream`. With prefetch on (the GPU default) upstreams run beside the
mixer, so that ratio can go below 1. `--checkpoint` and `--consistency` choose what the
`default` rows run (the bundled default and its own mode unless given).

    .venv/bin/python bench/pipeline_bench.py                       # 60 s and 600 s, tiny and small; paper on 60 s
    .venv/bin/python bench/pipeline_bench.py --only command:default,pipeline:default --durations 200
    .venv/bin/python bench/pipeline_bench.py --device cuda --precision bf16 --json
    .venv/bin/python bench/pipeline_bench.py --only pipeline:default --checkpoint mdxmix-conv1x1 --consistency none
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time, torch
from pathlib import Path
from mdxmix.mixer import MDXMixer, MDXMixerConfig
from mdxmix.mixer.engine import mix_stream
stage, preset, seconds, device, batch, precision, prefetch, workdir, song, checkpoint, consistency, upstream_size = sys.argv[1:13]
consistency = None if consistency == "-" else consistency
seconds, batch = float(seconds), int(batch) or None
prefetch = {"auto": None, "on": True, "off": False}[prefetch]
torch.manual_seed(0)
n = int(seconds * 44100)
dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()
if stage == "mixer":
    channels = 20
    cfg = MDXMixerConfig.preset(preset, channels)
    mixer = MDXMixer(cfg).to(device).eval()
    torch.nn.init.normal_(mixer.head.weight, std=0.01)
    batch = batch or (max(16, 2**21 // cfg.segment) if device.startswith("cuda") else 4)
    period = 2**21
    span = (batch + 3) * cfg.segment // 4 + cfg.segment  # the longest read the engine makes
    x = torch.randn(channels, period + span, device=device)  # made before the clock starts
    def read(a, b):
        return x[:, a % period : a % period + (b - a)]
    sync()
    start = time.perf_counter()
    total = sum(c.shape[-1] for c in mix_stream(read, n, mixer, batch_size=batch, device=device, dtype=dtype))
    sync()
    elapsed = time.perf_counter() - start
    result = {"upstream_s": None, "batch": batch}
else:
    from mdxmix.pipeline import Separator
    if preset == "default":
        import soundfile as sf
        audio, rate = sf.read(song, dtype="float32", always_2d=True)
        mixture = torch.from_numpy(audio.T.copy())[:, :n]
        assert rate == 44100 and mixture.shape[-1] == n
        sep = Separator(checkpoint, device=device, batch_size=batch, precision=precision, prefetch=prefetch,
                        consistency=consistency)
    else:
        from demucs.hdemucs import HDemucs
        from demucs.htdemucs import HTDemucs
        from mdxmix.checkpoint import CheckpointMeta, save_checkpoint
        from mdxmix.weightfiles import file_sha256
        from mdxmix.upstream.base import UpstreamSpec
        from mdxmix.upstream.demucs_package import save_demucs_package
        work = Path(workdir)
        mixture = torch.randn(2, n) * 0.1
        sources = ["drums", "bass", "other", "vocals"]
        net = HDemucs(sources=sources, channels=16) if upstream_size == "hdemucs16" else HTDemucs(sources=sources)
        package = save_demucs_package(net, work / "up.safetensors")
        spec = UpstreamSpec("demucs-file", package.name, ("drums", "bass", "other", "vocals"), sha256=file_sha256(package))
        mixer = MDXMixer(MDXMixerConfig.preset(preset, 10))
        save_checkpoint(work / "mix.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [spec]))
        sep = Separator(work / "mix.safetensors", device=device, batch_size=batch, precision=precision, prefetch=prefetch)
    upstream_s = {}
    for upstream in sep.upstreams:
        original = upstream.separate
        def timed(x, original=original, name=upstream.name):
            t = time.perf_counter()
            out = original(x)
            sync()
            upstream_s[name] = upstream_s.get(name, 0.0) + time.perf_counter() - t
            return out
        upstream.separate = timed
    warm = torch.randn(2, 44100) * 0.1  # first CUDA/cuDNN calls are start-up, not throughput
    if device.startswith("cuda"):
        list(sep.stream(warm))
        upstream_s.clear()
    sync()
    start = time.perf_counter()
    total = sum(c.shape[-1] for c in sep.stream(mixture))
    sync()
    elapsed = time.perf_counter() - start
    result = {"upstream_size": "bundled default" if preset == "default" else upstream_size,
              "upstream_s": round(sum(upstream_s.values()), 2), "per_upstream_s": {k: round(v, 2) for k, v in upstream_s.items()},
              "batch": sep.batch_size, "prefetch": sep.prefetch, "checkpoint": sep.name, "consistency": sep.consistency}
assert total == n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device.startswith("cuda"):
    result["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
result.update(stage=stage, preset=preset, audio_s=seconds, device=device, precision=precision, seconds=round(elapsed, 2),
              peak_rss_mib=round(peak), threads=torch.get_num_threads())
print(json.dumps(result))
"""


def looped_demo(seconds: float, folder: Path) -> Path:
    """The demo song repeated to `seconds`, as a 16-bit WAV (what a user would feed)."""
    import numpy as np
    import soundfile as sf

    audio, rate = sf.read(ROOT / "examples" / "demo.wav", dtype="float32", always_2d=True)
    n = int(seconds * rate)
    path = folder / f"demo_{seconds:g}s.wav"
    sf.write(path, np.tile(audio, (-(-n // len(audio)), 1))[:n], rate, subtype="PCM_16")
    return path


def run_child(stage: str, preset: str, seconds: float, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as work:
        song = looped_demo(seconds, Path(work)) if preset == "default" else Path(work) / "none"
        done = subprocess.run([sys.executable, "-c", CHILD, stage, preset, str(seconds), args.device, str(args.batch),
                               args.precision, args.prefetch, work, str(song), args.checkpoint, args.consistency or "-",
                               args.upstream_size],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{stage}/{preset}/{seconds}s failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_command(seconds: float, args: argparse.Namespace) -> dict:
    """The whole `mdxmix` command on one song, timed from outside (start-up and model load included)."""
    with tempfile.TemporaryDirectory() as work:
        song = looped_demo(seconds, Path(work))
        command = [sys.executable, "-m", "mdxmix", str(song), "-o", str(Path(work) / "out"), "--no-cache", "--json",
                   "--device", args.device, "--precision", args.precision, "--checkpoint", args.checkpoint]
        if args.consistency:
            command += ["--consistency", args.consistency]
        if args.batch:
            command += ["--batch-size", str(args.batch)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)})
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"command failed:\n{done.stderr[-2000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        outputs = sum(Path(p).stat().st_size for p in record["outputs"].values())
    return {"stage": "command", "preset": "default", "checkpoint": args.checkpoint, "audio_s": seconds, "device": record.get("device", args.device),
            "precision": args.precision, "seconds": round(elapsed, 2), "inside_s": record["seconds"],
            "user_s": round(after.ru_utime - before.ru_utime, 1), "sys_s": round(after.ru_stime - before.ru_stime, 1),
            "peak_rss_mib": round(after.ru_maxrss / 1024), "output_mb": round(outputs / 1e6, 1), "upstream_s": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--durations", default="60,600", help="comma-separated seconds of audio")
    parser.add_argument("--paper-long", action="store_true", help="also run the paper preset on the longest duration")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=0, help="segments per batch (0: the Separator's default for the device)")
    parser.add_argument("--prefetch", default="auto", choices=["auto", "on", "off"], help="upstreams of the next block beside the mixer")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--checkpoint", default="default",
                        help="the checkpoint of the pipeline:default and command:default rows (a registered name or a file)")
    parser.add_argument("--consistency", default=None, help="their --consistency mode (default: the checkpoint's)")
    parser.add_argument("--upstream-size", default="hdemucs16", choices=["hdemucs16", "htdemucs"],
                        help="the random upstream of the pipeline:<preset> rows: HDemucs(channels=16), the bundled "
                             "upstreams' size class, or HTDemucs() at demucs' default size (26.9 M parameters), "
                             "to see the mixer's share beside a full-size separator")
    parser.add_argument("--json", action="store_true", help="print only JSON lines, one per row (no table)")
    parser.add_argument("--only", default=None,
                        help="comma-separated STAGE:PRESET rows, e.g. mixer:tiny,pipeline:tiny,pipeline:default,command:default")
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    # Command rows first: their peak RSS is the largest of this process's children so far.
    plan = [("command", "default", d) for d in durations]
    plan += [("mixer", preset, d) for preset in ("tiny", "small") for d in durations]
    plan += [("mixer", "paper", d) for d in durations if d == min(durations) or args.paper_long]
    plan += [("pipeline", "tiny", d) for d in durations]
    plan += [("pipeline", "default", d) for d in durations]
    if args.only:
        wanted = {tuple(item.split(":")) for item in args.only.split(",")}
        plan = [(stage, preset, d) for stage, preset, d in plan if (stage, preset) in wanted]
    rows = []
    for stage, preset, seconds in plan:
        try:
            row = run_command(seconds, args) if stage == "command" else run_child(stage, preset, seconds, args)
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            continue
        if row["upstream_s"]:
            row["pipeline_over_upstream"] = round(row["seconds"] / row["upstream_s"], 2)
        row["realtime_factor"] = round(seconds / row["seconds"], 2)
        row["load_avg_1min"] = round(os.getloadavg()[0], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    if args.json:
        return
    print("\n| stage | preset | audio | seconds | × real time | peak RSS MiB | upstream s | pipeline / upstream |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['preset']} | {r['audio_s']:.0f} s | {r['seconds']} | {r['realtime_factor']} | "
              f"{r['peak_rss_mib']} | {r['upstream_s'] or '–'} | {r.get('pipeline_over_upstream', '–')} |")
    if len(rows) < len(plan):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
