"""Sharing trained mixers by name: export a hub-ready folder, push it, register someone's by pin.

The hub is the Hugging Face hub through `huggingface_hub`; nothing here is home-made
transport. The trust chain is one user pin: `models add` pins the checkpoint's sha256 and
the checkpoint's metadata pins every upstream file's sha256, so an exported folder is
verified end to end wherever it is downloaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import load_checkpoint
from .errors import CheckpointError, OfflineError, UsageError, first_line
from .model_card import CardFile, read_eval_json, render_card
from .registry import Registry
from .upstream.parse import FILE_FAMILIES
from .user_registry import put_entry, remove_entry, user_entries
from .weightfiles import file_sha256, find_weight_file, weights_dir

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class Export:
    folder: Path
    checkpoint_file: str
    files: list[CardFile]

    @property
    def checkpoint_sha256(self) -> str:
        return next(f.sha256 for f in self.files if f.name == self.checkpoint_file)


def export_folder(checkpoint: Path, out: Path, *, name: str | None = None, license: str = "unknown",
                  eval_json: Path | None = None, upstream_dirs: list[Path] | None = None,
                  repo: str | None = None) -> Export:
    """Write OUT/ with the checkpoint, its local upstream files, SHA256SUMS and README.md.

    The folder is built under a temporary name and renamed at the end, so a failure leaves
    nothing behind; an existing non-empty OUT is refused rather than mixed into.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UsageError(f"{checkpoint}: no such checkpoint file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not an empty folder; export into a new folder")
    _, meta = load_checkpoint(checkpoint)  # refuses a malformed or foreign file with one line
    eval_data = read_eval_json(eval_json) if eval_json else None
    name = name or checkpoint.stem
    checkpoint_file = f"{name}.safetensors"
    search = [checkpoint.parent, *(upstream_dirs or []), weights_dir()]
    sources: list[tuple[str, Path, str]] = [(checkpoint_file, checkpoint, "mixer checkpoint")]
    for spec in meta.upstreams:
        if spec.family not in FILE_FAMILIES or spec.hub:
            continue  # pretrained names and hub-hosted files are fetched from where they live
        if spec.model == checkpoint_file:
            raise UsageError(f"--name {name!r}: the upstream {spec.model} has that file name; choose another name")
        try:
            path = find_weight_file(spec.model, sha256=spec.sha256, hub=None, search=search)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; pass --upstream-dir with the folder that holds it") from exc
        sources.append((spec.model, path, f"upstream {spec.family}, stems {'+'.join(spec.stems)}"))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = []
        for file_name, source, role in sources:
            shutil.copyfile(source, staging / file_name)
            files.append(CardFile(file_name, file_sha256(staging / file_name), (staging / file_name).stat().st_size, role))
        (staging / SUMS_FILE).write_text("".join(f"{f.sha256}  {f.name}\n" for f in files), encoding="utf-8")
        card = render_card(name=name, checkpoint_file=checkpoint_file, meta=meta, files=files, license=license,
                           eval_data=eval_data, repo=repo)
        (staging / "README.md").write_text(card, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.chmod(0o755)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Export(out, checkpoint_file, files)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def push_folder(folder: Path, repo: str, *, private: bool = False) -> str:
    """Upload an exported folder to the hub repo `repo` (created if needed); returns the commit hash."""
    retry = f"the folder {folder} is complete: upload it from a connected machine with `hf upload {repo} {folder} .`"
    if _offline():
        raise OfflineError(f"--push {repo}: not uploaded because HF_HUB_OFFLINE is set; {retry}")
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="mdxmix models export")
    except Exception as exc:  # noqa: BLE001 - network, auth and hub errors all mean "not uploaded"
        raise OfflineError(f"--push {repo}: not uploaded ({first_line(exc)[:160]}); {retry}") from exc
    return str(getattr(info, "oid", "") or "main")


def parse_hub(text: str) -> dict:
    """'owner/repo/path/file.safetensors' → {repo_id, filename}."""
    parts = text.strip("/").split("/")
    if len(parts) < 3 or not all(parts) or not parts[-1].endswith(".safetensors"):
        raise UsageError(f"--hub {text!r}: expected OWNER/REPO/FILE.safetensors (FILE may sit in folders of the repo)")
    return {"repo_id": "/".join(parts[:2]), "filename": "/".join(parts[2:])}


@dataclass(frozen=True)
class Added:
    registry_file: Path
    replaced: bool
    path: Path | None  # the verified local copy, or None when it could not be downloaded here
    offline_hint: str | None  # the one line to show when it could not


def add_model(name: str, hub: str, *, revision: str, sha256: str, description: str = "") -> Added:
    """Register NAME → a pinned hub file in the user registry, then fetch and verify it if the network allows.

    Offline the entry is kept and the returned hint names the download command to run
    elsewhere; a file that does not match its pin is refused and the entry removed again.
    """
    if not name or "/" in name or "\\" in name or name == "default" or name.endswith(".safetensors") or name.startswith("-"):
        raise UsageError(f"models add {name!r}: a name is one word without '/' or '.safetensors' (and not 'default')")
    digest = sha256.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise UsageError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits (sha256sum of the checkpoint)")
    if not revision.strip():
        raise UsageError("--revision: give a branch, tag or commit hash of the hub repo")
    bundled = Registry.load()
    if name in bundled.checkpoints:
        raise UsageError(f"models add {name!r}: a bundled checkpoint has that name; choose another")
    entry = {"hub": {**parse_hub(hub), "revision": revision.strip()}, "sha256": digest}
    if description:
        entry["description"] = description
    previous = user_entries().get(name)
    registry_file = put_entry(name, entry)
    try:
        _, path = bundled.named_path(name)  # by name only: a folder called NAME here is not a checkpoint
    except OfflineError as exc:
        return Added(registry_file, previous is not None, None, str(exc))
    except CheckpointError:
        if previous is None:
            remove_entry(name)
        else:
            put_entry(name, previous)
        raise
    return Added(registry_file, previous is not None, path, None)


def remove_model(name: str) -> Path:
    """Forget a user entry (downloaded files stay in the Hugging Face cache, which owns them)."""
    return remove_entry(name)


__all__ = ["Added", "Export", "add_model", "export_folder", "parse_hub", "push_folder", "remove_model"]
