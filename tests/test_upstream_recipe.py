"""recipes/upstreams: a training run that is stopped and rerun continues exactly where it
stopped, keeps the best file by validation, and trains only on upstream-train songs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes" / "upstreams"))

from split_corpus import split  # noqa: E402

TRAIN = REPO / "recipes" / "upstreams" / "train_upstream.py"
SR = 44100
STEMS = ("drums", "bass", "other", "vocals")


def _song(folder: Path, seed: int, seconds: float = 3.0) -> None:
    """Four distinguishable stems: clicks, a low sine, a chord, a vibrato tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clicks = (rng.random(t.size) < 0.002) * rng.normal(0, 0.5, t.size)
    parts = {"drums": clicks, "bass": 0.3 * np.sin(2 * np.pi * 55 * (1 + seed % 3) * t),
             "other": 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (330, 415, 494)),
             "vocals": 0.2 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))}
    folder.mkdir(parents=True)
    mixture = 0
    for name, x in parts.items():
        stereo = np.stack([x, 0.8 * x], 1).astype(np.float32)
        sf.write(folder / f"{name}.wav", stereo, SR, subtype="FLOAT")
        mixture = mixture + stereo
    sf.write(folder / "mixture.wav", mixture, SR, subtype="FLOAT")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i in range(3):
        _song(root / "train" / f"{i:04d} - test", i)
    _song(root / "valid" / "0000 - valid", 10)
    return root


