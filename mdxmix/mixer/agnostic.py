"""An MDX-Mixer that takes any upstreams: weights shared across upstreams, any number, any order.

Why: a checkpoint of the paper's MDX-Mixer only works with the exact upstreams (and channel
order) it was trained with. This mixer keeps the paper's output, Y_k = X_k W_k with a W_k
per segment and the mixture always in X, but estimates W_k with weights that do not depend
on which upstream sits where, so stems of separators it has never seen can be mixed.

The input is the same X as for `MDXMixer` (mixture L/R, then each upstream's stems L/R, in
the order of `layout`); `layout` says which stems each upstream contributes. Per segment:

1. **Shared encoder, one pass per upstream.** Upstream u's channels [mixture | u's stems]
   are folded as in MDX-Mixer (F contiguous pieces of T/F samples; every token holds F
   samples of each channel). Each channel's F values go through a linear map chosen by its
   *stem slot* (mixture.L/R, drums.L/R, bass.L/R, other.L/R, vocals.L/R), plus a learned
   embedding of that slot, and the results are summed into one d-wide token. An absent stem
   contributes nothing (no zero channel is invented), so a vocals-only upstream costs less
   than a four-stem one. The same MLP-Mixer blocks as in MDX-Mixer (token mixing over T/F,
   channel mixing over d) then run on every upstream; average pooling gives a summary s_u.
2. **Exchange across the set.** One pre-norm self-attention layer and one MLP over the
   summaries {s_u}, without positions, so the result is permutation-equivariant.
3. **Heads.** A per-upstream head reads u's updated summary and emits, for each of u's
   stems, a gate logit and a free 2x8 block of rows of W_k; a head on the mean of the set
   emits a free 2x8 block for the mixture's rows. W_k is then

   * a *convex part*: for each stem, the upstreams that give it are weighted by a softmax of
     their gate logits (left channel to left, right to right); a stem that no upstream gives
     is the mixture minus the convex estimates of the stems that are given, split evenly
     between the missing stems;
   * plus the free blocks (which can subtract leakage, use the mixture, and so on).

Initialisation: every head starts at zero, so a fresh mixer is exactly the time-invariant
"average of the upstreams per stem" (and mixture minus those averages, split evenly, for
stems no upstream gives) for *any* set of upstreams.

Permuting the upstreams (their channel blocks in X together with `layout`) permutes the rows
of W_k the same way and leaves Y_k unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..stems import AUDIO_CHANNELS, OUTPUT_CHANNELS, STEMS
from .mdx_mixer import MixerBlock, Mlp, apply_weights

Layout = tuple[tuple[str, ...], ...]
"""Which stems each upstream contributes to X, in X's channel order."""

SLOTS: tuple[str, ...] = ("mixture",) + STEMS  # a slot per stem, the mixture first

AGNOSTIC_PRESETS: dict[str, dict] = {
    # Sized so that for any layout of one to four upstreams it does fewer multiply-adds per
    # segment than the tiny MDX-Mixer over the same layout (tests/test_agnostic.py, bench/agnostic_cost.py).
    "tiny": dict(segment=2**15, folds=2**6, layers=2, width=96, token_hidden=64, channel_hidden=128),
    "small": dict(segment=2**16, folds=2**7, layers=4, width=192, token_hidden=256, channel_hidden=256),
}


