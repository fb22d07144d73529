"""The training loop of the paper (§4.2): L1 on the eight output channels, Adam, best-on-valid.

One process per device; under `torchrun` the processes form a data-parallel group
(see `distributed`), each takes every world_size-th segment of the same shuffled order,
and DDP averages gradients, so N processes with batch b take the same step as one
process with batch N·b.

A run is five steps, each a function below: `prepare` (songs and cached upstream stems),
`build` (the mixer and its optimiser), `resume` (the saved state, if any), `run_epoch`
and `save_epoch`; `train` strings them together and returns a `TrainSummary`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..cache import StemCache
from ..checkpoint import CheckpointMeta, save_checkpoint
from ..device import cpu_thread_share, default_jobs
from ..errors import CheckpointError, UsageError, UserError
from ..mixer import PRESETS, AgnosticConfig, AgnosticMixer, Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig, Mixer
from ..mixer.engine import mix_stream
from ..stems import AUDIO_CHANNELS, STEMS
from ..upstream import Upstream, UpstreamSpec, build_upstream
from ..upstream.parse import parse_upstreams
from .agnostic import SetSong, SubsetSampler, run_agnostic_epoch, validation_sets
from .config import TrainConfig, TrainSummary
from .data import PreparedSong, SegmentDataset, prepare_split, song_seconds
from .distributed import Distributed
from .leakage import leakage_report
from .state import load_state, read_state_info, save_state


@dataclass
class Prepared:
    """The `prepare` step's result: the upstreams and both splits, ready to read."""

    specs: list[UpstreamSpec]
    search: list[Path]
    train_songs: list[PreparedSong]
    valid_songs: list[PreparedSong]  # their X holds the pool's stems, then the valid-only upstreams'
    warnings: list[str]
    upstream_loads: int
    valid_specs: list[UpstreamSpec] = field(default_factory=list)  # --valid-upstream


def build_model(cfg: TrainConfig, in_channels: int) -> Mixer:
    """The mixer a config asks for: the preset's size (and T for the 1×1 conv) with per-field overrides."""
    segment = cfg.segment or PRESETS.get(cfg.preset, {}).get("segment")
    try:
        if cfg.kind == Conv1x1Mixer.kind:
            return Conv1x1Mixer(Conv1x1Config(in_channels=in_channels, segment=segment))
        overrides = {k: v for k, v in dict(segment=cfg.segment, folds=cfg.folds, layers=cfg.layers, dropout=cfg.dropout,
                                           token_hidden=cfg.token_hidden, channel_hidden=cfg.channel_hidden).items()
                     if v is not None}
        if cfg.kind == AgnosticMixer.kind:
            return AgnosticMixer(AgnosticConfig.preset(cfg.preset, **overrides))
        return MDXMixer(MDXMixerConfig.preset(cfg.preset, in_channels, **overrides))
    except ValueError as exc:
        raise UserError(f"invalid mixer size: {exc}") from exc


def average_weights(stems_per_upstream: list[tuple[str, ...]], mixture: bool = True) -> torch.Tensor:
    """W that averages the upstream estimates of each stem.

    A stem no upstream gives is a quarter of the mixture, or silence when X has no mixture.
    """
    first = AUDIO_CHANNELS if mixture else 0
    in_channels = first + AUDIO_CHANNELS * sum(len(s) for s in stems_per_upstream)
    weights = torch.zeros(in_channels, AUDIO_CHANNELS * len(STEMS))
    for out_index, stem in enumerate(STEMS):
        rows = []
        row = first
        for stems in stems_per_upstream:
            for s in stems:
                if s == stem:
                    rows.append(row)
                row += AUDIO_CHANNELS
        for channel in range(AUDIO_CHANNELS):
            column = AUDIO_CHANNELS * out_index + channel
            for r in rows:
                weights[r + channel, column] = 1.0 / len(rows)
            if not rows and mixture:
                weights[channel, column] = 1.0 / len(STEMS)
    return weights


class UpstreamLoader:
    """Loads upstream `i` on first need only, so a fully cached dataset never loads a model."""

    def __init__(self, specs: list[UpstreamSpec], search: list[Path], device: torch.device) -> None:
        self.specs, self.search, self.device = specs, search, device
        self.loaded: dict[int, Upstream] = {}
        self._lock = threading.Lock()  # songs are prepared in several threads; each model loads once

    def __call__(self, index: int) -> Upstream:
        with self._lock:
            if index not in self.loaded:
                self.loaded[index] = build_upstream(self.specs[index], self.search, self.device)
            return self.loaded[index]


