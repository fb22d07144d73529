"""Upstream separators behind one protocol; `build_upstream` picks the adapter by family.

Adding a family means one adapter module and one entry in `FAMILIES`; the engine and
pipeline never change. `mdxnet-onnx`, `resunet` and `roformer` take a file or a name from
`catalog.py` (public models with pinned sha256, fetched from the hub where a mirror is known).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import OfflineError, UpstreamError
from ..weightfiles import find_weight_file, weights_dir
from .base import Upstream, UpstreamSpec, channel_names, check_provides

Loader = Callable[[UpstreamSpec, list[Path], torch.device], Upstream]


def _demucs_pretrained(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .demucs_adapter import load_pretrained_demucs

    return load_pretrained_demucs(spec.model, device)


def _demucs_file(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .demucs_adapter import load_local_demucs  # demucs loads only for this family

    path = find_weight_file(spec.model, sha256=spec.sha256, hub=spec.hub, search=search)
    return load_local_demucs(path, spec.id, device)


def _spectral_file(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .spectral import load_local_spectral

    path = find_weight_file(spec.model, sha256=spec.sha256, hub=spec.hub, search=search)
    return load_local_spectral(path, spec.id, device)


def _umx_file(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .umx import load_local_umx

    path = find_weight_file(spec.model, sha256=spec.sha256, hub=spec.hub, search=search)
    return load_local_umx(path, spec.id, device)


def _spleeter_file(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .spleeter import load_local_spleeter

    path = find_weight_file(spec.model, sha256=spec.sha256, hub=spec.hub, search=search)
    return load_local_spleeter(path, spec.id, device)


def _known(spec: UpstreamSpec):
    """The catalog entry a spec names: by name, or (for a file) by the file's pinned sha256."""
    from .catalog import known_file_by_sha256, known_model

    if spec.sha256 is None:
        return known_model(spec.family, spec.model)
    hit = known_file_by_sha256(spec.sha256)
    return hit[0] if hit is not None and hit[0].family == spec.family else None


def _family_files(spec: UpstreamSpec, search: list[Path]) -> list[tuple[Path, dict | None]]:
    """The local file(s) of a mdxnet-onnx/resunet/roformer spec: a catalogued name or a file name, with settings."""
    folders = list(search) + ([weights_dir()] if weights_dir() not in search else [])
    known = _known(spec)
    networks = known.settings.get("networks", {}) if known else {}
    if spec.sha256 is not None:  # a file; a renamed copy of a catalogued file still gets its settings
        path = find_weight_file(spec.model, sha256=spec.sha256, hub=spec.hub, search=folders)
        names = [f.filename for f in known.files if f.sha256 == spec.sha256] if known else []
        return [(path, networks.get(names[0]) if names else None)]
    if known is None:
        raise UpstreamError(f"upstream {spec.id}: not a file and not a model this version of mdxmix knows")
    paths = []
    for f in known.files:
        local = next((d / f.filename for d in folders if (d / f.filename).is_file()), None)
        if local is None and f.hub is None:
            pin = f" (sha256 {f.sha256})" if f.sha256 else ""
            raise OfflineError(
                f"upstream {spec.id} needs {f.filename}{pin}, which is in none of {', '.join(map(str, folders))} and has "
                f"no pinned hub mirror; download it from {f.manual} into {weights_dir()} (or name the file: {spec.family}:PATH)"
            )
        paths.append((find_weight_file(f.filename, sha256=f.sha256, hub=f.hub, search=folders), networks.get(f.filename)))
    return paths


def _mdxnet_onnx(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .mdxnet_onnx import load_mdxnet_onnx

    return load_mdxnet_onnx(_family_files(spec, search), spec.id, device)


def _resunet(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .resunet import ResUNetUpstream, load_resunet

    [(path, _)] = _family_files(spec, search)
    stems = spec.stems if path.suffix != ".safetensors" else ("vocals",)
    return ResUNetUpstream(load_resunet(path, stems=stems[:1]), spec.id, device)


def _roformer(spec: UpstreamSpec, search: list[Path], device: torch.device) -> Upstream:
    from .roformer import RoformerUpstream, load_roformer, roformer_from_catalog

    [(path, _)] = _family_files(spec, search)
    known = _known(spec)
    model, config = load_roformer(path, roformer_from_catalog(known.settings) if known else None)
    return RoformerUpstream(model, config, spec.id, device)


FAMILIES: dict[str, Loader] = {
    "demucs": _demucs_pretrained,
    "demucs-file": _demucs_file,
    "spectral-file": _spectral_file,
    "umx-file": _umx_file,
    "spleeter-file": _spleeter_file,
    "mdxnet-onnx": _mdxnet_onnx,
    "resunet": _resunet,
    "roformer": _roformer,
}


def build_upstream(spec: UpstreamSpec, search: list[Path], device: torch.device | str = "cpu") -> Upstream:
    """Load the upstream a spec names and check it yields the stems the spec asks for."""
    if spec.family not in FAMILIES:
        raise UpstreamError(f"upstream {spec.model}: unknown family '{spec.family}' (known: {', '.join(FAMILIES)})")
    upstream = FAMILIES[spec.family](spec, search, torch.device(device))
    check_provides(spec, upstream)
    return upstream


__all__ = ["FAMILIES", "Upstream", "UpstreamSpec", "build_upstream", "channel_names", "check_provides"]
