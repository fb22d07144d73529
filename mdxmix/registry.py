"""Named checkpoints and weight files: bundled in `weights/` or fetched from the hub.

`weights/registry.json` maps names to files. A local entry names a file in `weights/`
with its sha256; a hub entry names a Hugging Face repo, file and revision with its
sha256. Hub files go through `huggingface_hub` into its normal cache, are checked
against the pinned hash, and fail offline with a message naming what is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import verify_sha256
from .errors import CheckpointError, OfflineError, first_line
from .hub import hub_file

REGISTRY_FILE = "registry.json"


def weights_dir() -> Path:
    """`$MDXMIX_WEIGHTS` if set, else the `weights/` folder of this source tree."""
    override = os.environ.get("MDXMIX_WEIGHTS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class WeightRef:
    """Where one weight file lives and what its content must hash to."""

    name: str
    sha256: str | None = None
    file: str | None = None
    hub: dict | None = None
    description: str = ""

    @property
    def location(self) -> str:
        if self.file:
            return "bundled"
        hub = self.hub if isinstance(self.hub, dict) else {}
        return f"hub:{hub.get('repo_id')}/{hub.get('filename')}@{hub.get('revision', 'main')}"


@dataclass(frozen=True)
class Registry:
    default: str | None
    checkpoints: dict[str, WeightRef]
    root: Path

    @classmethod
    def load(cls, root: Path | None = None) -> "Registry":
        root = root or weights_dir()
        path = root / REGISTRY_FILE
        if not path.exists():
            return cls(default=None, checkpoints={}, root=root)
        try:
            data = json.loads(path.read_text())
            entries = {
                name: WeightRef(name=name, sha256=e.get("sha256"), file=e.get("file"), hub=e.get("hub"), description=e.get("description", ""))
                for name, e in data.get("checkpoints", {}).items()
            }
        except (ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: malformed registry ({exc})") from exc
        return cls(default=data.get("default"), checkpoints=entries, root=root)

    def resolve_name(self, name: str | None) -> str:
        """'default' or None → the registry's default name, with a clear error when none exists."""
        if name in (None, "default"):
            if not self.default or self.default not in self.checkpoints:
                raise CheckpointError(
                    f"no default checkpoint is bundled in {self.root} yet; pass --checkpoint NAME|FILE.safetensors "
                    "(see `mdxmix models`, or train one with `mdxmix train`)"
                )
            return self.default
        return name

    def checkpoint_path(self, name_or_path: str | None) -> tuple[str, Path]:
        """A registered name or a path to a `.safetensors` file → (display name, local path)."""
        candidate = Path(str(name_or_path)) if name_or_path not in (None, "default") else None
        if candidate is not None and (candidate.suffix == ".safetensors" or candidate.exists()):
            if not candidate.exists():
                raise CheckpointError(f"{candidate}: no such checkpoint file")
            return candidate.stem, candidate
        name = self.resolve_name(name_or_path)
        if name not in self.checkpoints:
            known = ", ".join(sorted(self.checkpoints)) or "none registered"
            raise CheckpointError(f"unknown checkpoint '{name}' (known: {known}; or give a path to a .safetensors file)")
        return name, fetch(self.checkpoints[name], self.root)


def fetch(ref: WeightRef, root: Path) -> Path:
    """The local path of a registered file, downloading and verifying hub files."""
    if ref.file:
        path = root / ref.file
        if not path.exists():
            raise CheckpointError(f"bundled file {path} is missing from this installation")
        if ref.sha256:
            verify_sha256(path, ref.sha256)
        return path
    if not ref.hub:
        raise CheckpointError(f"registry entry '{ref.name}' has neither a file nor a hub location")
    path = hub_download(ref.hub, what=f"registry entry '{ref.name}'")
    if ref.sha256:
        verify_sha256(path, ref.sha256)
    return path


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


def resolve_weight_file(name: str, *, sha256: str | None, hub: dict | None, search: list[Path]) -> Path:
    """An upstream's weight file: found in `search` folders (checkpoint's folder, weights/) or on the hub."""
    for folder in search:
        path = folder / name
        if path.exists():
            if sha256:
                verify_sha256(path, sha256)
            return path
    if hub:
        return fetch(WeightRef(name=name, sha256=sha256, hub=hub), search[0] if search else weights_dir())
    places = ", ".join(str(s) for s in search)
    raise CheckpointError(f"upstream weights '{name}' not found (looked in {places}) and no hub location is given")
