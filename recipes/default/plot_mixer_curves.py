"""Learning curves of `mdxmix train` runs: training and validation L1 against segments seen.

    python recipes/default/plot_mixer_curves.py /work/data/runs_v2/* --out recipes/default/mixer_curves_v2.png

Reads each run's `log.jsonl` (one line per epoch; a resumed run appends, and the last line
of an epoch wins). The x axis is training segments, not epochs, because the runs differ in
steps per epoch; the epoch `best.safetensors` holds (lowest validation L1) is marked.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_epochs(run: Path) -> list[dict]:
    """One record per epoch, in epoch order, with the running count of segments seen."""
    by_epoch = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if "epoch" in record and "valid_loss" in record:
                by_epoch[record["epoch"]] = record
    seen = 0
    epochs = []
    for epoch in sorted(by_epoch):
        seen += by_epoch[epoch].get("segments", 0)
        epochs.append({**by_epoch[epoch], "seen": seen})
    return epochs


def plot(runs: list[Path], out: Path) -> None:
    fig, (train_ax, valid_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = read_epochs(run)
        if not epochs:
            continue
        seen = [e["seen"] for e in epochs]
        train_ax.plot(seen, [e["train_loss"] for e in epochs], marker=".", label=run.name)
        line, = valid_ax.plot(seen, [e["valid_loss"] for e in epochs], marker=".", label=run.name)
        best = min(epochs, key=lambda e: e["valid_loss"])
        valid_ax.plot([best["seen"]], [best["valid_loss"]], marker="*", markersize=14, color=line.get_color())
    for ax, title in ((train_ax, "training L1 (epoch mean)"), (valid_ax, "validation L1 (whole songs; * = best)")):
        ax.set_xlabel("training segments")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding log.jsonl")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plot([run for run in args.runs if (run / "log.jsonl").is_file()], args.out)


if __name__ == "__main__":
    main()
