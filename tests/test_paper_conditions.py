"""The paper's conditions the code must honour (issue 13, items 10-16), one test or more each."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxmix.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from mdxmix.errors import CheckpointError, UserError
from mdxmix.evaluate import command as cmd
from mdxmix.evaluate.metrics import framewise_sdr, score_track, silent_estimates
from mdxmix.evaluate.report import Results, best_per_column, to_markdown
from mdxmix.evaluate.runner import score_systems
from mdxmix.mixer import PRESETS, Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig, apply_weights
from mdxmix.mixer.normalize import Normalizer
from mdxmix.musdb import MUSDB18_VALIDATION_SONGS, DatasetError, MusdbSplit, split_exists
from mdxmix.pipeline import BlockedInput, Separator
from mdxmix.stems import SAMPLE_RATE, STEMS
from mdxmix.train.command import train_command
from mdxmix.train.trainer import TrainConfig, average_weights, build_model, train
from mdxmix.upstream.base import UpstreamSpec, channel_names

SR = SAMPLE_RATE


# --- 10: the 1x1 conv trains on the preset's T --------------------------------------------

@pytest.mark.parametrize("preset", list(PRESETS))
def test_conv1x1_trains_on_the_presets_segment(tmp_path, preset):
    cfg = TrainConfig(data=tmp_path, out=tmp_path, upstreams=[], kind="conv1x1", preset=preset)
    assert build_model(cfg, 10).segment == PRESETS[preset]["segment"]
    assert build_model(TrainConfig(data=tmp_path, out=tmp_path, upstreams=[], kind="conv1x1", preset="paper"),
                       10).segment == 2**18  # the paper's T for both systems
    override = TrainConfig(data=tmp_path, out=tmp_path, upstreams=[], kind="conv1x1", preset=preset, segment=2**12)
    assert build_model(override, 10).segment == 2**12


# --- 3: presets, defaults and initial weights have one owner ----------------------------------

def test_train_command_defaults_are_the_configs():
    """Every option of `mdxmix train` backed by a TrainConfig field with a plain default takes that default."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    checked = 0
    for name, parameter in inspect.signature(train_command).parameters.items():
        field = {"as_json": "json_log"}.get(name, name)
        if field in fields:
            assert parameter.default.default == fields[field].default, name
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("kind", ["conv1x1", "mdx_mixer"])
def test_time_invariant_weights_give_x_times_w(kind):
    torch.manual_seed(0)
    mixer = (Conv1x1Mixer(Conv1x1Config(in_channels=6, segment=256)) if kind == "conv1x1"
             else MDXMixer(MDXMixerConfig(in_channels=6, segment=256, folds=8, layers=1, token_hidden=8, channel_hidden=8)))
    w = torch.randn(6, 8)
    mixer.set_time_invariant_weights(w)
    x = torch.randn(3, 6, 256)
    y, weights = mixer(x)
    torch.testing.assert_close(weights, w.expand(3, -1, -1))
    torch.testing.assert_close(y, torch.einsum("bct,co->bot", x, w), atol=1e-5, rtol=1e-5)


# --- 15: Y = X·W stays float32 under autocast ------------------------------------------------

def test_mix_product_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    mixer = MDXMixer(MDXMixerConfig(in_channels=6, segment=512, folds=8, layers=1, token_hidden=16, channel_hidden=16))
    torch.nn.init.normal_(mixer.head.weight, std=0.1)
    torch.nn.init.normal_(mixer.head.bias)
    x = torch.randn(2, 6, 512)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y, w = mixer(x)  # what a training step under --amp computes
    y, w = y.detach(), w.detach()
    assert y.dtype == torch.float32
    exact = torch.einsum("bct,bco->bot", x.double(), w.double())
    error = (y.double() - exact).pow(2).sum() / exact.pow(2).sum()
    assert 10 * math.log10(float(error)) < -120  # float32 rounding; a bf16 product is near -50 dB
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert apply_weights(x, w).dtype == torch.float32


# --- 11: the paper's Table 6 condition, X without the mixture ---------------------------------

class GainUpstream:
    """stem = gain × mixture, so the expected output is known exactly."""

    def __init__(self, name: str) -> None:
        self.name, self.sample_rate, self.stems = name, SR, STEMS

    def separate(self, mixture):
        return {stem: mixture * (0.1 * (i + 1)) for i, stem in enumerate(STEMS)}


