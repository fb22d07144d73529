"""The roformer family: MSST YAML + state dict built here, MSST-style chunking, names, refusals."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import yaml

pytest.importorskip("bs_roformer")

from mdxmix.errors import OfflineError, UpstreamError  # noqa: E402
from mdxmix.upstream import build_upstream  # noqa: E402
from mdxmix.upstream.base import Upstream  # noqa: E402
from mdxmix.upstream.catalog import KNOWN_MODELS  # noqa: E402
from mdxmix.upstream.parse import parse_upstream  # noqa: E402
from mdxmix.upstream.roformer import (  # noqa: E402
    RoformerConfig,
    RoformerUpstream,
    build_roformer,
    load_roformer,
    read_msst_yaml,
    roformer_from_catalog,
    save_roformer,
)

# bs-roformer 0.3.10 enters torch's deprecated sdp_kernel() context; the adapter silences it, direct calls here do not.
pytestmark = pytest.mark.filterwarnings("ignore:.*sdp_kernel:FutureWarning")
HOP = 128
# An MSST config in the layout of configs/viperx/*.yaml, scaled down (n_fft 512: 257 bins in 4 bands).
BS_YAML = f"""
audio:
  chunk_size: {HOP * 40}
  num_channels: 2
  sample_rate: 44100
model:
  dim: 16
  depth: 1
  stereo: true
  num_stems: {{stems}}
  time_transformer_depth: 1
  freq_transformer_depth: 1
  linear_transformer_depth: 0
  freqs_per_bands: !!python/tuple
    - 64
    - 64
    - 64
    - 65
  dim_head: 8
  heads: 2
  attn_dropout: 0.1
  ff_dropout: 0.1
  flash_attn: true
  dim_freqs_in: 257
  stft_n_fft: 512
  stft_hop_length: {HOP}
  stft_win_length: 512
  stft_normalized: false
  mask_estimator_depth: 2
  multi_stft_resolutions_window_sizes: !!python/tuple
  - 512
  - 256
training:
  instruments: {{instruments}}
  target_instrument: {{target}}
inference:
  batch_size: 2
  num_overlap: {{overlap}}
"""
MEL_YAML = BS_YAML.replace("""  freqs_per_bands: !!python/tuple
    - 64
    - 64
    - 64
    - 65
""", "  num_bands: 8\n  sample_rate: 44100\n").replace("  linear_transformer_depth: 0\n", "")


def msst_yaml(kind: str = "bs", stems=("vocals", "other"), target="vocals", overlap: int = 2) -> str:
    text = BS_YAML if kind == "bs" else MEL_YAML
    n = 1 if target else len(stems)
    return text.format(stems=n, instruments="[" + ", ".join(stems) + "]", target=target or "null", overlap=overlap)


def make_identity(model: torch.nn.Module) -> torch.nn.Module:
    """Set every mask estimator's last layer so the complex mask is exactly 1 + 0j."""
    with torch.no_grad():
        for est in model.mask_estimators:
            for mlp in est.to_freqs:
                last = mlp[0][-1]  # Linear → GLU(a, b) = a * sigmoid(b), a interleaves (real, imag)
                last.weight.zero_()
                half = last.bias.shape[0] // 2
                last.bias[:half] = torch.tensor([1.0, 0.0]).repeat(half // 2)
                last.bias[half:] = 40.0
    return model


def save_ckpt(tmp_path, yaml_text: str, model=None, name="model", wrap=None):
    cfg = RoformerConfig.from_msst(read_msst_yaml(yaml_text))
    model = model if model is not None else build_roformer(cfg)
    (tmp_path / f"{name}.yaml").write_text(yaml_text)
    state = model.state_dict()
    torch.save({wrap: state} if wrap else state, tmp_path / f"{name}.ckpt")
    return tmp_path / f"{name}.ckpt", model, cfg


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, n, generator=torch.Generator().manual_seed(seed)) * 0.3


@pytest.mark.parametrize("kind", ["bs", "mel"])
@pytest.mark.parametrize("n", [300, HOP * 97 + 5])
def test_identity_masks_return_the_input_edges_included(tmp_path, kind, n):
    cfg = RoformerConfig.from_msst(read_msst_yaml(msst_yaml(kind)))
    path, _, _ = save_ckpt(tmp_path, msst_yaml(kind), make_identity(build_roformer(cfg)))
    spec, folder = parse_upstream(f"roformer:{path}:vocals")
    up = build_upstream(spec, [folder])
    assert isinstance(up, Upstream) and up.stems == ("vocals",)
    x = noise(n)
    y = up.separate(x)["vocals"]
    assert y.shape == x.shape and (y - x).abs().max() < 1e-4


