"""MDX-Net networks distributed as ONNX files ("mdxnet-onnx"), run with onnxruntime.

This is the format KUIELab's MDX-Net (the paper's model C) and the whole UVR MDX-Net
family are published in: one network per target, taking a spectrogram and returning the
target's spectrogram. The network never sees audio, so the framing around it has to be
the one it was trained with, described by five numbers per file:

* `n_fft`, `hop`: the STFT (periodic Hann window, centred frames, reflect padding at
  the chunk's ends), `n_fft // 2 + 1` bins;
* `dim_f`: the network sees only the lowest `dim_f` bins; the bins above are set to zero
  before the inverse STFT (so a model's output is band-limited to dim_f / (n_fft/2) of
  Nyquist: kuielab's vocals network to 14.7 kHz);
* `dim_t`: frames per network call, so a chunk is `hop * (dim_t - 1)` samples (taken from
  the file when its input's time axis is fixed);
* `compensate`: a gain the output is multiplied by (UVR's calibration of each network).

The network input is (batch, 4, dim_f, dim_t) with channels [left.real, left.imag,
right.real, right.imag]. As in kuielab's `demix`, the song is padded with n_fft/2 zeros at
both ends and each chunk keeps only its centre (`trim = n_fft // 2` samples dropped at
both sides, where the frames see the chunk edge); with `overlap` > 0 neighbouring centres
overlap and are cross-faded (a weighted average, so a network that returns its input
returns the song). A network whose target is "instrumental" (UVR's Inst models) yields
vocals as the mixture minus its output; `complement` names that stem. The complement is
taken from the full-band mixture, so the stems add back to the mixture.

Where the five numbers come from, first match wins: the catalog by file sha256 (known
public networks), a JSON file beside the model (`NAME.json`, with these keys or UVR's
model-data keys), or the ONNX file's own metadata (`mdxmix.mdxnet`, JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UpstreamError
from ..stems import SAMPLE_RATE, STEMS

METADATA_KEY = "mdxmix.mdxnet"
TARGETS = (*STEMS, "instrumental")


@dataclass(frozen=True)
class MDXNetParams:
    """The framing one MDX-Net ONNX network was trained with, and what it separates."""

    target: str
    n_fft: int
    dim_f: int
    dim_t: int
    hop: int = 1024
    compensate: float = 1.0
    complement: str | None = None  # a stem computed as mixture - output (default: vocals for "instrumental")

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.complement is None and self.target == "instrumental":
            object.__setattr__(self, "complement", "vocals")
        if self.complement is not None and (self.complement not in STEMS or self.complement == self.target):
            raise ValueError(f"complement must be a stem other than the target, got {self.complement!r}")
        if self.dim_f < 1 or self.dim_f > self.n_fft // 2 + 1:
            raise ValueError(f"dim_f {self.dim_f} must be between 1 and n_fft/2+1 = {self.n_fft // 2 + 1}")
        if self.hop * (self.dim_t - 1) <= 2 * (self.n_fft // 2):
            raise ValueError(f"a chunk of {self.dim_t} frames of hop {self.hop} is too short for n_fft {self.n_fft}")

    @property
    def trim(self) -> int:
        return self.n_fft // 2

    @property
    def chunk(self) -> int:
        return self.hop * (self.dim_t - 1)

    @property
    def kept(self) -> int:
        """Samples of each chunk's centre that are kept."""
        return self.chunk - 2 * self.trim

    @property
    def stems(self) -> tuple[str, ...]:
        out = (self.target,) if self.target in STEMS else ()
        return out + ((self.complement,) if self.complement else ())

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, *, dim_t: int | None = None) -> "MDXNetParams":
        """Our keys, or the keys of UVR's model_data.json (dim_t there is an exponent of 2)."""
        if "primary_stem" in data or "mdx_n_fft_scale_set" in data:
            data = {
                "target": str(data.get("primary_stem", "")).lower(),
                "n_fft": data.get("mdx_n_fft_scale_set"),
                "dim_f": data.get("mdx_dim_f_set"),
                "dim_t": 2 ** int(data["mdx_dim_t_set"]) if "mdx_dim_t_set" in data else None,
                "compensate": data.get("compensate", 1.0),
            }
        data = {k: v for k, v in data.items() if v is not None}
        if dim_t is not None:
            data.setdefault("dim_t", dim_t)
        known = set(cls.__dataclass_fields__)
        if set(data) - known:
            raise ValueError(f"unknown keys {sorted(set(data) - known)}")
        missing = sorted({"target", "n_fft", "dim_f", "dim_t"} - set(data))
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        return cls(**data)


