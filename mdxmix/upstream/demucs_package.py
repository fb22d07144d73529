"""Demucs models in demucs's own safetensors package format, read without unpickling.

A package is one `.safetensors` file whose tensors are the model's state and whose
metadata holds `klass` (the model class path), `args` and `kwargs` (its constructor
arguments, JSON; fractions as {"_type": "fraction", ...}). This is what
`demucs.hf.load_safetensors_model` reads and what the Demucs hub repositories hold.
Because the class path comes from the file, only Demucs model classes are accepted.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic import atomic_path
from ..errors import UpstreamError
from .base import safetensors_metadata

ALLOWED_CLASSES = frozenset(
    {
        "demucs.hdemucs.HDemucs",
        "demucs.htdemucs.HTDemucs",
        "demucs.demucs.Demucs",
        "demucs.wdemucs.WDemucs",
    }
)


def _encode(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def save_demucs_package(model: torch.nn.Module, path: str | Path, *, half: bool = False) -> Path:
    """Write a Demucs model (built with its captured init arguments) as a safetensors package."""
    try:
        args, kwargs = model._init_args_kwargs
    except AttributeError as exc:
        raise ValueError("model has no captured init arguments; build it from a demucs class") from exc
    klass = f"{type(model).__module__}.{type(model).__name__}"
    if klass not in ALLOWED_CLASSES:
        raise ValueError(f"{klass} is not a Demucs model class")
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    metadata = {"klass": klass, "args": json.dumps(_encode(list(args))), "kwargs": json.dumps(_encode(dict(kwargs)))}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def load_demucs_package(path: str | Path) -> torch.nn.Module:
    """Load a package after checking that it names a Demucs class."""
    from demucs.hf import load_safetensors_model

    path = Path(path)
    metadata = safetensors_metadata(path)
    klass = metadata.get("klass")
    if klass not in ALLOWED_CLASSES:
        raise UpstreamError(f"{path}: not a Demucs package (class {klass!r} is not a Demucs model)")
    try:
        model = load_safetensors_model(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt package surfaces as many types
        raise UpstreamError(f"{path}: cannot build the Demucs model ({exc})") from exc
    model.float().eval()
    return model