def _train(corpus: Path, out: Path, steps: int, family: str = "spectral", extra: tuple[str, ...] = ()) -> list[dict]:
    cmd = [sys.executable, str(TRAIN), family, "--corpus", str(corpus), "--out", str(out),
           "--steps", str(steps), "--minutes", "10000", "--batch", "2", "--min-seconds", "0.5",
           "--max-seconds", "1", "--n-fft", "512", "--hop", "128", "--hidden", "16", "--layers", "1",
           "--valid-every", "0.0001", "--valid-crops", "2", "--valid-seconds", "1", "--log-every", "1", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return [json.loads(line) for line in (out.with_name(out.name + ".run") / "log.jsonl").read_text().splitlines()]


def test_split_follows_song_numbers_not_positions() -> None:
    songs = ["0000 - a", "0002 - c", "0003 - d", "0005 - f", "0006 - g"]  # 0001 and 0004 missing
    assert split(songs) == (["0000 - a", "0002 - c", "0006 - g"], ["0003 - d", "0005 - f"])


def test_stopped_run_continues_to_the_same_weights(corpus: Path, tmp_path: Path) -> None:
    whole = _train(corpus, tmp_path / "a" / "m.safetensors", 8)
    _train(corpus, tmp_path / "b" / "m.safetensors", 5)
    resumed = _train(corpus, tmp_path / "b" / "m.safetensors", 8)
    assert whole[0]["event"] == "start" and whole[0]["songs"] == 2  # 0000 and 0002 only
    events = [r for r in resumed if "event" in r]
    assert [e["event"] for e in events] == ["start", "done", "resume", "done"]
    assert events[2]["step"] == 5 and events[3]["step"] == 8
    losses = lambda log: [r["loss"] for r in log if "loss" in r]  # noqa: E731
    assert losses(resumed) == losses(whole)  # steps 1-5 then 6-8 equal the uninterrupted 1-8
    run_a, run_b = tmp_path / "a" / "m.safetensors.run", tmp_path / "b" / "m.safetensors.run"
    a, b = load_file(run_a / "last.safetensors"), load_file(run_b / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights


def test_out_is_the_best_validated_file(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    log = _train(corpus, out, 6)
    valid = [r for r in log if "valid_l1" in r]
    assert len(valid) >= 2 and valid[-1]["best"] == min(r["valid_l1"] for r in valid)
    assert out.read_bytes() == (out.with_name(out.name + ".run") / "best.safetensors").read_bytes()


def test_stopped_umx_run_continues_to_the_same_weights(corpus: Path, tmp_path: Path) -> None:
    """The Open-Unmix-style family resumes bit-identically too (BatchNorm statistics, LSTM dropout RNG)."""
    extra = ("--layers", "2", "--dropout", "0.4", "--bandwidth", "8000")
    whole = _train(corpus, tmp_path / "a" / "u.safetensors", 4, "umx", extra)
    _train(corpus, tmp_path / "b" / "u.safetensors", 2, "umx", extra)
    resumed = _train(corpus, tmp_path / "b" / "u.safetensors", 4, "umx", extra)
    losses = lambda log: [r["loss"] for r in log if "loss" in r]  # noqa: E731
    assert len(losses(whole)) == 4 and losses(resumed) == losses(whole)
    a = load_file(tmp_path / "a" / "u.safetensors.run" / "last.safetensors")
    b = load_file(tmp_path / "b" / "u.safetensors.run" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any("running_var" in k for k in a)
    assert a["targets.vocals.input_scale"].std() > 0  # started from the data's statistics, not ones
    from mdxmix.upstream.umx import load_umx

    model = load_umx(tmp_path / "a" / "u.safetensors")
    assert (model.config.layers, model.config.hidden, model.config.max_bin) == (2, 16, 93)


def test_bf16_autocast_trains_like_float32(corpus: Path, tmp_path: Path) -> None:
    """--bf16 runs the forward in bfloat16: the same batches give losses within bf16 rounding of
    float32's, the weights really differ (the flag is not ignored) and stay float32 in the file."""
    fp32 = _train(corpus, tmp_path / "f" / "m.safetensors", 3)
    bf16 = _train(corpus, tmp_path / "b" / "m.safetensors", 3, extra=("--bf16",))
    losses = lambda log: [r["loss"] for r in log if "loss" in r]  # noqa: E731
    assert len(losses(bf16)) == 3
    assert all(abs(a - b) <= 0.02 * a for a, b in zip(losses(fp32), losses(bf16)))
    a = load_file(tmp_path / "f" / "m.safetensors.run" / "last.safetensors")
    b = load_file(tmp_path / "b" / "m.safetensors.run" / "last.safetensors")
    assert all(v.dtype == torch.float32 for v in b.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_mixer_layout_links_odd_train_songs_and_the_first_valid_songs(tmp_path: Path) -> None:
    from split_corpus import write_layout

    corpus = tmp_path / "corpus"
    for name in ("train/0000 - a", "train/0001 - b", "train/0003 - d", "valid/0000 - v", "valid/0001 - w"):
        _song(corpus / name, len(name), seconds=0.1)
    root, listing = tmp_path / "mix", tmp_path / "upstream.txt"
    upstream, mixer = write_layout(corpus, root, listing)
    assert upstream == ["0000 - a"] and mixer == ["0001 - b", "0003 - d"]
    assert sorted(p.name for p in (root / "train").iterdir()) == mixer
    assert (root / "valid").is_symlink() and len(list((root / "valid").iterdir())) == 2  # the whole split
    write_layout(corpus, root, listing, valid_songs=1)
    assert not (root / "valid").is_symlink() and [p.name for p in (root / "valid").iterdir()] == ["0000 - v"]
    assert (root / "valid" / "0000 - v" / "mixture.wav").is_file()
    assert listing.read_text() == "0000 - a\n"
    _, fewer = write_layout(corpus, root, listing, mixer_songs=1)  # the upstream list never shrinks
    assert fewer == ["0001 - b"] and [p.name for p in (root / "train").iterdir()] == fewer
    assert listing.read_text() == "0000 - a\n"


def test_a_run_that_is_training_cannot_be_started_twice(corpus: Path, tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "m.safetensors"
    run = out.with_name(out.name + ".run")
    run.mkdir()
    with open(run / "lock", "w") as held:  # as a training process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cmd = [sys.executable, str(TRAIN), "spectral", "--corpus", str(corpus), "--out", str(out), "--steps", "1"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "another process is training this run" in res.stderr
    assert not (run / "state.pt").exists()
    assert _train(corpus, out, 1)[-1]["event"] == "done"  # free again once the holder is gone


def test_solo_crops_hold_one_audible_stem(corpus: Path) -> None:
    from train_upstream import SILENT_POWER, CropSampler

    folders = sorted((corpus / "train").iterdir())

    def audible(crop: np.ndarray) -> int:
        return sum(float(np.mean(stem ** 2)) > SILENT_POWER for stem in crop)

    solo = CropSampler(folders, STEMS, np.random.default_rng(0), remix=0.5, solo=1.0)
    crops = [solo.crop(SR // 2) for _ in range(20)]
    assert all(audible(c) == 1 for c in crops)
    assert len({int(np.argmax([np.mean(s ** 2) for s in c])) for c in crops}) == 4  # every stem gets its turn
    mixture, target = solo.batch(2, SR // 2)
    assert torch.equal(mixture, target.sum(1))  # the mixture is the one stem left
    band = CropSampler(folders, STEMS, np.random.default_rng(0), remix=0.5)
    assert all(audible(band.crop(SR // 2)) == 4 for _ in range(5))  # without --solo: the whole band


def test_weighted_list_repeats_upstream_songs_with_expressive_leads(tmp_path: Path) -> None:
    from weighted_songs import weighted_list

    names = ["0000 - rock", "0001 - rock", "0002 - jazz", "0003 - jazz", "0004 - pop"]
    for name in names:
        _song(tmp_path / "train" / name, 0, seconds=0.1)
    leads = {"0002 - jazz": {"horn_lead": True}, "0003 - jazz": {"horn_lead": True}, "0004 - pop": {"synth_lead": False}}
    songs = [{"name": n, "split": "train", **({"expressive_leads": leads[n]} if n in leads else {})} for n in names]
    (tmp_path / "corpus.json").write_text(json.dumps({"songs": songs}))
    # odd numbers are the mixer's, a lead played straight counts once
    assert weighted_list(tmp_path, 3) == ["0000 - rock", "0002 - jazz", "0002 - jazz", "0002 - jazz", "0004 - pop"]
