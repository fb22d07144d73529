"""What an upstream separator is to mdxmix, and how a checkpoint names one.

An upstream is anything that turns a stereo 44.1 kHz mixture into some of the four
stems: a model run now, or stems an earlier run left in a cache. The engine only sees
the channels they add to X, in the order the checkpoint lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from ..errors import UpstreamError
from ..stems import SAMPLE_RATE, STEMS


@dataclass(frozen=True)
class UpstreamSpec:
    """How a checkpoint names one upstream and which of its stems it feeds the mixer.

    `family` picks the adapter; `model` is a pretrained name (family "demucs") or a
    weights file name (family "demucs-file", looked up like checkpoint files); `sha256`
    pins a file's content; `hub` says where to download the file when it is not local.
    """

    family: str
    model: str
    stems: tuple[str, ...]
    sha256: str | None = None
    hub: dict | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        unknown = [s for s in self.stems if s not in STEMS]
        if unknown or not self.stems or len(set(self.stems)) != len(self.stems):
            raise ValueError(f"upstream {self.model}: stems must be distinct names from {', '.join(STEMS)}, got {list(self.stems)}")

    @property
    def id(self) -> str:
        """A stable identity: family, model and (for files) the start of the content hash."""
        suffix = f"@{self.sha256[:12]}" if self.sha256 else ""
        return f"{self.family}:{self.model}{suffix}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stems"] = list(self.stems)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "UpstreamSpec":
        allowed = {"family", "model", "stems", "sha256", "hub"}
        extra = set(data) - allowed
        if extra:
            raise ValueError(f"unknown upstream fields {sorted(extra)}")
        return cls(**data)


def channel_names(specs: list[UpstreamSpec], mixture: bool = True) -> list[str]:
    """Names of the input channels of X, in order: the mixture (unless left out), then every upstream stem."""
    names = ["mixture.L", "mixture.R"] if mixture else []
    for spec in specs:
        for stem in spec.stems:
            names += [f"{spec.id}/{stem}.L", f"{spec.id}/{stem}.R"]
    return names


@runtime_checkable
class Upstream(Protocol):
    """The small protocol every adapter implements."""

    name: str
    sample_rate: int
    stems: tuple[str, ...]

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        """(2, N) float32 mixture at `sample_rate` → {stem: (2, N)} for every stem in `stems`.

        The pipeline passes the mixture on its device (a GPU one when it runs there); stems
        are best returned on that device too, so they need not cross to the host and back.
        """
        ...


def check_provides(spec: UpstreamSpec, upstream: Upstream) -> None:
    """Refuse a loaded upstream that cannot feed the channels `spec` names (rate and stems)."""
    if upstream.sample_rate != SAMPLE_RATE:
        raise UpstreamError(f"upstream {spec.id} runs at {upstream.sample_rate} Hz; adapters must take {SAMPLE_RATE} Hz")
    missing = [s for s in spec.stems if s not in upstream.stems]
    if missing:
        raise UpstreamError(f"upstream {spec.id} produces {list(upstream.stems)}, not {missing}")


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The JSON-string metadata of a weights file, read without loading tensors (and never unpickling)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
        raise UpstreamError(f"{path}: not a safetensors file ({exc})") from exc


class JsonConfig:
    """JSON for the frozen config dataclasses stored in the weight files trained here: stems as a
    list, keys sorted; unknown fields are refused on reading (a newer file, or a corrupt one)."""

    def to_json(self) -> str:
        data = asdict(self)
        data["stems"] = list(self.stems)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        data = json.loads(text)
        extra = set(data) - set(cls.__dataclass_fields__)
        if extra:
            raise ValueError(f"unknown config fields {sorted(extra)}")
        return cls(**data)


def save_config_model(model: nn.Module, path: str | Path, file_format: str, class_name: str, *, half: bool = False) -> Path:
    """Write a model that carries a JSON-able `config` as safetensors (format, class and config as
    metadata), atomically: the one file layout of the families trained here (spectral, umx)."""
    from safetensors.torch import save_file

    from ..atomic import atomic_path

    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": file_format, "class": class_name, "config": model.config.to_json()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def load_config_model(path: str | Path, file_format: str, class_name: str, build: Callable[[str], nn.Module],
                      what: str) -> nn.Module:
    """Read a file `save_config_model` wrote: `build(config JSON)` makes the model, the weights must
    fit it exactly (float32 in memory); another format or class, bad JSON or wrong shapes are an
    `UpstreamError` naming `what` the file should have been. Never unpickles."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = safetensors_metadata(path)
    if meta.get("format") != file_format or meta.get("class") != class_name:
        raise UpstreamError(
            f"{path}: not {what} (format {meta.get('format')!r}, class {meta.get('class')!r}; "
            f"expected {file_format!r}, {class_name!r})"
        )
    try:
        model = build(meta["config"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - bad JSON, unknown field, wrong shapes all mean "corrupt"
        raise UpstreamError(f"{path}: {what} config and weights do not match ({exc})") from exc
    return model.eval()


def load_matching_state(model: nn.Module, state: dict[str, Tensor], where: str, what: str, *,
                        ignore: Callable[[str], bool] = lambda key: False) -> nn.Module:
    """Load `state` into `model` only if every key and shape matches (keys `ignore` accepts aside).

    A downloaded file that fits the architecture only partly must fail in one line, not load
    silently with random layers; `what` names the architecture in that line.
    """
    want = {k: v for k, v in model.state_dict().items() if not ignore(k)}
    have = {k: v for k, v in state.items() if not ignore(k)}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        raise UpstreamError(f"{where}: not a {what} state (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, value in have.items():
        if tuple(value.shape) != tuple(want[key].shape):
            raise UpstreamError(f"{where}: {key} has shape {tuple(value.shape)}, {what} needs {tuple(want[key].shape)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in have.items()}, strict=False)
    return model.eval()
