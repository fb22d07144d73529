"""bytesep's ResUNet143 Subband-time ("resunet"), the paper's model B (Kong et al. 2021).

Why it is written out here: bytesep is unmaintained and drags in pytorch-lightning,
torchlibrosa and inplace-abn; the network itself is plain convolutions. The module and
attribute names below mirror bytesep's `ResUNet143_Subbandtime`, so its released state
dicts load key for key (the STFT kernels of torchlibrosa, `stft.*`/`istft.*`, are the DFT
and are replaced by `torch.stft`; everything else is loaded and checked).

Signal path, per chunk of stereo audio at 44.1 kHz:
1. PQMF analysis into 4 subbands per channel (Conv1d, 64 taps, stride 4, filters stored
   in the weights), giving 8 signals at 11.025 kHz, ordered [L.sb0..sb3, R.sb0..sb3];
2. STFT of each (periodic Hann 512, hop 110, centred, reflect): magnitude, cos, sin;
3. BatchNorm over the 257 bins of the magnitude; time padded to a multiple of 32 frames,
   the top bin dropped; a U-Net of 6 encoder blocks (32, 64, 128, 256, 384, 384 channels,
   each 4 residual conv blocks, average-pooled 2x2, the last 1x2), 4 centre blocks, 6
   decoder blocks (transposed conv + skip concatenation + 4 residual blocks) and one more
   block — 143 convolutions — then a 1x1 conv to 4 outputs per stem, channel and subband:
4. per bin: a magnitude mask sigmoid(a), a phase rotation from (tanh(b), tanh(c)) and an
   additive magnitude tanh(d): |Y| = relu(|X| sigmoid(a) + tanh(d)), angle Y = angle X +
   angle(tanh b + j tanh c);
5. inverse STFT per subband and PQMF synthesis back to 44.1 kHz.
Step 4 slices subbands as bytesep does (block j of the output with magnitude channels
2j, 2j+1); synthesis undoes the same ordering, so a unit mask returns the input.

A freshly built model starts with the trivial polyphase filter bank (perfect
reconstruction, no band splitting); a trained checkpoint brings bytesep's PQMF filters.

Weights: bytesep's `.pth` (a dict with "model") read with `torch.load(weights_only=True)`,
or a `.safetensors` file written by `save_resunet` (config in the metadata).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..atomic import atomic_path
from ..errors import UpstreamError
from ..stems import SAMPLE_RATE, STEMS
from .base import load_matching_state, safetensors_metadata

FORMAT = "mdxmix.resunet/1"
K = 4  # outputs per bin: magnitude mask, phase real, phase imag, additive magnitude


@dataclass(frozen=True)
class ResUNetConfig:
    """The shape of a ResUNet143 Subband-time network; the defaults are bytesep's."""

    stems: tuple[str, ...] = ("vocals",)
    channels: tuple[int, ...] = (32, 64, 128, 256, 384, 384)
    center_blocks: int = 4
    window: int = 512
    hop: int = 110
    subbands: int = 4
    taps: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.stems) != 1 or self.stems[0] not in STEMS:
            raise ValueError(f"a ResUNet separates exactly one MUSDB stem, got {list(self.stems)}")
        if len(self.channels) != 6 or self.taps % self.subbands:
            raise ValueError("channels must list 6 encoder widths and taps must be a multiple of subbands")

    @property
    def time_ratio(self) -> int:
        return 2**5  # five encoder blocks halve time; the sixth halves only frequency

    def to_json(self) -> str:
        data = asdict(self)
        data["stems"], data["channels"] = list(self.stems), list(self.channels)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ResUNetConfig":
        return cls(**json.loads(text))


