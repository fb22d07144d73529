"""The `mdxmix` command line.

`mdxmix song.wav` is short for `mdxmix separate song.wav`. Errors a user can cause end
in one line on stderr and a non-zero exit (2 for usage errors, 1 for failed songs);
`--verbose` adds the traceback. Ctrl-C, SIGTERM and SIGHUP stop the run after the songs
in progress have removed their temporary files (exit 128 + the signal's number).

Nothing heavy is imported here: PyTorch, the pipeline, training and evaluation load when
a command that needs them runs, so `mdxmix --help` stays fast.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# typer >= 0.29 parses with its own bundled copy of click: its exceptions are not click's.
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit

from .atomic import check_output_file, check_output_folder
from .errors import INTERRUPT, Interrupted, UsageError, UserError
from .naming import DEFAULT_TEMPLATE, check_template

# PyTorch (>= 2.1) puts CPU tensors of 2 MB and more on transparent huge pages when this is set; it is
# read at torch's first allocation, so it must be set before torch is imported (nothing above imports it).
# The upstreams allocate and free block-sized tensors all the time: on 4-KiB pages that was ~1.45 M minor
# page faults and 2.4 s of system time per 66-s block for HDemucs alone (the 278 s of system time on an
# hour-long song); on huge pages it is ~0.1 M faults and 1.4 s, at ~50-80 MiB more peak memory.
# A user's own setting (e.g. 0) wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

# Commands whose modules import training or evaluation code, loaded only when called.
# The short help is what `mdxmix --help` lists (a test keeps it equal to the command's own).
LAZY_COMMANDS = {
    "train": ("mdxmix.train.command", "train_command", "EPILOG",
              "Train a 1x1-conv or MDX-Mixer checkpoint on a MUSDB18-HQ-layout dataset."),
    "eval": ("mdxmix.evaluate.command", "eval_command", "EPILOG",
             "Score separated stems (SDR tables, per-track files, box plots)."),
    "models": ("mdxmix.models_command", "models_app", None,
               "List registered checkpoints (bundled and your own), add or remove your own, export one for the hub."),
}


class LazyGroup(TyperGroup):
    """A command group that builds `train` and `eval` on first use instead of at import."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            self.commands[cmd_name] = load_lazy_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else make_default_short_help(LAZY_COMMANDS[name][3], limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_lazy_command(name: str) -> Any:
    module_name, function, epilog, _ = LAZY_COMMANDS[name]
    module = importlib.import_module(module_name)
    if isinstance(getattr(module, function), typer.Typer):  # a command group (`models add`, ...)
        command = typer.main.get_group(getattr(module, function))
        command.name = name
        return command
    single = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None, add_completion=False)
    single.command(name, epilog=getattr(module, epilog) if epilog else None)(getattr(module, function))
    command = typer.main.get_command(single)
    command.name = name
    return command


app = typer.Typer(
    name="mdxmix",
    cls=LazyGroup,
    help="Separate music into drums, bass, other and vocals by mixing several separators with MDX-Mixer.\n\n"
    "`mdxmix song.wav` is short for `mdxmix separate song.wav`.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16", "fp16")


