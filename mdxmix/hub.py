"""Files from the Hugging Face hub without hanging when there is no network.

`hf_hub_download` retries a failed connection five times with back-off (about 25 s of
"Retrying in 1s [Retry 1/5]" lines) before it reports that the file is missing. So the
local cache is asked first with `local_files_only=True` (no network at all), and only a
file that is not there is downloaded, after a quick TCP connection to the hub's host
(`$HF_ENDPOINT`, 3 s timeout) shows that the hub can be reached at all.

`huggingface_hub` is imported inside the functions that use it: separating a song with
bundled weights never needs it, and importing it took 1.0 s after torch (median of 5 on
a 2-core machine at load 11).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from .errors import OfflineError, first_line

PROBE_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def unreachable_reason() -> str | None:
    """Why the hub cannot be reached (one short phrase), or None if a connection opens."""
    if offline_requested():
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None  # only the proxy knows; let huggingface_hub try through it
    from huggingface_hub import constants

    parts = urlsplit(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    host, port = parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"cannot reach {host}:{port}: {first_line(exc)}"


def hub_file(repo_id: str, filename: str, *, revision: str | None = None) -> Path:
    """The local path of a hub file: from the cache if it is there, else downloaded.

    Raises `OfflineError` (reason only) when it is not cached and the hub is unreachable;
    callers add what needed it and how to get it.
    """
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (the error type varies with the version and with HF_HUB_OFFLINE)
        pass
    reason = unreachable_reason()
    if reason is not None:
        raise OfflineError(reason)
    return Path(hf_hub_download(repo_id, filename, revision=revision))