@pytest.mark.parametrize("overlap", [1, 3])
def test_chunked_inference_equals_the_network_inside_each_chunk(tmp_path, overlap):
    """Chunks are weighted averages of the network's outputs: with a time-local random
    network (depth 0 transformers would be trivial, so compare against MSST's recipe)."""
    yaml_text = msst_yaml("bs", stems=("drums", "bass", "other", "vocals"), target=None, overlap=overlap)
    cfg = RoformerConfig.from_msst(read_msst_yaml(yaml_text))
    torch.manual_seed(0)
    model = build_roformer(cfg)
    up = RoformerUpstream(model, cfg, "bs4", batch_size=3)
    assert up.stems == ("drums", "bass", "other", "vocals")
    x = noise(HOP * 90 + 11, seed=2)
    got = torch.stack(list(up.separate(x).values()))
    # MSST's demix, written out per chunk: reflect-pad by the border, window with linear fades, divide by the weights.
    chunk = cfg.chunk_size
    step = chunk // overlap
    border, fade = chunk - step, (chunk // 10 if chunk - step >= chunk // 10 else 0)
    mix = torch.nn.functional.pad(x[None], (border, border), mode="reflect")[0] if border else x
    total = mix.shape[-1]
    res, cnt = torch.zeros(4, 2, total), torch.zeros(total)
    starts = list(range(0, total, step))
    for s in starts:
        part = mix[:, s : s + chunk]
        n = part.shape[-1]
        part = torch.nn.functional.pad(part[None], (0, chunk - n), mode="reflect" if n > chunk // 2 else "constant")
        with torch.no_grad():
            est = model(part)[0]
        w = torch.ones(chunk)
        if fade and s > 0:
            w[:fade] = torch.linspace(0, 1, fade)
        if fade and s != starts[-1]:
            w[-fade:] = torch.linspace(1, 0, fade)
        res[..., s : s + n] += est[..., :n] * w[:n]
        cnt[s : s + n] += w[:n]
    want = (res / cnt)[..., border : total - border]
    assert torch.allclose(got, want, atol=1e-5)


def test_safetensors_conversion_round_trip_and_wrapped_checkpoints(tmp_path):
    torch.manual_seed(1)
    path, model, cfg = save_ckpt(tmp_path, msst_yaml("mel"), wrap="state_dict")  # MSST accepts {"state_dict": ...}
    loaded, cfg2 = load_roformer(path)
    assert cfg2 == cfg
    x = noise(HOP * 40)[None]
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(loaded(x), ref)
    st = save_roformer(loaded, cfg, tmp_path / "mel.safetensors")
    again, cfg3 = load_roformer(st)
    assert cfg3 == cfg
    with torch.no_grad():
        assert torch.equal(again(x), ref)
    spec, folder = parse_upstream(f"roformer:{st}:vocals")
    assert build_upstream(spec, [folder]).stems == ("vocals",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refusals_are_one_line_user_errors(tmp_path):
    path, model, _ = save_ckpt(tmp_path, msst_yaml("bs"))
    (tmp_path / "model.yaml").unlink()
    with pytest.raises(UpstreamError, match=r"needs its MSST config beside it as model\.yaml"):
        load_roformer(path)
    unsupported = msst_yaml("bs").replace("linear_transformer_depth: 0", "linear_transformer_depth: 1")
    p2, _, _ = save_ckpt(tmp_path, msst_yaml("bs"), name="lin")
    (tmp_path / "lin.yaml").write_text(unsupported)
    with pytest.raises(UpstreamError, match="linear_transformer_depth=1 is not supported"):
        load_roformer(p2)
    other = msst_yaml("bs").replace("dim: 16", "dim: 24")  # the weights are dim 16
    p3, _, _ = save_ckpt(tmp_path, msst_yaml("bs"), name="shape")
    (tmp_path / "shape.yaml").write_text(other)
    with pytest.raises(UpstreamError, match="has shape"):
        load_roformer(p3)
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {"w": print}}))  # a global reference: code, not tensors
    (tmp_path / "evil.yaml").write_text(msst_yaml("bs"))
    with pytest.raises(UpstreamError, match=r"weights_only=True") as err:
        load_roformer(evil)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no 'model' section"):
        read_msst_yaml("audio: {}\n")
    with pytest.raises(yaml.YAMLError):  # arbitrary python tags stay refused by the safe loader
        read_msst_yaml("model: !!python/object/apply:os.system ['true']\n")


def test_two_stem_msst_models_offer_only_the_musdb_stem():
    cfg = RoformerConfig.from_msst(read_msst_yaml(msst_yaml("bs", stems=("vocals", "other"), target=None)))
    assert cfg.instruments == ("vocals", "other") and cfg.stems == ("vocals",)


def test_catalogued_names_match_the_published_checkpoint_sizes():
    """The catalog's MSST configs build networks whose float32 weights are the size of the published files
    (KJ: 913,106,900 bytes, pinned with its sha256; viperx: listed as 639 MB where it is distributed)."""
    published = {"bs_roformer_viperx_1297": 639e6, "mel_roformer_kj_vocals": 913_106_900}
    for name in published:
        model = build_roformer(roformer_from_catalog(KNOWN_MODELS[name].settings))
        size = 4 * sum(v.numel() for k, v in model.state_dict().items() if ".rotary_embed." not in k)
        assert math.isclose(size, published[name], rel_tol=0.005), (name, size)
        del model


def test_catalogued_names_fail_offline_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MDXMIX_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec, _ = parse_upstream("roformer:mel_roformer_kj_vocals")
    assert spec.stems == ("vocals",)
    with pytest.raises(OfflineError) as err:
        build_upstream(spec, [])
    msg = str(err.value)
    assert "\n" not in msg and "KimberleyJSN/melbandroformer/MelBandRoformer.ckpt@ac9b0614" in msg
    assert "hf download KimberleyJSN/melbandroformer MelBandRoformer.ckpt --revision" in msg
    with pytest.raises(OfflineError, match="Blane187/all_public_uvr_models"):
        build_upstream(parse_upstream("roformer:bs_roformer_viperx_1297")[0], [])
