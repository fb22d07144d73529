"""An earlier generation of bundled weights, brought back from git history and checked.

    python recipes/default/old_weights.py v1 [--out DIR]           # mdxmix-v1 and its three corpus-v1 upstreams
    python recipes/default/old_weights.py v2 [--out DIR]           # mdxmix-v2 and its three corpus-v2 upstreams
    python recipes/default/old_weights.py v2-spleeter [--out DIR]  # the four-upstream default of 2026-11-28
    mdxmix song.wav -c DIR/mdxmix-v2.safetensors                   # then use one by file

Why: weights/ holds one generation (its 80-MB budget), and each new default prunes the files no
registered checkpoint uses; git keeps them. Recipes that start from an earlier generation's
upstreams (`train_v2.sh --init`, the agnostic pool of `lofo.sh`, the continuation of
`train_v3.sh`) and comparisons with an earlier default get them here. Each file is checked
against its pin: the checkpoint's sha256 in that commit's registry, the upstreams' in the
checkpoint's own metadata. Files already in DIR with the right sha256 are kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mdxmix.checkpoint import read_meta
from mdxmix.weightfiles import file_sha256

ROOT = Path(__file__).resolve().parents[2]  # the git checkout whose history holds the files


@dataclass(frozen=True)
class Generation:
    """A default as it was bundled: the commit that last held its files and its registry name there."""

    rev: str
    entry: str  # its name in that commit's weights/registry.json
    file: str  # the name it is written under (a default is renamed so that generations do not collide)
    default_dir: str


GENERATIONS = {
    "v1": Generation("7089c07", "mdxmix-v1", "mdxmix-v1.safetensors", "/work/data/weights_v1"),
    "v2": Generation("04c606f", "mdxmix-v2", "mdxmix-v2.safetensors", "/work/data/weights_v2"),
    "v2-spleeter": Generation("04c606f", "mdxmix-default", "mdxmix-v2-spleeter.safetensors", "/work/data/weights_v2"),
}


def git_file(rev: str, path: str) -> bytes:
    done = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True)
    if done.returncode != 0:  # e.g. a shallow clone, or a copy without .git
        raise SystemExit(f"old_weights: {rev}:{path} is not in this clone's history "
                         f"({done.stderr.decode(errors='replace').strip()}); `git fetch --unshallow` brings it")
    return done.stdout


def restore(target: Path, rev: str, source: str, sha256: str) -> None:
    """`rev:weights/source` written to `target` (via a .part file), unless `target` already is that file."""
    if target.is_file() and file_sha256(target) == sha256:
        return
    part = target.with_name(target.name + ".part")
    part.write_bytes(git_file(rev, f"weights/{source}"))
    if file_sha256(part) != sha256:
        part.unlink()
        raise SystemExit(f"old_weights: {rev}:weights/{source} is not the pinned file (sha256 differs)")
    part.replace(target)


def fetch(name: str, out: Path) -> list[Path]:
    """Write generation `name` into `out`; returns the checkpoint first, then its upstreams."""
    gen = GENERATIONS[name]
    out.mkdir(parents=True, exist_ok=True)
    registry = json.loads(git_file(gen.rev, "weights/registry.json"))
    entry = registry["checkpoints"][gen.entry]
    checkpoint = out / gen.file
    restore(checkpoint, gen.rev, entry["file"], entry["sha256"])
    written = [checkpoint]
    for spec in read_meta(checkpoint).upstreams:
        restore(out / spec.model, gen.rev, spec.model, spec.sha256)
        written.append(out / spec.model)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generation", choices=sorted(GENERATIONS))
    parser.add_argument("--out", type=Path, help="default: /work/data/weights_v1 for v1, /work/data/weights_v2 for the others")
    args = parser.parse_args()
    out = args.out or Path(GENERATIONS[args.generation].default_dir)
    files = fetch(args.generation, out)
    print(f"old_weights: {out} holds {files[0].name} and its {len(files) - 1} upstreams, each matching its pin")


if __name__ == "__main__":
    main()