def embed_params(source: str | Path, target: str | Path, params: MDXNetParams) -> Path:
    """Copy an ONNX file with its framing written into its metadata, so the one file describes itself
    (a checkpoint pins and copies one file per upstream; a sidecar JSON would be left behind)."""
    try:
        import onnx
    except ImportError as exc:
        raise UpstreamError("writing ONNX metadata needs the onnx package: pip install onnx") from exc
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = params.to_json()
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))
    return Path(target)


def onnx_session(path: Path, device: torch.device | str = "cpu"):
    """An onnxruntime session on CUDA when asked for and available, else on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UpstreamError("the mdxnet-onnx family needs onnxruntime: pip install 'mdxmix[families]'") from exc
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's warnings about unused initialisers are noise here
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        raise UpstreamError(f"{path}: not a loadable ONNX network ({str(exc).splitlines()[0][:160]})") from exc


def read_params(path: Path, session=None, catalog: dict | None = None) -> MDXNetParams:
    """The framing of `path`: from `catalog` (settings of a known file), a sidecar JSON, or ONNX metadata."""
    static_t = None
    if session is not None:
        shape = session.get_inputs()[0].shape
        static_t = shape[3] if len(shape) == 4 and isinstance(shape[3], int) else None
    try:
        if catalog is not None:  # a fixed time axis in the file is the truth; the catalog's dim_t covers dynamic ones
            return MDXNetParams.from_dict({**catalog, **({"dim_t": static_t} if static_t else {})})
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            return MDXNetParams.from_dict(json.loads(sidecar.read_text()), dim_t=static_t)
        if session is not None:
            meta = session.get_modelmeta().custom_metadata_map or {}
            if METADATA_KEY in meta:
                return MDXNetParams.from_dict(json.loads(meta[METADATA_KEY]), dim_t=static_t)
    except (ValueError, TypeError) as exc:
        raise UpstreamError(f"{path}: bad MDX-Net parameters ({exc})") from exc
    raise UpstreamError(
        f"{path}: unknown MDX-Net network; put its framing in {path.with_suffix('.json').name} beside it, e.g. "
        '{"target": "vocals", "n_fft": 6144, "dim_f": 2048, "dim_t": 256, "hop": 1024, "compensate": 1.035} '
        "(or copy its entry from UVR's model_data.json)"
    )


class MDXNetNetwork:
    """One ONNX network with its framing: (2, N) mixture → (2, N) target estimate."""

    def __init__(self, session, params: MDXNetParams, name: str, *, overlap: float = 0.25, batch_size: int = 4) -> None:
        if not 0.0 <= overlap < 1.0:
            raise ValueError("overlap must be in [0, 1)")
        self.session, self.params, self.name, self.overlap = session, params, name, overlap
        node = session.get_inputs()[0]
        self.input_name = node.name
        shape = node.shape
        if len(shape) != 4 or shape[1] != 4:
            raise UpstreamError(f"{name}: expects an input of shape (batch, 4, dim_f, dim_t), the network takes {shape}")
        for axis, want in ((2, params.dim_f), (3, params.dim_t)):
            if isinstance(shape[axis], int) and shape[axis] != want:
                raise UpstreamError(f"{name}: network input {shape} does not match dim_f={params.dim_f}, dim_t={params.dim_t}")
        self.batch_size = shape[0] if isinstance(shape[0], int) else batch_size
        self.window = torch.hann_window(params.n_fft, periodic=True)

    # --- spectrogram framing ------------------------------------------------------
    def to_spec(self, chunks: Tensor) -> np.ndarray:
        """(B, 2, chunk) → (B, 4, dim_f, dim_t) float32: [L.re, L.im, R.re, R.im]."""
        p = self.params
        b = chunks.shape[0]
        spec = torch.stft(chunks.reshape(b * 2, p.chunk), p.n_fft, p.hop, window=self.window, center=True,
                          return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2).reshape(b, 4, p.n_fft // 2 + 1, p.dim_t)
        return spec[:, :, : p.dim_f].contiguous().numpy()

    def from_spec(self, spec: np.ndarray) -> Tensor:
        """(B, 4, dim_f, dim_t) → (B, 2, chunk), bins above dim_f set to zero."""
        p = self.params
        x = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32))
        b = x.shape[0]
        x = torch.nn.functional.pad(x, (0, 0, 0, p.n_fft // 2 + 1 - p.dim_f))
        x = x.reshape(b * 2, 2, p.n_fft // 2 + 1, p.dim_t).permute(0, 2, 3, 1).contiguous()
        wav = torch.istft(torch.view_as_complex(x), p.n_fft, p.hop, window=self.window, center=True, length=p.chunk)
        return wav.reshape(b, 2, p.chunk)

    # --- chunking -------------------------------------------------------------------
    def _weights(self, index: int, count: int, step: int) -> Tensor:
        """Cross-fade weights over a chunk's kept centre (flat where no neighbour overlaps)."""
        kept = self.params.kept
        w = torch.ones(kept)
        ramp = kept - step
        if ramp > 0:
            fade = torch.linspace(1.0 / (ramp + 1), 1.0 - 1.0 / (ramp + 1), ramp)
            if index > 0:
                w[:ramp] = fade
            if index < count - 1:
                w[-ramp:] = fade.flip(0)
        return w

    def __call__(self, mixture: Tensor) -> Tensor:
        p = self.params
        n = mixture.shape[-1]
        step = max(1, int(round(p.kept * (1.0 - self.overlap))))
        count = max(1, math.ceil(max(n - p.kept, 0) / step) + 1)
        span = (count - 1) * step + p.kept
        padded = torch.zeros(2, p.trim + span + p.trim)
        padded[:, p.trim : p.trim + n] = mixture.float().cpu()
        acc = torch.zeros(2, span)
        total = torch.zeros(span)
        for first in range(0, count, self.batch_size):
            idx = list(range(first, min(count, first + self.batch_size)))
            chunks = torch.stack([padded[:, k * step : k * step + p.chunk] for k in idx])
            out = self.session.run(None, {self.input_name: self.to_spec(chunks)})[0]
            if out.shape != (len(idx), 4, p.dim_f, p.dim_t):
                raise UpstreamError(f"{self.name}: network returned shape {out.shape}, expected {(len(idx), 4, p.dim_f, p.dim_t)}")
            wavs = self.from_spec(out)[:, :, p.trim : p.trim + p.kept]
            for j, k in enumerate(idx):
                w = self._weights(k, count, step)
                acc[:, k * step : k * step + p.kept] += wavs[j] * w
                total[k * step : k * step + p.kept] += w
        return (acc / total)[:, :n] * p.compensate


