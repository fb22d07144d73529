"""What `mdxmix train` takes and what it reports; the only place its defaults live."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import UserError
from ..mixer import PRESETS, AgnosticMixer, Conv1x1Mixer, MDXMixer
from ..mixer.agnostic import AGNOSTIC_PRESETS

KINDS = (MDXMixer.kind, Conv1x1Mixer.kind, AgnosticMixer.kind)
INITS = ("average", "zero")
VAL_HOPS = ("segment", "quarter")


@dataclass
class TrainConfig:
    """Everything `mdxmix train` takes, with the only copy of its defaults (the paper's where it has one)."""

    data: Path
    out: Path
    upstreams: list[str]
    kind: str = MDXMixer.kind
    preset: str = "small"
    segment: int | None = None
    folds: int | None = None
    layers: int | None = None
    dropout: float | None = None
    token_hidden: int | None = None
    channel_hidden: int | None = None
    mixture: bool = True  # the mixture in X; False is the paper's Table 6 condition
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
    jobs: int | None = None  # songs whose upstream stems are computed at once (None: 2 with 2+ cores)
    resume: bool = False
    init: str = "average"
    upstream_trained_on: list[str] = field(default_factory=list)
    val_hop: str = "segment"
    half: bool = False
    json_log: bool = False
    progress: bool = True
    synthetic: float = 0.5  # agnostic kind: chance that a member of an example's upstream set is synthetic
    max_upstreams: int = 4  # agnostic kind: each example mixes 1..max_upstreams upstreams
    # agnostic kind: L2 penalty on the free rows of W; 0.2 chosen on the held-out family's valid
    # songs over 0 and 1 (recipes/agnostic/README.md, third run); 0 is how the first models trained
    anchor: float = 0.2
    # agnostic kind: upstreams mixed only in validation, never in training, so that the best
    # epoch is chosen partly on separators the mixer has not learnt (a held-out family)
    valid_upstreams: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for option, value, allowed in (("--kind", self.kind, KINDS), ("--preset", self.preset, tuple(PRESETS)),
                                       ("--init", self.init, INITS), ("--val-hop", self.val_hop, VAL_HOPS)):
            if value not in allowed:
                raise UserError(f"{option} {value!r}: use {' or '.join(allowed)}")
        if not self.mixture and not self.upstreams:
            raise UserError("--no-mixture needs at least one --upstream (X would be empty)")
        if self.kind == AgnosticMixer.kind:
            self._check_agnostic()
        elif self.valid_upstreams:
            raise UserError("--valid-upstream is for --kind agnostic (another mixer takes only the upstreams it trains on)")

    def _check_agnostic(self) -> None:
        if self.preset not in AGNOSTIC_PRESETS:
            raise UserError(f"--preset {self.preset!r}: the agnostic mixer comes in {' or '.join(AGNOSTIC_PRESETS)}")
        if not self.upstreams:
            raise UserError("--kind agnostic needs at least one real --upstream (validation mixes them)")
        if not self.mixture:
            raise UserError("--kind agnostic always mixes the mixture; drop --no-mixture")
        if self.init != "average":
            raise UserError("--kind agnostic always starts as the per-stem average of its upstreams; drop --init")
        if not 0.0 <= self.synthetic <= 1.0 or not 1 <= self.max_upstreams <= 8:
            raise UserError("--synthetic must be in [0, 1] and --max-upstreams in 1..8")
        if not 0.0 <= self.anchor < float("inf"):
            raise UserError("--anchor must be 0 or more")

    @classmethod
    def default(cls, name: str):
        """The default of one field, for the command line's options."""
        return next(f.default for f in fields(cls) if f.name == name)


@dataclass
class TrainSummary:
    """What a finished run reports; `main` is False on every torchrun process but rank 0."""

    main: bool
    best: str
    best_epoch: int | None
    best_loss: float | None
    initial_valid_loss: float | None
    epochs: int
    upstream_loads: int
    history: list[dict]
    config: dict

    def report(self) -> dict:
        """The JSON summary line of `mdxmix train --json` (no history: that went out epoch by epoch)."""
        return {k: v for k, v in asdict(self).items() if k not in ("history", "main")}