def prepare(cfg: TrainConfig, env: Distributed, log) -> Prepared:
    """Step 1: parse the upstreams, fill the stem cache for both splits, check for leakage."""
    specs, search = parse_upstreams(cfg.upstreams)
    valid_specs, valid_search = parse_upstreams(cfg.valid_upstreams, "--valid-upstream")
    if {s.id for s in specs} & {s.id for s in valid_specs}:
        raise UsageError("--valid-upstream: an upstream of the training pool (--upstream) cannot also be held out")
    cache = StemCache(cfg.cache_dir)
    loader = UpstreamLoader(specs + valid_specs, search + valid_search, env.device)  # indices: the pool first

    def report(name: str, computed: bool) -> None:
        if env.main and not cfg.json_log:
            log(f"prepared {name}{' (upstream stems computed)' if computed else ' (cached)'}", file=sys.stderr)

    jobs = cfg.jobs if cfg.jobs is not None else default_jobs(songs=2)
    # An agnostic mixer trained on synthetic separators only never reads the real ones' stems of the train split.
    train_specs = [] if cfg.kind == AgnosticMixer.kind and cfg.synthetic == 1.0 else specs

    def split(name: str, on_song, with_specs: list[UpstreamSpec]) -> list[PreparedSong]:
        return prepare_split(cfg.data, name, with_specs, loader, cache, on_song=on_song, include_mixture=cfg.mixture,
                             jobs=jobs)

    # Rank 0 fills the cache first so that processes never compute the same stems twice.
    if env.main:
        songs = split(cfg.train_split, report, train_specs), split(cfg.valid_split, report, specs + valid_specs)
    env.barrier()
    if not env.main:
        songs = split(cfg.train_split, None, train_specs), split(cfg.valid_split, None, specs + valid_specs)
    warnings = leakage_report([s.name for s in songs[0]], cfg.upstream_trained_on, cfg.data)
    for line in warnings if env.main else []:
        log(f"warning: {line}", file=sys.stderr)
    return Prepared(specs, search, songs[0], songs[1], warnings, len(loader.loaded), valid_specs)


def build(cfg: TrainConfig, specs: list[UpstreamSpec], device: torch.device) -> tuple[Mixer, torch.optim.Optimizer]:
    """Step 2: the mixer at its initial weights, on the device, and its Adam optimiser."""
    torch.manual_seed(cfg.seed)
    in_channels = AUDIO_CHANNELS * (int(cfg.mixture) + sum(len(s.stems) for s in specs))
    model = build_model(cfg, in_channels)
    if cfg.init == "average" and not isinstance(model, AgnosticMixer):  # a fresh agnostic mixer is the average
        model.set_time_invariant_weights(average_weights([s.stems for s in specs], cfg.mixture))
    model.to(device)
    return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)


def resume(cfg: TrainConfig, model: Mixer, optimizer: torch.optim.Optimizer, specs: list[UpstreamSpec],
           env: Distributed, log, valid_specs: list[UpstreamSpec] = ()) -> dict:
    """Step 3: the loop's bookkeeping, restored with model and optimiser from `state.safetensors` on --resume."""
    state_path = cfg.out / "state.safetensors"
    info = {"epoch": 0, "best_loss": None, "best_epoch": None, "history": []}
    signature = {"mixer": model.config.to_dict(), "upstreams": [s.id for s in specs], "kind": model.kind}
    if not cfg.mixture:
        signature["mixture"] = False
    if valid_specs:  # they choose the best epoch, so a resumed run must keep them
        signature["valid_upstreams"] = [s.id for s in valid_specs]
    if cfg.resume and state_path.exists():
        if read_state_info(state_path).get("signature") != signature:
            raise CheckpointError(f"{state_path}: the saved run used another mixer or other upstreams; start a new --out folder")
        info = load_state(state_path, model, optimizer)
        if env.main:
            log(f"resuming after epoch {info['epoch']}", file=sys.stderr)
    elif state_path.exists() and env.main:
        log(f"note: {cfg.out} holds an earlier run; starting over (use --resume to continue it)", file=sys.stderr)
    info["signature"] = signature
    return info


