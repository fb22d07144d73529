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

    def __init__(self, model: torch.nn.Module, name: str, device: torch.device | str = "cpu", *, overlap: float = 0.25,
                 chunk_batch: int | None = None) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        self.overlap = overlap
        # Chunks run through the network at once. On a GPU one small chunk per call leaves it
        # idle between kernel launches; on a CPU batching gains nothing, so one chunk per call.
        self.chunk_batch = chunk_batch if chunk_batch is not None else (16 if self.device.type == "cuda" else 1)
        self.sample_rate = int(model.samplerate)
        self.stems = tuple(model.sources)
        if int(model.audio_channels) != 2:
            raise UpstreamError(f"{name}: expects {model.audio_channels} channels; mdxmix feeds stereo")

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        """Stems on the mixture's device (a GPU mixture is never copied to the host here)."""
        # demucs.separate normalises by the mono mixture's statistics and undoes it after.
        ref = mixture.mean(0)
        mean, std = ref.mean(), ref.std()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        normalised = ((mixture - mean) / std)[None]
        with torch.no_grad():
            out = self._apply_model(normalised.to(self.device))[0]
        out = out.to(mixture.device).float().mul_(std).add_(mean)  # in place: two stem-sized copies fewer at the peak
        return {stem: out[i] for i, stem in enumerate(self.stems)}

    def _apply_model(self, mix: Tensor) -> Tensor:
        """`demucs.apply.apply_model(model, mix, shifts=0, split=True)`, without moving any model.

        Why not call demucs' function: it runs `model.to(device)` on every call (and moves each
        model of a bag there and back), and `Module.to` empties an LSTM's list of flat-weight
        references for a moment. One model serves several threads here (`mdxmix DIR -j 2`, the
        stem-cache fill of `mdxmix train -j 2`), so another thread's LSTM forward could fail
        with "zip() argument 2 is longer than argument 1". Bags are weighted per stem as
        demucs' `BagOfModels` branch does it.
        """
        from demucs.apply import BagOfModels

        if not isinstance(self.model, BagOfModels):
            return split_batched(self.model, mix, self.overlap, self.chunk_batch)
        estimates, totals = None, [0.0] * len(self.stems)
        for model, stem_weights in zip(self.model.models, self.model.weights, strict=True):
            out = split_batched(model, mix, self.overlap, self.chunk_batch)
            for k, weight in enumerate(stem_weights):
                out[:, k] *= weight
                totals[k] += weight
            estimates = out if estimates is None else estimates.add_(out)
        for k, total in enumerate(totals):
            estimates[:, k] /= total
        return estimates


def split_batched(model: torch.nn.Module, mix: Tensor, overlap: float, batch: int) -> Tensor:
    """`demucs.apply.apply_model(model, mix, shifts=0, split=True)` for one model, `batch` chunks per call.

    The same chunks (segment length, stride, context taken from the neighbouring audio by
    `TensorChunk.padded`), the same transition weights and the same overlap-add as
    demucs' loop; only the network sees several equally long chunks at a time. Chunks
    shorter than a segment (the end of the audio) go through alone, as in demucs.
    """
    from demucs.apply import TensorChunk
    from demucs.utils import center_trim

    if mix.shape[0] != 1:
        raise ValueError("split_batched takes one (1, channels, samples) mixture")
    _, channels, length = mix.shape
    segment_length = int(model.samplerate * model.segment)
    stride = int((1 - overlap) * segment_length)
    weight = torch.cat([torch.arange(1, segment_length // 2 + 1, device=mix.device),
                        torch.arange(segment_length - segment_length // 2, 0, -1, device=mix.device)])
    weight = weight / weight.max()
    out = torch.zeros(mix.shape[0], len(model.sources), channels, length, device=mix.device)
    sum_weight = torch.zeros(length, device=mix.device)

    def valid_length(n: int) -> int:  # as apply_model's unsplit call computes it
        return model.valid_length(n) if hasattr(model, "valid_length") else n

    offsets = list(range(0, length, stride))
    full = [o for o in offsets if length - o >= segment_length]
    groups = [full[i : i + batch] for i in range(0, len(full), batch)] + [[o] for o in offsets if length - o < segment_length]
    for group in groups:
        n = min(segment_length, length - group[0])
        target = valid_length(n)
        inputs = torch.cat([TensorChunk(mix, o, segment_length).padded(target) for o in group])
        if n == segment_length and len(group) < batch:
            # Always `batch` full chunks per call (zeros after the real ones, dropped below): on a
            # GPU every new input shape costs cuDNN a fresh plan for each layer, and the first and
            # last blocks of a song would otherwise bring shapes of their own.
            inputs = torch.cat([inputs, inputs.new_zeros((batch - len(group), *inputs.shape[1:]))])
        outputs = center_trim(model(inputs)[: len(group)], n)[:, None]
        for offset, chunk_out in zip(group, outputs):
            out[..., offset : offset + n] += weight[:n] * chunk_out
            sum_weight[offset : offset + n] += weight[:n]
    return out / sum_weight


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
        f"on a machine with network run `hf download {repo_id}` and copy "
        f"~/.cache/huggingface/hub here (or set HF_HOME to it)"
    )


__all__ = ["ALLOWED_CLASSES", "DemucsUpstream", "load_local_demucs", "load_pretrained_demucs"]
