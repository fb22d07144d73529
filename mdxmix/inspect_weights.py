"""What the mixer learned: the per-segment W_k over a song (paper Figs. 4–6).

The mean over segments shows which inputs each output stem is built from (positive and
negative weights); the standard deviation shows how much MDX-Mixer varies them over
time. A 1×1-conv checkpoint has a standard deviation of zero by construction.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import read_audio, resample
from .pipeline import Separator
from .stems import SAMPLE_RATE, STEMS

OUTPUT_NAMES = [f"{stem}.{side}" for stem in STEMS for side in ("L", "R")]


@dataclass
class WeightTrace:
    starts: list[int]  # segment start samples at 44.1 kHz
    weights: np.ndarray  # (segments, 2+C, 8)
    inputs: list[str]

    @property
    def mean(self) -> np.ndarray:
        return self.weights.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.weights.std(axis=0)


def trace_weights(separator: Separator, path: str | Path) -> WeightTrace:
    """Run the song through the mixer and keep every segment's W_k."""
    audio, info = read_audio(path)
    starts: list[int] = []
    weights: list[torch.Tensor] = []

    def keep(batch_starts: list[int], w: torch.Tensor) -> None:
        starts.extend(batch_starts)
        weights.append(w)

    for _ in separator.stream(resample(audio, info.sample_rate, SAMPLE_RATE), on_weights=keep):
        pass
    return WeightTrace(starts, torch.cat(weights).numpy(), separator.meta.channels)


def write_csv(trace: WeightTrace, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["segment", "start_seconds", "input", "output", "weight"])
        for k, start in enumerate(trace.starts):
            for i, name in enumerate(trace.inputs):
                for o, out in enumerate(OUTPUT_NAMES):
                    writer.writerow([k, f"{start / SAMPLE_RATE:.3f}", name, out, f"{trace.weights[k, i, o]:.6f}"])


def plot(trace: WeightTrace, path: Path, title: str = "") -> None:
    """Two heatmaps, mean and standard deviation of W_k, inputs as rows and outputs as columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(trace.inputs)
    fig, axes = plt.subplots(1, 2, figsize=(14, 2.5 + 0.32 * rows), constrained_layout=True)
    limit = float(np.abs(trace.mean).max()) or 1.0
    panels = ((axes[0], trace.mean, "mean of W_k", "RdBu_r", (-limit, limit)),
              (axes[1], trace.std, "standard deviation of W_k", "viridis", (0, float(trace.std.max()) or 1.0)))
    for ax, values, name, cmap, (lo, hi) in panels:
        image = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(OUTPUT_NAMES)), OUTPUT_NAMES, rotation=45, ha="right")
        ax.set_yticks(range(rows), trace.inputs, fontsize=7)
        ax.set_title(f"{name} over {len(trace.starts)} segments")
        for i in range(rows):
            for o in range(len(OUTPUT_NAMES)):
                ax.text(o, i, f"{values[i, o]:.2f}", ha="center", va="center", fontsize=6)
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
