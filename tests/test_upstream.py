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
from mdxmix.upstream.demucs_adapter import load_local_demucs
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
    assert "huggingface-cli download adefossez/HTDemucs-ft" in out
