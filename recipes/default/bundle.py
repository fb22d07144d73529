"""Copy the trained mixers and their upstreams into weights/ and register them.

    python recipes/default/bundle.py --runs RUNS --upstreams UPSTREAMS --weights weights

`RUNS/mdxmixer/best.safetensors` becomes the default checkpoint `mdxmix-default`,
`RUNS/conv1x1/best.safetensors` the time-invariant baseline `mdxmix-conv1x1`; the upstream
files they name are copied beside them. Every file is pinned by its sha256 in
`weights/registry.json`, which `mdxmix` checks on load.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mdxmix.checkpoint import read_meta
from mdxmix.weightfiles import file_sha256

ENTRIES = {
    "mdxmix-default": ("mdxmixer", "MDX-Mixer (T=2^15, F=2^5, N=2, D_T=64, D_C=128) over three small "
                       "upstreams trained on the rendered corpus: HDemucs, a spectral-mask net, a vocals-only spectral-mask net"),
    "mdxmix-conv1x1": ("conv1x1", "Time-invariant 1x1-conv mixer over the same three upstreams (paper §3.1)"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--upstreams", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    args = parser.parse_args()
    registry = {"format_version": 1, "default": "mdxmix-default", "checkpoints": {}}
    for name, (run, description) in ENTRIES.items():
        source = args.runs / run / "best.safetensors"
        target = args.weights / f"{name}.safetensors"
        shutil.copyfile(source, target)
        for spec in read_meta(target).upstreams:
            upstream = args.upstreams / spec.model
            if file_sha256(upstream) != spec.sha256:
                raise SystemExit(f"{upstream} is not the file {name} was trained with")
            shutil.copyfile(upstream, args.weights / spec.model)
        registry["checkpoints"][name] = {"file": target.name, "sha256": file_sha256(target), "description": description}
    (args.weights / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    print(json.dumps(registry, indent=2))


if __name__ == "__main__":
    main()
