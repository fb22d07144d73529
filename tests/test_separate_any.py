"""Separating with any upstreams: stems other tools wrote, the agnostic mixer, the choice of mixer, --ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxmix.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from mdxmix.cli import main
from mdxmix.errors import UsageError
from mdxmix.mixer import AgnosticConfig, AgnosticMixer
from mdxmix.mixer.ensembles import ensemble_stems
from mdxmix.pipeline import Separator
from mdxmix.registry import Registry
from mdxmix.selection import choose_checkpoint
from mdxmix.stems import STEMS
from mdxmix.upstream.stem_files import StemFiles

from conftest import TINY_SEGMENT, synth_song

SECONDS = 2.0


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A song, two folders of 'other tools' stems for it (demucs and audio-separator naming), and an agnostic checkpoint."""
    root = tmp_path_factory.mktemp("byo")
    stems = synth_song(SECONDS, 5)
    mixture = sum(stems.values())
    sf.write(root / "my song.wav", mixture, 44100, subtype="FLOAT")
    for name, audio in stems.items():  # a 'demucs' with a little leakage of the next stem
        leak = stems[STEMS[(STEMS.index(name) + 1) % 4]]
        path = root / "out" / "htdemucs" / "my song" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio + 0.1 * leak, 44100, subtype="FLOAT")
    (root / "uvr").mkdir()
    sf.write(root / "uvr" / "my song_(Vocals)_model_x.wav", 0.9 * stems["vocals"], 44100, subtype="FLOAT")
    torch.manual_seed(3)
    mixer = AgnosticMixer(AgnosticConfig(segment=TINY_SEGMENT, folds=2**5, layers=1, width=32, token_hidden=16, channel_hidden=16))
    for head in (mixer.upstream_head, mixer.mixture_head):
        torch.nn.init.normal_(head.weight, std=0.02)
    save_checkpoint(root / "agnostic.safetensors", mixer, CheckpointMeta(mixer.kind, {}, []))
    return root, stems


def test_agnostic_mixer_mixes_stems_from_two_tools(song):
    root, stems = song
    folders = [StemFiles(root / "out" / "htdemucs"), StemFiles(root / "uvr")]
    separator = Separator(root / "agnostic.safetensors", device="cpu", stem_files=folders)
    out = separator.separate_file(root / "my song.wav")
    assert list(out) == list(STEMS) and all(v.shape == (2, int(SECONDS * 44100)) for v in out.values())
    swapped = Separator(root / "agnostic.safetensors", device="cpu", stem_files=folders[::-1]).separate_file(root / "my song.wav")
    for stem in STEMS:  # the order of the folders does not matter
        torch.testing.assert_close(swapped[stem], out[stem], atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="cannot be used with stdin"):
        list(separator.stream(torch.zeros(2, 1000)))


def test_ensemble_over_stems_from_folders(song):
    root, stems = song
    folders = [StemFiles(root / "out" / "htdemucs"), StemFiles(root / "uvr")]
    separator = Separator(root / "agnostic.safetensors", device="cpu", stem_files=folders, ensemble="wave_avg",
                          consistency="none")  # the rule itself, not made to add up
    assert separator.name == "ensemble-wave_avg"
    out = separator.separate_file(root / "my song.wav")
    demucs_vocals = sf.read(root / "out" / "htdemucs" / "my song" / "vocals.wav", dtype="float32")[0]
    expected = (demucs_vocals + 0.9 * stems["vocals"]) / 2
    np.testing.assert_allclose(out["vocals"].numpy().T, expected, atol=1e-5)
    demucs_bass = sf.read(root / "out" / "htdemucs" / "my song" / "bass.wav", dtype="float32")[0]
    np.testing.assert_allclose(out["bass"].numpy().T, demucs_bass, atol=1e-5)  # one estimate: itself


def test_ensemble_stems_fills_a_missing_stem_with_the_rest_of_the_mixture():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2 + 2 + 4, 5000)).astype(np.float32)  # mixture, one vocals-only, one drums+vocals
    y = ensemble_stems(x, (("vocals",), ("drums", "vocals")), "wave_avg")
    np.testing.assert_allclose(y[6:8], (x[2:4] + x[6:8]) / 2, atol=1e-6)
    np.testing.assert_allclose(y[0:2], x[4:6], atol=1e-6)
    rest = (x[0:2] - y[6:8] - y[0:2]) / 2
    np.testing.assert_allclose(y[2:4], rest, atol=1e-5)
    np.testing.assert_allclose(y[4:6], rest, atol=1e-5)


