"""`mdxmix models` and its subcommands: list, add, remove, export.

`mdxmix models` alone lists the bundled checkpoints and the user's own entries in two
tables; `add`/`remove` edit the user registry; `export` writes a hub-ready folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .models_listing import list_models
from .sharing import add_model, export_folder, push_folder, remove_model
from .user_registry import user_registry_file

models_app = typer.Typer(
    invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None,
    help="List registered checkpoints (bundled and your own), add or remove your own, export one for the hub.",
    epilog="Examples:\n\n  mdxmix models\n\n"
           "  mdxmix models add rock --hub someone/mdxmix-rock/rock.safetensors --revision main --sha256 <64 hex>\n\n"
           "  mdxmix song.wav -c rock\n\n"
           "  mdxmix models export runs/mdx/best.safetensors export/rock --name rock --eval-json results/results.json",
)


def _description(row: dict) -> str:
    """The registry's description; for a user's entry without one, where it lives."""
    return row["description"] or (row["location"] if row["registry"] == "user" else "")


def _table(title: str, rows: list[dict]):
    from rich.table import Table

    table = Table(title=title)
    takes = {"any upstreams": "any upstreams (these by default)", "exactly these upstreams": "exactly these"}
    for column in ("name", "status", "size", "mixer", "takes", "upstreams", "description"):
        table.add_column(column, no_wrap=column in ("name", "status", "size", "mixer"))
    for row in rows:
        description = _description(row)
        table.add_row(row["name"] + (" (default)" if row["default"] else ""), row["status"], row["size"],
                      row.get("mixer", "?"), takes.get(row.get("takes", ""), "?"),
                      "\n".join(row.get("upstreams", [])) or "?", description)
    return table


LINE_FIELDS = ("name", "registry", "status", "size", "mixer", "takes", "upstreams", "description")


def _print_lines(rows: list[dict]) -> None:
    """What `cut -f`, `awk -F'\\t'` and `grep` want: a header, then a line per checkpoint."""
    print("\t".join(LINE_FIELDS) + "\tdefault")
    for row in rows:
        values = {**row, "upstreams": ",".join(row.get("upstreams", [])), "description": _description(row)}
        fields = [" ".join(str(values.get(f) or "").split()) for f in LINE_FIELDS]  # no tabs or newlines inside
        print("\t".join(fields + ["yes" if row["default"] else "no"]))


@models_app.callback()
def models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List registered checkpoints, where they live, and the upstream models each needs."""
    if ctx.invoked_subcommand is not None:
        return
    rows = list_models()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    bundled = [r for r in rows if r["registry"] == "bundled"]
    user = [r for r in rows if r["registry"] == "user"]
    if not sys.stdout.isatty():  # piped: one tab-separated line per checkpoint, not a table squeezed to 80 columns
        _print_lines(bundled + user)
        return
    console = Console()
    if bundled:
        console.print(_table("bundled checkpoints", bundled))
    else:
        print("no checkpoints are bundled in weights/registry.json", file=sys.stderr)
    if user:
        console.print(_table(f"your checkpoints ({user_registry_file()})", user))
    else:
        print(f"no checkpoints of your own yet (`mdxmix models add`; they go to {user_registry_file()})", file=sys.stderr)


@models_app.command("add", epilog="Example:\n\n  mdxmix models add rock --hub someone/mdxmix-rock/rock.safetensors --revision main --sha256 <64 hex>")
def add(
    name: str = typer.Argument(..., help="The name to use with -c NAME."),
    hub: str = typer.Option(..., "--hub", help="OWNER/REPO/FILE.safetensors on the Hugging Face hub."),
    revision: str = typer.Option(..., "--revision", help="Branch, tag or (best) commit hash of the repo."),
    sha256: str = typer.Option(..., "--sha256", help="sha256 of the checkpoint file (the model card's SHA256SUMS gives it)."),
    description: str = typer.Option("", "--description", help="Shown by `mdxmix models`."),
) -> None:
    """Register a mixer someone published on the hub under NAME, pinned by sha256, in your user registry.

    It is downloaded (with its upstream files) and verified now when the network allows,
    else on first use; offline the command to fetch it on another machine is printed.
    """
    added = add_model(name, hub, revision=revision, sha256=sha256, description=description)
    verb = "replaced" if added.replaced else "added"
    if added.path is not None:
        print(f"mdxmix: {verb} '{name}' in {added.registry_file}; downloaded and verified ({added.path})", file=sys.stderr)
    else:
        print(f"mdxmix: {verb} '{name}' in {added.registry_file}; not downloaded yet: {added.offline_hint}", file=sys.stderr)


@models_app.command("remove", epilog="Example:\n\n  mdxmix models remove rock")
def remove(name: str = typer.Argument(..., help="A name you added with `mdxmix models add`.")) -> None:
    """Forget one of your registered checkpoints (the Hugging Face cache keeps its files until you clear it)."""
    path = remove_model(name)
    print(f"mdxmix: removed '{name}' from {path}", file=sys.stderr)


EXPORT_EPILOG = """Examples:

  mdxmix models export runs/mdx/best.safetensors export/rock --name rock --license mit

  mdxmix models export runs/mdx/best.safetensors export/rock --eval-json results/results.json --push you/mdxmix-rock

The folder holds NAME.safetensors, every local upstream file the checkpoint needs, SHA256SUMS
and a README.md model card; `hf upload REPO FOLDER .` (or --push) publishes it.
"""


@models_app.command("export", epilog=EXPORT_EPILOG)
def export(
    checkpoint: Path = typer.Argument(..., help="A trained checkpoint, e.g. RUN/best.safetensors."),
    out: Path = typer.Argument(..., help="A new (or empty) folder to write."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name and checkpoint file name (default: the checkpoint's file name)."),
    license: str = typer.Option("unknown", "--license", help="Licence identifier for the model card (e.g. mit, cc-by-4.0)."),
    eval_json: Optional[Path] = typer.Option(None, "--eval-json", help="results.json of `mdxmix eval`, shown as the card's evaluation table."),
    upstream_dir: list[Path] = typer.Option([], "--upstream-dir", help="Folder holding upstream weight files (repeatable; the checkpoint's folder and weights/ are searched too)."),
    push: Optional[str] = typer.Option(None, "--push", help="Upload the folder to this hub repo (OWNER/REPO) with huggingface_hub."),
    private: bool = typer.Option(False, "--private", help="With --push: create the repo private."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write a hub-ready folder: checkpoint, upstream files, their sha256 and a model card."""
    if push is not None and (push.count("/") != 1 or not all(push.split("/"))):
        raise typer.BadParameter(f"expected OWNER/REPO, got {push!r}", param_hint="--push")
    done = export_folder(checkpoint, out, name=name, license=license, eval_json=eval_json, upstream_dirs=upstream_dir, repo=push)
    record = {"folder": str(done.folder), "files": {f.name: f.sha256 for f in done.files}}
    if not as_json:
        print(f"mdxmix: exported {len(done.files)} files to {done.folder} (checkpoint sha256 {done.checkpoint_sha256})", file=sys.stderr)
    commit = None
    try:
        if push is not None:
            commit = push_folder(done.folder, push, private=private)
    finally:
        if as_json:
            print(json.dumps({**record, "pushed": commit}))
    if commit is not None:
        stem = done.checkpoint_file.removesuffix(".safetensors")
        add_line = f"mdxmix models add {stem} --hub {push}/{done.checkpoint_file} --revision {commit} --sha256 {done.checkpoint_sha256}"
        print(f"mdxmix: pushed to {push} at {commit}; others use it with: {add_line}", file=sys.stderr)
