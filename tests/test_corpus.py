"""recipes/corpus: render short songs (v1 and v2) and check layout, format, sums,
determinism, loudness and the unseen test pool; v1's bytes are pinned.

Needs the Debian sound sources and the recipe's PyPI packages
(``bash recipes/corpus/install-deps.sh``); a missing source fails the test loudly
instead of skipping it.
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
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
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


# SHA-256 of the v1 songs the ``runs`` fixture renders, taken with the v1 code before
# corpus v2 was added (commit 6de8e4d): v1 must keep rendering the frozen corpus.
V1_PINNED = {
    "a": {
        "train/0000 - ballad Em 70bpm/bass.wav": "aa3e671e72fb507836be9ebc45f346d96bda084f7af36c3b73252230e710d6e2",
        "train/0000 - ballad Em 70bpm/drums.wav": "961c0fe9818fb3cc2949fa7e17046285b17adb74719a0ffaf0905198b0ccb447",
        "train/0000 - ballad Em 70bpm/mixture.wav": "630d53810685e7f44cdc53599dae27be5a218482ea793ee2d4723ebaec4afbe6",
        "train/0000 - ballad Em 70bpm/other.wav": "4b0fe02ea1ef453d31195956408313be0e18da9539f6b725b5a5ca94d49a2c3f",
        "train/0000 - ballad Em 70bpm/vocals.wav": "dd27044f649c27c5b24e3e326220b6a3a7d3fd2ac4a4aefe23b562da8bdbd68b",
        "train/0001 - hiphop F 83bpm/bass.wav": "f69573b2d70cdbd09db33336351f5b538bf33737e14c62bc7063aa769af82ae5",
        "train/0001 - hiphop F 83bpm/drums.wav": "e71c81a171424c6f65a313177bead61eaae62cbc249db518b2489c06af445d66",
        "train/0001 - hiphop F 83bpm/mixture.wav": "76659a01843b9629d1a235703d05fc01f4983d1afc0ea7cbc45b0facd38ccbd0",
        "train/0001 - hiphop F 83bpm/other.wav": "0343a168025c70e1e7102510d7fa078d579baf7090e3b4b46b6eabe9c20a1b0d",
        "train/0001 - hiphop F 83bpm/vocals.wav": "30fecb4720bf274f14dac5e3321d998964b061de5a2cc890a64a856c90962e88",
    },
    "c": {
        "test/0000 - shuffle Eb 114bpm/bass.wav": "82d5f2df5e9f4a24585b61eb51ee6fc020cade6b55d81d2b4984e5b3ce28e14e",
        "test/0000 - shuffle Eb 114bpm/drums.wav": "2e0f1bfa5c6490244d340a55318d857dd31d9a5ebd7f623ac446af267219f9cc",
        "test/0000 - shuffle Eb 114bpm/mixture.wav": "4c6bd06d3d2a3df6f1f637f00bea8bea7a45c5aa583ee0cfaca51c17dec17635",
        "test/0000 - shuffle Eb 114bpm/other.wav": "aad474f3ecb508b31b51586ed2f33186eca349d2289f0b3904b6ac4a9a263a7d",
        "test/0000 - shuffle Eb 114bpm/vocals.wav": "506d022caa546043e44eade8210419112bb0628ad4a8d0df4998829e890b6ce6",
        "test/0001 - disco A 114bpm/bass.wav": "e4ed2ea51ac2601dd000c8dedb84e1dcccf66e545451f3537baec08f2d123beb",
        "test/0001 - disco A 114bpm/drums.wav": "71ef6db2f8dae1adecd8e1ad5289b9a114dd3690604b8abb23ae8ccb551e5e01",
        "test/0001 - disco A 114bpm/mixture.wav": "010a74315b4c69e4380b6ddab25e45f38ecbfd609682951e1682110e222bbe3f",
        "test/0001 - disco A 114bpm/other.wav": "bfee59ada3c4f0818970ca75cd8f6aead1910723cbdb753b430fe87e0d4b21c2",
        "test/0001 - disco A 114bpm/vocals.wav": "dec2d0aafbd17e6d0c437e0eb0e27585fe475d6c46256f563efd2a96e5a4bdc9",
    },
}


def test_v1_output_is_unchanged(runs: dict[str, Path]) -> None:
    """Default (v1) renders are byte-identical to the renders made before v2 existed."""
    for key, pinned in V1_PINNED.items():
        assert _digest(runs[key]) == pinned


def test_test_split_sources_are_unseen() -> None:
    sys.path.insert(0, str(RENDER.parent))
    import sources

    sources.check_available()
    sources.check_disjoint()
    seen = {s.path for s in sources.SOUNDFONTS["seen"]}
    assert not seen & {s.path for s in sources.SOUNDFONTS["unseen"]}


# ------------------------------------------------------------------------------ corpus v2
V2_DURATION = 6.0


def _render_v2(root: Path, seed: int, split: str, jobs: int, songs: int = 2) -> str:
    cmd = [sys.executable, str(RENDER), "--version", "2", "--root", str(root), "--songs",
           str(songs), "--duration", str(V2_DURATION), "--split", split, "--seed", str(seed),
           "--jobs", str(jobs)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def runs_v2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("corpus_v2")
    out = {"a": base / "a", "b": base / "b", "t": base / "t"}
    _render_v2(out["a"], 0, "train", jobs=2)
    _render_v2(out["b"], 0, "train", jobs=1)  # one worker renders both: no carried state
    _render_v2(out["t"], 3, "test", jobs=2)
    return out


def test_v2_same_seed_same_bytes_whatever_the_workers(runs_v2: dict[str, Path]) -> None:
    da, db = _digest(runs_v2["a"]), _digest(runs_v2["b"])
    assert len(da) == 10 and da == db


def test_v2_stems_add_up_and_are_audible(runs_v2: dict[str, Path]) -> None:
    for root, split in ((runs_v2["a"], "train"), (runs_v2["t"], "test")):
        for song in _songs(root, split):
            assert sf.info(str(song / "mixture.wav")).subtype == "PCM_16"
            mix, sr = sf.read(str(song / "mixture.wav"), dtype="int16")
            assert sr == 44100 and mix.shape == (int(V2_DURATION * 44100), 2)
            total = np.zeros(mix.shape, dtype=np.int32)
            for s in STEMS:
                x, _ = sf.read(str(song / f"{s}.wav"), dtype="int16")
                rms = float(np.sqrt(np.mean((x / 32768.0) ** 2)))
                assert rms > 1e-3, f"{song.name}/{s} is (nearly) silent: rms={rms}"
                total += x
            # 16-bit stems, the mixture their integer sum: exact, and the master never clips
            assert np.array_equal(total, mix)
            assert np.max(np.abs(mix)) < 32767


def test_v2_loudness_within_the_spread(runs_v2: dict[str, Path]) -> None:
    """Masters reach their drawn loudness target, inside the style's range (BS.1770)."""
    import pyloudnorm

    sys.path.insert(0, str(RENDER.parent))
    from v2fx import loudness_range

    for root in (runs_v2["a"], runs_v2["t"]):
        manifest = json.loads((root / "corpus.json").read_text())
        assert manifest["version"] == 2
        for entry in manifest["songs"]:
            mix, sr = sf.read(str(root / entry["split"] / entry["name"] / "mixture.wav"))
            lufs = pyloudnorm.Meter(sr).integrated_loudness(mix)
            lo, hi = loudness_range(entry["style"])
            m = entry["mix"]["master"]
            assert lo <= m["target_lufs"] <= hi
            assert abs(lufs - m["lufs"]) < 0.05  # the manifest tells the truth
            assert lo - 1.5 <= lufs <= hi + 0.5, (entry["name"], lufs, lo, hi)


