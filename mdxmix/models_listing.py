"""What `mdxmix models` shows: each registered checkpoint, its status and its upstreams."""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import read_meta
from .errors import UserError
from .registry import Registry
from .user_registry import user_registry_dir


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _hub_cached(hub: dict) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub["repo_id"], hub["filename"], revision=hub.get("revision"))
        return Path(found) if isinstance(found, (str, os.PathLike)) else None
    except Exception:  # noqa: BLE001 - a listing must not fail because of the cache
        return None


def list_models() -> list[dict]:
    """Bundled entries, then the user's (`mdxmix models add`); each row says which registry holds it."""
    bundled, user = Registry.load(), Registry.load(user_registry_dir())
    rows = []
    entries = [(bundled, "bundled", n, r) for n, r in sorted(bundled.checkpoints.items())]
    entries += [(user, "user", n, r) for n, r in sorted(user.checkpoints.items()) if n not in bundled.checkpoints]
    for registry, origin, name, ref in entries:
        row = {"name": name, "registry": origin, "default": origin == "bundled" and name == registry.default,
               "description": ref.description, "location": ref.location, "sha256": ref.sha256}
        path = registry.root / ref.file if ref.file else _hub_cached(ref.hub or {})
        if ref.file:
            row["status"] = "bundled" if path.exists() else "missing"
        else:
            row["status"] = "downloaded" if path else "needs download"
        row["size"] = _size(path) if path and path.exists() else "?"
        if path and path.exists():
            try:
                meta = read_meta(path)
                row["mixer"] = meta.mixer_kind
                row["upstreams"] = [f"{u.family}:{u.model} [{'+'.join(u.stems)}]" for u in meta.upstreams]
                row["takes"] = "any upstreams" if meta.any_upstreams else "exactly these upstreams"
            except UserError as exc:
                row["status"] = f"unreadable: {exc}"
        rows.append(row)
    return rows
