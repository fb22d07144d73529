"""Upstreams named on the command line: `FAMILY:MODEL[:stem+stem]`.

    demucs:htdemucs                       a pretrained Demucs bag, all four stems
    demucs:htdemucs_ft:vocals             the same family, only its vocals
    demucs-file:weights/small.safetensors a local Demucs package (its sha256 is pinned)
    spectral-file:weights/voc.safetensors:vocals  a local spectral-mask model (mdxmix.upstream.spectral)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..stems import STEMS
from ..weightfiles import file_sha256
from .base import UpstreamSpec

FILE_FAMILIES = {"demucs-file", "spectral-file"}


def parse_upstream(text: str) -> tuple[UpstreamSpec, Path | None]:
    """Parse one `--upstream` value into a spec and, for file families, the folder holding the file."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UserError(f"--upstream {text!r}: expected FAMILY:MODEL[:stem+stem], e.g. demucs:htdemucs or demucs-file:x.safetensors:vocals")
    family, model = parts[0], parts[1]
    stems = tuple(parts[2].split("+")) if len(parts) > 2 and parts[2] else STEMS
    if len(parts) > 3:
        raise UserError(f"--upstream {text!r}: too many ':' fields")
    folder = None
    sha256 = None
    if family in FILE_FAMILIES:
        path = Path(model)
        if not path.is_file():
            raise UserError(f"--upstream {text!r}: no such file {path}")
        folder, model, sha256 = path.resolve().parent, path.name, file_sha256(path)
    try:
        return UpstreamSpec(family=family, model=model, stems=stems, sha256=sha256), folder
    except ValueError as exc:
        raise UserError(f"--upstream {text!r}: {exc}") from exc
