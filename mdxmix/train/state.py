"""Resumable training state without pickle: tensors in safetensors, the rest in JSON.

Holds the model, the Adam moments and step counts, and the loop's bookkeeping
(epoch, best validation loss, history), so `--resume` continues exactly where an
interrupted run stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, slots in optim["state"].items():
        for slot, value in slots.items():
            tensors[f"optim.{index}.{slot}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {"info": info, "param_groups": optim["param_groups"]}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"mdxmix_train_state": json.dumps(meta)})


def read_state_info(path: Path) -> dict:
    """The loop's bookkeeping alone, to check a run before loading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["mdxmix_train_state"])["info"]


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model and optimizer in place; returns the loop's bookkeeping."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["mdxmix_train_state"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            state.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta["info"]
