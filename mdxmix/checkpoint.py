"""Mixer checkpoints: safetensors weights plus one JSON document of metadata.

The metadata says everything needed to use the weights correctly: the mixer kind and
config, the upstream models with the stems each contributes and the resulting channel
order of X, the sample rate, and where the weights came from. Loading checks all of it
and refuses a mismatch with a one-line reason. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_path
from .errors import CheckpointError, first_line
from .mixer import MIXER_KINDS, AgnosticMixer, Mixer, build_mixer
from .stems import SAMPLE_RATE, STEMS
from .upstream.base import Upstream, UpstreamSpec, channel_names, check_provides
from .weightfiles import verify_sha256

FORMAT_VERSION = 1
METADATA_KEY = "mdxmix"


@dataclass
class CheckpointMeta:
    """The JSON half of a checkpoint."""

    mixer_kind: str
    mixer_config: dict
    upstreams: list[UpstreamSpec]
    sample_rate: int = SAMPLE_RATE
    stems: tuple[str, ...] = STEMS
    provenance: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    mixture: bool = True  # the mixture is X's first two channels; False is the paper's Table 6 condition

    @property
    def any_upstreams(self) -> bool:
        """True for a mixer that takes any set of upstreams (then `upstreams` is only its default set)."""
        return self.mixer_kind == AgnosticMixer.kind

    @property
    def channels(self) -> list[str]:
        return channel_names(self.upstreams, self.mixture)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "mixer": {"kind": self.mixer_kind, "config": self.mixer_config},
                "upstreams": [u.to_dict() for u in self.upstreams],
                "channels": self.channels,
                "mixture": self.mixture,
                "stems": list(self.stems),
                "sample_rate": self.sample_rate,
                "provenance": self.provenance,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, where: str = "checkpoint") -> "CheckpointMeta":
        try:
            data = json.loads(text)
            version = data["format_version"]
            if version != FORMAT_VERSION:
                raise CheckpointError(f"{where}: format version {version} is not supported (this mdxmix reads {FORMAT_VERSION})")
            meta = cls(
                mixer_kind=data["mixer"]["kind"],
                mixer_config=dict(data["mixer"]["config"]),
                upstreams=[UpstreamSpec.from_dict(u) for u in data["upstreams"]],
                sample_rate=int(data["sample_rate"]),
                stems=tuple(data["stems"]),
                provenance=dict(data.get("provenance", {})),
                format_version=version,
                mixture=bool(data.get("mixture", True)),  # files written before the option mixed the mixture
            )
            stored_channels = list(data["channels"])
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: malformed mdxmix metadata ({exc})") from exc
        if stored_channels != meta.channels:
            raise CheckpointError(f"{where}: channel order in the metadata does not match its upstream list")
        meta.validate(where)
        return meta

    def validate(self, where: str = "checkpoint") -> None:
        """The consistency rules every checkpoint obeys."""
        if self.mixer_kind not in MIXER_KINDS:
            raise CheckpointError(f"{where}: unknown mixer kind {self.mixer_kind!r}")
        if tuple(self.stems) != STEMS:
            raise CheckpointError(f"{where}: outputs {list(self.stems)}, mdxmix expects {list(STEMS)}")
        if self.sample_rate != SAMPLE_RATE:
            raise CheckpointError(f"{where}: trained at {self.sample_rate} Hz, mdxmix runs at {SAMPLE_RATE} Hz")
        if not self.mixture and not self.upstreams:
            raise CheckpointError(f"{where}: a mixer without the mixture needs at least one upstream")
        expected = len(self.channels)
        if not self.any_upstreams and self.mixer_config.get("in_channels") != expected:
            raise CheckpointError(
                f"{where}: mixer takes {self.mixer_config.get('in_channels')} channels but its upstreams give {expected}"
            )
        ids = [u.id for u in self.upstreams]
        if len(set(ids)) != len(ids):
            raise CheckpointError(f"{where}: an upstream is listed twice")


def save_checkpoint(path: str | Path, mixer: Mixer, meta: CheckpointMeta, *, half: bool = False) -> Path:
    """Write weights and metadata; `half` stores float16 (loaded back as float32)."""
    meta.mixer_kind = mixer.kind
    meta.mixer_config = mixer.config.to_dict()
    meta.validate(str(path))
    state = {k: (v.half() if half else v).detach().cpu().contiguous() for k, v in mixer.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    return path


def read_meta(path: str | Path) -> CheckpointMeta:
    """Only the metadata, without building the model (for `mdxmix models`)."""
    path = Path(path)
    metadata, _ = _open(path, tensors=False)
    return CheckpointMeta.from_json(metadata[METADATA_KEY], str(path))


def load_checkpoint(path: str | Path, *, sha256: str | None = None) -> tuple[Mixer, CheckpointMeta]:
    """Load and check a checkpoint; with `sha256`, refuse a file whose content differs."""
    path = Path(path)
    if sha256 is not None:
        verify_sha256(path, sha256)
    metadata, tensors = _open(path, tensors=True)
    meta = CheckpointMeta.from_json(metadata[METADATA_KEY], str(path))
    try:
        mixer = build_mixer(meta.mixer_kind, meta.mixer_config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid mixer config ({exc})") from exc
    expected = mixer.state_dict()
    if set(expected) != set(tensors):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise CheckpointError(f"{path}: weights do not match the {meta.mixer_kind} config (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(tensor.shape)}, config needs {tuple(expected[name].shape)}")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} contains NaN or infinity")
    mixer.load_state_dict({k: v.float() for k, v in tensors.items()})
    mixer.eval()
    return mixer, meta


def check_upstreams(meta: CheckpointMeta, upstreams: list[Upstream], where: str = "checkpoint") -> None:
    """The one compatibility rule: exactly the checkpoint's upstreams, in its order, each giving its stems."""
    want = [u.id for u in meta.upstreams]
    have = [u.name for u in upstreams]
    if want != have:
        raise CheckpointError(f"{where} was trained with upstreams {want} but was given {have}")
    for spec, upstream in zip(meta.upstreams, upstreams):
        check_provides(spec, upstream)


def _open(path: Path, *, tensors: bool) -> tuple[dict, dict]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            data = {k: handle.get_tensor(k) for k in handle.keys()} if tensors else {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({first_line(exc)})") from exc
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file without mdxmix metadata (not an mdxmix checkpoint)")
    return metadata, data


def count_parameters(mixer: torch.nn.Module) -> int:
    return sum(math.prod(p.shape) for p in mixer.parameters())
