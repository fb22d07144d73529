"""Named checkpoints and weight files: bundled in `weights/` or fetched from the hub.

`weights/registry.json` maps names to files. A local entry names a file in `weights/`
with its sha256; a hub entry names a Hugging Face repo, file and revision with its
sha256. Hub files go through `huggingface_hub` into its normal cache, are checked
against the pinned hash, and fail offline with a message naming what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError
from .weightfiles import hub_download, verify_sha256, weights_dir

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
