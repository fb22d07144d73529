"""Upstreams named on the command line: `FAMILY:MODEL[:stem+stem]`.

    demucs:htdemucs                       a pretrained Demucs bag, all four stems
    demucs:htdemucs_ft:vocals             the same family, only its vocals
    demucs-file:weights/small.safetensors a local Demucs package (its sha256 is pinned)
    spectral-file:weights/voc.safetensors:vocals  a local spectral-mask model (mdxmix.upstream.spectral)
    umx-file:weights/umx4.safetensors     a local Open-Unmix-style model (mdxmix.upstream.umx)
    spleeter-file:spleeter-2stems.safetensors     Deezer's Spleeter, converted (mdxmix.upstream.spleeter): vocals
    mdxnet-onnx:kuielab_a                 a catalogued model by name (its stems by default)
    mdxnet-onnx:UVR-MDX-NET-Inst.onnx:vocals      a local ONNX file (framing from NAME.json beside it)
    resunet:resunet143_vocals             bytesep's ResUNet143 vocals (file placed by hand, see catalog)
    roformer:model.ckpt:vocals            an MSST checkpoint with model.yaml beside it
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError, UserError
from ..stems import STEMS
from ..weightfiles import file_sha256
from .base import UpstreamSpec
from .catalog import known_model, known_names

FILE_FAMILIES = {"demucs-file", "spectral-file", "umx-file", "spleeter-file"}
#: What a file gives when the spec names no stems: all four, except the 2-stem Spleeter and
#: bytesep's ResUNet (a .pth does not say its target; the vocals model is the one published).
DEFAULT_STEMS = {"spleeter-file": ("vocals",), "resunet": ("vocals",)}
NAMED_FAMILIES = {"mdxnet-onnx", "resunet", "roformer"}  # a file, or a name from upstream/catalog.py


def parse_upstream(text: str) -> tuple[UpstreamSpec, Path | None]:
    """Parse one `--upstream` value into a spec and, for file families, the folder holding the file."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UserError(f"--upstream {text!r}: expected FAMILY:MODEL[:stem+stem], e.g. demucs:htdemucs or demucs-file:x.safetensors:vocals")
    family, model = parts[0], parts[1]
    stems = tuple(parts[2].split("+")) if len(parts) > 2 and parts[2] else DEFAULT_STEMS.get(family, STEMS)
    if len(parts) > 3:
        raise UserError(f"--upstream {text!r}: too many ':' fields")
    folder = None
    sha256 = None
    if family in NAMED_FAMILIES:
        return _parse_named(text, family, model, stems if len(parts) > 2 and parts[2] else None)
    if family in FILE_FAMILIES:
        path = Path(model)
        if not path.is_file():
            raise UserError(f"--upstream {text!r}: no such file {path}")
        folder, model, sha256 = path.resolve().parent, path.name, file_sha256(path)
    try:
        return UpstreamSpec(family=family, model=model, stems=stems, sha256=sha256), folder
    except ValueError as exc:
        raise UserError(f"--upstream {text!r}: {exc}") from exc


def parse_upstreams(texts: Iterable[str], option: str = "--upstream") -> tuple[list[UpstreamSpec], list[Path]]:
    """Several `FAMILY:MODEL[:stem+stem]` values: their specs in order, and the folders holding
    their weight files (where `Separator` and the trainer look for them).

    Why refuse a repeat: the same model twice gives the mixer two identical channel blocks and
    computes its stems twice; one name with all the wanted stems (`FAMILY:MODEL:a+b`) does it once.
    """
    parsed = [parse_upstream(text) for text in texts]
    specs = [spec for spec, _ in parsed]
    if len({s.id for s in specs}) != len(specs):
        raise UsageError(f"{option}: an upstream is named twice; name it once with all the stems it should give (FAMILY:MODEL:a+b)")
    return specs, [folder for _, folder in parsed if folder is not None]


def _parse_named(text: str, family: str, model: str, stems: tuple[str, ...] | None) -> tuple[UpstreamSpec, Path | None]:
    """A family that takes a file (pinned by its sha256) or a catalogued name (pinned in the catalog)."""
    path = Path(model)
    known = known_model(family, model)
    try:
        if path.is_file():
            spec = UpstreamSpec(family=family, model=path.name, stems=stems or DEFAULT_STEMS.get(family, STEMS),
                                sha256=file_sha256(path))
            return spec, path.resolve().parent
        if known is not None:
            return UpstreamSpec(family=family, model=model, stems=stems or known.stems), None
    except ValueError as exc:
        raise UserError(f"--upstream {text!r}: {exc}") from exc
    names = ", ".join(known_names(family)) or "none"
    raise UserError(f"--upstream {text!r}: no such file {path} and no known {family} model of that name (known: {names})")