def test_no_mixture_checkpoint_is_separated_without_the_mixture(tmp_path):
    spec = UpstreamSpec("demucs", "gain", STEMS)
    conv = Conv1x1Mixer(Conv1x1Config(in_channels=8, segment=1024))
    w = torch.zeros(8, 8)
    w[0, 0] = w[1, 1] = 1.0  # drums = the upstream's drums: exactly 0.1 × the mixture
    w[6, 6] = w[7, 7] = 0.5  # vocals = half the upstream's vocals (0.4 × the mixture)
    conv.set_time_invariant_weights(w)
    path = save_checkpoint(tmp_path / "nomix.safetensors", conv, CheckpointMeta(conv.kind, {}, [spec], mixture=False))
    meta = read_meta(path)
    assert meta.mixture is False and meta.channels == channel_names([spec])[2:]
    mixture = torch.randn(2, 5000) * 0.3
    stems = Separator(path, device="cpu", upstreams=[GainUpstream(spec.id)]).separate(mixture, SR)
    torch.testing.assert_close(stems["drums"], 0.1 * mixture, atol=1e-5, rtol=1e-4)
    # a column summing to 0.5 keeps half of the normalisation's offset: W'((x - m)/s)·s + m
    torch.testing.assert_close(stems["vocals"], 0.2 * mixture + 0.5 * mixture.mean(), atol=1e-5, rtol=1e-4)
    source = BlockedInput(mixture, [GainUpstream(spec.id)], [STEMS], Normalizer.of(mixture), block=2000, context=0,
                          include_mixture=False)
    assert source.read(0, 100).shape == (8, 100)


def test_old_checkpoints_mix_the_mixture_and_an_empty_x_is_refused(tmp_path, model_dir):
    data = json.loads(read_meta(model_dir / "tiny_mdx.safetensors").to_json())
    del data["mixture"]  # as written before the option existed
    assert CheckpointMeta.from_json(json.dumps(data)).mixture is True
    conv = Conv1x1Mixer(Conv1x1Config(in_channels=2, segment=1024))
    with pytest.raises(CheckpointError, match="needs at least one upstream"):
        save_checkpoint(tmp_path / "empty.safetensors", conv, CheckpointMeta(conv.kind, {}, [], mixture=False))
    with pytest.raises(UserError, match="--no-mixture needs at least one --upstream"):
        TrainConfig(data=tmp_path, out=tmp_path, upstreams=[], mixture=False)


def test_train_without_the_mixture(tmp_path, tiny_dataset, model_dir):
    upstream = f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}:vocals+drums"
    cfg = TrainConfig(data=tiny_dataset, out=tmp_path / "run", upstreams=[upstream], cache_dir=tmp_path / "cache",
                      kind="conv1x1", segment=4096, shift=4096, epochs=1, steps_per_epoch=2, device="cpu",
                      progress=False, mixture=False)
    summary = train(cfg, log=lambda *a, **k: None)
    mixer, meta = load_checkpoint(summary.best)
    assert meta.mixture is False and mixer.config.in_channels == 4
    assert [c.split("/")[-1] for c in meta.channels] == ["vocals.L", "vocals.R", "drums.L", "drums.R"]
    stems = Separator(summary.best, device="cpu").separate_file(tiny_dataset / "test" / "song04" / "mixture.wav")
    assert set(stems) == set(STEMS) and torch.isfinite(stems["bass"]).all()
    start = average_weights([("vocals", "drums")], mixture=False)  # no bass upstream and no mixture: bass starts silent
    assert start.shape == (4, 8) and float(start[:, 2:4].abs().sum()) == 0.0 and float(start[0, 6]) == 1.0


# --- 13: MUSDB18-HQ's own validation songs -----------------------------------------------

