"""Band-split RoFormers ("roformer"): BS-RoFormer and Mel-Band RoFormer in the MSST layout.

The networks come from the `bs-roformer` package (lucidrains), pinned to 0.3.10: that
release builds exactly the modules Music-Source-Separation-Training (MSST) vendors, so an
MSST checkpoint loads with every key and shape matching and gives the same output
(checked against MSST's own classes on random weights: identical to the last bit).
Later releases add hyper-connections and value-residual layers and no longer load MSST
checkpoints. MSST options that 0.3.10 cannot express (`linear_transformer_depth` > 0,
`mlp_expansion_factor` other than 4, `skip_connection`, PoPE) are refused with a clear
message instead of being silently dropped. MSST's own code zeroes the output's DC bin
since 2025-09 (`zero_dc`); the models were trained without it and it is not applied here.

A model is an MSST YAML config (`model_type` given by the file or inferred from the keys
`freqs_per_bands` vs `num_bands`) plus weights: a `.ckpt`/`.pth` state dict read with
`torch.load(weights_only=True)` (never an unrestricted unpickle), or a `.safetensors`
file written by `save_roformer` with the config in its metadata (one file, one sha256).

Inference follows MSST's `demix`: chunks of `audio.chunk_size` samples every
`chunk_size / inference.num_overlap`, the song reflect-padded by the overlap at both
ends, each chunk weighted by a window with linear fades of chunk_size/10 (none at the
song's two ends) and the weighted sum divided by the summed weights. The stems are the
config's instruments (`target_instrument` alone when set); MSST's "other" of a
vocals/other model is the accompaniment, so it is not offered as the MUSDB "other".
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..atomic import atomic_path
from ..errors import UpstreamError
from ..stems import SAMPLE_RATE, STEMS
from .base import load_matching_state, safetensors_metadata

FORMAT = "mdxmix.roformer/1"
MODEL_TYPES = ("bs_roformer", "mel_band_roformer")
# MSST keys that change nothing at inference, or that only hold their default value.
_RUNTIME_KEYS = {"use_torch_checkpoint", "sage_attention"}
_DEFAULT_ONLY = {"linear_transformer_depth": 0, "mlp_expansion_factor": 4, "skip_connection": False, "use_pope": False,
                 "zero_dc": None}


class _MSSTLoader(yaml.SafeLoader):
    """SafeLoader that reads MSST's `!!python/tuple` tags as tuples and nothing else unsafe."""


_MSSTLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node)))


