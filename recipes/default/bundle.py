"""Copy the trained mixers and their upstreams into weights/ and register them.

    python recipes/default/bundle.py --runs RUNS --upstreams UPSTREAMS [--upstreams MORE ...] \
        --weights weights --trained-on "corpus v2" [--prune]

The MDX-Mixer run with the lowest validation L1 among `RUNS/mdxmixer*/` (one per size tried,
all validated on the same songs) becomes the default checkpoint `mdxmix-default`,
`RUNS/conv1x1/best.safetensors` the time-invariant baseline `mdxmix-conv1x1`; the upstream
files they name (looked for in each UPSTREAMS folder in turn, weights/ itself included, and
taken from the first whose file has the sha256 each checkpoint pins) are copied beside them.
Every file is pinned by its sha256 in `weights/registry.json`, which `mdxmix` checks on load; the descriptions are written from the checkpoints themselves.
`--prune` deletes the .safetensors files in weights/ that no registered checkpoint uses any
more (an earlier default's upstreams), so the folder holds one generation; git history keeps
the rest. `--keep-previous NAME` first renames the current default to NAME and keeps it
registered with its upstreams, so its results stay reproducible by name (`mdxmix -c NAME`) and
recipes that start from its upstreams (`train_v2.sh --init`, the agnostic pool) still find them.
`--keep NAME` (repeatable) carries an entry that is already registered, and its files, over
unchanged: a default rebuilt from the same upstreams keeps the older generations registered.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from mdxmix.checkpoint import CheckpointMeta, read_meta
from mdxmix.mixer.mdx_mixer import PRESETS
from mdxmix.weightfiles import file_sha256

ENTRIES = {"mdxmix-default": "mdxmixer*", "mdxmix-conv1x1": "conv1x1"}


def best_run(runs: Path, pattern: str) -> Path:
    """The best checkpoint of the runs matching `pattern` with the lowest validation L1.

    The sizes of the MDX-Mixer are chosen like epochs: on the mixer-valid songs, never on test.
    Losses are only comparable over the same songs, so runs validated on other data are refused."""
    found = sorted(runs.glob(f"{pattern}/best.safetensors"))
    if not found:
        raise SystemExit(f"no {runs}/{pattern}/best.safetensors")
    provenance = {path: read_meta(path).provenance for path in found}
    if len({(p.get("dataset"), p.get("valid_split"), p.get("valid_songs")) for p in provenance.values()}) > 1:
        raise SystemExit(f"{pattern}: the runs were validated on different songs; their losses do not compare")
    best = min(found, key=lambda path: provenance[path].get("valid_loss", math.inf))
    for path in found:
        print(f"bundle: {path.parent.name}: valid L1 {provenance[path].get('valid_loss')}" + (" (chosen)" if path == best else ""),
              file=sys.stderr)
    return best


def describe(meta: CheckpointMeta, trained_on: str) -> str:
    """A one-line registry description: the mixer's size and its upstreams, read from the checkpoint."""
    names = ", ".join(spec.model.removesuffix(".safetensors") for spec in meta.upstreams)
    upstreams = f"{len(meta.upstreams)} upstreams trained on {trained_on} ({names})"
    if meta.mixer_kind == "conv1x1":
        return f"Time-invariant 1x1-conv mixer (paper §3.1) over {upstreams}"
    c = meta.mixer_config
    size = next((name for name, p in PRESETS.items() if all(c.get(k) == v for k, v in p.items())), "custom")
    shape = (f"T=2^{c['segment'].bit_length() - 1}, F=2^{c['folds'].bit_length() - 1}, N={c['layers']}, "
             f"D_T={c.get('token_hidden')}, D_C={c.get('channel_hidden')}")
    return f"MDX-Mixer `{size}` ({shape}) over {upstreams}"


def copy_shared(source: Path, target: Path) -> None:
    """Copy with world-readable permissions (safetensors writes owner-only files)."""
    if not (target.exists() and source.samefile(target)):
        shutil.copyfile(source, target)
    target.chmod(0o644)


def pinned_upstream(folders: list[Path], model: str, sha256: str, mixer: str) -> Path:
    """The first `folders[i]/model` whose sha256 is the pinned one (several folders: a new upstream
    beside ones already in weights/, without copying them out and back)."""
    found = [folder / model for folder in folders if (folder / model).is_file()]
    for path in found:
        if file_sha256(path) == sha256:
            return path
    where = ", ".join(str(f) for f in folders)
    if found:
        raise SystemExit(f"{found[0]} is not the file {mixer} was trained with (searched {where})")
    raise SystemExit(f"{model}, an upstream of {mixer}, is in none of {where}")


