"""Named checkpoints and weight files: bundled in `weights/` or fetched from the hub.

`weights/registry.json` maps names to files. A local entry names a file in `weights/`
with its sha256; a hub entry names a Hugging Face repo, file and revision with its
sha256. Hub files go through `huggingface_hub` into its normal cache, are checked
against the pinned hash, and fail offline with a message naming what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .checkpoint import read_meta
from .errors import CheckpointError
from .upstream.parse import FILE_FAMILIES
from .user_registry import user_registry_dir
from .weightfiles import download_command, hub_download, hub_fields, verify_sha256, weights_dir

REGISTRY_FILE = "registry.json"


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
        if candidate is not None and (candidate.suffix == ".safetensors" or candidate.is_file()):
            if not candidate.exists():
                raise CheckpointError(f"{candidate}: no such checkpoint file")
            return candidate.stem, candidate
        return self.named_path(self.resolve_name(name_or_path))

    def named_path(self, name: str) -> tuple[str, Path]:
        """A registered name → (name, verified local path); a hub entry brings its upstream files along."""
        # Bundled names first, then the user's (`mdxmix models add`), which may not shadow them.
        user = Registry.load(user_registry_dir()) if name not in self.checkpoints else None
        owner = user if user is not None and name in user.checkpoints else self
        if name not in owner.checkpoints:
            known = ", ".join(sorted({*self.checkpoints, *(user.checkpoints if user else {})})) or "none registered"
            raise CheckpointError(f"unknown checkpoint '{name}' (known: {known}; or give a path to a .safetensors file)")
        ref = owner.checkpoints[name]
        if ref.hub is not None:  # a malformed entry is named before anything uses it
            hub_fields(ref.hub, f"registry entry '{name}'")
        path = fetch(ref, owner.root, command=download_command(ref.hub, folder=True) if ref.hub else None)
        if ref.hub:
            fetch_upstream_files(ref, path)
        return name, path


def fetch(ref: WeightRef, root: Path, *, command: str | None = None) -> Path:
    """The local path of a registered file, downloading and verifying hub files (`command`: the offline hint)."""
    if ref.file:
        path = root / ref.file
        if not path.exists():
            raise CheckpointError(f"bundled file {path} is missing from this installation")
        if ref.sha256:
            verify_sha256(path, ref.sha256)
        return path
    if not ref.hub:
        raise CheckpointError(f"registry entry '{ref.name}' has neither a file nor a hub location")
    path = hub_download(ref.hub, what=f"registry entry '{ref.name}'", command=command)
    if ref.sha256:
        verify_sha256(path, ref.sha256)
    return path


def fetch_upstream_files(ref: WeightRef, checkpoint: Path) -> None:
    """Bring a hub checkpoint's upstream weight files from its repo folder into the same cache folder.

    `mdxmix models export` puts them beside the checkpoint; the checkpoint pins each one's
    sha256, so the user's one pin covers them all. Files already bundled here (same name,
    same hash) are not downloaded; the pipeline then finds the rest beside the checkpoint.
    """
    hub = ref.hub or {}
    parent = PurePosixPath(hub["filename"]).parent
    for spec in read_meta(checkpoint).upstreams:
        if spec.family not in FILE_FAMILIES or spec.hub:
            continue  # pretrained names and files with their own hub location are fetched by their adapters
        beside, bundled = checkpoint.parent / spec.model, weights_dir() / spec.model
        if beside.exists() or (bundled.exists() and spec.sha256 and _same_file(bundled, spec.sha256)):
            continue  # verified against the pin when the upstream is loaded
        companion = {**hub, "filename": (parent / spec.model).as_posix()}
        path = hub_download(companion, what=f"'{ref.name}' (its upstream {spec.model})", command=download_command(hub, folder=True))
        if spec.sha256:
            verify_sha256(path, spec.sha256)


def _same_file(path: Path, sha256: str) -> bool:
    try:
        verify_sha256(path, sha256)
    except CheckpointError:
        return False
    return True
