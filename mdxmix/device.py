"""Which torch device a run uses, and how many songs it works on at once; shared by separation, training and evaluation."""

from __future__ import annotations

import os

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


def default_jobs(songs: int, cores: int | None = None) -> int:
    """Two songs at a time when there are several and at least two cores, else one.

    Measured on a 2-core CPU (4 × 60-s songs, beside other jobs): `-j 2` took 39 s of wall time
    and 54–65 CPU s against 49–52 s and 81–86 CPU s for `-j 1` (one torch thread per song
    spins less than two threads on one song); on an H200, 9.2 s against 10.9 s. More songs at
    once cost ~0.4–0.9 GB each and were not measured, so the default stays at two."""
    if cores is None:
        cores = os.cpu_count() or 1
    return 2 if songs > 1 and cores >= 2 else 1