def _registry(root, entries: dict) -> Registry:
    (root / "registry.json").write_text(json.dumps({"format_version": 1, "default": None, "checkpoints": entries}))
    return Registry.load(root)


def test_a_checkpoint_for_the_exact_set_wins_else_the_agnostic_one(song, model_dir, tmp_path):
    root, _ = song
    exact = read_meta(model_dir / "tiny_mdx.safetensors").upstreams
    for name in ("tiny_mdx.safetensors",):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    (tmp_path / "agnostic.safetensors").write_bytes((root / "agnostic.safetensors").read_bytes())
    registry = _registry(tmp_path, {"mdx": {"file": "tiny_mdx.safetensors"}, "any": {"file": "agnostic.safetensors"}})
    choice = choose_checkpoint(list(exact), False, registry)
    assert choice.checkpoint == "mdx" and "exactly these" in choice.reason
    choice = choose_checkpoint(list(exact), True, registry)  # with stem folders the set is new
    assert choice.checkpoint == "any" and "agnostic" in choice.reason
    assert choice.ensemble is None
    lonely = _registry(tmp_path, {"mdx": {"file": "tiny_mdx.safetensors"}})
    choice = choose_checkpoint([], True, lonely)  # no mixer for the set: the fixed rule, said so
    assert choice.ensemble == "wave_avg" and choice.checkpoint == "default"
    assert "no agnostic mixer is installed; combining them with --ensemble wave_avg" in choice.reason


def test_stems_from_without_any_agnostic_mixer_averages_the_folders(song, model_dir, tmp_path, monkeypatch, capsys):
    """A musician with two tools' stems and only a default for its own upstreams gets the average, told in one line."""
    root, stems = song
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "tiny_mdx.safetensors").write_bytes((model_dir / "tiny_mdx.safetensors").read_bytes())
    (weights / "registry.json").write_text(json.dumps(
        {"format_version": 1, "default": "mdx", "checkpoints": {"mdx": {"file": "tiny_mdx.safetensors"}}}))
    monkeypatch.setenv("MDXMIX_WEIGHTS", str(weights))
    capsys.readouterr()
    args = [str(root / "my song.wav"), "-o", str(tmp_path / "sep"), "--no-cache", "--consistency", "none",
            "--stems-from", str(root / "out" / "htdemucs"), "--stems-from", str(root / "uvr")]
    assert main(args) == 0
    assert "combining them with --ensemble wave_avg" in capsys.readouterr().err
    vocals = sf.read(tmp_path / "sep" / "ensemble-wave_avg" / "my song" / "vocals.wav", dtype="float32")[0]
    demucs_vocals = sf.read(root / "out" / "htdemucs" / "my song" / "vocals.wav", dtype="float32")[0]
    np.testing.assert_allclose(vocals, (demucs_vocals + 0.9 * stems["vocals"]) / 2, atol=1e-4)


