"""One process per device; under `torchrun` the processes form a data-parallel group.

NCCL on GPUs, gloo on CPUs. Outside torchrun every method is a no-op, so the training
loop is written once for both.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..device import pick_device


class Distributed:
    """Rank, world size and the device of this process; a no-op outside torchrun."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self.device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
            if use_cuda:
                torch.cuda.set_device(self.device)
        else:
            self.device = pick_device(device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
