"""Training the agnostic mixer: every example sees its own random set of one to four upstreams.

Why: the agnostic mixer is meant for separators it has never seen, so it must not learn
one fixed set. For each training example a set of 1–`max_upstreams` upstreams is drawn:
each member is, with probability `synthetic`, a fresh synthetic separator (random stems
and quality, made from the example's true stems, `synthetic_upstreams`), otherwise one of
the real upstreams of the pool not drawn yet (with `synthetic` 0 a set is at most the pool; its cached stems; a four-stem one gives a
single random stem a quarter of the time, so single-stem upstreams are seen too). The
order of the set is random, and depends only on the epoch and the example (not on the
process that draws it). Gradients of the examples of a step are averaged, and under
torchrun averaged over processes, as DDP would, so N processes take the step one would.

Validation mixes several fixed sets through the inference engine (`validation_sets`): the
whole real pool (the checkpoint's default upstreams), each pool member alone, two synthetic
separators, and the pool beside a near-oracle one. "Best epoch" is the lowest mean L1 over
them, because the pool alone picked mixers that fit the pool's upstreams and did worse than
their average start on a family they had never seen (issue 11's first trained model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from ..mixer import AgnosticMixer
from ..mixer.agnostic import Layout
from ..mixer.mdx_mixer import apply_weights
from ..stems import AUDIO_CHANNELS, STEMS
from .data import PreparedSong, SegmentDataset
from .distributed import Distributed
from .synthetic_upstreams import SyntheticUpstream, random_synthetic


class SubsetSampler:
    """Draws the upstream set of one example from the real pool and synthetic separators."""

    def __init__(self, pool: Layout, synthetic: float, max_upstreams: int, generator: torch.Generator) -> None:
        if not 0.0 <= synthetic <= 1.0:
            raise ValueError("the synthetic share must be in [0, 1]")
        self.pool, self.synthetic, self.max_upstreams, self.generator = pool, synthetic, max_upstreams, generator
        self.epoch_seed: int | None = None

    def seed_for(self, item: int) -> None:
        """Make the draw of example `item` depend on (epoch seed, item) alone, not on which process
        draws it or what it drew before: one process and N under torchrun train on the same sets,
        and --resume redraws them. Without an epoch seed the generator just runs on."""
        if self.epoch_seed is not None:
            self.generator.manual_seed(self.epoch_seed * 1_000_003 + item)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def draw(self, x: Tensor, y: Tensor) -> tuple[Tensor, Layout]:
        """(2+C_pool, T) pool input and (8, T) target → (2+C, T) input of a random set, and its layout."""
        count = int(torch.randint(1, self.max_upstreams + 1, (), generator=self.generator))
        unused = torch.randperm(len(self.pool), generator=self.generator).tolist()
        blocks, layout = [], []
        for _ in range(count):
            if unused and self._uniform() >= self.synthetic:
                stems, rows = self._real(x, unused.pop())
            elif self.synthetic > 0:
                stems, rows = self._synthetic(y)
            else:  # real upstreams only, and every one is in the set already
                break
            blocks.append(rows)
            layout.append(stems)
        return torch.cat([x[:AUDIO_CHANNELS], *blocks]), tuple(layout)

    def _real(self, x: Tensor, index: int) -> tuple[tuple[str, ...], Tensor]:
        stems = self.pool[index]
        first = AUDIO_CHANNELS * (1 + sum(len(s) for s in self.pool[:index]))
        rows = x[first : first + AUDIO_CHANNELS * len(stems)]
        if len(stems) > 1 and self._uniform() < 0.25:
            keep = int(torch.randint(0, len(stems), (), generator=self.generator))
            return (stems[keep],), rows[AUDIO_CHANNELS * keep : AUDIO_CHANNELS * (keep + 1)]
        return stems, rows

    def _synthetic(self, y: Tensor) -> tuple[tuple[str, ...], Tensor]:
        upstream = random_synthetic(self.generator)
        estimates = upstream.separate(y.view(len(STEMS), AUDIO_CHANNELS, -1), self.generator)
        return upstream.stems, torch.cat([estimates[s] for s in upstream.stems])


def run_agnostic_epoch(model: AgnosticMixer, optimizer: torch.optim.Optimizer, dataset: SegmentDataset,
                       order: list[int], batch_size: int, sampler: SubsetSampler, env: Distributed,
                       advance=lambda: None, anchor: float = 0.0) -> float:
    """One pass over this process's share of `order`; returns its mean train L1 (without the anchor term).

    `anchor` > 0 adds anchor · Σ (free rows of W)² per example to the loss (`free_penalty`).
    """
    model.train()
    mine = order[env.rank :: env.world]
    loss_sum, steps = 0.0, 0
    for first in range(0, len(mine), batch_size):
        optimizer.zero_grad(set_to_none=True)
        batch = mine[first : first + batch_size]
        step_loss = 0.0
        for item in batch:
            x, y = dataset[item]
            sampler.seed_for(item)
            x_set, layout = sampler.draw(x, y)
            x_set = x_set[None].to(env.device)
            convex, free = model.weight_parts(x_set, layout)
            prediction = apply_weights(x_set, convex + free)
            loss = (prediction[0] - y.to(env.device)).abs().mean() / len(batch)  # paper Eq. 2, averaged over the batch
            (loss + anchor * free_penalty(free) / len(batch)).backward()
            step_loss += float(loss.detach())
        if env.world > 1:
            for parameter in model.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= env.world
        optimizer.step()
        loss_sum += step_loss
        steps += 1
        advance()
    return loss_sum / max(steps, 1)


def free_penalty(free: Tensor) -> Tensor:
    """Σ of the squared free rows of W, averaged over the batch: the anchor term's unit.

    Why a sum over W's entries rather than a mean: the mean would shrink with the number of
    upstreams (most entries of W are structurally zero), so one anchor would mean different
    things for one upstream and for four. Why an anchor at all: a mixer trained without it
    learnt fixed family-specific corrections in its free rows (for `other`, 1.04 × its own
    estimate − 0.07 × vocals − 0.06 × drums; recipes/agnostic/weight_probe.py) that cost
    0.46 dB on `other` for a family it had never seen (recipes/agnostic/README.md).
    """
    return free.pow(2).sum(dim=(1, 2)).mean()


@dataclass(frozen=True)
class ValidationSet:
    """One fixed upstream set the agnostic mixer is scored on: pool members, then synthetic separators."""

    name: str
    real: tuple[int, ...]
    synthetic: tuple[SyntheticUpstream, ...] = ()

    def layout(self, pool: Layout) -> Layout:
        return tuple(pool[i] for i in self.real) + tuple(s.stems for s in self.synthetic)


def validation_sets(pool: Layout, synthetic: float, seed: int, held: Layout = ()) -> list[ValidationSet]:
    """The pool; each member alone (when there are several); with synthetic training, two random
    synthetic separators and the pool beside a near-oracle one (so "strong separators are not
    harmed" is part of the choice); with `held` (valid-only upstreams, indexed after the pool)
    those together, each alone when there are several, and beside the pool. Fixed by `seed`:
    every epoch is scored on the same sets."""
    everything = tuple(range(len(pool)))
    sets = [ValidationSet("pool", everything)]
    if len(pool) > 1:
        sets += [ValidationSet(f"upstream{i}", (i,)) for i in everything]
    if held:
        unseen = tuple(range(len(pool), len(pool) + len(held)))
        sets.append(ValidationSet("held", unseen))
        if len(held) > 1:
            sets += [ValidationSet(f"held{j}", (i,)) for j, i in enumerate(unseen)]
        sets.append(ValidationSet("pool+held", everything + unseen))
    if synthetic > 0:
        generator = torch.Generator().manual_seed(seed + 104_729)
        sets.append(ValidationSet("synthetic", (), (random_synthetic(generator), random_synthetic(generator))))
        sets.append(ValidationSet("pool+near-oracle", everything, (SyntheticUpstream(STEMS, 0.95, seed + 1, kind="leak"),)))
    return sets


class SetSong:
    """A prepared validation song seen through one set: X = the mixture, the set's pool rows, then
    its synthetic separators' stems (made from the normalised references, seeded by position)."""

    def __init__(self, song: PreparedSong, chosen: ValidationSet, pool: Layout) -> None:
        self.song, self.chosen = song, chosen
        self.name, self.frames = song.name, song.frames
        first = [AUDIO_CHANNELS * (1 + sum(len(s) for s in pool[:i])) for i in range(len(pool))]
        self.spans = [(first[i], first[i] + AUDIO_CHANNELS * len(pool[i])) for i in chosen.real]

    def read_input(self, start: int, stop: int) -> Tensor:
        x = self.song.read_input(start, stop)
        rows = [x[:AUDIO_CHANNELS]] + [x[a:b] for a, b in self.spans]
        if self.chosen.synthetic:
            references = self.song.read_target(start, stop).view(len(STEMS), AUDIO_CHANNELS, -1)
            for upstream in self.chosen.synthetic:
                estimates = upstream.separate(references, torch.Generator().manual_seed(upstream.seed + start))
                rows += [estimates[stem] for stem in upstream.stems]
        return torch.cat(rows)

    def read_target(self, start: int, stop: int) -> Tensor:
        return self.song.read_target(start, stop)
