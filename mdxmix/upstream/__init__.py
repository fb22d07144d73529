"""Upstream separators behind one protocol; `build_upstream` picks the adapter by family.

Adding a family (Open-Unmix, MDX-Net ONNX, …) means one adapter module and one entry
in `FAMILIES`; the engine and pipeline never change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import UpstreamError
from ..weightfiles import find_weight_file
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


FAMILIES: dict[str, Loader] = {
    "demucs": _demucs_pretrained,
    "demucs-file": _demucs_file,
    "spectral-file": _spectral_file,
}


def build_upstream(spec: UpstreamSpec, search: list[Path], device: torch.device | str = "cpu") -> Upstream:
    """Load the upstream a spec names and check it yields the stems the spec asks for."""
    if spec.family not in FAMILIES:
        raise UpstreamError(f"upstream {spec.model}: unknown family '{spec.family}' (known: {', '.join(FAMILIES)})")
    upstream = FAMILIES[spec.family](spec, search, torch.device(device))
    check_provides(spec, upstream)
    return upstream


__all__ = ["FAMILIES", "Upstream", "UpstreamSpec", "build_upstream", "channel_names", "check_provides"]