def test_v2_test_split_uses_only_unseen_sources(runs_v2: dict[str, Path]) -> None:
    sys.path.insert(0, str(RENDER.parent))
    import sources
    from v2chorale import chorales

    seen_fonts = {s.name for s in sources.SOUNDFONTS["seen"]}
    seen_kits = {k.name for k in sources.HYDROGEN["seen"]}
    seen_voices = {v.name for v in sources.voices_v2("train")}
    seen_pieces = set(chorales("seen"))
    manifest = json.loads((runs_v2["t"] / "corpus.json").read_text())
    for entry in manifest["songs"]:
        src = entry["sources"]
        fonts = {p["soundfont"] for p in src["bass"] + src["other"] + src["vocals"]["choir"]}
        assert not fonts & seen_fonts
        assert src["drums"]["kit"].split(":")[0] not in seen_fonts | seen_kits
        assert src["vocals"]["voice"] not in seen_voices
        assert entry["piece"] is None or entry["piece"] not in seen_pieces
    sources.check_disjoint({"seen": chorales("seen"), "unseen": chorales("unseen")})
    with pytest.raises(RuntimeError, match="both sides"):
        sources.check_disjoint({"seen": ["bwv1.6.mxl"], "unseen": ["bwv1.6.mxl"]})


def test_v2_rerun_resumes(runs_v2: dict[str, Path]) -> None:
    """The same command again skips finished songs and leaves their files alone."""
    root = runs_v2["a"]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")}
    out = _render_v2(root, 0, "train", jobs=2)
    assert "resuming: 2 of 2 songs already rendered" in out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")} == before


