"""recipes/corpus: render 2 short songs and check layout, format, sums, determinism.

Needs the Debian sound sources (``bash recipes/corpus/install-deps.sh``); a missing
source fails the test loudly instead of skipping it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO / "recipes" / "corpus" / "render.py"
STEMS = ("drums", "bass", "other", "vocals")
DURATION = 10.0


def _render(root: Path, seed: int, split: str = "train") -> None:
    cmd = [sys.executable, str(RENDER), "--root", str(root), "--songs", "2",
           "--duration", str(DURATION), "--split", split, "--seed", str(seed), "--jobs", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def _songs(root: Path, split: str = "train") -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("corpus")
    out = {"a": base / "a", "b": base / "b", "c": base / "c"}
    _render(out["a"], seed=0)
    _render(out["b"], seed=0)
    _render(out["c"], seed=1, split="test")  # also exercises the unseen pool
    return out


def test_layout_and_format(runs: dict[str, Path]) -> None:
    songs = _songs(runs["a"])
    assert len(songs) == 2
    for song in songs:
        names = sorted(p.name for p in song.iterdir())
        assert names == sorted(["mixture.wav"] + [f"{s}.wav" for s in STEMS])
        for f in song.iterdir():
            info = sf.info(str(f))
            assert info.samplerate == 44100
            assert info.channels == 2
            assert info.subtype == "FLOAT"
            assert info.frames == int(DURATION * 44100)
    manifest = json.loads((runs["a"] / "corpus.json").read_text())
    assert manifest["seed"] == 0 and len(manifest["songs"]) == 2
    for s in manifest["songs"]:
        assert 70 <= s["tempo_bpm"] <= 180
        assert set(s["sources"]) == set(STEMS)


def test_stems_sum_to_mixture_and_are_audible(runs: dict[str, Path]) -> None:
    for song in _songs(runs["a"]):
        mix, _ = sf.read(str(song / "mixture.wav"), dtype="float32")
        total = np.zeros(mix.shape, dtype=np.float64)
        for s in STEMS:
            x, _ = sf.read(str(song / f"{s}.wav"), dtype="float32")
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
            assert rms > 3e-3, f"{song.name}/{s} is (nearly) silent: rms={rms}"
            # audible over the whole song, not only in one spot: every 2 s window has sound
            win = x[: len(x) // 88200 * 88200].reshape(-1, 88200, 2)
            assert np.all(np.sqrt(np.mean(win ** 2, axis=(1, 2))) > 1e-4), f"{s} gaps"
            total += x
        assert np.max(np.abs(total - mix)) < 1e-6
        assert np.max(np.abs(mix)) <= 1.0  # scaled song, no clipping


def test_same_seed_same_bytes(runs: dict[str, Path]) -> None:
    da, db = _digest(runs["a"]), _digest(runs["b"])
    assert len(da) == 10 and da == db


def test_different_seed_different_songs(runs: dict[str, Path]) -> None:
    for sa, sc in zip(_songs(runs["a"]), _songs(runs["c"], "test")):
        a, _ = sf.read(str(sa / "mixture.wav"), dtype="float32")
        c, _ = sf.read(str(sc / "mixture.wav"), dtype="float32")
        corr = float(np.sum(a * c) / np.sqrt(np.sum(a * a) * np.sum(c * c)))
        assert abs(corr) < 0.5


def test_test_split_sources_are_unseen() -> None:
    sys.path.insert(0, str(RENDER.parent))
    import sources

    sources.check_available()
    sources.check_disjoint()
    seen = {s.path for s in sources.SOUNDFONTS["seen"]}
    assert not seen & {s.path for s in sources.SOUNDFONTS["unseen"]}
