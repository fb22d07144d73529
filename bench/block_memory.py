"""Peak memory and time of one upstream on one pipeline block (66 s: 60 s and 3 s of context each side).

Why: an hour-long song's peak RSS is the steady part (torch, models) plus the largest block-sized
working set, and that is one upstream's `separate` on one block. Each run is a fresh process:
the upstream is loaded and warmed on 5 s, the heap trimmed, and the peak (VmHWM) read above the
resident size at that point.

    python bench/block_memory.py spleeter-file:weights/spleeter-2stems.safetensors:vocals
    python bench/block_memory.py spleeter-file:weights/spleeter-2stems.safetensors:vocals --group 0

`--group` is Spleeter's partitions per step (0: the whole block at once, the GPU path).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import gc, json, time, torch
from mdxmix.pipeline import trim_heap
from mdxmix.upstream import build_upstream
from mdxmix.upstream.parse import parse_upstream
from mdxmix.weightfiles import weights_dir
status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) / 1024
spec, folder = parse_upstream(SPEC)
upstream = build_upstream(spec, [p for p in [folder] if p is not None] + [weights_dir()])
if GROUP is not None:
    upstream.group = GROUP or None
block = torch.randn(2, int(44100 * SECONDS), generator=torch.Generator().manual_seed(0)) * 0.1
upstream.separate(block[:, : 44100 * 5])
gc.collect(); trim_heap()
start = status("VmRSS")
began = time.perf_counter()
upstream.separate(block)
print(json.dumps({"upstream": SPEC, "seconds_audio": SECONDS, "group": GROUP, "peak_above_mib": round(status("VmHWM") - start),
                  "seconds": round(time.perf_counter() - began, 2), "threads": torch.get_num_threads()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="an upstream spec, as for `mdxmix --upstream`")
    parser.add_argument("--seconds", type=float, default=66.0, help="block length (default 66: the pipeline's)")
    parser.add_argument("--group", type=int, default=None, help="Spleeter only: partitions per step, 0 = all")
    args = parser.parse_args()
    code = CODE.replace("SPEC", repr(args.upstream)).replace("GROUP", repr(args.group)).replace("SECONDS", repr(args.seconds))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row))


if __name__ == "__main__":
    main()