def epoch_order(cfg: TrainConfig, size: int, epoch: int, world: int) -> list[int]:
    """This epoch's shuffled segment indices, cut to whole global batches (and --steps-per-epoch)."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).tolist()
    global_batch = cfg.batch_size * world
    if cfg.steps_per_epoch:
        order = order[: cfg.steps_per_epoch * global_batch]
    return order[: len(order) // global_batch * global_batch] or order[:global_batch]


def run_epoch(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer, dataset: SegmentDataset,
              env: Distributed, epoch: int) -> tuple[float, int]:
    """Step 4: one pass over this epoch's segments; returns (mean train L1 over all processes, segments)."""
    order = epoch_order(cfg, len(dataset), epoch, env.world)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order[env.rank :: env.world]),
                                         batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)
    use_amp = cfg.amp and env.device.type in ("cuda", "cpu")  # CPU: worth it with AVX512-BF16/AMX
    net.train()
    loss_sum, steps = 0.0, 0
    with _epoch_progress(cfg.progress and env.main and not cfg.json_log, epoch, len(loader)) as advance:
        for x, y in loader:
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            with torch.autocast(device_type=env.device.type, dtype=torch.bfloat16, enabled=use_amp):
                prediction, _ = net(x)  # W_k may be bf16 under --amp; Y = X·W is always float32
            loss = (prediction.float() - y).abs().mean()  # paper Eq. 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach())
            steps += 1
            advance()
    return env.all_sum([loss_sum / max(steps, 1)])[0] / env.world, len(order)


def save_epoch(cfg: TrainConfig, model: Mixer, optimizer: torch.optim.Optimizer, info: dict, record: dict,
               meta: CheckpointMeta | None, log) -> None:
    """Step 5 (rank 0): the best checkpoint when `meta` is given, the resumable state, the log line."""
    if meta is not None:
        save_checkpoint(cfg.out / "best.safetensors", model, meta, half=cfg.half)
    save_state(cfg.out / "state.safetensors", model, optimizer, info)
    with open(cfg.out / "log.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    if cfg.json_log:
        print(json.dumps(record), flush=True)
    else:
        log(f"epoch {record['epoch']}: train L1 {record['train_loss']:.5f}  valid L1 {record['valid_loss']:.5f}  "
            f"best epoch {record['best_epoch']}  ({record['seconds']:.1f} s)", file=sys.stderr)


def provenance(cfg: TrainConfig, data: Prepared, env: Distributed) -> dict:
    """What the checkpoint records about how it was trained."""
    return {
        "dataset": str(cfg.data), "train_split": cfg.train_split, "valid_split": cfg.valid_split,
        "train_songs": len(data.train_songs), "train_hours": round(song_seconds(data.train_songs) / 3600, 3),
        "valid_songs": len(data.valid_songs), "segment_shift": cfg.shift, "batch_size_per_device": cfg.batch_size,
        "world_size": env.world, "lr": cfg.lr, "seed": cfg.seed, "git_commit": git_commit(), "mdxmix": __version__,
        "leakage_warnings": data.warnings,
        **({"synthetic_share": cfg.synthetic, "max_upstreams": cfg.max_upstreams, "anchor": cfg.anchor,
            "valid_upstreams": [s.id for s in data.valid_specs]} if cfg.kind == AgnosticMixer.kind else {}),
    }


def train(cfg: TrainConfig, log=print) -> TrainSummary:
    """Run (or resume) a training; returns a summary with the best checkpoint's path."""
    env = Distributed(cfg.device)
    # Beside other busy jobs, two threads on a CPU stalled at every step: one epoch of 20 steps of
    # the tiny mixer on 2 songs did not end in 600 s with OMP_NUM_THREADS=2, took 10.3 s with 1.
    try:
        with cpu_thread_share(enabled=env.device.type == "cpu"):
            summary = _train(cfg, env, log)
        env.barrier()  # no process tears the group down while another still talks to it
        return summary
    finally:
        env.close()


def _train(cfg: TrainConfig, env: Distributed, log) -> TrainSummary:
    data = prepare(cfg, env, log)
    model, optimizer = build(cfg, data.specs, env.device)
    cfg.out.mkdir(parents=True, exist_ok=True)
    if env.main:
        _place_upstream_files(data.specs, data.search, cfg.out)
    info = resume(cfg, model, optimizer, data.specs, env, log, data.valid_specs)
    dataset = SegmentDataset(data.train_songs, model.segment, cfg.shift)
    epoch_step, score = _epoch_step(cfg, model, optimizer, dataset, data.specs, env, data.valid_songs, data.valid_specs)
    base = provenance(cfg, data, env)
    if info["epoch"] == 0:  # where training starts from: the loss curve's epoch 0, and the best so far
        info["initial_valid_loss"], info["initial_valid_sets"] = score()
        info["best_loss"], info["best_epoch"] = info["initial_valid_loss"], 0
        if env.main:
            save_checkpoint(cfg.out / "best.safetensors", model, _meta(cfg, model, data, base, 0, info["best_loss"]), half=cfg.half)
            if not cfg.json_log:
                log(f"epoch 0: valid L1 {info['initial_valid_loss']:.5f} (initial weights)", file=sys.stderr)
    for epoch in range(info["epoch"] + 1, cfg.epochs + 1):
        started = time.perf_counter()
        train_loss, segments = epoch_step(epoch)
        valid_loss, valid_sets = score()
        improved = info["best_loss"] is None or valid_loss < info["best_loss"]  # None: a state saved before epoch 0 counted
        if improved:
            info["best_loss"], info["best_epoch"] = valid_loss, epoch
        record = {"epoch": epoch, "train_loss": round(train_loss, 6), "valid_loss": round(valid_loss, 6),
                  "best_epoch": info["best_epoch"], "seconds": round(time.perf_counter() - started, 2), "segments": segments,
                  **({"valid_sets": valid_sets} if valid_sets else {})}
        info["history"].append(record)
        info["epoch"] = epoch
        if env.main:
            save_epoch(cfg, model, optimizer, info, record, _meta(cfg, model, data, base, epoch, valid_loss) if improved else None, log)
        env.barrier()
    return TrainSummary(main=env.main, best=str(cfg.out / "best.safetensors"), best_epoch=info["best_epoch"],
                        best_loss=info["best_loss"], initial_valid_loss=info.get("initial_valid_loss"),
                        epochs=info["epoch"], upstream_loads=data.upstream_loads, history=info["history"],
                        config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})


