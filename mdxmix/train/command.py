"""`mdxmix train`: the Typer command around `trainer.train`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..atomic import check_output_folder
from ..mixer import PRESETS, describe_preset
from .config import TrainConfig
from .trainer import train

D = TrainConfig.default
PRESET_HELP = "; ".join(f"{name}: {describe_preset(name)}" for name in PRESETS)

EPILOG = """Examples:

  # the paper's MDX-Mixer on MUSDB18-HQ with three upstreams (model B-like vocals, htdemucs_ft, mdx_extra)

  mdxmix train --data MUSDB18HQ --upstream demucs:htdemucs_ft --upstream demucs:mdx_extra --upstream demucs:htdemucs:vocals --preset paper --epochs 100 --out runs/paper

  # 2 GPUs (or 2 CPU processes with gloo); --standalone picks a free port, so two runs can share a machine

  torchrun --standalone --nproc_per_node 2 -m mdxmix train --data MUSDB18HQ --upstream demucs:htdemucs --out runs/ddp

  # a 1x1-conv baseline, resumed after an interruption

  mdxmix train --data corpus --upstream demucs-file:weights/up.safetensors --kind conv1x1 --epochs 50 --out runs/conv --resume

  # a mixer for any upstreams: random sets of 1-4 from this pool and synthetic separators

  mdxmix train --kind agnostic --preset tiny --data corpus --upstream demucs-file:weights/hdemucs16-v3.safetensors --upstream spectral-file:weights/spectral4-v3.safetensors --out runs/agnostic
