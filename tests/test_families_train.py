"""The new families end to end: `mdxmix train` with an MDX-Net ONNX and a RoFormer upstream, then separation."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("bs_roformer")

from test_mdxnet_onnx import scale_onnx  # noqa: E402
from test_roformer import HOP, msst_yaml  # noqa: E402

from mdxmix.checkpoint import read_meta  # noqa: E402
from mdxmix.pipeline import Separator  # noqa: E402
from mdxmix.stems import STEMS  # noqa: E402
from mdxmix.train.trainer import TrainConfig, train  # noqa: E402
from mdxmix.upstream.mdxnet_onnx import MDXNetParams, embed_params  # noqa: E402
from mdxmix.upstream.roformer import RoformerConfig, build_roformer, read_msst_yaml, save_roformer  # noqa: E402

TINY = dict(segment=4096, folds=16, layers=1, token_hidden=16, channel_hidden=16, shift=2048, device="cpu", progress=False)


@pytest.mark.filterwarnings("ignore:.*sdp_kernel:FutureWarning")
def test_train_and_separate_with_mdxnet_and_roformer_upstreams(tmp_path, tiny_dataset):
    models = tmp_path / "models"
    models.mkdir()
    raw = scale_onnx(tmp_path / "raw.onnx", 257, 256, gain=0.5)  # chunks of 0.74 s: a few per song
    onnx_file = embed_params(raw, models / "inst.onnx",
                             MDXNetParams(target="instrumental", n_fft=512, dim_f=257, dim_t=256, hop=128))
    yaml_text = msst_yaml("bs", stems=STEMS, target=None).replace(f"chunk_size: {HOP * 40}", f"chunk_size: {HOP * 400}")
    cfg = RoformerConfig.from_msst(read_msst_yaml(yaml_text))
    torch.manual_seed(0)
    rof = save_roformer(build_roformer(cfg), cfg, models / "bs4.safetensors")
    upstreams = [f"mdxnet-onnx:{onnx_file}:vocals", f"roformer:{rof}"]
    summary = train(TrainConfig(data=tiny_dataset, out=tmp_path / "run", upstreams=upstreams, cache_dir=tmp_path / "cache",
                                kind="conv1x1", epochs=1, steps_per_epoch=5, lr=3e-3, **TINY))
    meta = read_meta(summary.best)
    assert [(u.family, u.model, u.stems) for u in meta.upstreams] == [
        ("mdxnet-onnx", "inst.onnx", ("vocals",)), ("roformer", "bs4.safetensors", STEMS)]
    assert len(meta.channels) == 2 + 2 + 8
    # Separation finds both files beside the checkpoint (placed there by train) and runs them.
    stems = Separator(summary.best, device="cpu", cache=None).separate_file(tiny_dataset / "test" / "song04" / "mixture.wav")
    assert list(stems) == list(STEMS)
    assert all(s.shape == (2, 3 * 44100) and torch.isfinite(s).all() for s in stems.values())
