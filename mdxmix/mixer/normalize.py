"""The paper's per-track normalisation of X, shared by training and separation."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

# A mixture whose standard deviation is below this is treated as silence (no division).
SILENT_STD = 1e-8


@dataclass(frozen=True)
class Normalizer:
    """Mixture mean 0 and standard deviation 1.

    Every channel of X gets the same affine map, so sums of stems stay sums and the
    output is mapped back with the same numbers.
    """

    mean: float
    std: float

    @classmethod
    def of(cls, mixture: Tensor) -> "Normalizer":
        std = float(mixture.std()) if mixture.numel() > 1 else 0.0
        return cls(mean=float(mixture.mean()), std=std if std > SILENT_STD else 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, y: Tensor) -> Tensor:
        return y * self.std + self.mean