def test_v2_expressive_leads_from_an_index_leave_earlier_songs_unchanged(runs_v2: dict[str, Path], tmp_path: Path) -> None:
    cmd = [sys.executable, str(RENDER), "--version", "2", "--root", str(tmp_path), "--songs", "2", "--duration",
           str(V2_DURATION), "--split", "train", "--seed", "0", "--jobs", "2", "--expressive-from", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    plain, expressive = _songs(runs_v2["a"]), _songs(tmp_path)
    assert _digest(plain[0]) == _digest(expressive[0])  # song 0: before the index, byte for byte
    songs = json.loads((tmp_path / "corpus.json").read_text())["songs"]
    assert "expressive_leads" not in songs[0] and songs[1]["expressive_leads"] == {"gtr_lead": True}  # a rock song
    other = [sf.read(song / "other.wav")[0] for song in (plain[1], expressive[1])]
    assert not np.array_equal(*other)  # its bent lead guitar is in the other stem


def test_v2_bus_envelope_never_reduces_less_than_the_limiter() -> None:
    """The smoothed bus gain is at most the true per-sample gain (peaks stay limited)."""
    from hypothesis import given, settings, strategies as st

    sys.path.insert(0, str(RENDER.parent))
    from v2fx import _gain_envelope

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 2 ** 32 - 1), st.integers(200, 6000), st.floats(0.001, 0.1))
    def check(seed: int, n: int, step: float) -> None:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 2)).astype(np.float32)
        g = np.clip(1 - np.abs(np.cumsum(rng.normal(0, step, n))), 0.05, 1).astype(np.float32)
        e = _gain_envelope(x, x * g[:, None])
        assert e.shape == (n,)
        assert np.all(e <= g * (1 + 1e-5))

    check()