def keep_previous(weights: Path, name: str) -> tuple[dict, set[str]]:
    """The current default renamed to `name`: its registry entry and the files it needs.

    Its upstreams keep their file names (the checkpoint pins them by name and sha256), so the
    new generation's upstreams must be named differently (the corpus-v2 ones end in -v2).
    """
    old = json.loads((weights / "registry.json").read_text())
    entry = dict(old["checkpoints"][old["default"]])
    target = weights / f"{name}.safetensors"
    if target.exists() and file_sha256(target) != entry["sha256"]:
        raise SystemExit(f"{target} exists and is not the current default; pick another --keep-previous name")
    (weights / entry["file"]).replace(target)
    entry["file"] = target.name
    entry["description"] = f"The previous default: {entry['description']}"
    files = {target.name} | {spec.model for spec in read_meta(target).upstreams}
    return entry, files


def keep_registered(weights: Path, names: list[str]) -> tuple[dict, set[str]]:
    """The registered entries `names`, unchanged, and the files they need (checked against their pins)."""
    registry = json.loads((weights / "registry.json").read_text())
    old = registry["checkpoints"]
    entries, files = {}, set()
    for name in names:
        if name not in old:
            raise SystemExit(f"--keep {name}: not registered in {weights / 'registry.json'}")
        if name == registry["default"] or old[name]["file"] in {f"{n}.safetensors" for n in ENTRIES}:
            raise SystemExit(f"--keep {name}: it is the current default or baseline, which this bundle replaces "
                             "(use --keep-previous to keep the default under a new name)")
        entry = old[name]
        if file_sha256(weights / entry["file"]) != entry["sha256"]:
            raise SystemExit(f"--keep {name}: {entry['file']} is not the file its entry pins")
        entries[name] = entry
        files |= {entry["file"]} | {spec.model for spec in read_meta(weights / entry["file"]).upstreams}
    return entries, files


def bundle(runs: Path, upstreams: Path | list[Path], weights: Path, trained_on: str, prune: bool,
           previous: str | None = None, keep: list[str] | None = None) -> dict:
    folders = [upstreams] if isinstance(upstreams, Path) else list(upstreams)
    registry = {"format_version": 1, "default": "mdxmix-default", "checkpoints": {}}
    used: set[str] = {"registry.json"}
    carried = keep_registered(weights, keep) if keep else None
    kept = keep_previous(weights, previous) if previous else None
    for name, run in ENTRIES.items():
        target = weights / f"{name}.safetensors"
        copy_shared(best_run(runs, run), target)
        meta = read_meta(target)
        for spec in meta.upstreams:
            upstream = pinned_upstream(folders, spec.model, spec.sha256, name)
            if kept and spec.model in kept[1] and file_sha256(weights / spec.model) != spec.sha256:
                raise SystemExit(f"{spec.model}: the kept default uses another file of that name; rename the new one")
            copy_shared(upstream, weights / spec.model)
            used.add(spec.model)
        used.add(target.name)
        registry["checkpoints"][name] = {"file": target.name, "sha256": file_sha256(target),
                                         "description": describe(meta, trained_on)}
    if kept:
        registry["checkpoints"][previous] = kept[0]
        used |= kept[1]
    if carried:
        registry["checkpoints"].update(carried[0])
        used |= carried[1]
    (weights / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    if prune:
        for stale in sorted(p for p in weights.glob("*.safetensors") if p.name not in used):
            print(f"bundle: removing {stale} (no registered checkpoint uses it)")
            stale.unlink()
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--upstreams", type=Path, action="append", required=True,
                        help="a folder holding upstream files; repeatable, searched in order")
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--trained-on", default="the rendered corpus", help="what the upstreams were trained on, for the descriptions")
    parser.add_argument("--prune", action="store_true", help="delete weights/*.safetensors no registered checkpoint uses")
    parser.add_argument("--keep-previous", metavar="NAME", help="keep the current default registered under this name")
    parser.add_argument("--keep", metavar="NAME", action="append", default=[],
                        help="keep this registered (non-default) entry and its files as they are; repeatable")
    args = parser.parse_args()
    print(json.dumps(bundle(args.runs, args.upstreams, args.weights, args.trained_on, args.prune, args.keep_previous,
                            args.keep), indent=2))


if __name__ == "__main__":
    main()
