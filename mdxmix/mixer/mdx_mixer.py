"""MDX-Mixer (Nakano & Goto 2024, §3.2): time-varying mixing weights from an MLP-Mixer.

How the paper is read here
--------------------------
* A segment X_k has T samples and 2+C channels (the stereo mixture, then the C upstream
  channels). Folding by F splits the T samples into F contiguous pieces of T/F samples
  and stacks the pieces along the channel axis: channel c of piece f becomes feature
  ``c * F + f`` of every token, and token ``t`` holds sample ``f * T/F + t`` of each piece.
  Z_k therefore has T/F tokens of (2+C)·F features.
* Each Mixer layer is pre-norm, as in MLP-Mixer: LayerNorm → token-mixing MLP along the
  T/F axis → skip; LayerNorm → channel-mixing MLP along the (2+C)·F axis → skip.
  Each MLP is FC → GELU → dropout → FC with hidden sizes D_T and D_C.
* Global average pooling averages over the T/F tokens (the MLP-Mixer head), leaving
  (2+C)·F features; a final LayerNorm (as in MLP-Mixer) and one FC give the (2+C)·8
  entries of W_k.
* The output is Y_k = X_k W_k: every output channel is a weighted sum of the input
  channels over the whole segment, so weights may be negative and no mask is involved.

The head's weight starts at zero, so a fresh MDX-Mixer behaves exactly like a
time-invariant 1×1 convolution (its bias) and learns the time variation on top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..stems import OUTPUT_CHANNELS

#: The named sizes, the one table of them. `paper` is §4.2 (T=2^18, F=2^7, N=8, p=0,
#: D_T=T/F, D_C=(2+C)F: 172,536,992 parameters for 2+C=20). `small` is CPU-sized
#: (T=2^16, 1.5 s). `tiny` is the bundled default's size (T=2^15, 0.74 s): about
#: 1 GFLOP per segment for 2+C=20, so a 3-minute song's mixer stage takes well under a
#: minute on two CPU cores, leaving the rest of a real-time budget to the upstreams.
PRESETS: dict[str, dict] = {
    "tiny": dict(segment=2**15, folds=2**5, layers=2, dropout=0.0, token_hidden=64, channel_hidden=128),
    "small": dict(segment=2**16, folds=2**6, layers=4, dropout=0.0, token_hidden=256, channel_hidden=256),
    "paper": dict(segment=2**18, folds=2**7, layers=8, dropout=0.0),
}


def describe_preset(name: str) -> str:
    """'T=2^15, F=2^5, N=2, D_T=64, D_C=128' for help texts (D_T/D_C default to T/F and (2+C)F)."""
    p = PRESETS[name]
    d_t = p.get("token_hidden") or "T/F"
    d_c = p.get("channel_hidden") or "(2+C)F"
    return (f"T=2^{p['segment'].bit_length() - 1}, F=2^{p['folds'].bit_length() - 1}, N={p['layers']}, "
            f"D_T={d_t}, D_C={d_c}")


@dataclass(frozen=True)
class MDXMixerConfig:
    """Every hyper-parameter of the paper's estimator; D_T/D_C default to the paper's sizes."""

    in_channels: int  # 2 + C
    segment: int = 2**18  # T
    folds: int = 2**7  # F
    layers: int = 8  # N
    dropout: float = 0.0  # p
    token_hidden: int | None = None  # D_T, default T/F
    channel_hidden: int | None = None  # D_C, default (2+C)F
    out_channels: int = OUTPUT_CHANNELS

    def __post_init__(self) -> None:
        if self.in_channels < 2:
            raise ValueError("in_channels must be at least 2 (one stereo signal)")
        if self.folds < 1 or self.segment % self.folds:
            raise ValueError(f"segment T={self.segment} must be divisible by folds F={self.folds}")
        if self.segment % 4:
            raise ValueError("segment T must be divisible by 4 (inference hop is T/4)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.layers < 0:
            raise ValueError("layers must be >= 0")

    @property
    def tokens(self) -> int:
        return self.segment // self.folds

    @property
    def features(self) -> int:
        return self.in_channels * self.folds

    @property
    def d_token(self) -> int:
        return self.token_hidden or self.tokens

    @property
    def d_channel(self) -> int:
        return self.channel_hidden or self.features

    @classmethod
    def preset(cls, name: str, in_channels: int, **overrides) -> "MDXMixerConfig":
        """A named size from `PRESETS`, with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; use {', '.join(PRESETS)}")
        return cls(in_channels=in_channels, **{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


class Mlp(nn.Module):
    """FC → GELU → dropout → FC over the last axis: the channel MLP, and the token MLP's parameters."""

    def __init__(self, features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class TokenMixingMlp(Mlp):
    """The MLP over the token axis of (B, T/F, features), computed as W·z rather than (zᵀ·Wᵀ)ᵀ.

    Same parameters (and parameter names) as `Mlp` over the transposed tokens and the same
    result to float rounding, but both products act on the tokens of z's own layout: nothing is
    transposed, so neither z nor the output is copied into another layout, and the block's
    residual add runs on contiguous memory. On this project's 2-core CPU, a batch of 4 segments
    of 20 channels took 92 → 73 ms (`tiny`) and 667 → 537 ms (`small`) on one thread, 48 → 44 ms
    and 340 → 262 ms on two.
    """

    def forward(self, z: Tensor) -> Tensor:
        batch = z.shape[0]
        hidden = torch.baddbmm(self.fc1.bias[:, None], self.fc1.weight.expand(batch, -1, -1), z)
        hidden = self.drop(self.act(hidden))
        return torch.baddbmm(self.fc2.bias[:, None], self.fc2.weight.expand(batch, -1, -1), hidden)


class MixerBlock(nn.Module):
    """One MLP-Mixer layer over tokens (B, T/F, (2+C)F)."""

    def __init__(self, tokens: int, features: int, d_token: int, d_channel: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(features)
        self.mlp_tokens = TokenMixingMlp(tokens, d_token, dropout)
        self.norm2 = nn.LayerNorm(features)
        self.mlp_channels = Mlp(features, d_channel, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.mlp_tokens(self.norm1(x))
        return x + self.mlp_channels(self.norm2(x))


def fold(x: Tensor, folds: int) -> Tensor:
    """(B, Cin, T) → (B, T/F, Cin·F): F contiguous pieces of T/F samples stacked as features.

    The result is laid out token-major in memory: the permuted view has the features' stride
    1 along time, and every LayerNorm and channel MLP over it would copy it first (the `tiny`
    mixer's weight estimation took 1.3–1.6× as long on a CPU)."""
    batch, channels, length = x.shape
    pieces = x.reshape(batch, channels, folds, length // folds)  # piece f = samples [f·T/F, (f+1)·T/F)
    return pieces.permute(0, 3, 1, 2).reshape(batch, length // folds, channels * folds).contiguous()


def apply_weights(x: Tensor, weights: Tensor) -> Tensor:
    """Y_k = X_k W_k for a batch: (B, Cin, T) and (B, Cin, Cout) → (B, Cout, T), always in float32.

    The product runs outside any autocast region: in bfloat16 it would cost about 50 dB
    of precision on the output (the weights may be estimated in low precision, the mix not),
    in training and at inference alike.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.bmm(weights.float().transpose(1, 2), x.float())  # one batched GEMM, no layout copies


class MDXMixer(nn.Module):
    """Estimates W_k ∈ R^{(2+C)×8} for each segment and returns (Y_k, W_k)."""

    kind = "mdx_mixer"

    def __init__(self, config: MDXMixerConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.Sequential(
            *[
                MixerBlock(config.tokens, config.features, config.d_token, config.d_channel, config.dropout)
                for _ in range(config.layers)
            ]
        )
        self.norm = nn.LayerNorm(config.features)
        self.head = nn.Linear(config.features, config.in_channels * config.out_channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def segment(self) -> int:
        return self.config.segment

    def estimate_weights(self, x: Tensor) -> Tensor:
        """(B, Cin, T) normalised segments → W (B, Cin, Cout)."""
        cfg = self.config
        if x.dim() != 3 or x.shape[1] != cfg.in_channels or x.shape[2] != cfg.segment:
            raise ValueError(f"expected (batch, {cfg.in_channels}, {cfg.segment}), got {tuple(x.shape)}")
        z = self.blocks(fold(x, cfg.folds))
        pooled = self.norm(z).mean(dim=1)
        return self.head(pooled).view(-1, cfg.in_channels, cfg.out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.estimate_weights(x)
        return apply_weights(x, weights), weights

    def set_time_invariant_weights(self, weights: Tensor) -> None:
        """Make the mixer output X·W for every segment: the head's bias is W (its weight starts at zero)."""
        with torch.no_grad():
            self.head.bias.copy_(weights.flatten())