@dataclass(frozen=True)
class AgnosticConfig:
    """Sizes of the upstream-agnostic estimator (defaults: the `tiny` preset)."""

    segment: int = 2**15  # T
    folds: int = 2**6  # F
    layers: int = 2  # N shared Mixer blocks, run once per upstream
    width: int = 96  # d, features of every token after the slot projection
    token_hidden: int = 64  # D_T
    channel_hidden: int = 128  # D_C
    heads: int = 4  # attention heads of the exchange across upstreams
    dropout: float = 0.0
    out_channels: int = OUTPUT_CHANNELS

    def __post_init__(self) -> None:
        if self.folds < 1 or self.segment % self.folds:
            raise ValueError(f"segment T={self.segment} must be divisible by folds F={self.folds}")
        if self.segment % 4:
            raise ValueError("segment T must be divisible by 4 (inference hop is T/4)")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.layers < 0:
            raise ValueError("layers must be >= 0")
        if self.out_channels != OUTPUT_CHANNELS:
            raise ValueError(f"out_channels must be {OUTPUT_CHANNELS} (four stereo stems)")

    @property
    def tokens(self) -> int:
        return self.segment // self.folds

    @classmethod
    def preset(cls, name: str, **overrides) -> "AgnosticConfig":
        """A named size from `AGNOSTIC_PRESETS`, with any field overridden."""
        if name not in AGNOSTIC_PRESETS:
            raise ValueError(f"unknown preset {name!r} for the agnostic mixer; use {', '.join(AGNOSTIC_PRESETS)}")
        return cls(**{**AGNOSTIC_PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


def check_layout(layout: Layout) -> Layout:
    """A layout as a tuple of tuples, refused when a stem is unknown or repeated within an upstream."""
    layout = tuple(tuple(stems) for stems in layout)
    for index, stems in enumerate(layout):
        unknown = [s for s in stems if s not in STEMS]
        if unknown or not stems or len(set(stems)) != len(stems):
            raise ValueError(f"upstream {index}: stems must be distinct names from {', '.join(STEMS)}, got {list(stems)}")
    return layout


def layout_channels(layout: Layout) -> int:
    """2 + C: the number of channels of X for this layout."""
    return AUDIO_CHANNELS * (1 + sum(len(stems) for stems in layout))


class SlotEncoder(nn.Module):
    """[mixture | stems of one upstream], folded → (B, T/F, d): a linear map per stem slot, summed."""

    def __init__(self, folds: int, width: int) -> None:
        super().__init__()
        self.folds = folds
        slot_channels = len(SLOTS) * AUDIO_CHANNELS
        self.weight = nn.Parameter(torch.randn(slot_channels, folds, width) / (AUDIO_CHANNELS * 2 * folds) ** 0.5)
        self.embedding = nn.Parameter(torch.zeros(slot_channels, width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor, slots: Tensor) -> Tensor:
        """x (B, n, T) holds the channels whose slot indices are `slots` (n,)."""
        batch, channels, length = x.shape
        pieces = x.reshape(batch, channels, self.folds, length // self.folds).permute(0, 3, 1, 2)  # (B, T/F, n, F)
        tokens = torch.einsum("btcf,cfd->btd", pieces, self.weight[slots])
        return tokens + self.embedding[slots].sum(dim=0) + self.bias


class SetExchange(nn.Module):
    """Pre-norm self-attention and MLP over the set of upstream summaries (no positions)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, 2 * width, dropout)

    def forward(self, summaries: Tensor) -> Tensor:
        """(B, U, d) → (B, U, d)."""
        h = self.norm1(summaries)
        summaries = summaries + self.attention(h, h, h, need_weights=False)[0]
        return summaries + self.mlp(self.norm2(summaries))


class AgnosticMixer(nn.Module):
    """Estimates W_k for X = [mixture | stems of any upstreams]; see the module docstring."""

    kind = "agnostic"

    def __init__(self, config: AgnosticConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SlotEncoder(config.folds, config.width)
        self.blocks = nn.Sequential(
            *[
                MixerBlock(config.tokens, config.width, config.token_hidden, config.channel_hidden, config.dropout)
                for _ in range(config.layers)
            ]
        )
        self.norm = nn.LayerNorm(config.width)
        self.exchange = SetExchange(config.width, config.heads, config.dropout)
        self.norm_out = nn.LayerNorm(config.width)
        stems = len(STEMS)
        # per upstream: a gate logit per stem slot, and a free (2 x 8) block of rows per stem slot
        self.upstream_head = nn.Linear(config.width, stems + stems * AUDIO_CHANNELS * config.out_channels)
        self.mixture_head = nn.Linear(config.width, AUDIO_CHANNELS * config.out_channels)
        for head in (self.upstream_head, self.mixture_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def segment(self) -> int:
        return self.config.segment

    def bind(self, layout: Layout) -> "BoundAgnosticMixer":
        """This mixer for one fixed layout, with the `segment`/`estimate_weights(x)` interface the engine uses."""
        return BoundAgnosticMixer(self, layout)

    def summaries(self, x: Tensor, layout: Layout) -> Tensor:
        """(B, 2+C, T) → (B, U, d): one pooled encoding per upstream, before the exchange."""
        cfg = self.config
        mixture = x[:, :AUDIO_CHANNELS]
        encoded = []
        row = AUDIO_CHANNELS
        for stems in layout:
            width = AUDIO_CHANNELS * len(stems)
            channels = torch.cat([mixture, x[:, row : row + width]], dim=1)
            encoded.append(self.encoder(channels, _slot_indices(stems, x.device)))
            row += width
        batch = x.shape[0]
        tokens = torch.cat(encoded, dim=0)  # (U·B, T/F, d): every upstream through the same blocks at once
        pooled = self.norm(self.blocks(tokens)).mean(dim=1)
        return pooled.view(len(layout), batch, cfg.width).transpose(0, 1)

    def estimate_weights(self, x: Tensor, layout: Layout) -> Tensor:
        """(B, 2+C, T) normalised segments and their layout → W (B, 2+C, 8)."""
        convex, free = self.weight_parts(x, layout)
        return convex + free

    def weight_parts(self, x: Tensor, layout: Layout) -> tuple[Tensor, Tensor]:
        """W's two parts, each (B, 2+C, 8): the gated per-stem average and the free rows added to it.

        Kept apart so that training can penalise the free rows alone (`--anchor`): the gates only
        choose among the upstreams' own estimates, which carries over to separators never seen,
        while the free rows learn corrections (leakage to subtract) that belong to the families
        they were learnt on.
        """
        cfg = self.config
        layout = check_layout(layout)
        if not layout:
            raise ValueError("the agnostic mixer needs at least one upstream")
        expected = layout_channels(layout)
        if x.dim() != 3 or x.shape[1] != expected or x.shape[2] != cfg.segment:
            raise ValueError(f"expected (batch, {expected}, {cfg.segment}) for this layout, got {tuple(x.shape)}")
        summaries = self.norm_out(self.exchange(self.summaries(x, layout)))  # (B, U, d)
        stems, out = len(STEMS), cfg.out_channels
        per_upstream = _head(self.upstream_head, summaries)  # (B, U, 4 + 4·2·8)
        gates = per_upstream[..., :stems]
        blocks = per_upstream[..., stems:].reshape(*per_upstream.shape[:2], stems, AUDIO_CHANNELS, out)
        mixture_rows = _head(self.mixture_head, summaries.mean(dim=1)).view(-1, AUDIO_CHANNELS, out)
        return convex_weights(gates, layout), _free_weights(mixture_rows, blocks, layout)

    def forward(self, x: Tensor, layout: Layout) -> tuple[Tensor, Tensor]:
        weights = self.estimate_weights(x, layout)
        return apply_weights(x, weights), weights


class BoundAgnosticMixer(nn.Module):
    """An `AgnosticMixer` fixed to one layout, so the engine and pipeline treat it like any mixer."""

    def __init__(self, mixer: AgnosticMixer, layout: Layout) -> None:
        super().__init__()
        self.mixer = mixer
        self.layout = check_layout(layout)
        self.kind = mixer.kind
        self.config = mixer.config

    @property
    def segment(self) -> int:
        return self.mixer.segment

    def estimate_weights(self, x: Tensor) -> Tensor:
        return self.mixer.estimate_weights(x, self.layout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mixer(x, self.layout)


def _head(head: nn.Linear, features: Tensor) -> Tensor:
    """A head's output with the feature term divided by the width: bias + (features · weightᵀ) / d.

    Why: the features are LayerNorm'd (entries of size 1), so under Adam, whose every step moves
    each weight by about the learning rate, an unscaled head moves each entry of W_k by up to
    d·lr per step (96× the step of a 1×1 conv at the same rate). Those steps were far too large:
    validation got worse than the average start within the first steps and never recovered.
    Divided by d, the time-varying part moves W_k by about lr per step, like the bias.
    """
    return nn.functional.linear(features, head.weight) / features.shape[-1] + head.bias


def _slot_indices(stems: tuple[str, ...], device: torch.device) -> Tensor:
    """Slot rows of [mixture L/R | stems L/R] in the encoder's per-slot tables."""
    slots = [0, 1]
    for stem in stems:
        base = AUDIO_CHANNELS * SLOTS.index(stem)
        slots += [base, base + 1]
    return torch.tensor(slots, device=device)


def convex_weights(gates: Tensor, layout: Layout) -> Tensor:
    """The convex part of W (B, 2+C, 8) from gate logits (B, U, 4): see the module docstring."""
    batch = gates.shape[0]
    weights = gates.new_zeros(batch, layout_channels(layout), OUTPUT_CHANNELS)
    given = [stem for stem in STEMS if any(stem in stems for stems in layout)]
    missing = [stem for stem in STEMS if stem not in given]
    for stem in given:
        k = STEMS.index(stem)
        holders = [(u, _row(layout, u, stem)) for u, stems in enumerate(layout) if stem in stems]
        share = torch.softmax(torch.stack([gates[:, u, k] for u, _ in holders], dim=1), dim=1)  # (B, holders)
        for j, (_, row) in enumerate(holders):
            for c in range(AUDIO_CHANNELS):
                weights[:, row + c, AUDIO_CHANNELS * k + c] = share[:, j]
                for m in missing:  # a missing stem is the rest of the mixture, split evenly
                    weights[:, row + c, AUDIO_CHANNELS * STEMS.index(m) + c] = -share[:, j] / len(missing)
    for m in missing:
        for c in range(AUDIO_CHANNELS):
            weights[:, c, AUDIO_CHANNELS * STEMS.index(m) + c] = 1.0 / len(missing)
    return weights


def _free_weights(mixture_rows: Tensor, blocks: Tensor, layout: Layout) -> Tensor:
    """Stack the mixture's rows and each upstream's rows for its own stems, in X's order."""
    rows = [mixture_rows]
    for u, stems in enumerate(layout):
        rows += [blocks[:, u, STEMS.index(stem)] for stem in stems]
    return torch.cat(rows, dim=1)


def _row(layout: Layout, upstream: int, stem: str) -> int:
    row = AUDIO_CHANNELS * (1 + sum(len(stems) for stems in layout[:upstream]))
    return row + AUDIO_CHANNELS * layout[upstream].index(stem)


def average_weights(layout: Layout) -> Tensor:
    """The W a fresh `AgnosticMixer` gives for `layout` (2+C, 8): per-stem averages, rest of the mixture."""
    return convex_weights(torch.zeros(1, len(layout), len(STEMS)), check_layout(layout))[0]
