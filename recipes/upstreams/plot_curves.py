"""Learning curves of upstream runs: training L1 and validation SDR against training time.

    python recipes/upstreams/plot_curves.py /work/data/upstreams_v2/*.run \
        --out recipes/default/upstream_curves_v2.png

Reads each run's `log.jsonl` (all restarts of a run append to it). Left: training L1
(mean of each logged window, smoothed over 10 windows). Right: validation SDR averaged
over the run's stems, the number `best.safetensors` is chosen by (lowest valid L1) marked.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_log(run: Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records), each sorted by training time."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    train = sorted((r for r in records if "loss" in r), key=lambda r: r["train_s"])
    valid = sorted((r for r in records if "valid_l1" in r), key=lambda r: r["train_s"])
    return train, valid


def smooth(values: list[float], width: int = 10) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if len(x) < width:
        return x
    return np.convolve(x, np.ones(width) / width, mode="valid")


def plot(runs: list[Path], out: Path) -> None:
    fig, (ax_loss, ax_sdr) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        train, valid = read_log(run)
        name = run.name.removesuffix(".run")
        if train:
            loss = smooth([r["loss"] for r in train])
            hours = np.array([r["train_s"] for r in train])[len(train) - len(loss):] / 3600
            ax_loss.plot(hours, loss, label=name)
        if valid:
            hours = [r["train_s"] / 3600 for r in valid]
            sdr = [float(np.mean(list(r["valid_sdr"].values()))) for r in valid]
            line, = ax_sdr.plot(hours, sdr, marker=".", label=name)
            best = min(range(len(valid)), key=lambda i: valid[i]["valid_l1"])
            ax_sdr.plot(hours[best], sdr[best], "o", mfc="none", ms=10, color=line.get_color())
    ax_loss.set(xlabel="training CPU hours", ylabel="training L1 (smoothed)", title="training loss")
    ax_sdr.set(xlabel="training CPU hours", ylabel="valid SDR, stem average (dB)",
               title="validation (circle: best by valid L1)")
    for ax in (ax_loss, ax_sdr):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    plot(args.runs, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
