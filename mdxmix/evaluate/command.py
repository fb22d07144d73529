"""The ``mdxmix eval`` command: argument handling only; the work is in ``runner``, ``report`` and ``plot``.

Errors a user can cause are raised (``EvaluationError``, ``UsageError`` for options that do not
fit together, and the core's ``UserError``s) for ``mdxmix.cli.main`` to print as one line.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import typer

from ..atomic import check_output_file, check_output_folder
from ..errors import UsageError
from ..mixer.ensembles import RULES
from ..musdb import VALID, MusdbSplit, split_exists
from ..upstream.base import UpstreamSpec
from ..upstream.parse import parse_upstreams
from ..upstream.stem_files import StemFiles, parse_stems_from
from .dataset import EstimatesFolder, EvaluationError
from .journal import ScoreJournal
from .metrics import HOP, WINDOW
from .report import Results, rich_tables, to_json_dict, write_outputs
from .runner import add_oracle_selection, build_baseline_systems, score_systems, select_per_source_best
from .systems import CheckpointEstimates, StemFilesEstimates, UpstreamEstimates, spec_systems, upstream_systems

#: Default worker processes: one per core, at most this many.
MAX_DEFAULT_JOBS = 8

EPILOG = """Examples:

  mdxmix eval --data ~/musdb18hq --split test --estimates demucs=out/demucs --estimates out/mine
  --out results/ --plot results/sdr.png

  mdxmix eval --data ~/musdb18hq --upstream htdemucs=cache/htdemucs --upstream umx=cache/umx
  --select-split valid --metric both

  mdxmix eval --data corpus --split test --checkpoint runs/conv/best.safetensors
  --checkpoint runs/mdx/best.safetensors --out results/

