"""The mdxnet-onnx family: MDX-Net framing around real ONNX files built here, names, pins, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from mdxmix.errors import CheckpointError, OfflineError, UpstreamError, UserError  # noqa: E402
from mdxmix.stems import STEMS  # noqa: E402
from mdxmix.upstream import build_upstream  # noqa: E402
from mdxmix.upstream.base import Upstream  # noqa: E402
from mdxmix.upstream.mdxnet_onnx import METADATA_KEY, MDXNetParams, load_mdxnet_onnx  # noqa: E402
from mdxmix.upstream.parse import parse_upstream  # noqa: E402

SMALL = {"target": "vocals", "n_fft": 512, "dim_f": 257, "dim_t": 32, "hop": 128}  # chunk 3968, kept 3456


def scale_onnx(path: Path, dim_f: int, dim_t, gain: float = 1.0, batch="batch", meta: dict | None = None) -> Path:
    """An ONNX network that returns its input spectrogram times `gain` (Identity for 1)."""
    shape = [batch, 4, dim_f, dim_t]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    if gain == 1.0:
        nodes, inits = [helper.make_node("Identity", ["input"], ["output"])], []
    else:
        nodes = [helper.make_node("Mul", ["input", "g"], ["output"])]
        inits = [helper.make_tensor("g", TensorProto.FLOAT, [], [gain])]
    model = helper.make_model(helper.make_graph(nodes, "scale", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)],
                              # IR 8 (ONNX 1.12+): an onnx newer than the installed onnxruntime would
                              # otherwise write an IR version it refuses (seen with onnx 1.23, IR 14)
                              ir_version=8)
    if meta is not None:
        helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def sidecar(path: Path, params: dict) -> Path:
    path.with_suffix(".json").write_text(json.dumps(params))
    return path


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, n, generator=torch.Generator().manual_seed(seed)) * 0.3


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("n", [1, 100, 3456, 3457, 20000])
def test_identity_network_returns_the_input_edges_included(tmp_path, overlap, n):
    path = sidecar(scale_onnx(tmp_path / "id.onnx", 257, 32), SMALL)
    up = load_mdxnet_onnx([(path, None)], "id", overlap=overlap)
    assert isinstance(up, Upstream) and up.stems == ("vocals",)
    x = noise(n)
    y = up.separate(x)["vocals"]
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (y - x).abs().max() < 1e-4


def test_band_limit_above_dim_f_and_identity_below_it(tmp_path):
    params = {**SMALL, "dim_f": 128}  # bins 128..256 are zeroed: a low-pass at 128/256 of Nyquist
    path = sidecar(scale_onnx(tmp_path / "lp.onnx", 128, 32), params)
    up = load_mdxnet_onnx([(path, None)], "lp")
    t = torch.arange(20000) / 44100
    low = torch.stack([torch.sin(2 * math.pi * 440 * t), 0.5 * torch.sin(2 * math.pi * 1234 * t + 1)]) * 0.3
    ramp = torch.linspace(0, 1, 1000) ** 2  # no broadband click where the song starts and stops
    low[:, :1000] *= ramp
    low[:, -1000:] *= ramp.flip(0)
    assert (up.separate(low)["vocals"] - low).abs().max() < 1e-4
    high = torch.stack([torch.sin(2 * math.pi * 18000 * t)] * 2)
    assert up.separate(high)["vocals"][:, 2000:-2000].abs().max() < 1e-2  # an 18 kHz tone loses > 40 dB


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy exporter: the static graph MDX-Net files have
def test_framing_matches_kuielab_demix_on_an_exported_network(tmp_path):
    """A small conv net exported with torch.onnx gives what kuielab's demix loop computes with it."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    p = MDXNetParams(target="drums", n_fft=512, dim_f=256, dim_t=32, hop=128, compensate=1.03)
    path = tmp_path / "tdf.onnx"
    torch.onnx.export(net, (torch.zeros(1, 4, 256, 32),), str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    sidecar(path, json.loads(p.to_json()))
    up = load_mdxnet_onnx([(path, None)], "tdf", overlap=0.0)
    x = noise(10000, seed=3)
    got = up.separate(x)["drums"]

    # kuielab's demix, written out with the torch module: zero-pad, chunks every `kept`, keep the centres.
    window = torch.hann_window(p.n_fft, periodic=True)
    trim, chunk = p.n_fft // 2, p.hop * (p.dim_t - 1)
    gen = chunk - 2 * trim
    pad = gen - x.shape[1] % gen
    mix = torch.cat([torch.zeros(2, trim), x, torch.zeros(2, pad + trim)], 1)
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[1] + pad, gen):
            spec = torch.view_as_real(torch.stft(mix[:, i : i + chunk], p.n_fft, p.hop, window=window, center=True,
                                                 return_complex=True))  # (2, bins, T, 2)
            spec = spec.permute(0, 3, 1, 2).reshape(1, 4, -1, p.dim_t)[:, :, : p.dim_f]
            y = torch.nn.functional.pad(net(spec), (0, 0, 0, p.n_fft // 2 + 1 - p.dim_f))
            y = torch.view_as_complex(y.reshape(2, 2, -1, p.dim_t).permute(0, 2, 3, 1).contiguous())
            outs.append(torch.istft(y, p.n_fft, p.hop, window=window, center=True)[:, trim:-trim])
    want = torch.cat(outs, 1)[:, : x.shape[1]] * p.compensate
    assert torch.allclose(got, want, atol=1e-4)
    assert want.abs().max() > 0.05  # a network that does something


def test_instrumental_network_gives_vocals_by_subtraction_and_compensation(tmp_path):
    inst = sidecar(scale_onnx(tmp_path / "inst.onnx", 257, 32, gain=0.5), {**SMALL, "target": "instrumental"})
    drums = sidecar(scale_onnx(tmp_path / "drums.onnx", 257, 32, gain=0.5),
                    {**SMALL, "target": "drums", "compensate": 1.5})
    up = load_mdxnet_onnx([(inst, None), (drums, None)], "pair")
    assert up.stems == ("drums", "vocals")
    x = noise(9000)
    out = up.separate(x)
    assert torch.allclose(out["vocals"], 0.5 * x, atol=1e-4)
    assert torch.allclose(out["drums"], 0.75 * x, atol=1e-4)


def test_parameters_from_uvr_model_data_keys_and_onnx_metadata(tmp_path):
    uvr = {"compensate": 1.035, "mdx_dim_f_set": 257, "mdx_dim_t_set": 5, "mdx_n_fft_scale_set": 512,
           "primary_stem": "Vocals"}
    a = sidecar(scale_onnx(tmp_path / "uvr.onnx", 257, "time"), {**uvr})
    up = load_mdxnet_onnx([(a, None)], "uvr")
    assert up.networks[0].params == MDXNetParams("vocals", 512, 257, 32, 1024, 1.035)
    b = scale_onnx(tmp_path / "meta.onnx", 257, 32, meta={**SMALL, "target": "bass"})
    assert load_mdxnet_onnx([(b, None)], "meta").stems == ("bass",)


def test_missing_or_wrong_parameters_are_one_line_errors(tmp_path):
    bare = scale_onnx(tmp_path / "bare.onnx", 257, 32)
    with pytest.raises(UpstreamError, match=r"bare\.json beside it"):
        load_mdxnet_onnx([(bare, None)], "bare")
    wrong_t = sidecar(scale_onnx(tmp_path / "t.onnx", 257, 64), SMALL)  # file says 64 frames, sidecar 32
    with pytest.raises(UpstreamError, match="does not match"):
        load_mdxnet_onnx([(wrong_t, None)], "t")
    bad = sidecar(scale_onnx(tmp_path / "b.onnx", 257, 32), {**SMALL, "target": "guitar"})
    with pytest.raises(UpstreamError, match="bad MDX-Net parameters"):
        load_mdxnet_onnx([(bad, None)], "b")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(UpstreamError, match="not a loadable ONNX"):
        load_mdxnet_onnx([(junk, None)], "junk")


def test_a_file_spec_is_pinned_and_built_through_the_registry(tmp_path):
    path = sidecar(scale_onnx(tmp_path / "voc.onnx", 257, 32), SMALL)
    spec, folder = parse_upstream(f"mdxnet-onnx:{path}:vocals")
    assert spec.model == "voc.onnx" and spec.sha256 and folder == tmp_path
    up = build_upstream(spec, [folder])
    x = noise(5000)
    assert (up.separate(x)["vocals"] - x).abs().max() < 1e-4
    with pytest.raises(UpstreamError, match=r"produces \['vocals'\]"):
        build_upstream(parse_upstream(f"mdxnet-onnx:{path}")[0], [folder])  # all four stems by default
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="does not match the pinned"):
        build_upstream(spec, [folder])


def test_catalogued_names_parse_to_their_stems_and_fail_offline_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MDXMIX_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec, folder = parse_upstream("mdxnet-onnx:kuielab_a")
    assert spec.stems == STEMS and spec.id == "mdxnet-onnx:kuielab_a" and folder is None
    with pytest.raises(OfflineError) as err:  # the drums network has no hub mirror: placed by hand
        build_upstream(spec, [])
    msg = str(err.value)
    assert "\n" not in msg and "kuielab_a_drums.onnx" in msg and "40f586b7091934dd" in msg
    assert "all_public_uvr_models/kuielab_a_drums.onnx" in msg and str(tmp_path) in msg
    with pytest.raises(OfflineError, match=r"seanghay/uvr_models/kuielab_a_vocals\.onnx.*HF_HUB_OFFLINE"):
        build_upstream(parse_upstream("mdxnet-onnx:kuielab_a_vocals")[0], [])
    (tmp_path / "kuielab_a_vocals.onnx").write_bytes(b"a different file")  # found locally: checked against the pin
    with pytest.raises(CheckpointError, match="does not match the pinned daba83c2ee1a"):
        build_upstream(parse_upstream("mdxnet-onnx:kuielab_a_vocals")[0], [])
    with pytest.raises(UserError, match="known: kuielab_a, kuielab_a_bass"):
        parse_upstream("mdxnet-onnx:nonexistent_model")


def test_onnx_provider_falls_back_to_cpu(tmp_path):
    path = sidecar(scale_onnx(tmp_path / "id.onnx", 257, 32), SMALL)
    up = load_mdxnet_onnx([(path, None)], "id", device="cuda")  # no CUDA build here: the CPU provider runs it
    assert "CPUExecutionProvider" in up.networks[0].session.get_providers()
    assert np.isfinite(up.separate(noise(4000))["vocals"].numpy()).all()


def test_a_file_with_a_catalogued_sha256_gets_the_catalog_framing(tmp_path, monkeypatch):
    """A downloaded copy of a known network, under any name and with no sidecar, runs with the catalog's numbers."""
    from mdxmix.upstream import catalog
    from mdxmix.weightfiles import file_sha256

    path = scale_onnx(tmp_path / "renamed.onnx", 257, 32, gain=0.5)
    entry = catalog.KnownModel("fake_net", "mdxnet-onnx", ("bass",),
                               (catalog.KnownFile("fake_bass.onnx", file_sha256(path)),),
                               {"networks": {"fake_bass.onnx": {**SMALL, "target": "bass", "compensate": 2.0}}})
    monkeypatch.setitem(catalog.KNOWN_MODELS, "fake_net", entry)
    spec, folder = parse_upstream(f"mdxnet-onnx:{path}:bass")
    x = noise(6000)
    assert torch.allclose(build_upstream(spec, [folder]).separate(x)["bass"], x, atol=1e-4)  # 0.5 x 2.0