def read_msst_yaml(text: str) -> dict:
    """An MSST config document as plain dicts (tuples for `!!python/tuple`)."""
    data = yaml.load(text, Loader=_MSSTLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError("not an MSST config (no 'model' section)")
    return data


@dataclass(frozen=True)
class RoformerConfig:
    """What mdxmix needs from an MSST config: the network and its inference framing."""

    model_type: str
    model: dict
    instruments: tuple[str, ...]
    chunk_size: int = 352800
    num_overlap: int = 2
    sample_rate: int = SAMPLE_RATE
    normalize: bool = False
    batch_size: int = 1

    def __post_init__(self) -> None:
        # One spelling for sequences (YAML tuples, JSON lists), so configs compare equal after a round trip.
        object.__setattr__(self, "model", {k: list(v) if isinstance(v, tuple) else v for k, v in self.model.items()})
        object.__setattr__(self, "instruments", tuple(self.instruments))

    @classmethod
    def from_msst(cls, data: dict, model_type: str | None = None) -> "RoformerConfig":
        model = dict(data["model"])
        kind = model_type or data.get("model_type") or ("mel_band_roformer" if "num_bands" in model else "bs_roformer")
        if kind not in MODEL_TYPES:
            raise ValueError(f"model_type {kind!r} is not a RoFormer ({', '.join(MODEL_TYPES)})")
        training = data.get("training") or {}
        target = training.get("target_instrument")
        instruments = (target,) if target else tuple(training.get("instruments") or ())
        if not instruments:
            raise ValueError("the config names no instruments (training.instruments)")
        if len(instruments) != int(model.get("num_stems", 1)):
            raise ValueError(f"num_stems {model.get('num_stems', 1)} does not match instruments {list(instruments)}")
        audio, inference = data.get("audio") or {}, data.get("inference") or {}
        return cls(
            model_type=kind, model=model, instruments=tuple(str(i) for i in instruments),
            chunk_size=int(inference.get("chunk_size", audio.get("chunk_size", 352800))),
            num_overlap=int(inference.get("num_overlap", 2)), sample_rate=int(audio.get("sample_rate", SAMPLE_RATE)),
            normalize=bool(inference.get("normalize", False)), batch_size=max(1, int(inference.get("batch_size", 1))),
        )

    @property
    def stems(self) -> tuple[str, ...]:
        """The instruments that are MUSDB stems (MSST's "other" of a two-stem model is not)."""
        names = self.instruments
        if len(names) == 2 and "other" in names:
            names = tuple(n for n in names if n != "other")
        return tuple(s for s in STEMS if s in names)

    def to_json(self) -> str:
        return json.dumps({
            "model_type": self.model_type, "model": self.model, "instruments": list(self.instruments),
            "chunk_size": self.chunk_size, "num_overlap": self.num_overlap, "sample_rate": self.sample_rate,
            "normalize": self.normalize, "batch_size": self.batch_size,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RoformerConfig":
        data = json.loads(text)
        data["instruments"] = tuple(data["instruments"])
        return cls(**data)


def build_roformer(config: RoformerConfig) -> nn.Module:
    """The bs-roformer network a config describes, in eval mode (random weights)."""
    try:
        from bs_roformer import BSRoformer, MelBandRoformer
    except ImportError as exc:
        raise UpstreamError("the roformer family needs bs-roformer 0.3.10: pip install 'mdxmix[families]'") from exc
    kwargs = {k: v for k, v in config.model.items() if k not in _RUNTIME_KEYS}
    for key, default in _DEFAULT_ONLY.items():
        if key in kwargs:
            value = kwargs.pop(key)
            if default is not None and value != default:
                raise UpstreamError(f"RoFormer option {key}={value!r} is not supported (bs-roformer 0.3.10 builds {key}={default!r})")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    klass = BSRoformer if config.model_type == "bs_roformer" else MelBandRoformer
    if klass is MelBandRoformer:
        kwargs["match_input_audio_length"] = True
    # bs-roformer prints which attention kernel it picked to stdout (mdxmix may be writing audio there) and
    # probes the STFT size without a window (a torch warning about nothing the user can change).
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A window was not provided")
        try:
            model = klass(**kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise UpstreamError(f"RoFormer config does not build a {config.model_type} ({str(exc).splitlines()[0][:200]})") from exc
        except Exception as exc:  # noqa: BLE001 - beartype's violation types; all mean a wrong config value
            raise UpstreamError(f"RoFormer config does not build a {config.model_type} ({str(exc).splitlines()[0][:200]})") from exc
    return model.eval()


def _is_rotary(key: str) -> bool:
    # Rotary frequencies are fixed by dim_head; their storage changed across rotary-embedding-torch releases.
    return ".rotary_embed." in key


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a RoFormer checkpoint: safetensors, or a torch file read with weights_only=True."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError and friends: the file holds more than tensors
        raise UpstreamError(f"{path}: not a plain state dict (refused by torch.load(weights_only=True): "
                            f"{str(exc).splitlines()[0][:160]})") from exc
    for key in ("state", "state_dict", "model_state_dict", "model"):  # the wrappers MSST accepts
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UpstreamError(f"{path}: does not hold a state dict of tensors")
    return state


def load_weights(model: nn.Module, state: dict[str, Tensor], where: str) -> nn.Module:
    """Load `state` into `model`, all keys and shapes matching (rotary tables excepted)."""
    return load_matching_state(model, state, where, "model of this config", ignore=_is_rotary)


def load_roformer(weights: Path, config: RoformerConfig | None = None) -> tuple[nn.Module, RoformerConfig]:
    """A RoFormer from weights plus config: given, stored in the safetensors metadata, or WEIGHTS.yaml beside it."""
    weights = Path(weights)
    if config is None:
        config = _config_beside(weights)
    model = build_roformer(config)
    return load_weights(model, read_state_dict(weights), str(weights)), config


def _config_beside(weights: Path) -> RoformerConfig:
    if weights.suffix == ".safetensors":
        meta = safetensors_metadata(weights)
        if meta.get("format") != FORMAT:
            raise UpstreamError(f"{weights}: not a RoFormer file (format {meta.get('format')!r}, expected {FORMAT!r})")
        try:
            return RoformerConfig.from_json(meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"{weights}: bad RoFormer config in the metadata ({exc})") from exc
    yaml_path = weights.with_suffix(".yaml")
    if not yaml_path.is_file():
        raise UpstreamError(f"{weights}: a RoFormer checkpoint needs its MSST config beside it as {yaml_path.name}")
    try:
        return RoformerConfig.from_msst(read_msst_yaml(yaml_path.read_text()))
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise UpstreamError(f"{yaml_path}: not a usable MSST RoFormer config ({str(exc).splitlines()[0][:160]})") from exc


def save_roformer(model: nn.Module, config: RoformerConfig, path: str | Path) -> Path:
    """Write weights + config as one safetensors file (atomically), e.g. to convert a .ckpt once."""
    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not _is_rotary(k)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "config": config.to_json()})
    return path


def fade_window(size: int, fade: int, *, fade_in: bool = True, fade_out: bool = True) -> Tensor:
    """MSST's chunk window: linear 0→1 over `fade` samples, ones, linear 1→0 at the end."""
    w = torch.ones(size)
    if fade > 0:
        if fade_in:
            w[:fade] = torch.linspace(0.0, 1.0, fade)
        if fade_out:
            w[-fade:] = torch.linspace(1.0, 0.0, fade)
    return w


class RoformerUpstream:
    """A RoFormer run over a whole song the way MSST's `demix` does (see the module doc)."""

    def __init__(self, model: nn.Module, config: RoformerConfig, name: str, device: torch.device | str = "cpu", *,
                 batch_size: int | None = None) -> None:
        if config.sample_rate != SAMPLE_RATE:
            raise UpstreamError(f"{name}: runs at {config.sample_rate} Hz; mdxmix feeds {SAMPLE_RATE} Hz")
        if not config.model.get("stereo", False):
            raise UpstreamError(f"{name}: a mono RoFormer; mdxmix feeds stereo")
        if not config.stems:
            raise UpstreamError(f"{name}: separates {list(config.instruments)}, none of which is a MUSDB stem")
        self.model = model.to(device).eval()
        self.config, self.name, self.device = config, name, torch.device(device)
        self.batch_size = batch_size or config.batch_size  # MSST's inference.batch_size
        self.sample_rate = SAMPLE_RATE
        self.stems = config.stems

    def _run(self, batch: Tensor) -> Tensor:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*sdp_kernel\(\)` is deprecated", category=FutureWarning)
            out = self.model(batch.to(self.device)).float().cpu()
        return out if out.dim() == 4 else out[:, None]  # (B, instruments, 2, chunk)

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        cfg = self.config
        mix = mixture.float().cpu()
        mean = std = None
        if cfg.normalize:
            mono = mix.mean(0)
            mean, std = mono.mean(), mono.std().clamp_min(1e-8)
            mix = (mix - mean) / std
        chunk, n = cfg.chunk_size, mix.shape[-1]
        step = max(1, chunk // cfg.num_overlap)
        border = chunk - step
        padded = n > 2 * border and border > 0
        if padded:
            mix = nn.functional.pad(mix[None], (border, border), mode="reflect")[0]
        total = mix.shape[-1]
        starts = list(range(0, total, step))
        fade = chunk // 10 if border >= chunk // 10 else 0  # no overlap to fade across: flat windows
        result = torch.zeros(len(cfg.instruments), 2, total)
        weight = torch.zeros(total)
        for first in range(0, len(starts), self.batch_size):
            group = starts[first : first + self.batch_size]
            parts = []
            for s in group:
                part = mix[:, s : s + chunk]
                length = part.shape[-1]
                mode = "reflect" if length > chunk // 2 else "constant"
                parts.append(nn.functional.pad(part[None], (0, chunk - length), mode=mode)[0])
            est = self._run(torch.stack(parts))
            for j, s in enumerate(group):
                length = min(chunk, total - s)
                w = fade_window(chunk, fade, fade_in=s > 0, fade_out=s + step < total)[:length]
                result[..., s : s + length] += est[j, ..., :length] * w
                weight[s : s + length] += w
        out = result / weight
        if padded:
            out = out[..., border:-border]
        if std is not None:
            out = out * std + mean
        return {stem: out[cfg.instruments.index(stem)] for stem in self.stems}


def roformer_from_catalog(settings: dict) -> RoformerConfig:
    """The config of a catalogued model (its MSST config values are kept in the catalog)."""
    return RoformerConfig.from_msst(copy.deepcopy(settings["config"]), settings.get("model_type"))


__all__ = [
    "FORMAT", "RoformerConfig", "RoformerUpstream", "build_roformer", "fade_window", "load_roformer", "load_weights",
    "read_msst_yaml", "read_state_dict", "roformer_from_catalog", "save_roformer",
]