def check_device_options(device: str, precision: str = "fp32") -> None:
    """Usage errors (exit 2) for device and precision names, before any model is loaded."""
    if not DEVICE_NAME.match(device):
        raise UsageError(f"--device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: use {', '.join(PRECISIONS)}")

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

  mdxmix library/ --shard 2/4 --json > shard-2.jsonl   # worker 2 of 4; rerun it to redo only what is missing
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
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", min=1, help="Songs separated in parallel (one model load shared). Default: 2 when there are several songs and at least 2 cores, else 1."),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Segments mixed at once (default 4 on CPU; on a GPU about 2 M samples, 64 segments for the default)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16/fp16 for the weight estimation (GPU; bf16 also on a CPU with AVX512-BF16 or AMX). Y = X·W stays float32."),
    consistency: Optional[str] = typer.Option(None, "--consistency", help="How the stems add back to the input: spectral (default: the residual goes to the stems by their power per frequency bin), even, energy, or none (the paper's raw mixer output)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Upstream stem cache (default $MDXMIX_CACHE or the user cache dir; `mdxmix cache` shows it)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the upstream stem cache."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per finished song on stdout; no progress bars."),
    upstream: list[str] = typer.Option([], "--upstream", "-u", help="Run these separators instead of the checkpoint's: FAMILY:MODEL[:stem+stem], repeatable. A checkpoint trained for exactly this set is used when one is registered, else the agnostic mixer, else --ensemble wave_avg."),
    stems_from: list[str] = typer.Option([], "--stems-from", help="A folder of stems another tool wrote (demucs, audio-separator/UVR, MSST naming), or DIR::vocals={track}_v.wav,... ; repeatable; mixed by the agnostic mixer (averaged with --ensemble wave_avg when none is installed)."),
    ensemble: Optional[str] = typer.Option(None, "--ensemble", help="Combine the upstreams with a fixed rule instead of a mixer: wave_avg, wave_median, spec_median_mix, ... (the rules of `mdxmix eval`)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and details on errors."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: separate only shard K of N (by a hash of each song's path below its input folder), for N workers on one library."),
) -> None:
    """Separate songs into drums, bass, other and vocals."""
    from .batch import OutputPlan, run_batch
    from .cache import StemCache
    from .outputs import OutputFormat, stdout_stream
    from .pipeline import Separator
    from .shard import Shard

    part = Shard.parse(shard) if shard is not None else None
    check_template(filename)
    check_device_options(device, precision)
    fmt = OutputFormat.from_flags(int24=int24, float32=float32, flac=flac, mp3=mp3, mp3_bitrate=mp3_bitrate, clip_mode=clip_mode)
    plan = OutputPlan.build(out=out, template=filename, fmt=fmt, stems=stems, two_stems=two_stems, stdout=stdout, overwrite=overwrite)
    songs = _songs(inputs, out, part, stdout=stdout, as_json=as_json)
    if not songs:
        return
    checkpoint, specs, folders, files, ensemble = choose_mixer(checkpoint, upstream, stems_from, ensemble)
    separator = Separator(checkpoint, device=device, batch_size=batch_size, precision=precision,
                          cache=None if no_cache else StemCache(cache_dir), specs=specs, search=folders,
                          stem_files=files, ensemble=ensemble, consistency=consistency)
    show_progress = stderr.is_terminal and not as_json
    on_result = _result_printer(separator, part, as_json=as_json, verbose=verbose, lines=show_progress and stdout is None)
    with _progress(show_progress) as progress:
        def factory(track: str):
            task = progress.add_task(track, total=1.0)
            return lambda done, total: progress.update(task, completed=done / total)

        results = run_batch(separator, songs, plan, jobs=jobs,
                            stream=stdout_stream() if stdout else None, progress=factory if show_progress else None,
                            on_result=on_result)
    _summarise(results)


def _songs(inputs: list[str], out: Path, part: Any, *, stdout: Optional[str], as_json: bool) -> list:
    """The songs the inputs name (minus `-o` and earlier outputs), this shard's share of them, checked for pipes."""
    from .inputs import expand_inputs
    from .shard import select

    if stdout is None:
        check_output_folder(out, "-o")
    expansion = expand_inputs(inputs, exclude=[out])
    songs = expansion.songs
    for note in expansion.notes:
        print(f"mdxmix: {note}", file=sys.stderr)
    if part is not None:
        held = select([song.source for song in songs], inputs, part)
        if not held:
            print(f"mdxmix: shard {part} holds none of the {len(songs)} songs; nothing to do", file=sys.stderr)
        songs = [songs[i] for i in held]
    if stdout is not None and len(songs) != 1:
        raise UsageError("--stdout takes exactly one input song")
    if stdout is not None and as_json:
        raise UsageError("--stdout and --json both want stdout; choose one")
    if sum(song.source == "-" for song in songs) > 1:
        raise UsageError("stdin ('-') can be read only once")
    return songs


def _result_printer(separator: Any, part: Any, *, as_json: bool, verbose: bool, lines: bool):
    """What is said when a song finishes: a JSON line, a one-line error, or a line on a terminal."""
    def on_result(result) -> None:
        if as_json:
            record = {"input": result.input, "status": result.status, "outputs": result.outputs, "seconds": result.seconds,
                      "device": str(separator.device), "checkpoint": separator.name, "upstream_runs": result.upstream_runs}
            if result.error:
                record["error"] = result.error
            if part is not None:
                record["shard"] = str(part)
            print(json.dumps(record), flush=True)
        if result.status == "failed":
            _report_error(result.exception or UserError(result.error or "failed"), verbose)
        elif result.status == "ok" and lines:
            folder = Path(next(iter(result.outputs.values()))).parent
            stderr.print(f"{result.input}: {len(result.outputs)} stems in {folder} ({result.seconds:.1f} s)")

    return on_result


def _summarise(results: list) -> None:
    """The batch's summary line; exit code 1 when a song failed."""
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    if len(results) > 1 or counts["skipped"]:
        print(f"mdxmix: {len(results)} songs: {counts['ok']} separated, {counts['skipped']} skipped (outputs exist; "
              f"--overwrite to redo), {counts['failed']} failed", file=sys.stderr)
    if counts["failed"]:
        raise typer.Exit(code=1)


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

    check_device_options(device)
    for option, path in (("--plot", plot), ("--csv", csv_path)):
        if path is not None:
            check_output_file(path, option)  # before minutes of computation, not after
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


def choose_mixer(checkpoint: str, upstream: list[str], stems_from: list[str], ensemble: str | None):
    """The checkpoint, upstream specs, stem folders and ensemble rule a `separate` call asks for, saying any choice made."""
    from .selection import choose_checkpoint
    from .upstream.parse import parse_upstreams
    from .upstream.stem_files import parse_stems_from

    parsed, folders = parse_upstreams(upstream)  # folders: where --upstream weight files are
    specs = parsed or None
    files = [parse_stems_from(text) for text in stems_from]
    if (specs or files) and checkpoint == "default" and ensemble is None:
        choice = choose_checkpoint(specs or [], bool(files))
        print(f"mdxmix: {choice.reason}", file=sys.stderr)
        return choice.checkpoint, choice.specs, folders, files, choice.ensemble
    return checkpoint, specs, folders, files, ensemble


def _report_error(exc: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"mdxmix: error: {message}", file=sys.stderr, flush=True)


SUBCOMMANDS = {"separate", "models", "eval", "train", "inspect", "cache"}
#: Subcommands with their own --verbose/-v option; the others accept it too (every error line
#: says "rerun with --verbose"), and `main` takes it out before click parses their options.
#: A set rather than a look at each command's options: train, eval and models load lazily.
OWN_VERBOSE = {"separate", "inspect"}
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


_MAIN_PID = os.getpid()


def _on_signal(signum: int, frame: Any) -> None:
    """Closing the terminal (SIGHUP) or `kill` (SIGTERM) stops like Ctrl-C: songs clean up, then exit."""
    if os.getpid() != _MAIN_PID:  # a forked worker (data loading, scoring) reacts as Python's default would
        if signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    first = not INTERRUPT.is_set()
    INTERRUPT.set(signum)
    if first:  # later signals only wait for the cleanup the first one started
        raise Interrupted(signum)


def _dash_hint(args: list[str]) -> str:
    named = [a for a in args if a.startswith("-") and a != "-" and os.path.isfile(a)]
    return f" (to separate a file whose name starts with '-', write ./{named[0]})" if named else ""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: route bare files to `separate`, turn every error into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    if args and args[0] not in SUBCOMMANDS and args[0] not in ("--help", "-h", "--install-completion", "--show-completion"):
        args = ["separate", *args]
    if verbose and args and args[0] not in OWN_VERBOSE:
        args = [a for a in args if a not in ("--verbose", "-v")]
    command = typer.main.get_command(app)
    global _MAIN_PID
    _MAIN_PID = os.getpid()
    previous = {signum: signal.signal(signum, _on_signal) for signum in SIGNALS}
    INTERRUPT.clear()
    try:
        # With standalone_mode=False a typer.Exit comes back as its code instead of being raised.
        result = command.main(args=args, prog_name="mdxmix", standalone_mode=False)
    except UserError as exc:
        _report_error(exc, verbose)
        return exc.exit_code
    except Interrupted as exc:
        print("mdxmix: interrupted; no partial outputs were kept", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exit as exc:
        return exc.exit_code
    except NoArgsIsHelpError as exc:  # bare `mdxmix`: the help, as with --help
        print(exc.format_message())
        return 0
    except ClickException as exc:  # typer's own bundled click: unknown option, bad value, missing argument
        print(f"mdxmix: error: {' '.join(exc.format_message().split())}{_dash_hint(args)}", file=sys.stderr)
        return 2
    except Abort:
        print("mdxmix: aborted", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(f"mdxmix: internal error: {type(exc).__name__}: {exc} (rerun with --verbose for details)", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