def _meta(cfg: TrainConfig, model: Mixer, data: Prepared, base: dict, epoch: int, valid_loss: float) -> CheckpointMeta:
    """The checkpoint metadata of the weights after `epoch` (0: the initial weights)."""
    return CheckpointMeta(model.kind, {}, data.specs, mixture=cfg.mixture,
                          provenance={**base, "epochs": epoch, "best_epoch": epoch, "valid_loss": valid_loss})


def _epoch_step(cfg: TrainConfig, model: Mixer, optimizer: torch.optim.Optimizer, dataset: SegmentDataset,
                specs: list[UpstreamSpec], env: Distributed, valid_songs: list[PreparedSong],
                valid_specs: list[UpstreamSpec] = ()):
    """`epoch -> (train loss, segments)` for this kind of mixer, and `() -> (valid L1, L1 per set or None)`.

    The agnostic mixer trains on random upstream sets (`agnostic`) and is validated on several
    fixed sets (`validation_sets`); the other mixers train on their one fixed set, under DDP when
    there are several processes, and are validated on it.
    """
    def score(module: torch.nn.Module, songs: list) -> float:
        return validate(module, songs, env, cfg.val_hop, cfg.batch_size)

    if not isinstance(model, AgnosticMixer):
        net = torch.nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
        return (lambda epoch: run_epoch(cfg, net, optimizer, dataset, env, epoch)), (lambda: (score(model, valid_songs), None))
    pool = tuple(tuple(s.stems) for s in specs)
    held = tuple(tuple(s.stems) for s in valid_specs)
    sets = validation_sets(pool, cfg.synthetic, cfg.seed, held)
    everything = pool + held  # the layout of the valid songs' X

    def score_sets() -> tuple[float, dict[str, float]]:
        losses = {v.name: score(model.bind(v.layout(everything)), [SetSong(song, v, everything) for song in valid_songs])
                  for v in sets}
        return sum(losses.values()) / len(losses), {name: round(loss, 6) for name, loss in losses.items()}
    sampler = SubsetSampler(pool, cfg.synthetic, cfg.max_upstreams, torch.Generator())

    def step(epoch: int) -> tuple[float, int]:
        order = epoch_order(cfg, len(dataset), epoch, env.world)
        sampler.epoch_seed = cfg.seed * 100_003 + epoch  # each example's set: from this and its index
        steps = -(-len(order) // (cfg.batch_size * env.world))
        with _epoch_progress(cfg.progress and env.main and not cfg.json_log, epoch, steps) as advance:
            loss = run_agnostic_epoch(model, optimizer, dataset, order, cfg.batch_size, sampler, env, advance, cfg.anchor)
        return env.all_sum([loss])[0] / env.world, len(order)

    return step, score_sets


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


def _place_upstream_files(specs, search: list[Path], out: Path) -> None:
    """Put each upstream weight file beside the checkpoint (hard link, else copy), where separation looks for it."""
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
