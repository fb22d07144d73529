"""Box plots of per-track SDR, one panel per stem, one box per system, saved as PNG.

Medians hide how systems fail; the spread over tracks shows whether a gain is broad or
carried by a few songs. matplotlib is imported lazily (Agg backend, no display needed) so
that scoring works without the ``eval`` extra installed.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..atomic import atomic_path
from ..stems import STEMS
from .dataset import EvaluationError
from .report import METRIC_TITLES, Results

# Figure size in inches: one panel per stem, one row per system.
PANEL_WIDTH, ROW_HEIGHT, MARGIN_HEIGHT = 3.2, 0.35, 2.2
DPI = 110


def _mpl_at_least(matplotlib, major: int, minor: int) -> bool:
    parts = matplotlib.__version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def plot_boxes(results: Results, path: str | Path, metric: str | None = None) -> Path:
    """Draw per-track SDR distributions per system and stem into ``path`` (PNG).

    ``metric`` defaults to "museval" when scored, else "global".
    """
    try:
        import matplotlib
    except ImportError:
        raise EvaluationError("plotting needs matplotlib (pip install 'mdxmix[eval]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if metric is None:
        metric = "museval" if "museval" in results.metrics else results.metrics[0]
    systems = results.systems
    size = (PANEL_WIDTH * len(STEMS), ROW_HEIGHT * len(systems) + MARGIN_HEIGHT)
    fig, axes = plt.subplots(1, len(STEMS), figsize=size, sharey=True, squeeze=False)
    for ax, stem in zip(axes[0], STEMS):
        data = [[v for v in results.values(s, stem, metric) if math.isfinite(v)] for s in systems]
        positions = [i for i, d in enumerate(data) if d]
        if positions:
            horizontal = {"orientation": "horizontal"} if _mpl_at_least(matplotlib, 3, 10) else {"vert": False}
            ax.boxplot([data[i] for i in positions], positions=positions, widths=0.6, **horizontal)
        ax.set_title(stem)
        ax.set_xlabel("SDR [dB]")
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(systems)))
        ax.set_yticklabels(systems)
        ax.set_ylim(len(systems) - 0.5, -0.5)
    fig.suptitle(METRIC_TITLES[metric].replace(" [dB]", "") + " — per-track values")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:  # an interrupted run leaves no half-written PNG
        fig.savefig(tmp, dpi=DPI, format=out.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return out
