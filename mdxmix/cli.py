"""The `mdxmix` command line.

`mdxmix song.wav` is short for `mdxmix separate song.wav`. Errors a user can cause end
in one line on stderr and a non-zero exit; `--verbose` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import UsageError, UserError
from .outputs import DEFAULT_TEMPLATE

app = typer.Typer(
    name="mdxmix",
    help="Separate music into drums, bass, other and vocals by mixing several separators with MDX-Mixer.\n\n"
    "`mdxmix song.wav` is short for `mdxmix separate song.wav`.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

stderr = Console(stderr=True, highlight=False)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, disable=not enabled, transient=False,
    )


SEPARATE_EPILOG = """Examples:

  mdxmix song.wav                                   # separated/<checkpoint>/song/{drums,bass,other,vocals}.wav

  mdxmix music/ "live/*.flac" -j 2 --flac           # folders (recursive) and globs, two songs at a time

  mdxmix song.mp3 --two-stems vocals --mp3 --mp3-bitrate 256

  mdxmix song.wav --filename "{track}-{stem}.{ext}" --stems vocals,bass --int24

  cat song.flac | mdxmix - --stdout vocals | sox - vocals.mp3

  mdxmix a.wav b.wav --json | jq .outputs
"""


@app.command(epilog=SEPARATE_EPILOG)
def separate(
    inputs: list[str] = typer.Argument(..., help="Audio files, folders (searched recursively) or glob patterns; '-' reads one song from stdin."),
    out: Path = typer.Option(Path("separated"), "-o", "--out", help="Output folder; stems go to OUT/<checkpoint>/<filename template>."),
    checkpoint: str = typer.Option("default", "--checkpoint", "-c", help="Registered checkpoint name or path to a .safetensors file."),
    filename: str = typer.Option(DEFAULT_TEMPLATE, "--filename", help="Output path template inside OUT/<checkpoint>: {track}, {stem}, {ext}, {checkpoint}."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Write only these stems, comma-separated (e.g. vocals,drums)."),
    two_stems: Optional[str] = typer.Option(None, "--two-stems", help="Write STEM and no_STEM (the input minus STEM, so the two add back to the input)."),
    int24: bool = typer.Option(False, "--int24", help="24-bit output."),
    float32: bool = typer.Option(False, "--float32", help="32-bit float WAV output."),
    flac: bool = typer.Option(False, "--flac", help="FLAC output."),
    mp3: bool = typer.Option(False, "--mp3", help="MP3 output (LAME)."),
    mp3_bitrate: int = typer.Option(320, "--mp3-bitrate", help="MP3 bitrate in kbit/s."),
    clip_mode: str = typer.Option("rescale", "--clip-mode", help="rescale (scale a stem down if it would clip), clamp, or none."),
    stdout: Optional[str] = typer.Option(None, "--stdout", help="Write this one stem as WAV to stdout and nothing else there (logs go to stderr)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Separate again even when all outputs exist (default: skip those songs)."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help="Songs separated in parallel (one model load shared)."),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Segments mixed at once (default 4 on CPU, 16 on GPU)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16/fp16 for the weight estimation on GPU."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Upstream stem cache (default $MDXMIX_CACHE or the user cache dir; `mdxmix cache` shows it)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the upstream stem cache."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per finished song on stdout; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and details on errors."),
) -> None:
    """Separate songs into drums, bass, other and vocals."""
    from .batch import OutputPlan, run_batch
    from .cache import StemCache
    from .inputs import expand_inputs
    from .outputs import OutputFormat, check_template, stdout_stream
    from .pipeline import Separator

    check_template(filename)
    fmt = OutputFormat.from_flags(int24=int24, float32=float32, flac=flac, mp3=mp3, mp3_bitrate=mp3_bitrate, clip_mode=clip_mode)
    plan = OutputPlan.build(out=out, template=filename, fmt=fmt, stems=stems, two_stems=two_stems, stdout=stdout, overwrite=overwrite)
    songs = expand_inputs(inputs)
    if stdout is not None and len(songs) != 1:
        raise UsageError("--stdout takes exactly one input song")
    if stdout is not None and as_json:
        raise UsageError("--stdout and --json both want stdout; choose one")
    if sum(song.source == "-" for song in songs) > 1:
        raise UsageError("stdin ('-') can be read only once")
    cache = None if no_cache else StemCache(cache_dir)
    separator = Separator(checkpoint, device=device, batch_size=batch_size, precision=precision, cache=cache)
    show_progress = stderr.is_terminal and not as_json

    def on_result(result) -> None:
        if as_json:
            record = {"input": result.input, "status": result.status, "outputs": result.outputs, "seconds": result.seconds,
                      "device": str(separator.device), "checkpoint": separator.name, "upstream_runs": result.upstream_runs}
            if result.error:
                record["error"] = result.error
            print(json.dumps(record), flush=True)
        if result.status == "failed":
            _report_error(result.exception or UserError(result.error or "failed"), verbose)
        elif result.status == "ok" and show_progress and stdout is None:
            folder = Path(next(iter(result.outputs.values()))).parent
            stderr.print(f"{result.input}: {len(result.outputs)} stems in {folder} ({result.seconds:.1f} s)")

    with _progress(show_progress) as progress:
        def factory(track: str):
            task = progress.add_task(track, total=1.0)
            return lambda done, total: progress.update(task, completed=done / total)

        results = run_batch(separator, songs, plan, jobs=jobs, stream=stdout_stream() if stdout else None,
                            progress=factory if show_progress else None, on_result=on_result)
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    if len(results) > 1 or counts["skipped"]:
        print(f"mdxmix: {len(results)} songs: {counts['ok']} separated, {counts['skipped']} skipped (outputs exist; "
              f"--overwrite to redo), {counts['failed']} failed", file=sys.stderr)
    if counts["failed"]:
        raise typer.Exit(code=1)


@app.command(epilog="Example:\n\n  mdxmix models")
def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List registered checkpoints, where they live, and the upstream models each needs."""
    from .models_listing import list_models

    rows = list_models()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="mdxmix checkpoints")
    for column in ("name", "status", "size", "mixer", "upstreams", "description"):
        table.add_column(column, no_wrap=column in ("name", "status", "size", "mixer"))
    for row in rows:
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""), row["status"], row["size"], row.get("mixer", "?"),
            "\n".join(row.get("upstreams", [])) or "?", row["description"],
        )
    if rows:
        Console().print(table)
    else:
        stderr.print("no checkpoints are registered in weights/registry.json yet")