def test_float_songs_convert_to_16_bit_sets_once(tmp_path: Path) -> None:
    """to_pcm16.py: rounded stems, mixture = their integer sum; a second run changes nothing."""
    sys.path.insert(0, str(RENDER.parent))
    from wavio import write_float32

    song = tmp_path / "train" / "0000 - x"
    song.mkdir(parents=True)
    rng = np.random.default_rng(0)
    stems = {s: (0.2 * rng.standard_normal((4410, 2))).astype(np.float32) for s in STEMS}
    for s, x in stems.items():
        write_float32(str(song / f"{s}.wav"), x, 44100)
    write_float32(str(song / "mixture.wav"), sum(stems.values()), 44100)
    convert = [sys.executable, str(RENDER.parent / "to_pcm16.py"), str(tmp_path)]
    assert "1 converted" in subprocess.run(convert, capture_output=True, text=True, check=True).stdout
    first = _digest(tmp_path)
    assert "0 converted" in subprocess.run(convert, capture_output=True, text=True, check=True).stdout
    assert _digest(tmp_path) == first
    ints = {s: sf.read(str(song / f"{s}.wav"), dtype="int16")[0] for s in (*STEMS, "mixture")}
    for s in STEMS:  # each stem rounded to the nearest 16-bit step
        assert np.max(np.abs(ints[s] / 32768.0 - stems[s])) <= 0.5 / 32768 + 1e-9
    total = sum(ints[s].astype(np.int32) for s in STEMS)
    assert np.array_equal(np.clip(total, -32768, 32767), ints["mixture"])


def test_pitch_bend_moves_a_rendered_note_by_the_asked_semitones() -> None:
    sys.path.insert(0, str(REPO / "recipes" / "corpus"))
    from fluid import Note, synth_for
    from sources import SOUNDFONTS

    font = next(f for f in SOUNDFONTS["seen"] if f.name == "FluidR3_GM")
    synth, note = synth_for(font.path), [Note(69, 0.0, 1.5, 100)]  # A4, 440 Hz, on a flute

    def pitch(audio: np.ndarray) -> float:
        x = audio[int(0.3 * 44100): int(1.3 * 44100), 0] * np.hanning(44100)
        return float(np.argmax(np.abs(np.fft.rfft(x, 8 * 44100)))) / 8  # Hz, 1/8-Hz bins

    assert pitch(synth.render(note, 0, 73, 2.0)) == pytest.approx(440.0, rel=0.005)
    bent = synth.render(note, 0, 73, 2.0, bend=[(0.0, 2.0)], bend_range=4)
    assert pitch(bent) == pytest.approx(440.0 * 2 ** (2 / 12), rel=0.005)


def test_lead_expression_bends_slides_and_vibrates_within_range_and_only_leads() -> None:
    sys.path.insert(0, str(REPO / "recipes" / "corpus"))
    from fluid import Note
    from v2expression import RANGE, lead_bend

    line = [Note(64 + (k % 5), 0.5 * k, 0.46, 90) for k in range(40)]  # legato, 20 s
    curves = [lead_bend("gtr_lead", line, np.random.default_rng(seed)) for seed in range(10)]
    assert lead_bend("gtr_rhythm", line, np.random.default_rng(0)) == []  # chords are never bent
    assert lead_bend("gtr_lead", line, np.random.default_rng(3)) == curves[3]  # seeded
    expressive = [c for c in curves if c]
    assert 5 <= len(expressive) <= 10  # a share of leads is played straight
    values = np.array([v for c in expressive for _, v in c])
    assert np.abs(values).max() <= RANGE and (values < -0.9).any() and (values > 0.1).any()
    times = [t for t, _ in expressive[0]]
    assert times == sorted(times) and all(any(n.start <= t <= n.start + n.dur for n in line) for t in times)


def test_expressive_from_takes_an_index_for_every_split_or_for_one(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "recipes" / "corpus"))
    import v2render
    from render import expressive_indices

    assert expressive_indices(["205"]) == {"train": 205, "valid": 205, "test": 205}
    assert expressive_indices(["train:205", "valid:21"]) == {"train": 205, "valid": 21}
    with pytest.raises(SystemExit, match="SPLIT:INDEX"):
        expressive_indices(["tset:3"])
    jobs = v2render.plan(str(tmp_path), 0, {"valid": None}, 3, V2_DURATION, {"valid": 1})
    assert [j["expressive"] for j in jobs] == [False, True, True]
    assert not any(j["expressive"] for j in v2render.plan(str(tmp_path), 0, {"test": None}, 2, V2_DURATION, {"valid": 0}))
