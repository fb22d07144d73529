"""The ``mdxmix eval`` command (registered by the CLI with ``app.command("eval")(eval_command)``).

Everything here is argument handling; the work is in ``runner``, ``report`` and ``plot``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mdxmix.atomic import check_output_file, check_output_folder
from mdxmix.errors import UserError

from mdxmix.evaluate.dataset import EstimatesFolder, EvaluationError, MusdbSplit
from mdxmix.evaluate.ensembles import RULES
from mdxmix.evaluate.report import Results, rich_tables, to_json_dict, write_outputs
from mdxmix.evaluate.runner import EstimateSource, build_baseline_systems, score_systems, select_per_source_best

EXAMPLE = """Score folders of separated stems against MUSDB18-HQ-layout references.

Example:

  mdxmix eval --data ~/musdb18hq --split test --estimates demucs=out/demucs --estimates out/mine --out results/ --plot results/sdr.png

  mdxmix eval --data ~/musdb18hq --upstream htdemucs=cache/htdemucs --upstream umx=cache/umx --select-split valid --metric both

  mdxmix eval --data corpus --split test --checkpoint runs/conv/best.safetensors --checkpoint runs/mdx/best.safetensors --out results/

--estimates NAME=DIR scores DIR/<track>/{drums,bass,other,vocals}.wav (a bare DIR is named
after the folder; a missing stem file means that system lacks the stem). --upstream adds
each upstream, every fixed ensemble rule over them, and, with --select-split, the
per-source best upstream chosen on that split. --checkpoint separates the split with a
checkpoint; the first checkpoint's upstreams (read from the stem cache) then provide the
same baselines, with the per-source best chosen on 'valid' when that split exists.
"""


def checkpoint_system(name: str, data: Path, split: str, cache_dir: Optional[Path]) -> EstimateSource:
    """A picklable ``track -> stems`` that separates ``track`` with checkpoint ``name``."""
    from mdxmix.evaluate.systems import CheckpointEstimates

    return CheckpointEstimates(name, data, split, cache_dir)


def _named_dirs(values: List[str], option: str) -> dict[str, Path]:
    """Parse repeatable NAME=DIR (or bare DIR → its folder name) options."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            folder, name = value, Path(value.rstrip("/")).name
        if not name or not folder:
            raise typer.BadParameter(f"expected NAME=DIR or DIR, got {value!r}", param_hint=option)
        if name in out:
            raise typer.BadParameter(f"system name {name!r} given twice", param_hint=option)
        out[name] = Path(folder).expanduser()
    return out


def _rules(text: str) -> list[str]:
    if text == "all":
        return list(RULES)
    if text == "none":
        return []
    rules = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise typer.BadParameter(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}", param_hint="--rules")
    return rules