def _song(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("mixture", *STEMS):
        sf.write(folder / f"{name}.wav", np.zeros((100, 2), dtype=np.float32), SR)


def test_musdb_without_valid_folder_uses_the_standard_validation_songs(tmp_path):
    assert len(MUSDB18_VALIDATION_SONGS) == 14 and "ANiMAL - Rockshow" in MUSDB18_VALIDATION_SONGS
    root = tmp_path / "MUSDB18HQ"
    for name in (*MUSDB18_VALIDATION_SONGS, "A Classic Education - NightOwl", "Zeno - Signs"):
        _song(root / "train" / name)
    _song(root / "test" / "AM Contra - Heart Peripheral")
    assert split_exists(root, "valid")
    assert MusdbSplit(root, "valid").tracks() == sorted(MUSDB18_VALIDATION_SONGS)
    assert MusdbSplit(root, "train").tracks() == ["A Classic Education - NightOwl", "Zeno - Signs"]
    assert MusdbSplit(root, "valid").mixture("Leaf - Summerghost").shape == (100, 2)
    assert MusdbSplit(root, "test").tracks() == ["AM Contra - Heart Peripheral"]
    (root / "valid").mkdir()  # a valid/ folder of its own wins, and train is then all of train/
    _song(root / "valid" / "mine")
    assert MusdbSplit(root, "valid").tracks() == ["mine"] and len(MusdbSplit(root, "train").tracks()) == 16


def test_a_dataset_without_those_songs_has_no_builtin_valid(tmp_path):
    _song(tmp_path / "data" / "train" / "Leaf - Summerghost")  # one of the 14 is not MUSDB18
    assert not split_exists(tmp_path / "data", "valid")
    with pytest.raises(DatasetError, match="split folder not found.*does not hold MUSDB18's 14 validation songs"):
        MusdbSplit(tmp_path / "data", "valid")


# --- 14: a silent estimate is scored and reported, never silently dropped ------------------------

def _refs(seconds: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {s: (0.1 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32) for s in STEMS}


def test_whole_track_silent_estimate_is_scored_and_keeps_the_other_stems():
    refs = _refs()
    rng = np.random.default_rng(5)
    est = {s: r + (0.05 * rng.standard_normal(r.shape)).astype(np.float32) for s, r in refs.items()}
    alone = framewise_sdr({s: refs[s] for s in ("drums", "bass", "other")}, est)
    est["vocals"] = np.zeros_like(refs["vocals"])
    assert silent_estimates(refs, est) == ["vocals"]
    frames = framewise_sdr(refs, est)
    for s in ("drums", "bass", "other"):  # scored as if vocals were not there, not blanked by it
        np.testing.assert_allclose(frames[s], alone[s])
    np.testing.assert_allclose(frames["vocals"], 0.0, atol=1e-9)  # 10 log10(Σs²/Σs²)
    assert score_track(refs, est, metrics=("museval",))["vocals"]["museval"] == pytest.approx(0.0, abs=1e-9)
    partly = dict(est, vocals=refs["vocals"].copy())
    partly["vocals"][: SR] = 0  # silent in one frame only: museval's rule, that frame is NaN for all
    assert silent_estimates(refs, partly) == []
    assert all(np.isnan(f[0]) and not np.isnan(f[1:]).any() for f in framewise_sdr(refs, partly).values())


def test_scoring_reports_every_silent_estimate():
    refs = _refs(2.0)
    est = dict(refs, bass=np.zeros_like(refs["bass"]))
    results = score_systems({"t1": refs}, {"mute-bass": lambda t: est}, metrics=("museval",), jobs=1, progress=False)
    assert results.scores["mute-bass"]["t1"]["bass"]["museval"] == pytest.approx(0.0, abs=1e-9)
    assert any("mute-bass" in n and "bass estimate of 't1' is silent" in n for n in results.notes)


# --- 16: averages are ranked among four-stem systems only -----------------------------------

def test_vocals_only_system_is_not_the_best_average():
    res = Results(metrics=("museval",))
    for system, values in {"full": (5.0, 4.0, 3.0, 6.0), "voc-only": (None, None, None, 9.0)}.items():
        res.add(system, "x", {s: {"museval": v} for s, v in zip(STEMS, values) if v is not None})
    summary = res.aggregate("museval")
    assert summary["voc-only"]["average"] == 9.0 > summary["full"]["average"]
    best = best_per_column(summary)
    assert best["average"] == {"full"} and best["vocals"] == {"voc-only"}
    assert "| voc-only | – | – | – | **9.00** | 9.00 |" in to_markdown(res)


# --- 12: the paper's per-source best is an oracle, labelled so -----------------------------------

def test_oracle_per_source_best_row(tmp_path):
    rng = np.random.default_rng(7)
    for split, tracks in (("test", ["t1", "t2"]), ("valid", ["v1"])):
        for track in tracks:
            refs = {s: (0.1 * rng.standard_normal((SR, 2))).astype(np.float32) for s in STEMS}
            folder = tmp_path / "data" / split / track
            folder.mkdir(parents=True)
            for s, x in refs.items():
                sf.write(folder / f"{s}.wav", x, SR, subtype="FLOAT")
            sf.write(folder / "mixture.wav", sum(refs.values()), SR, subtype="FLOAT")
            # "a" is better on drums and bass, "b" on other and vocals (on every split)
            for name, better in (("a", ("drums", "bass")), ("b", ("other", "vocals"))):
                out = tmp_path / name / track
                out.mkdir(parents=True)
                for s, x in refs.items():
                    noise = (0.02 if s in better else 0.1) * rng.standard_normal(x.shape)
                    sf.write(out / f"{s}.wav", x + noise.astype(np.float32), SR, subtype="FLOAT")
    request = cmd.Request(tmp_path / "data", "test", {}, {"a": tmp_path / "a", "b": tmp_path / "b"}, "valid", [],
                          [], ("museval",), "fast", 1)
    results = cmd.run(request)
    oracle = "per-source best (oracle, chosen on 'test')"
    assert results.systems[-1] == oracle and "per-source best" in results.systems
    summary = results.aggregate("museval")
    for stem in STEMS:
        assert summary[oracle][stem] == max(summary["a"][stem], summary["b"][stem])
    assert any(n.startswith(oracle) and "not a runnable system" in n for n in results.notes)