def test_command_line_stems_from_and_its_one_line_errors(song, tmp_path, capsys):
    root, _ = song
    args = [str(root / "my song.wav"), "-o", str(tmp_path / "sep"), "-c", str(root / "agnostic.safetensors"), "--no-cache",
            "--stems-from", str(root / "out" / "htdemucs"), "--stems-from", str(root / "uvr")]
    assert main(args) == 0
    written = sorted(p.name for p in (tmp_path / "sep").rglob("*.wav"))
    assert written == sorted(f"{s}.wav" for s in STEMS)
    short = tmp_path / "short"
    (short / "my song").mkdir(parents=True)
    sf.write(short / "my song" / "vocals.wav", np.zeros((4410, 2), np.float32), 44100)
    capsys.readouterr()
    assert main([*args[:6], "--stems-from", str(short), "-o", str(tmp_path / "sep2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0.10 s long, the song is 2.00 s" in err[0]
    assert not (tmp_path / "sep2").exists() or not list((tmp_path / "sep2").rglob("*.wav"))
    assert main([*args, "--ensemble", "wave_loudest"]) == 2
    assert "--ensemble 'wave_loudest': use one of" in capsys.readouterr().err


def test_models_says_which_mixers_take_which_upstreams(song, model_dir, tmp_path, monkeypatch):
    from mdxmix.models_listing import list_models

    root, _ = song
    (tmp_path / "agnostic.safetensors").write_bytes((root / "agnostic.safetensors").read_bytes())
    (tmp_path / "tiny_mdx.safetensors").write_bytes((model_dir / "tiny_mdx.safetensors").read_bytes())
    _registry(tmp_path, {"any": {"file": "agnostic.safetensors"}, "mdx": {"file": "tiny_mdx.safetensors"}})
    monkeypatch.setenv("MDXMIX_WEIGHTS", str(tmp_path))
    takes = {row["name"]: (row["mixer"], row["takes"]) for row in list_models()}
    assert takes == {"any": ("agnostic", "any upstreams"), "mdx": ("mdx_mixer", "exactly these upstreams")}


def test_eval_scores_stems_from_folders_and_an_agnostic_mixer_over_them(song, tiny_dataset, tmp_path, capsys):
    root, _ = song
    track = tiny_dataset / "test" / "song04"
    for name, gain in (("good", 0.9), ("poor", 0.5)):
        for stem in STEMS:
            audio = sf.read(track / f"{stem}.wav", dtype="float32")[0]
            path = tmp_path / name / "song04" / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, gain * audio, 44100, subtype="FLOAT")
    capsys.readouterr()
    code = main(["eval", "--data", str(tiny_dataset), "--split", "test", "--stems-from", f"g={tmp_path / 'good'}",
                 "--stems-from", str(tmp_path / "poor"), "--checkpoint", str(root / "agnostic.safetensors"),
                 "--rules", "wave_avg", "--metric", "global", "-j", "1", "--json", "--out", str(tmp_path / "results")])
    assert code == 0
    # every system said what it is for the journal of finished tracks, which is gone once the results are written
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["results.csv", "results.json", "results.md"]
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    for system in ("g", "poor", "ensemble:wave_avg", "agnostic"):
        assert f'"{system}"' in text, system


def test_eval_with_upstream_runs_separators_that_an_agnostic_mixer_mixes(tiny_dataset, model_dir, tmp_path, capsys):
    """--with-upstream: the upstream (computed through the cache) is a baseline row, and the agnostic
    checkpoint mixes it instead of its own set: a fresh agnostic mixer is the per-stem average, so over
    this one upstream (no consistency step) it scores what the upstream scores."""
    mixer = AgnosticMixer(AgnosticConfig(segment=TINY_SEGMENT, folds=2**5, layers=1, width=32, token_hidden=16, channel_hidden=16))
    save_checkpoint(tmp_path / "fresh.safetensors", mixer, CheckpointMeta(mixer.kind, {}, []))
    upstream = f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"
    capsys.readouterr()
    code = main(["eval", "--data", str(tiny_dataset), "--split", "test", "--with-upstream", upstream,
                 "--checkpoint", str(tmp_path / "fresh.safetensors"), "--consistency", "none", "--rules", "wave_avg",
                 "--metric", "global", "--cache-dir", str(tmp_path / "cache"), "-j", "1", "--json",
                 "--out", str(tmp_path / "results")])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["summary"]["global"]
    assert {"tiny_hdemucs", "ensemble:wave_avg", "fresh [none]"} <= set(rows)
    for stem in STEMS:
        assert rows["fresh [none]"][stem] == pytest.approx(rows["tiny_hdemucs"][stem], abs=1e-4)
    assert any((tmp_path / "cache").rglob("*.npy"))  # the upstream's stems went through the cache
    code = main(["eval", "--data", str(tiny_dataset), "--with-upstream", upstream, "--with-upstream", upstream])
    assert code == 2 and "named twice" in capsys.readouterr().err


def test_separate_and_train_refuse_an_upstream_named_twice(song, model_dir, tiny_dataset, tmp_path, capsys):
    """One rule for every command (`parse_upstreams`; eval: the test above): the same model twice is a
    usage error, exit 2, before any audio is read or any stems are computed."""
    root, _ = song
    upstream = f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"
    for args in (
        [str(root / "my song.wav"), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
         "-u", upstream, "-u", upstream],
        ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--kind", "agnostic",
         "--cache-dir", str(tmp_path / "cache"), "--upstream", upstream, "--upstream", upstream],
    ):
        assert main(args) == 2
        assert "an upstream is named twice" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