def eval_command(
    data: Path = typer.Option(..., "--data", help="MUSDB18-HQ-layout root: ROOT/SPLIT/SONG/{mixture,drums,bass,other,vocals}.wav."),
    split: str = typer.Option("test", "--split", help="Split folder under ROOT to score."),
    estimates: List[str] = typer.Option([], "--estimates", help="NAME=DIR (repeatable) folder of stems to score; bare DIR uses its folder name."),
    upstream: List[str] = typer.Option([], "--upstream", help="NAME=DIR (repeatable) upstream stems: scored alone and combined by every ensemble rule."),
    select_split: Optional[str] = typer.Option(None, "--select-split", help="Split on which to pick the per-source-best upstream (needs --upstream; the folders must hold that split's tracks too)."),
    rules: str = typer.Option("all", "--rules", help="Ensemble rules for --upstream: all, none, or a comma list of " + ", ".join(RULES) + "."),
    checkpoint: List[str] = typer.Option([], "--checkpoint", help="Checkpoint (name or .safetensors path) to separate with and score; repeatable. The first one's upstreams, their ensembles and the per-source best join the table unless --no-baselines."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="With --checkpoint: also score the first checkpoint's upstreams (from the stem cache), every ensemble rule and the per-source best."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Upstream stem cache shared with training and separation (default $MDXMIX_CACHE or the user cache dir)."),
    metric: str = typer.Option("both", "--metric", help="global (MDX challenge), museval (BSS Eval v4, the paper's), or both."),
    backend: str = typer.Option("fast", "--backend", help="museval-SDR implementation: fast (closed form, equal to museval) or museval (the package; slow)."),
    jobs: int = typer.Option(max(1, min(os.cpu_count() or 1, 8)), "--jobs", "-j", min=1, help="Worker processes (tracks are scored in parallel)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for results.md, results.csv (per track and stem) and results.json."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write per-track SDR box plots (per system and stem) to this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON on stdout instead of tables."),
) -> None:
    """Score separated stems (SDR tables, per-track files, box plots)."""
    metrics = {"both": ("museval", "global"), "global": ("global",), "museval": ("museval",)}.get(metric)
    if metrics is None:
        raise typer.BadParameter("must be global, museval or both", param_hint="--metric")
    if backend not in ("fast", "museval"):
        raise typer.BadParameter("must be fast or museval", param_hint="--backend")
    if plot is not None:
        check_output_file(plot, "--plot")  # before the scoring, not after it
    if out is not None:
        check_output_folder(out, "--out")
    systems_dirs = _named_dirs(estimates, "--estimates")
    upstream_dirs = _named_dirs(upstream, "--upstream")
    rule_list = _rules(rules)
    if select_split and not upstream_dirs:
        raise typer.BadParameter("--select-split needs --upstream", param_hint="--select-split")
    clash = set(systems_dirs) & set(upstream_dirs)
    if clash:
        raise typer.BadParameter(f"name {sorted(clash)[0]!r} used by --estimates and --upstream", param_hint="--estimates")
    try:
        if checkpoint and baselines and not upstream_dirs:
            from mdxmix.evaluate.systems import upstream_systems

            upstream_dirs = upstream_systems(checkpoint[0], data, split, cache_dir)
            if select_split is None and (data / "valid").is_dir():
                select_split = "valid"
        results = _run(data, split, systems_dirs, upstream_dirs, select_split, rule_list, checkpoint, metrics, backend, jobs,
                       cache_dir)
        settings = {"data": str(data), "split": split, "backend": backend, "jobs": jobs, "window": 44100, "hop": 44100}
        if out is not None:
            write_outputs(results, out, settings)
        if plot is not None:
            from mdxmix.evaluate.plot import plot_boxes

            plot_boxes(results, plot)
    except UserError as exc:  # EvaluationError, and checkpoint/upstream errors of the core
        typer.echo(f"mdxmix: error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(to_json_dict(results, settings)))
        return
    from rich.console import Console

    console = Console()
    for table in rich_tables(results):
        console.print(table)
    for note in results.notes:
        console.print(f"• {note}")
    _print_timing(results)


def _run(
    data: Path,
    split: str,
    systems_dirs: dict[str, Path],
    upstream_dirs: dict,
    select_split: Optional[str],
    rule_list: list[str],
    checkpoints: List[str],
    metrics: tuple[str, ...],
    backend: str,
    jobs: int,
    cache_dir: Optional[Path] = None,
) -> Results:
    if not (systems_dirs or upstream_dirs or checkpoints):
        raise EvaluationError("nothing to score: give --estimates, --upstream or --checkpoint")
    refs = MusdbSplit(data, split)
    tracks = refs.tracks()
    systems: dict = {name: EstimatesFolder(folder) for name, folder in systems_dirs.items()}
    notes: list[str] = []
    if upstream_dirs:
        folders = {name: EstimatesFolder(folder) if isinstance(folder, Path) else folder for name, folder in upstream_dirs.items()}
        choice = None
        if select_split:
            valid = MusdbSplit(data, select_split)
            sel_metric = metrics[0]
            on_valid = {name: _on_split(source, select_split) for name, source in folders.items()}
            choice, _ = select_per_source_best(valid, on_valid, valid.tracks(), metric=sel_metric, jobs=jobs, backend=backend)
            notes.append(
                f"per-source best chosen on split {select_split!r} by {sel_metric} SDR: "
                + ", ".join(f"{stem}={name}" for stem, name in choice.items())
            )
        baselines = build_baseline_systems(folders, mixture=refs.mixture, per_source_choice=choice, rules=rule_list)
        systems = {**baselines, **systems}
    for name, label in zip(checkpoints, _checkpoint_labels(checkpoints)):
        systems[label] = checkpoint_system(name, data, split, cache_dir)
    results = score_systems(refs, systems, tracks, metrics=metrics, jobs=jobs, backend=backend)
    results.notes += notes
    return results


def _checkpoint_labels(checkpoints: List[str]) -> list[str]:
    """Row names: a file's stem, or folder/stem when stems collide (runs/a/best, runs/b/best)."""
    stems = [Path(c).stem if c.endswith(".safetensors") else c for c in checkpoints]
    return [f"{Path(c).parent.name}/{s}" if stems.count(s) > 1 else s for c, s in zip(checkpoints, stems)]


def _on_split(source, split: str):
    """The same upstream, reading another split (cache-backed sources know their split)."""
    from mdxmix.evaluate.systems import UpstreamEstimates

    if isinstance(source, UpstreamEstimates):
        return UpstreamEstimates(source.spec, source.search, source.data, split, source.cache_dir, source.device)
    return source


def _print_timing(results: Results) -> None:
    s = results.seconds
    parts = [f"{k} SDR {s[k]:.1f} s" for k in ("global", "museval") if k in s]
    if "estimates" in s:
        parts.append(f"reading/ensembling {s['estimates']:.1f} s")
    print(
        f"scored {len(results.tracks)} tracks × {len(results.systems)} systems in {s.get('wall', 0):.1f} s wall "
        f"(worker time: {', '.join(parts)})",
        file=sys.stderr,
    )


eval_command.__doc__ = EXAMPLE