class ConvBlockRes(nn.Module):
    """BN → leaky ReLU → 3x3 conv, twice, plus the input (1x1 conv when widths differ)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin, momentum=0.01), nn.BatchNorm2d(cout, momentum=0.01)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.leaky_relu(self.bn1(x), 0.01))
        h = self.conv2(F.leaky_relu(self.bn2(h), 0.01))
        return (self.shortcut(x) if self.shortcut is not None else x) + h


class EncoderBlockRes4B(nn.Module):
    """Four residual blocks, then average pooling by `downsample`; returns (pooled, skip)."""

    def __init__(self, cin: int, cout: int, downsample: tuple[int, int]) -> None:
        super().__init__()
        self.conv_block1, self.conv_block2 = ConvBlockRes(cin, cout), ConvBlockRes(cout, cout)
        self.conv_block3, self.conv_block4 = ConvBlockRes(cout, cout), ConvBlockRes(cout, cout)
        self.downsample = downsample

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv_block4(self.conv_block3(self.conv_block2(self.conv_block1(x))))
        return F.avg_pool2d(x, kernel_size=self.downsample), x


class DecoderBlockRes4B(nn.Module):
    """BN → ReLU → transposed conv by `upsample`, concatenate the skip, four residual blocks."""

    def __init__(self, cin: int, cout: int, upsample: tuple[int, int]) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=0.01)
        self.conv1 = nn.ConvTranspose2d(cin, cout, kernel_size=upsample, stride=upsample, bias=False)
        self.conv_block2, self.conv_block3 = ConvBlockRes(2 * cout, cout), ConvBlockRes(cout, cout)
        self.conv_block4, self.conv_block5 = ConvBlockRes(cout, cout), ConvBlockRes(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat((self.conv1(F.relu(self.bn1(x))), skip), dim=1)
        return self.conv_block5(self.conv_block4(self.conv_block3(self.conv_block2(x))))


class PQMF(nn.Module):
    """bytesep's polyphase subband analysis/synthesis; the filters live in the weights."""

    def __init__(self, subbands: int, taps: int) -> None:
        super().__init__()
        self.n, self.m, self.pad_samples = subbands, taps, 64
        self.ana_conv_filter = nn.Conv1d(1, subbands, taps, stride=subbands, bias=False)
        self.syn_conv_filter = nn.Conv1d(subbands, subbands, taps // subbands, bias=False)
        with torch.no_grad():  # the trivial polyphase bank: subband k of sample nN+k, exact inverse
            self.ana_conv_filter.weight.zero_()
            self.syn_conv_filter.weight.zero_()
            for k in range(subbands):
                self.ana_conv_filter.weight[k, 0, taps - subbands + k] = 1.0
                self.syn_conv_filter.weight[k, k, 0] = 1.0
        for p in self.parameters():
            p.requires_grad_(False)

    def analysis(self, x: Tensor) -> Tensor:
        """(B, C, L) → (B, C*N, (L+60)//N + 1), channel-major."""
        b, c, _ = x.shape
        x = F.pad(x, (self.m - self.n, self.pad_samples)).reshape(b * c, 1, -1)
        return self.ana_conv_filter(x).reshape(b, c * self.n, -1)

    def synthesis(self, x: Tensor) -> Tensor:
        """(B, C*N, Ls) → (B, C, Ls*N - 64): every N consecutive channels make one signal."""
        b, cn, ls = x.shape
        c = cn // self.n
        y = self.syn_conv_filter(F.pad(x.reshape(b * c, self.n, ls), (0, self.m // self.n - 1)))
        return y.permute(0, 2, 1).reshape(b, c, ls * self.n)[..., : -self.pad_samples]


class ResUNet143Subband(nn.Module):
    """(B, 2, L) stereo mixture, L a multiple of 4 → (B, 1, 2, L) the target stem."""

    def __init__(self, config: ResUNetConfig = ResUNetConfig()) -> None:
        super().__init__()
        self.config = c = config
        ch = c.channels
        self.pqmf = PQMF(c.subbands, c.taps)
        self.register_buffer("window", torch.hann_window(c.window, periodic=True), persistent=False)
        self.bn0 = nn.BatchNorm2d(c.window // 2 + 1, momentum=0.01)
        cin = 2 * c.subbands
        downs = [(2, 2)] * 5 + [(1, 2)]
        for i in range(6):
            setattr(self, f"encoder_block{i + 1}", EncoderBlockRes4B(cin if i == 0 else ch[i - 1], ch[i], downs[i]))
        self.center = [f"conv_block7{chr(ord('a') + i)}" for i in range(c.center_blocks)]
        for name in self.center:
            setattr(self, name, EncoderBlockRes4B(ch[5], ch[5], (1, 1)))
        ups = [(1, 2)] + [(2, 2)] * 5
        widths = [ch[5], ch[4], ch[3], ch[2], ch[1], ch[0]]  # decoder outputs, deepest first
        prev = ch[5]
        for i in range(6):
            setattr(self, f"decoder_block{i + 1}", DecoderBlockRes4B(prev, widths[i], ups[i]))
            prev = widths[i]
        self.after_conv_block1 = EncoderBlockRes4B(ch[0], ch[0], (1, 1))
        self.after_conv2 = nn.Conv2d(ch[0], len(c.stems) * 2 * K * c.subbands, 1)

    def _spectrogram(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C, Ls) → magnitude, cos, sin, each (B, C, T, bins)."""
        b, ch, ls = x.shape
        spec = torch.stft(x.reshape(b * ch, ls), self.config.window, self.config.hop, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        real, imag = spec.real.transpose(1, 2), spec.imag.transpose(1, 2)
        mag = torch.clamp(real**2 + imag**2, 1e-10) ** 0.5
        shape = (b, ch, *real.shape[1:])
        return mag.reshape(shape), (real / mag).reshape(shape), (imag / mag).reshape(shape)

    def _to_wave(self, feats: Tensor, mag: Tensor, cos_in: Tensor, sin_in: Tensor, length: int) -> Tensor:
        """Masks of one subband block (B, S*2*K, T, F) applied to its (B, 2, T, F) input → (B, S*2, length)."""
        b, _, t, f = feats.shape
        x = feats.reshape(b, len(self.config.stems), 2, K, t, f)
        mask_mag = torch.sigmoid(x[:, :, :, 0])
        m_real, m_imag = torch.tanh(x[:, :, :, 1]), torch.tanh(x[:, :, :, 2])
        linear_mag = torch.tanh(x[:, :, :, 3])
        m_abs = torch.clamp((m_real**2 + m_imag**2) ** 0.5, 1e-10)
        m_cos, m_sin = m_real / m_abs, m_imag / m_abs
        out_cos = cos_in[:, None] * m_cos - sin_in[:, None] * m_sin
        out_sin = sin_in[:, None] * m_cos + cos_in[:, None] * m_sin
        out_mag = F.relu(mag[:, None] * mask_mag + linear_mag)
        spec = torch.complex(out_mag * out_cos, out_mag * out_sin).reshape(-1, t, f).transpose(1, 2)
        wav = torch.istft(spec, self.config.window, self.config.hop, window=self.window, center=True, length=length)
        return wav.reshape(b, -1, length)

    def forward(self, mixture: Tensor) -> Tensor:
        c = self.config
        sub = self.pqmf.analysis(mixture)
        mag, cos_in, sin_in = self._spectrogram(sub)
        x = self.bn0(mag.transpose(1, 3)).transpose(1, 3)
        frames = x.shape[2]
        x = F.pad(x, (0, 0, 0, -frames % c.time_ratio))[..., :-1]
        skips = []
        for i in range(6):
            x, skip = getattr(self, f"encoder_block{i + 1}")(x)
            skips.append(skip)
        for name in self.center:
            x, _ = getattr(self, name)(x)
        for i in range(6):
            x = getattr(self, f"decoder_block{i + 1}")(x, skips[5 - i])
        x, _ = self.after_conv_block1(x)
        x = F.pad(self.after_conv2(x), (0, 1))[:, :, :frames]
        c1, c2 = x.shape[1] // c.subbands, mag.shape[1] // c.subbands
        waves = [
            self._to_wave(x[:, j * c1 : (j + 1) * c1], mag[:, j * c2 : (j + 1) * c2], cos_in[:, j * c2 : (j + 1) * c2],
                          sin_in[:, j * c2 : (j + 1) * c2], sub.shape[-1])
            for j in range(c.subbands)
        ]
        out = self.pqmf.synthesis(torch.cat(waves, dim=1))
        return out.reshape(mixture.shape[0], len(c.stems), 2, -1)


# --- files --------------------------------------------------------------------------------
def _skip(key: str) -> bool:
    return key.startswith(("stft.", "istft."))  # torchlibrosa's fixed DFT kernels


def read_resunet_state(path: Path) -> dict[str, Tensor]:
    """bytesep's checkpoint ({"model": state} or a bare state dict), never unpickling objects."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError and friends: more than tensors inside
        raise UpstreamError(f"{path}: not a plain state dict (refused by torch.load(weights_only=True): "
                            f"{str(exc).splitlines()[0][:160]})") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UpstreamError(f"{path}: does not hold a state dict of tensors")
    return {k: v for k, v in state.items() if not _skip(k)}


def load_resunet_state(model: ResUNet143Subband, state: dict[str, Tensor], where: str) -> ResUNet143Subband:
    return load_matching_state(model, state, where, "ResUNet143 Subband")


def _infer_config(state: dict[str, Tensor], stems: tuple[str, ...]) -> ResUNetConfig:
    """Widths read off a bytesep state dict (so a narrower re-training loads too)."""
    try:
        channels = tuple(int(state[f"encoder_block{i}.conv_block1.conv1.weight"].shape[0]) for i in range(1, 7))
    except KeyError as exc:
        raise UpstreamError(f"not a ResUNet143 Subband state (no {exc.args[0]})") from exc
    center = sum(1 for i in range(26) if f"conv_block7{chr(ord('a') + i)}.conv_block1.conv1.weight" in state)
    return ResUNetConfig(stems=stems, channels=channels, center_blocks=center)


def load_resunet(path: str | Path, stems: tuple[str, ...] = ("vocals",)) -> ResUNet143Subband:
    """A `.safetensors` written by `save_resunet`, or bytesep's `.pth` for `stems` (its target)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        meta = safetensors_metadata(path)
        if meta.get("format") != FORMAT:
            raise UpstreamError(f"{path}: not a ResUNet file (format {meta.get('format')!r}, expected {FORMAT!r})")
        try:
            config = ResUNetConfig.from_json(meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"{path}: bad ResUNet config in the metadata ({exc})") from exc
        return load_resunet_state(ResUNet143Subband(config), load_file(str(path)), str(path))
    state = read_resunet_state(path)
    return load_resunet_state(ResUNet143Subband(_infer_config(state, stems)), state, str(path))


def save_resunet(model: ResUNet143Subband, path: str | Path) -> Path:
    """Weights + config as one safetensors file, atomically (e.g. to convert bytesep's .pth once)."""
    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "config": model.config.to_json()})
    return path


# --- the adapter --------------------------------------------------------------------------
class ResUNetUpstream:
    """Runs the network over a song in segments, keeping each segment's centre.

    Segments of `segment_seconds` overlap by half: a quarter at each side is context that
    is dropped (the U-Net's receptive field is long and its padding sees the segment edge),
    and the song is zero-padded by that quarter at both ends, so every kept sample had the
    same context as mid-song; memory is bounded by the segment, not the song.
    """

    def __init__(self, model: ResUNet143Subband, name: str, device: torch.device | str = "cpu", *,
                 segment_seconds: float = 10.0) -> None:
        self.model = model.to(device).eval()
        self.name, self.device = name, torch.device(device)
        self.sample_rate = SAMPLE_RATE
        self.stems = model.config.stems
        self.segment = max(4096, int(segment_seconds * SAMPLE_RATE) // 8 * 8)
        self.context = self.segment // 4 // 4 * 4
        self.kept = self.segment - 2 * self.context

    def separate(self, mixture: Tensor) -> dict[str, Tensor]:
        if mixture.dim() != 2 or mixture.shape[0] != 2:
            raise UpstreamError(f"{self.name}: expects a (2, N) mixture, got {tuple(mixture.shape)}")
        n = mixture.shape[-1]
        count = max(1, -(-n // self.kept))
        padded = torch.zeros(2, self.context + count * self.kept + self.context)
        padded[:, self.context : self.context + n] = mixture.float().cpu()
        out = torch.zeros(len(self.stems), 2, count * self.kept)
        with torch.inference_mode():
            for k in range(count):
                piece = padded[:, k * self.kept : k * self.kept + self.segment].to(self.device)[None]
                est = self.model(piece)[0].float().cpu()
                out[:, :, k * self.kept : (k + 1) * self.kept] = est[:, :, self.context : self.context + self.kept]
        return {stem: out[i, :, :n] for i, stem in enumerate(self.stems)}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "FORMAT", "PQMF", "ResUNet143Subband", "ResUNetConfig", "ResUNetUpstream", "count_parameters", "load_resunet",
    "read_resunet_state", "save_resunet",
]
