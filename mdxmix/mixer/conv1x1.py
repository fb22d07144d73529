"""The paper's time-invariant baseline (§3.1): one learned W for every segment."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..stems import OUTPUT_CHANNELS
from .mdx_mixer import apply_weights


@dataclass(frozen=True)
class Conv1x1Config:
    in_channels: int  # 2 + C
    segment: int = 2**18  # T: only sets the inference segmentation and training crops
    out_channels: int = OUTPUT_CHANNELS

    def __post_init__(self) -> None:
        if self.in_channels < 2:
            raise ValueError("in_channels must be at least 2 (one stereo signal)")
        if self.segment % 4:
            raise ValueError("segment T must be divisible by 4 (inference hop is T/4)")

    def to_dict(self) -> dict:
        return asdict(self)


class Conv1x1Mixer(nn.Module):
    """Y_k = X_k W with W ∈ R^{(2+C)×8} shared by all segments (a 1×1 convolution)."""

    kind = "conv1x1"

    def __init__(self, config: Conv1x1Config) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.zeros(config.in_channels, config.out_channels))

    @property
    def segment(self) -> int:
        return self.config.segment

    def estimate_weights(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (batch, {self.config.in_channels}, time), got {tuple(x.shape)}")
        return self.weight.unsqueeze(0).expand(x.shape[0], -1, -1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.estimate_weights(x)
        return apply_weights(x, weights), weights

    def set_time_invariant_weights(self, weights: Tensor) -> None:
        """Set the one W (an initialisation, e.g. the average of the upstreams)."""
        with torch.no_grad():
            self.weight.copy_(weights)