"""


def train_command(
    data: Path = typer.Option(..., "--data", help="Dataset root in MUSDB18-HQ layout: ROOT/{train,valid,test}/SONG/{mixture,drums,bass,other,vocals}.wav."),
    upstream: list[str] = typer.Option([], "--upstream", "-u", help="FAMILY:MODEL[:stem+stem], repeatable, in channel order (demucs:htdemucs, demucs-file:PATH:vocals). None: mix the mixture alone (the paper's C=0 condition)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: best.safetensors (lowest validation loss), state.safetensors (resume), log.jsonl."),
    kind: str = typer.Option(D("kind"), "--kind", help="mdx_mixer (time-varying W_k), conv1x1 (one W) or agnostic (takes any upstreams; trained on random sets of the --upstream pool and synthetic separators)."),
    preset: str = typer.Option(D("preset"), "--preset", help=f"Mixer size ({PRESET_HELP}; tiny is the bundled default's). The 1x1 conv takes only its T."),
    segment: Optional[int] = typer.Option(None, "--segment", help="T, samples per segment (power of two); overrides the preset."),
    folds: Optional[int] = typer.Option(None, "--folds", help="F, the folding factor; overrides the preset."),
    layers: Optional[int] = typer.Option(None, "--layers", help="N, MLP-Mixer layers; overrides the preset."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="p, dropout inside the MLPs (paper: 0 or 0.2)."),
    token_hidden: Optional[int] = typer.Option(None, "--token-hidden", help="D_T, hidden size of the token-mixing MLP."),
    channel_hidden: Optional[int] = typer.Option(None, "--channel-hidden", help="D_C, hidden size of the channel-mixing MLP."),
    epochs: int = typer.Option(D("epochs"), "--epochs", min=1, help="Epochs (paper: 50 for conv1x1, 100 for MDX-Mixer)."),
    batch_size: int = typer.Option(D("batch_size"), "--batch-size", min=1, help="Segments per device per step (paper: 4 per GPU)."),
    lr: float = typer.Option(D("lr"), "--lr", help="Adam learning rate (paper: 3e-4)."),
    shift: int = typer.Option(D("shift"), "--shift", min=1, help="Samples between training segments (paper: 2^15)."),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1, help="Cap steps per epoch (a fresh random subset each epoch)."),
    seed: int = typer.Option(D("seed"), "--seed", help="Seed for initialisation and segment order."),
    train_split: str = typer.Option(D("train_split"), "--train-split", help="Split the mixer trains on."),
    valid_split: str = typer.Option(D("valid_split"), "--valid-split", help="Split whose whole songs pick the best epoch (MUSDB18-HQ without valid/: its standard 14 validation songs, which then leave train)."),
    val_hop: str = typer.Option(D("val_hop"), "--val-hop", help="Validation hop: 'segment' (T, 4x faster) or 'quarter' (T/4, as inference)."),
    init: str = typer.Option(D("init"), "--init", help="Start W at the average of the upstream estimates of each stem ('average') or at zero."),
    upstream_trained_on: list[str] = typer.Option([], "--upstream-trained-on", help="A split or a file of song names an upstream was trained on; overlaps with the mixer-training songs are warned about. Repeatable."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Upstream stem cache (default: $MDXMIX_CACHE or ~/.cache/mdxmix/stems)."),
    device: str = typer.Option(D("device"), "--device", help="auto, cpu, cuda or mps (under torchrun: one process per GPU)."),
    amp: bool = typer.Option(D("amp"), "--amp", help="bfloat16 autocast of the weight estimation on a GPU or CPU (Y = X·W stays float32); on a CPU with AVX512-BF16 or AMX a tiny-preset step takes about half the time, elsewhere it is slower."),
    mixture: bool = typer.Option(D("mixture"), "--mixture/--no-mixture", help="Put the mixture into X (default), or mix the upstream stems alone (the paper's Table 6 condition)."),
    workers: int = typer.Option(D("workers"), "--workers", min=0, help="DataLoader worker processes."),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", min=1, help="Songs whose upstream stems are computed at once while the stem cache is filled (the cores are shared between them). Default: 2 with at least 2 cores, else 1."),
    half: bool = typer.Option(D("half"), "--half", help="Store the checkpoint's weights in float16."),
    resume: bool = typer.Option(D("resume"), "--resume", help="Continue the run in --out from its last finished epoch."),
    synthetic: float = typer.Option(D("synthetic"), "--synthetic", help="--kind agnostic: chance that each member of an example's upstream set is a synthetic separator rather than one of the --upstream pool."),
    max_upstreams: int = typer.Option(D("max_upstreams"), "--max-upstreams", help="--kind agnostic: each example mixes 1 to this many upstreams."),
    anchor: float = typer.Option(D("anchor"), "--anchor", help="--kind agnostic: L2 penalty on the free rows of W, what the mixer adds to its gated per-stem average of the upstreams (0: none). Keeps it near that average for separators unlike those it was trained with; 0.2 scored best of 0, 0.2 and 1 on an unseen family's valid songs."),
    valid_upstream: list[str] = typer.Option([], "--valid-upstream", help="--kind agnostic: FAMILY:MODEL[:stems] mixed only when validating, alone and beside the pool, never in training; the best epoch then also reflects separators the mixer never learnt. Repeatable."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per epoch on stdout, and a JSON summary at the end."),
) -> None:
    """Train a 1x1-conv or MDX-Mixer checkpoint on a MUSDB18-HQ-layout dataset."""
    check_output_folder(out, "--out")  # before the first epoch, not after it
    cfg = TrainConfig(
        data=data, out=out, upstreams=list(upstream), kind=kind, preset=preset, segment=segment, folds=folds, layers=layers,
        dropout=dropout, token_hidden=token_hidden, channel_hidden=channel_hidden, mixture=mixture, epochs=epochs,
        batch_size=batch_size,
        lr=lr, shift=shift, seed=seed, train_split=train_split, valid_split=valid_split, steps_per_epoch=steps_per_epoch,
        cache_dir=cache_dir, device=device, amp=amp, workers=workers, jobs=jobs, resume=resume, init=init,
        upstream_trained_on=list(upstream_trained_on), val_hop=val_hop, half=half, json_log=as_json,
        synthetic=synthetic, max_upstreams=max_upstreams, anchor=anchor, valid_upstreams=list(valid_upstream),
    )
    summary = train(cfg)
    if not summary.main:
        return  # under torchrun only rank 0 reports
    if as_json:
        print(json.dumps(summary.report()), flush=True)
    else:
        print(f"best checkpoint: {summary.best} (epoch {summary.best_epoch}, valid L1 {summary.best_loss:.5f})", file=sys.stderr)