@app.command(epilog="Examples:\n\n  mdxmix cache\n\n  mdxmix cache --clear")
def cache(
    clear: bool = typer.Option(False, "--clear", help="Delete every cached upstream stem."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="The cache to show or clear (default: $MDXMIX_CACHE or the user cache dir)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show where upstream stems are cached and how much space they take, or clear them."""
    from .cache import StemCache

    store = StemCache(cache_dir)
    size = store.clear() if clear else store.size_bytes()
    record = {"cache_dir": str(store.root), "bytes": size, "cleared": clear}
    if as_json:
        print(json.dumps(record))
    else:
        verb = "freed" if clear else "in use"
        print(f"{store.root}: {size / 1e6:.1f} MB {verb}")


@app.command(epilog="Example:\n\n  mdxmix inspect song.wav --plot weights.png --csv weights.csv")
def inspect(
    song: str = typer.Argument(..., help="Audio file whose mixing weights to show."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG with heatmaps of the mean and standard deviation of W_k."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="CSV with every segment's weights (segment, start, input, output, weight)."),
    checkpoint: str = typer.Option("default", "--checkpoint", "-c", help="Registered checkpoint name or path."),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or mps."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the upstream stem cache."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
) -> None:
    """Show the time-varying mixing weights W_k a checkpoint estimates for a song (paper Figs. 5-6)."""
    from .cache import StemCache
    from .inspect_weights import OUTPUT_NAMES, plot as plot_weights, trace_weights, write_csv
    from .pipeline import Separator

    separator = Separator(checkpoint, device=device, cache=None if no_cache else StemCache())
    trace = trace_weights(separator, song)
    if csv_path:
        write_csv(trace, csv_path)
    if plot:
        plot_weights(trace, plot, title=f"{Path(song).name} - {separator.name}")
    if not plot and not csv_path:
        from rich.table import Table

        table = Table(title=f"mean (std) of W_k over {len(trace.starts)} segments")
        table.add_column("input")
        for name in OUTPUT_NAMES:
            table.add_column(name, justify="right")
        for i, name in enumerate(trace.inputs):
            table.add_row(name, *[f"{trace.mean[i, o]:+.2f} ({trace.std[i, o]:.2f})" for o in range(len(OUTPUT_NAMES))])
        Console().print(table)


def _register_subcommands() -> None:
    from .evaluate.command import EPILOG as EVAL_EPILOG, eval_command
    from .train.command import EPILOG as TRAIN_EPILOG, train_command

    app.command("train", epilog=TRAIN_EPILOG)(train_command)
    app.command("eval", epilog=EVAL_EPILOG)(eval_command)


_register_subcommands()


def _report_error(exc: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"mdxmix: error: {message}", file=sys.stderr, flush=True)


SUBCOMMANDS = {"separate", "models", "eval", "train", "inspect", "cache"}


def main(argv: list[str] | None = None) -> int:
    """Console entry point: route bare files to `separate`, turn user errors into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    if args and args[0] not in SUBCOMMANDS and args[0] not in ("--help", "-h", "--install-completion", "--show-completion"):
        args = ["separate", *args]
    command = typer.main.get_command(app)
    try:
        # With standalone_mode=False click returns the code of a typer.Exit instead of raising it.
        result = command.main(args=args, prog_name="mdxmix", standalone_mode=False)
    except UserError as exc:
        _report_error(exc, verbose)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("mdxmix: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        print(f"mdxmix: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdxmix: interrupted; no partial outputs were kept", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(f"mdxmix: internal error: {type(exc).__name__}: {exc} (rerun with --verbose for details)", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
