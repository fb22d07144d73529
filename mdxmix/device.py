"""Which torch device a run uses, and how many songs it works on at once; shared by separation, training and evaluation."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


#: Environment variables by which a user fixes the number of CPU threads; when one is set it is obeyed.
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def running_elsewhere(samples: int = 5, interval: float = 0.01, stat: Path = Path("/proc/stat")) -> int:
    """Threads of other work that are runnable right now on this machine (0 where that cannot be read).

    Why: PyTorch's OpenMP threads wait for each other at every parallel step, so when another
    process holds a core, one of two threads keeps being descheduled and the other spins.
    Measured on this 2-core CPU, `mdxmix examples/demo.wav --no-cache` (25 s of audio): 6.6–7.6 s
    wall idle with two threads; beside two busy processes of equal priority 28.8–122.7 s with
    two threads and 16.5–16.6 s with one. `procs_running` counts runnable threads, this one
    included; the least of a few samples leaves out short bursts (ours included)."""
    counts = []
    for index in range(samples):
        try:
            with stat.open() as handle:
                counts += [int(line.split()[1]) for line in handle if line.startswith("procs_running ")]
        except (OSError, ValueError, IndexError):
            return 0
        if index + 1 < samples:
            time.sleep(interval)
    return max(0, min(counts) - 1) if counts else 0


def cpu_threads(jobs: int = 1, *, others: int | None = None) -> int:
    """PyTorch threads for each of `jobs` songs on a CPU: the cores other work leaves free, shared out.

    A user's `OMP_NUM_THREADS`/`MKL_NUM_THREADS` is obeyed (split between the songs). Otherwise
    the cores this process may use, less the threads other processes keep runnable (scaled to
    those cores when the count is the whole machine's), at least one. Chosen once, when a batch
    starts; a job that starts later is not seen."""
    wanted = torch.get_num_threads()
    if not any(os.environ.get(name) for name in THREAD_VARIABLES):
        allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if others is None:
            machine = max(os.cpu_count() or allowed, allowed)
            others = round(running_elsewhere() * allowed / machine)
        wanted = max(1, min(wanted, allowed) - others)
    return max(1, wanted // max(1, jobs))


@contextmanager
def cpu_thread_share(jobs: int = 1, *, enabled: bool = True) -> Iterator[None]:
    """PyTorch's threads set to `cpu_threads(jobs)` for the block (when `enabled`: a run on a CPU),
    and the count found put back after it, so a second run in the same process starts from it."""
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(cpu_threads(jobs))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