--estimates NAME=DIR scores DIR/<track>/{drums,bass,other,vocals}.wav (a bare DIR is named
after the folder; a missing stem file means that system lacks the stem). --upstream adds
each upstream, every fixed ensemble rule over them, with --select-split the per-source
best upstream chosen on that split, and the per-source best chosen on the scored split
itself (an oracle, labelled so: the paper's per-source best). --checkpoint separates the
split with a checkpoint; the first checkpoint's upstreams (read from the stem cache) then
provide the same baselines, with the per-source best chosen on 'valid' when that split
exists (MUSDB18-HQ's standard 14 validation songs when the root has no valid/ folder).
"""

H_DATA = "MUSDB18-HQ-layout root: ROOT/SPLIT/SONG/{mixture,drums,bass,other,vocals}.wav."
H_ESTIMATES = "NAME=DIR (repeatable) folder of stems to score; bare DIR uses its folder name."
H_UPSTREAM = "NAME=DIR (repeatable) upstream stems: scored alone and combined by every ensemble rule."
H_STEMS_FROM = ("NAME=DIR[::stem={track}_x.wav,...] (repeatable) stems another tool wrote (demucs, audio-separator or "
                "MSST naming): an upstream like --upstream, and what agnostic --checkpoint mixers mix.")
H_WITH_UPSTREAM = ("FAMILY:MODEL[:stems] (repeatable, as `mdxmix --upstream`): upstreams run here (their stems read "
                   "from or written to the cache) that agnostic --checkpoint mixers mix instead of their own set; they "
                   "also give the baseline rows. Scores an agnostic mixer on separators it never saw.")
H_SELECT = ("Split on which to pick the per-source-best upstream (needs --upstream; the folders must hold "
            "that split's tracks too).")
H_RULES = "Ensemble rules for --upstream: all, none, or a comma list of " + ", ".join(RULES) + "."
H_CHECKPOINT = ("Checkpoint (name or .safetensors path) to separate with and score; repeatable. The first one's "
                "upstreams, their ensembles and the per-source best join the table unless --no-baselines.")
H_BASELINES = ("With --checkpoint: also score the first checkpoint's upstreams (from the stem cache), every "
               "ensemble rule and the per-source best.")
H_CONSISTENCY = ("Score every --checkpoint with each of these mixture-consistency modes (repeatable: none, even, "
                 "energy, spectral; rows get a [mode] suffix). Default: the separator's default mode only.")
H_CACHE = "Upstream stem cache shared with training and separation (default $MDXMIX_CACHE or the user cache dir)."
H_METRIC = "global (MDX challenge), museval (BSS Eval v4, the paper's), or both."
H_BACKEND = "museval-SDR implementation: fast (closed form, equal to museval) or museval (the package; slow)."
H_OUT = ("Folder for results.md, results.csv (per track and stem) and results.json. Finished tracks are kept "
         "there as they are scored, so the same command, rerun after a stop, scores only the rest.")
H_PLOT = "Write per-track SDR box plots (per system and stem) to this PNG."
METRIC_CHOICES = {"both": ("museval", "global"), "global": ("global",), "museval": ("museval",)}
BACKENDS = ("fast", "museval")


@dataclass
class Request:
    """What to score, as parsed from the options."""

    data: Path
    split: str
    estimates: dict[str, Path]
    upstreams: dict
    select_split: Optional[str]
    rules: list[str]
    checkpoints: List[str]
    metrics: tuple[str, ...]
    backend: str
    jobs: int
    cache_dir: Optional[Path] = None
    consistency: tuple[str, ...] = ()
    stem_files: dict[str, StemFiles] = field(default_factory=dict)
    mix_specs: list[UpstreamSpec] = field(default_factory=list)  # --with-upstream
    mix_search: list[Path] = field(default_factory=list)  # where their weight files are
    journal: Optional[Path] = None  # --out: finished tracks are kept there until the results are written


def _named_dirs(values: List[str], option: str) -> dict[str, Path]:
    """Parse repeatable NAME=DIR (or bare DIR → its folder name) options."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            folder, name = value, Path(value.rstrip("/")).name
        if not name or not folder:
            raise UsageError(f"{option}: expected NAME=DIR or DIR, got {value!r}")
        if name in out:
            raise UsageError(f"{option}: system name {name!r} given twice")
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
        known = ", ".join(RULES)
        raise UsageError(f"--rules: unknown rule(s) {', '.join(unknown)}; known: {known}")
    return rules


def eval_command(
    data: Path = typer.Option(..., "--data", help=H_DATA),
    split: str = typer.Option("test", "--split", help="Split folder under ROOT to score."),
    estimates: List[str] = typer.Option([], "--estimates", help=H_ESTIMATES),
    upstream: List[str] = typer.Option([], "--upstream", help=H_UPSTREAM),
    stems_from: List[str] = typer.Option([], "--stems-from", help=H_STEMS_FROM),
    with_upstream: List[str] = typer.Option([], "--with-upstream", help=H_WITH_UPSTREAM),
    select_split: Optional[str] = typer.Option(None, "--select-split", help=H_SELECT),
    rules: str = typer.Option("all", "--rules", help=H_RULES),
    checkpoint: List[str] = typer.Option([], "--checkpoint", help=H_CHECKPOINT),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help=H_BASELINES),
    consistency: List[str] = typer.Option([], "--consistency", help=H_CONSISTENCY),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=H_CACHE),
    metric: str = typer.Option("both", "--metric", help=H_METRIC),
    backend: str = typer.Option("fast", "--backend", help=H_BACKEND),
    jobs: int = typer.Option(max(1, min(os.cpu_count() or 1, MAX_DEFAULT_JOBS)), "--jobs", "-j", min=1,
                             help="Worker processes (tracks are scored in parallel)."),
    out: Optional[Path] = typer.Option(None, "--out", help=H_OUT),
    plot: Optional[Path] = typer.Option(None, "--plot", help=H_PLOT),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON on stdout instead of tables."),
) -> None:
    """Score separated stems (SDR tables, per-track files, box plots)."""
    if plot is not None:
        check_output_file(plot, "--plot", create_folder=True)  # before the scoring, not after it
    if out is not None:
        check_output_folder(out, "--out")
    request = _request(data, split, estimates, upstream, select_split, rules, checkpoint, metric, backend, jobs,
                       cache_dir)
    request.consistency = tuple(consistency)
    request.journal = out
    _add_stem_files(request, stems_from)
    _add_run_upstreams(request, with_upstream)
    if checkpoint and baselines and not request.upstreams:
        request.upstreams = upstream_systems(checkpoint[0], data, split, cache_dir)
        if select_split is None and split_exists(data, VALID):
            request.select_split = VALID
    results = run(request)
    settings = {"data": str(data), "split": split, "backend": backend, "jobs": jobs, "window": WINDOW, "hop": HOP}
    if out is not None:
        write_outputs(results, out, settings)
        ScoreJournal.clear(out)  # the results hold every track now
    if plot is not None:
        from .plot import plot_boxes  # matplotlib is an optional extra

        plot_boxes(results, plot)
    if as_json:
        typer.echo(json.dumps(to_json_dict(results, settings)))
        return
    _print_tables(results)


def _request(data, split, estimates, upstream, select_split, rules, checkpoint, metric, backend, jobs,
             cache_dir) -> Request:
    """Check the options against each other and gather them."""
    if metric not in METRIC_CHOICES:
        raise UsageError("--metric: must be global, museval or both")
    if backend not in BACKENDS:
        raise UsageError("--backend: must be fast or museval")
    systems_dirs = _named_dirs(estimates, "--estimates")
    upstream_dirs = _named_dirs(upstream, "--upstream")
    if select_split and not upstream_dirs:
        raise UsageError("--select-split needs --upstream")
    clash = set(systems_dirs) & set(upstream_dirs)
    if clash:
        name = sorted(clash)[0]
        raise UsageError(f"--estimates: name {name!r} used by --estimates and --upstream")
    return Request(data, split, systems_dirs, dict(upstream_dirs), select_split, _rules(rules), list(checkpoint),
                   METRIC_CHOICES[metric], backend, jobs, cache_dir)


