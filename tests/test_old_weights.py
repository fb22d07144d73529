"""recipes/default/old_weights.py: earlier bundled generations from git history, checked against their pins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mdxmix.checkpoint import read_meta
from mdxmix.weightfiles import file_sha256

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "default"))
import old_weights  # noqa: E402


def _has_commit(rev: str) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True).returncode == 0


def test_the_v2_generation_comes_back_pinned_and_a_damaged_copy_is_replaced(tmp_path):
    gen = old_weights.GENERATIONS["v2"]
    if not _has_commit(gen.rev):
        pytest.skip(f"a shallow clone: commit {gen.rev} is not here")
    files = old_weights.fetch("v2", tmp_path)
    assert [f.name for f in files] == ["mdxmix-v2.safetensors", "hdemucs16-v2.safetensors", "spectral4-v2.safetensors",
                                       "spectral_vocals-v2.safetensors"]
    for spec in read_meta(files[0]).upstreams:
        assert file_sha256(tmp_path / spec.model) == spec.sha256
    damaged = tmp_path / "spectral4-v2.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    kept = files[1].stat().st_mtime_ns
    old_weights.fetch("v2", tmp_path)
    assert file_sha256(damaged) == read_meta(files[0]).upstreams[1].sha256  # rewritten
    assert files[1].stat().st_mtime_ns == kept  # a good copy is left alone
    assert not list(tmp_path.glob("*.part"))