class MDXNetOnnxUpstream:
    """One or more MDX-Net ONNX networks as one upstream (e.g. kuielab's four)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, networks: list[MDXNetNetwork], name: str) -> None:
        if not networks:
            raise UpstreamError(f"{name}: no networks")
        self.networks, self.name = networks, name
        stems: list[str] = []
        for net in networks:
            for stem in net.params.stems:
                if stem in stems:
                    raise UpstreamError(f"{name}: two networks yield {stem}")
                stems.append(stem)
        self.stems = tuple(s for s in STEMS if s in stems)

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        out: dict[str, Tensor] = {}
        for net in self.networks:
            est = net(mixture)
            if net.params.target in STEMS:
                out[net.params.target] = est
            if net.params.complement:
                out[net.params.complement] = mixture.float().cpu() - est
        return {s: out[s] for s in self.stems}


def load_mdxnet_onnx(files: list[tuple[Path, dict | None]], name: str, device: torch.device | str = "cpu", *,
                     overlap: float = 0.25) -> MDXNetOnnxUpstream:
    """ONNX files (each with catalog settings or None to read its sidecar/metadata) as one upstream."""
    networks = []
    for path, settings in files:
        session = onnx_session(path, device)
        params = read_params(path, session, settings)
        networks.append(MDXNetNetwork(session, params, f"{name}/{path.name}", overlap=overlap))
    return MDXNetOnnxUpstream(networks, name)


__all__ = ["METADATA_KEY", "embed_params", "MDXNetNetwork", "MDXNetOnnxUpstream", "MDXNetParams", "load_mdxnet_onnx", "onnx_session", "read_params"]
