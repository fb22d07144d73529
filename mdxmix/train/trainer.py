"""The training loop of the paper (§4.2): L1 on the eight output channels, Adam, best-on-valid.

One process per device; under `torchrun` the processes form a data-parallel group
(NCCL on GPUs, gloo on CPUs), each takes every world_size-th segment of the same
shuffled order, and DDP averages gradients, so N processes with batch b take the same
step as one process with batch N·b.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from .. import __version__
from ..cache import StemCache
from ..checkpoint import CheckpointMeta, save_checkpoint
from ..device import pick_device
from ..errors import CheckpointError, UserError
from ..mixer import Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig, Mixer
from ..mixer.engine import mix_stream
from ..stems import AUDIO_CHANNELS, STEMS
from ..upstream import build_upstream
from ..upstream.parse import parse_upstream
from .data import PreparedSong, SegmentDataset, prepare_split, song_seconds
from .leakage import leakage_report
from .state import load_state, read_state_info, save_state

PRESETS = ("tiny", "small", "paper")


@dataclass
class TrainConfig:
    """Everything `mdxmix train` takes; saved with the run so `--resume` can check it."""

    data: Path
    out: Path
    upstreams: list[str]
    kind: str = "mdx_mixer"
    preset: str = "small"
    segment: int | None = None
    folds: int | None = None
    layers: int | None = None
    dropout: float | None = None
    token_hidden: int | None = None
    channel_hidden: int | None = None
    epochs: int = 100
    batch_size: int = 4
    lr: float = 3e-4
    shift: int = 2**15
    seed: int = 0
    train_split: str = "train"
    valid_split: str = "valid"
    steps_per_epoch: int | None = None
    cache_dir: Path | None = None
    device: str = "auto"
    amp: bool = False
    workers: int = 0
    resume: bool = False
    init: str = "average"
    upstream_trained_on: list[str] = field(default_factory=list)
    val_hop: str = "segment"
    half: bool = False
    json_log: bool = False
    progress: bool = True


def build_model(cfg: TrainConfig, in_channels: int) -> Mixer:
    """The mixer a config asks for: a preset with per-field overrides."""
    if cfg.kind == "conv1x1":
        return Conv1x1Mixer(Conv1x1Config(in_channels=in_channels, segment=cfg.segment or 2**16))
    if cfg.kind != "mdx_mixer":
        raise UserError(f"--kind {cfg.kind!r}: use mdx_mixer or conv1x1")
    if cfg.preset not in PRESETS:
        raise UserError(f"--preset {cfg.preset!r}: use {' or '.join(PRESETS)}")
    overrides = {k: v for k, v in dict(segment=cfg.segment, folds=cfg.folds, layers=cfg.layers, dropout=cfg.dropout,
                                       token_hidden=cfg.token_hidden, channel_hidden=cfg.channel_hidden).items() if v is not None}
    try:
        return MDXMixer(getattr(MDXMixerConfig, cfg.preset)(in_channels, **overrides))
    except ValueError as exc:
        raise UserError(f"invalid mixer size: {exc}") from exc


def average_weights(stems_per_upstream: list[tuple[str, ...]]) -> torch.Tensor:
    """W that averages the upstream estimates of each stem (the mixture/4 where none has it)."""
    in_channels = AUDIO_CHANNELS * (1 + sum(len(s) for s in stems_per_upstream))
    weights = torch.zeros(in_channels, AUDIO_CHANNELS * len(STEMS))
    for out_index, stem in enumerate(STEMS):
        rows = []
        row = AUDIO_CHANNELS
        for stems in stems_per_upstream:
            for s in stems:
                if s == stem:
                    rows.append(row)
                row += AUDIO_CHANNELS
        for channel in range(AUDIO_CHANNELS):
            column = AUDIO_CHANNELS * out_index + channel
            if rows:
                for r in rows:
                    weights[r + channel, column] = 1.0 / len(rows)
            else:
                weights[channel, column] = 1.0 / len(STEMS)
    return weights


def set_time_invariant_weights(model: Mixer, weights: torch.Tensor) -> None:
    with torch.no_grad():
        if isinstance(model, Conv1x1Mixer):
            model.weight.copy_(weights)
        else:
            model.head.bias.copy_(weights.flatten())


class Distributed:
    """Rank, world size and the device of this process; a no-op outside torchrun."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self.device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
            if use_cuda:
                torch.cuda.set_device(self.device)
        else:
            self.device = pick_device(device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def validate(model: Mixer, songs: list[PreparedSong], env: Distributed, hop: str, batch: int) -> float:
    """Mean L1 over whole validation songs, through the inference engine."""
    model.eval()
    total, count = 0.0, 0
    for song in songs[env.rank :: env.world]:
        step = model.segment if hop == "segment" else model.segment // 4
        position = 0
        for chunk in mix_stream(song.read_input, song.frames, model, hop=step,
                                batch_size=batch, device=env.device):
            target = song.read_target(position, position + chunk.shape[-1])
            total += float((chunk - target).abs().sum())
            count += chunk.numel()
            position += chunk.shape[-1]
    total, count = env.all_sum([total, float(count)])
    model.train()
    return total / max(count, 1.0)


def train(cfg: TrainConfig, log=print) -> dict:
    """Run (or resume) a training; returns a summary with the best checkpoint's path."""
    env = Distributed(cfg.device)
    try:
        return _train(cfg, env, log)
    finally:
        env.close()


def _train(cfg: TrainConfig, env: Distributed, log) -> dict:
    torch.manual_seed(cfg.seed)
    parsed = [parse_upstream(u) for u in cfg.upstreams]
    specs = [p[0] for p in parsed]
    search = [folder for _, folder in parsed if folder is not None]
    if len({s.id for s in specs}) != len(specs):
        raise UserError("an upstream is named twice; name it once with all the stems it should give (FAMILY:MODEL:a+b)")
    cache = StemCache(cfg.cache_dir)
    loaded: dict[int, object] = {}
    calls = {"upstream_loads": 0}

    def load_upstream(index: int):
        if index not in loaded:
            calls["upstream_loads"] += 1
            loaded[index] = build_upstream(specs[index], search, env.device)
        return loaded[index]

    def report(name: str, computed: bool) -> None:
        if env.main and not cfg.json_log:
            log(f"prepared {name}{' (upstream stems computed)' if computed else ' (cached)'}", file=sys.stderr)

    # Rank 0 fills the cache first so that processes never compute the same stems twice.
    if env.main:
        train_songs = prepare_split(cfg.data, cfg.train_split, specs, load_upstream, cache, on_song=report)
        valid_songs = prepare_split(cfg.data, cfg.valid_split, specs, load_upstream, cache, on_song=report)
    env.barrier()
    if not env.main:
        train_songs = prepare_split(cfg.data, cfg.train_split, specs, load_upstream, cache)
        valid_songs = prepare_split(cfg.data, cfg.valid_split, specs, load_upstream, cache)
    warnings = leakage_report([s.name for s in train_songs], cfg.upstream_trained_on, cfg.data)
    for line in warnings if env.main else []:
        log(f"warning: {line}", file=sys.stderr)

    in_channels = AUDIO_CHANNELS * (1 + sum(len(s.stems) for s in specs))
    model = build_model(cfg, in_channels)
    if cfg.init == "average":
        set_time_invariant_weights(model, average_weights([s.stems for s in specs]))
    elif cfg.init != "zero":
        raise UserError(f"--init {cfg.init!r}: use average or zero")
    model.to(env.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    cfg.out.mkdir(parents=True, exist_ok=True)
    if env.main:
        _place_upstream_files(specs, search, cfg.out)
    state_path, best_path, log_path = cfg.out / "state.safetensors", cfg.out / "best.safetensors", cfg.out / "log.jsonl"
    info = {"epoch": 0, "best_loss": None, "best_epoch": None, "history": []}
    signature = {"mixer": model.config.to_dict(), "upstreams": [s.id for s in specs], "kind": model.kind}
    if cfg.resume and state_path.exists():
        if read_state_info(state_path).get("signature") != signature:
            raise CheckpointError(f"{state_path}: the saved run used another mixer or other upstreams; start a new --out folder")
        info = load_state(state_path, model, optimizer)
        if env.main:
            log(f"resuming after epoch {info['epoch']}", file=sys.stderr)
    elif state_path.exists() and env.main and not cfg.resume:
        log(f"note: {cfg.out} holds an earlier run; starting over (use --resume to continue it)", file=sys.stderr)
    info["signature"] = signature

    net = torch.nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    dataset = SegmentDataset(train_songs, model.segment, cfg.shift)
    use_amp = cfg.amp and env.device.type == "cuda"
    provenance_base = {
        "dataset": str(cfg.data), "train_split": cfg.train_split, "valid_split": cfg.valid_split,
        "train_songs": len(train_songs), "train_hours": round(song_seconds(train_songs) / 3600, 3),
        "valid_songs": len(valid_songs), "segment_shift": cfg.shift, "batch_size_per_device": cfg.batch_size,
        "world_size": env.world, "lr": cfg.lr, "seed": cfg.seed, "git_commit": git_commit(), "mdxmix": __version__,
        "leakage_warnings": warnings,
    }
    if info["epoch"] == 0:  # where training starts from: the loss curve's epoch 0
        info["initial_valid_loss"] = validate(model, valid_songs, env, cfg.val_hop, cfg.batch_size)
        if env.main and not cfg.json_log:
            log(f"epoch 0: valid L1 {info['initial_valid_loss']:.5f} (initial weights)", file=sys.stderr)
    for epoch in range(info["epoch"] + 1, cfg.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).tolist()
        global_batch = cfg.batch_size * env.world
        if cfg.steps_per_epoch:
            order = order[: cfg.steps_per_epoch * global_batch]
        order = order[: len(order) // global_batch * global_batch] or order[:global_batch]
        mine = order[env.rank :: env.world]
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, mine), batch_size=cfg.batch_size,
                                             shuffle=False, num_workers=cfg.workers)
        net.train()
        loss_sum, steps = 0.0, 0
        with _epoch_progress(cfg.progress and env.main and not cfg.json_log, epoch, len(loader)) as advance:
            for x, y in loader:
                x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
                with torch.autocast(device_type=env.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    prediction, _ = net(x)
                loss = (prediction.float() - y).abs().mean()  # paper Eq. 2
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach())
                steps += 1
                advance()
        train_loss = env.all_sum([loss_sum / max(steps, 1)])[0] / env.world
        valid_loss = validate(model, valid_songs, env, cfg.val_hop, cfg.batch_size)
        improved = info["best_loss"] is None or valid_loss < info["best_loss"]
        if improved:
            info["best_loss"], info["best_epoch"] = valid_loss, epoch
        record = {"epoch": epoch, "train_loss": round(train_loss, 6), "valid_loss": round(valid_loss, 6),
                  "best_epoch": info["best_epoch"], "seconds": round(time.perf_counter() - started, 2),
                  "segments": len(order)}
        info["history"].append(record)
        info["epoch"] = epoch
        if env.main:
            if improved:
                provenance = {**provenance_base, "epochs": epoch, "best_epoch": epoch, "valid_loss": valid_loss}
                save_checkpoint(best_path, model, CheckpointMeta(model.kind, {}, specs, provenance=provenance), half=cfg.half)
            save_state(state_path, model, optimizer, info)
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if cfg.json_log:
                print(json.dumps(record), flush=True)
            else:
                log(f"epoch {epoch}: train L1 {train_loss:.5f}  valid L1 {valid_loss:.5f}  best epoch {info['best_epoch']}  "
                    f"({record['seconds']:.1f} s)", file=sys.stderr)
        env.barrier()
    return {"main": env.main, "best": str(best_path), "best_epoch": info["best_epoch"], "best_loss": info["best_loss"],
            "initial_valid_loss": info.get("initial_valid_loss"),
            "epochs": info["epoch"], "upstream_loads": calls["upstream_loads"], "history": info["history"],
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}


def _place_upstream_files(specs, search: list[Path], out: Path) -> None:
    """Put each upstream weight file beside the checkpoint (hard link, else copy), where separation looks for it."""
    import shutil

    for spec in specs:
        if spec.sha256 is None:
            continue
        target = out / spec.model
        source = next((folder / spec.model for folder in search if (folder / spec.model).is_file()), None)
        if source is None or target.exists() and target.samefile(source):
            continue
        if target.exists():
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


class _epoch_progress:
    """A rich bar per epoch on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, epoch: int, total: int) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.epoch, self.total = epoch, total

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.progress.start()
        task = self.progress.add_task(f"epoch {self.epoch}", total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()
