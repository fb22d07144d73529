"""Demucs upstreams: pretrained bags by name from the Hugging Face hub, or local packages."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..errors import OfflineError, UpstreamError, first_line
from ..hub import hub_file
from .demucs_package import ALLOWED_CLASSES, load_demucs_package


class DemucsUpstream:
    """Runs a Demucs model (or bag) the way `demucs.separate` does, on `device`."""

    def __init__(self, model: torch.nn.Module, name: str, device: torch.device | str = "cpu", *, overlap: float = 0.25) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        self.overlap = overlap
        self.sample_rate = int(model.samplerate)
        self.stems = tuple(model.sources)
        if int(model.audio_channels) != 2:
            raise UpstreamError(f"{name}: expects {model.audio_channels} channels; mdxmix feeds stereo")

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        from demucs.apply import apply_model

        # demucs.separate normalises by the mono mixture's statistics and undoes it after.
        ref = mixture.mean(0)
        mean, std = ref.mean(), ref.std()
        std = std if float(std) > 1e-8 else torch.ones_like(std)
        with torch.no_grad():
            out = apply_model(
                self.model, ((mixture - mean) / std)[None], shifts=0, split=True, overlap=self.overlap,
                progress=False, device=self.device,
            )[0]
        out = (out * std + mean).float().cpu()
        return {stem: out[i] for i, stem in enumerate(self.stems)}


def load_pretrained_demucs(name: str, device: torch.device | str = "cpu") -> DemucsUpstream:
    """A pretrained Demucs bag (`htdemucs`, `htdemucs_ft`, `mdx`, `mdx_extra`, …) from the hub.

    Only the safetensors route of `demucs.hf` is used (never the legacy pickled `.th`
    files); files go to the standard Hugging Face cache, so `HF_HUB_OFFLINE=1` works once
    they are there.
    """
    import yaml
    from demucs.apply import BagOfModels
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
    namespace, _, short = name.rpartition("/")
    repo_id = f"{namespace or DEFAULT_NAMESPACE}/{hf_repo_name(short)}"
    try:
        with open(hub_file(repo_id, f"{short}.yaml")) as handle:
            bag = yaml.safe_load(handle)
        files = [hub_file(repo_id, f"{sig}.safetensors") for sig in bag["models"]]
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean "not available"
        raise OfflineError(_missing_demucs_message(name, repo_id, exc)) from exc
    models = [load_demucs_package(f) for f in files]
    return DemucsUpstream(BagOfModels(models, bag.get("weights"), bag.get("segment")), name, device)


def load_local_demucs(path: Path, name: str, device: torch.device | str = "cpu") -> DemucsUpstream:
    """A Demucs-architecture model stored as a safetensors package on disk."""
    return DemucsUpstream(load_demucs_package(path), name, device)


def _missing_demucs_message(name: str, repo_id: str, exc: Exception) -> str:
    why = first_line(exc)[:120] if isinstance(exc, OfflineError) else f"download failed: {first_line(exc)[:120]}"
    return (
        f"Demucs model '{name}' is not in the Hugging Face cache and cannot be fetched ({why}); "
        f"on a machine with network run `huggingface-cli download {repo_id}` and copy "
        f"~/.cache/huggingface/hub here (or set HF_HOME to it)"
    )


__all__ = ["ALLOWED_CLASSES", "DemucsUpstream", "load_local_demucs", "load_pretrained_demucs"]
