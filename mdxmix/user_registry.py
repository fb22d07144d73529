"""The user's own checkpoint names: `registry.json` in the user's config folder.

`mdxmix models add` writes here, never into the installed package, so entries survive
upgrades and a read-only install. The file has the bundled registry's format (hub entries
only), so `Registry.load(user_registry_dir())` reads it with the same code.
`$MDXMIX_CONFIG` moves the folder (tests, shared machines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import CheckpointError

FILE_NAME = "registry.json"


def user_registry_dir() -> Path:
    """`$MDXMIX_CONFIG` if set, else the platform's user config folder for mdxmix."""
    override = os.environ.get("MDXMIX_CONFIG")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("mdxmix", appauthor=False))


def user_registry_file() -> Path:
    return user_registry_dir() / FILE_NAME


def _read() -> dict:
    path = user_registry_file()
    if not path.exists():
        return {"format_version": 1, "checkpoints": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("checkpoints"), dict):
            raise ValueError("no 'checkpoints' object")
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed user registry ({exc}); fix or delete it") from exc
    return data


def _write(data: dict) -> Path:
    path = user_registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def user_entries() -> dict[str, dict]:
    """Name → raw entry (`hub`, `sha256`, `description`) of every user-registered checkpoint."""
    return dict(_read()["checkpoints"])


def put_entry(name: str, entry: dict) -> Path:
    """Add or replace one entry; returns the registry file written."""
    data = _read()
    data["checkpoints"][name] = entry
    return _write(data)


def remove_entry(name: str) -> Path:
    """Delete one entry; an unknown name is an error naming the known ones."""
    data = _read()
    if name not in data["checkpoints"]:
        known = ", ".join(sorted(data["checkpoints"])) or "none"
        raise CheckpointError(f"'{name}' is not in the user registry {user_registry_file()} (user entries: {known})")
    del data["checkpoints"][name]
    return _write(data)
