"""Which torch device a run uses; shared by separation, training and evaluation."""

from __future__ import annotations

import torch

from .errors import UserError


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA, then Apple MPS, then CPU; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible to PyTorch")
    if name == "mps" and not _mps_available():
        raise UserError("--device mps was asked for but Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from exc
