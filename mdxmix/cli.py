"""The `mdxmix` command line.

`mdxmix song.wav` is short for `mdxmix separate song.wav`. Errors a user can cause end
in one line on stderr and a non-zero exit; `--verbose` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import UserError
from .stems import STEMS

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


@app.command(
    epilog="Examples:\n\n"
    "  mdxmix song.wav\n\n"
    "  mdxmix song.flac -o stems --checkpoint weights/my-mixer.safetensors --device cuda\n\n"
    "  mdxmix a.wav b.wav --json > results.jsonl"
)
def separate(
    inputs: list[str] = typer.Argument(..., help="Audio files to separate ('-' reads one from stdin)."),
    out: Path = typer.Option(Path("separated"), "-o", "--out", help="Output folder; stems go to OUT/<checkpoint>/<track>/<stem>.wav."),
    checkpoint: str = typer.Option("default", "--checkpoint", "-c", help="Registered checkpoint name or path to a .safetensors file."),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Segments mixed at once (default 4 on CPU, 16 on GPU)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16/fp16 for the weight estimation on GPU."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per finished track on stdout; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and details on errors."),
) -> None:
    """Separate songs into drums, bass, other and vocals."""
    from .audio import read_audio
    from .pipeline import Separator

    separator = Separator(checkpoint, device=device, batch_size=batch_size, precision=precision)
    show_progress = stderr.is_terminal and not as_json
    failures = 0
    for source in inputs:
        track = "stdin" if source == "-" else Path(source).stem
        started = time.perf_counter()
        try:
            audio, info = read_audio(source)
            folder = out / separator.name / track
            outputs = {stem: folder / f"{stem}.wav" for stem in STEMS}
            with _progress(show_progress) as progress:
                task = progress.add_task(f"{track}", total=1.0)
                written = separator.separate_to_files(
                    audio, info, outputs, on_progress=lambda done, total: progress.update(task, completed=done / total),
                )
        except UserError as exc:
            failures += 1
            _report_error(exc, verbose)
            continue
        seconds = time.perf_counter() - started
        if as_json:
            record = {"input": source, "outputs": {k: str(v) for k, v in written.items()},
                      "seconds": round(seconds, 3), "device": str(separator.device), "checkpoint": separator.name}
            print(json.dumps(record), flush=True)
        elif not show_progress:
            pass
        else:
            stderr.print(f"{track}: wrote {len(written)} stems to {folder} in {seconds:.1f} s")
    if failures:
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
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""), row["status"], row["size"], row.get("mixer", "?"),
            "\n".join(row.get("upstreams", [])) or "?", row["description"],
        )
    Console().print(table) if rows else stderr.print("no checkpoints are registered in weights/registry.json yet")


def _register_subcommands() -> None:
    from .train.command import EPILOG as TRAIN_EPILOG, train_command

    app.command("train", epilog=TRAIN_EPILOG)(train_command)


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
