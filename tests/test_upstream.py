"""Upstream adapters: local Demucs packages, refusal of foreign classes, offline pretrained names."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mdxmix.errors import UpstreamError
from mdxmix.stems import STEMS
from mdxmix.upstream import build_upstream
from mdxmix.upstream.base import UpstreamSpec, channel_names
from mdxmix.upstream.demucs_adapter import DemucsUpstream, load_local_demucs
from mdxmix.upstream.demucs_package import load_demucs_package

from conftest import tiny_demucs


def test_demucs_package_round_trip_is_exact(model_dir):
    model = tiny_demucs().eval()
    loaded = load_demucs_package(model_dir / "tiny_hdemucs.safetensors")
    x = torch.randn(1, 2, 44100)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_local_demucs_adapter_gives_every_stem_at_input_length(model_dir):
    upstream = load_local_demucs(model_dir / "tiny_hdemucs.safetensors", "tiny")
    assert upstream.stems == STEMS and upstream.sample_rate == 44100
    stems = upstream.separate(torch.randn(2, 30001) * 0.1)
    assert set(stems) == set(STEMS)
    assert all(s.shape == (2, 30001) and torch.isfinite(s).all() for s in stems.values())


def test_separating_never_moves_the_model_so_threads_can_share_it(model_dir, monkeypatch):
    """`Module.to` empties an LSTM's flat-weight references for a moment; demucs' `apply_model`
    calls it on every call, and a second thread's forward on the same model then failed
    (`mdxmix train -j 2`: "zip() argument 2 is longer than argument 1", in torch's rnn.py)."""
    from demucs.apply import BagOfModels

    single = load_local_demucs(model_dir / "tiny_hdemucs.safetensors", "tiny")
    bag = DemucsUpstream(BagOfModels([tiny_demucs(), load_demucs_package(model_dir / "tiny_hdemucs.safetensors")]), "bag")
    moves = []
    original = torch.nn.Module._apply

    def spy(module, fn, recurse=True):
        moves.append(type(module).__name__)
        return original(module, fn, recurse)

    monkeypatch.setattr(torch.nn.Module, "_apply", spy)
    for upstream in (single, bag):
        upstream.separate(torch.randn(2, 44100 * 5) * 0.1)
    assert moves == []
    assert any(isinstance(m, torch.nn.LSTM) for m in single.model.modules())  # the case that failed


def test_a_bag_is_weighted_per_stem_as_demucs_does_it(model_dir):
    from demucs.apply import BagOfModels, apply_model

    models = [tiny_demucs(), load_demucs_package(model_dir / "tiny_hdemucs.safetensors")]
    torch.nn.init.normal_(next(models[0].parameters()), std=0.5)  # two different members
    bag = BagOfModels(models, [[1.0, 0.5, 1.0, 0.2], [0.3, 1.0, 1.0, 1.0]])
    mix = torch.randn(1, 2, 44100 * 9 + 17) * 0.1
    with torch.no_grad():
        reference = apply_model(bag, mix, shifts=0, split=True, overlap=0.25, progress=False)
        ours = DemucsUpstream(bag, "bag")._apply_model(mix)
    torch.testing.assert_close(ours, reference, atol=0, rtol=0)


def test_build_upstream_checks_hash_and_stems(model_dir):
    good = UpstreamSpec("demucs-file", "tiny_hdemucs.safetensors", ("vocals",))
    assert build_upstream(good, [model_dir]).name == good.id
    with pytest.raises(Exception, match="does not match the pinned"):
        build_upstream(UpstreamSpec("demucs-file", "tiny_hdemucs.safetensors", ("vocals",), sha256="0" * 64), [model_dir])
    with pytest.raises(UpstreamError, match="unknown family"):
        build_upstream(UpstreamSpec("spleeter", "x", ("vocals",)), [model_dir])


def test_package_naming_a_foreign_class_is_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"klass": "os.system", "args": "[]", "kwargs": json.dumps({})})
    with pytest.raises(UpstreamError, match="not a Demucs package"):
        load_demucs_package(path)


def test_spec_validation_and_channel_names():
    with pytest.raises(ValueError):
        UpstreamSpec("demucs", "htdemucs", ("piano",))
    with pytest.raises(ValueError):
        UpstreamSpec("demucs", "htdemucs", ("vocals", "vocals"))
    names = channel_names([UpstreamSpec("demucs", "mdx", ("bass", "vocals"))])
    assert names == ["mixture.L", "mixture.R", "demucs:mdx/bass.L", "demucs:mdx/bass.R", "demucs:mdx/vocals.L", "demucs:mdx/vocals.R"]


def test_pretrained_demucs_offline_says_what_is_missing(tmp_path):
    code = (
        "from mdxmix.upstream.demucs_adapter import load_pretrained_demucs\n"
        "from mdxmix.errors import OfflineError\n"
        "try:\n    load_pretrained_demucs('htdemucs_ft')\nexcept OfflineError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "Demucs model 'htdemucs_ft' is not in the Hugging Face cache" in out
    assert "hf download adefossez/HTDemucs-ft" in out