def run(request: Request) -> Results:
    """Score every system the request names on its split; baselines and the oracle row from its upstreams."""
    if not (request.estimates or request.upstreams or request.checkpoints):
        raise EvaluationError("nothing to score: give --estimates, --upstream or --checkpoint")
    refs = MusdbSplit(request.data, request.split)
    systems: dict = {name: EstimatesFolder(folder) for name, folder in request.estimates.items()}
    notes: list[str] = []
    folders = {name: EstimatesFolder(folder) if isinstance(folder, Path) else folder
               for name, folder in request.upstreams.items()}
    if folders:
        choice = _choose_on_split(request, folders, notes) if request.select_split else None
        baselines = build_baseline_systems(folders, mixture=refs.mixture, per_source_choice=choice, rules=request.rules)
        systems = {**baselines, **systems}
    for name, label in zip(request.checkpoints, _checkpoint_labels(request.checkpoints)):
        files = list(request.stem_files.values())
        for mode in request.consistency or (None,):
            row = label if mode is None else f"{label} [{mode}]"
            systems[row] = CheckpointEstimates(name, request.data, request.split, request.cache_dir, consistency=mode,
                                               stem_files=files, specs=request.mix_specs, search=request.mix_search)
    results = score_systems(refs, systems, refs.tracks(), metrics=request.metrics, jobs=request.jobs,
                            backend=request.backend, journal_dir=request.journal)
    if folders:
        add_oracle_selection(results, list(folders), request.metrics[0], request.split)
    results.notes += notes
    return results


def _choose_on_split(request: Request, folders: dict, notes: list[str]) -> dict[str, str]:
    """The per-source best upstream, chosen on another split (the sound baseline)."""
    assert request.select_split is not None
    valid = MusdbSplit(request.data, request.select_split)
    on_valid = {name: _on_split(source, request.select_split) for name, source in folders.items()}
    metric = request.metrics[0]
    choice, _ = select_per_source_best(valid, on_valid, valid.tracks(), metric=metric, jobs=request.jobs,
                                       backend=request.backend, journal_dir=request.journal)
    notes.append(f"per-source best chosen on split {request.select_split!r} by {metric} SDR: "
                 + ", ".join(f"{stem}={name}" for stem, name in choice.items()))
    return choice


def _checkpoint_labels(checkpoints: List[str]) -> list[str]:
    """Row names: a file's stem, or folder/stem when stems collide (runs/a/best, runs/b/best)."""
    stems = [Path(c).stem if c.endswith(".safetensors") else c for c in checkpoints]
    return [f"{Path(c).parent.name}/{s}" if stems.count(s) > 1 else s for c, s in zip(checkpoints, stems)]


def _add_stem_files(request: Request, values: List[str]) -> None:
    """`--stems-from NAME=DIR[::mapping]`: upstream rows, and the stems agnostic checkpoints mix."""
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or "::" in name or "/" in name:
            name, rest = Path(value.partition("::")[0].rstrip("/")).name, value
        if name in request.upstreams or name in request.estimates:
            raise UsageError(f"--stems-from: name {name!r} is used twice")
        files = parse_stems_from(rest)
        request.stem_files[name] = files
        request.upstreams[name] = StemFilesEstimates(files, request.data, request.split)


def _add_run_upstreams(request: Request, values: List[str]) -> None:
    """`--with-upstream SPEC`: upstream rows (stems through the cache), and what agnostic checkpoints mix."""
    request.mix_specs, request.mix_search = parse_upstreams(values, "--with-upstream")
    for name, system in spec_systems(request.mix_specs, request.mix_search, request.data, request.split,
                                     request.cache_dir).items():
        if name in request.upstreams or name in request.estimates:
            raise UsageError(f"--with-upstream: name {name!r} is used twice")
        request.upstreams[name] = system


def _on_split(source, split: str):
    """The same upstream, reading another split (cache-backed sources know their split)."""
    if isinstance(source, StemFilesEstimates):
        return StemFilesEstimates(source.files, source.data, split)
    if isinstance(source, UpstreamEstimates):
        return UpstreamEstimates(source.spec, source.search, source.data, split, source.cache_dir, source.device)
    return source


def _print_tables(results: Results) -> None:
    from rich.console import Console

    console = Console()
    for table in rich_tables(results):
        console.print(table)
    for note in results.notes:
        console.print(f"• {note}")
    s = results.seconds
    parts = [f"{k} SDR {s[k]:.1f} s" for k in ("global", "museval") if k in s]
    if "estimates" in s:
        parts.append(f"reading/ensembling {s['estimates']:.1f} s")
    print(f"scored {len(results.tracks)} tracks × {len(results.systems)} systems in {s.get('wall', 0):.1f} s wall "
          f"(worker time: {', '.join(parts)})", file=sys.stderr)
