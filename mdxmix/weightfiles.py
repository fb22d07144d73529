"""Weight files: where they are looked for, and how their content is checked.

Every file mdxmix loads weights from is pinned by sha256 (the checkpoint names its
upstreams' hashes, the registry its checkpoints'). Upstream weight files are looked for
in one search path, the same for separation, evaluation and `mdxmix models`: the folder
of the checkpoint that names them, then the bundled `weights/` folder; the hub is the
last resort when the checkpoint says where the file is published.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import CheckpointError, OfflineError, first_line
from .hub import hub_file

_BLOCK = 1 << 20


def weights_dir() -> Path:
    """`$MDXMIX_WEIGHTS` if set, else the `weights/` folder of this source tree."""
    override = os.environ.get("MDXMIX_WEIGHTS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "weights"


def upstream_search_path(checkpoint: str | Path) -> list[Path]:
    """Folders holding the upstream weight files of a checkpoint: beside it, then `weights/`."""
    return [Path(checkpoint).parent, weights_dir()]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Refuse a file whose content does not hash to the pinned value."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise CheckpointError(f"{path}: sha256 {actual[:12]}… does not match the pinned {expected[:12]}… (corrupt or tampered file)")


def hub_download(hub: dict, *, what: str) -> Path:
    """A hub file, with a one-line, actionable failure when offline or missing (fast: see `hub.py`)."""
    repo_id, filename, revision = _hub_fields(hub, what)
    try:
        return hub_file(repo_id, filename, revision=revision)
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all mean "not available here"
        reason = first_line(exc)[:120]
        rev = f" --revision {revision}" if revision else ""
        raise OfflineError(
            f"{what} needs {repo_id}/{filename}{'@' + revision if revision else ''} from the Hugging Face hub, "
            f"which is not in the local cache and cannot be downloaded ({reason}); on a machine with network run "
            f"`huggingface-cli download {repo_id} {filename}{rev}` and copy ~/.cache/huggingface/hub here"
        ) from exc


def _hub_fields(hub: object, what: str) -> tuple[str, str, str | None]:
    """repo_id, filename and revision of a hub location, or a line saying which field is wrong."""
    if not isinstance(hub, dict):
        raise CheckpointError(f"{what}: its hub location must be an object with repo_id and filename, not {hub!r}")
    for key in ("repo_id", "filename"):
        if not isinstance(hub.get(key), str) or not hub[key].strip():
            raise CheckpointError(f"{what}: its hub location {json.dumps(hub)} lacks '{key}' (a non-empty string)")
    revision = hub.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise CheckpointError(f"{what}: its hub 'revision' must be a string, not {revision!r}")
    return hub["repo_id"], hub["filename"], revision


def find_weight_file(name: str, *, sha256: str | None, hub: dict | None, search: list[Path]) -> Path:
    """An upstream's weight file: the first of `search` that holds it, else its hub location."""
    for folder in search:
        path = folder / name
        if path.exists():
            if sha256:
                verify_sha256(path, sha256)
            return path
    if hub:
        path = hub_download(hub, what=f"'{name}'")
        if sha256:
            verify_sha256(path, sha256)
        return path
    places = ", ".join(str(s) for s in search)
    raise CheckpointError(f"upstream weights '{name}' not found (looked in {places}) and no hub location is given")
