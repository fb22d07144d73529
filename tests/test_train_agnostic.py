"""`mdxmix train --kind agnostic`: random upstream sets per example, a checkpoint that takes any set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from mdxmix.checkpoint import load_checkpoint
from mdxmix.errors import CheckpointError, UserError
from mdxmix.mixer import AgnosticMixer
from mdxmix.mixer.agnostic import AgnosticConfig, layout_channels
from mdxmix.mixer.engine import mix_tensor
from mdxmix.stems import STEMS
from mdxmix.train.agnostic import SetSong, SubsetSampler, free_penalty, run_agnostic_epoch, validation_sets
from mdxmix.train.distributed import Distributed
from mdxmix.train.trainer import TrainConfig, train

from conftest import run_two_gloo_processes

TINY = dict(segment=4096, folds=16, layers=1, token_hidden=16, channel_hidden=16, shift=2048, device="cpu", progress=False)


def test_sets_mix_real_and_synthetic_upstreams_of_one_to_four():
    pool = (STEMS, ("vocals",))
    torch.manual_seed(0)
    x, y = torch.randn(2 + 10, 4096), torch.randn(8, 4096)
    sampler = SubsetSampler(pool, 0.5, 4, torch.Generator().manual_seed(0))
    sizes, real_blocks, single = set(), 0, 0
    for _ in range(30):
        x_set, layout = sampler.draw(x, y)
        assert x_set.shape == (layout_channels(layout), 4096) and 1 <= len(layout) <= 4
        torch.testing.assert_close(x_set[:2], x[:2])
        sizes.add(len(layout))
        row = 2
        for stems in layout:
            block = x_set[row : row + 2 * len(stems)]
            pool_blocks = [x[2:10], x[10:12]] + [x[2 + 2 * i : 4 + 2 * i] for i in range(4)]
            real_blocks += any(b.shape == block.shape and torch.equal(b, block) for b in pool_blocks)
            single += len(stems) == 1
            row += 2 * len(stems)
    assert sizes == {1, 2, 3, 4} and real_blocks > 10 and single > 5
    only_real = SubsetSampler(pool, 0.0, 4, torch.Generator().manual_seed(1))
    assert all(len(only_real.draw(x, y)[1]) <= 2 for _ in range(20))


@pytest.fixture(scope="module")
def agnostic_run(tmp_path_factory, tiny_dataset, model_dir):
    work = tmp_path_factory.mktemp("train-agnostic")
    cfg = TrainConfig(data=tiny_dataset, out=work / "run", upstreams=[f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"],
                      cache_dir=work / "cache", kind="agnostic", preset="tiny", epochs=1, steps_per_epoch=4, batch_size=2, lr=1e-3,
                      synthetic=0.5, **TINY)
    return cfg, train(cfg)


def test_training_writes_an_agnostic_checkpoint_that_takes_any_set(agnostic_run):
    cfg, summary = agnostic_run
    assert summary.best_epoch in (0, 1) and summary.history[0]["train_loss"] > 0  # 0: the average start stayed best
    mixer, meta = load_checkpoint(summary.best)
    assert isinstance(mixer, AgnosticMixer) and meta.any_upstreams
    assert [u.family for u in meta.upstreams] == ["demucs-file"]  # the pool is the default set
    assert meta.provenance["synthetic_share"] == 0.5 and meta.provenance["max_upstreams"] == 4
    assert meta.provenance["anchor"] == 0.2  # the default penalty on the free rows of W
    for layout in ((STEMS,), (("vocals",), STEMS, ("bass",))):
        y = mix_tensor(torch.randn(layout_channels(layout), 3 * 4096), mixer.bind(layout))
        assert y.shape == (8, 3 * 4096) and torch.isfinite(y).all()
    # training moved the mixer away from its average start
    assert summary.history[0]["valid_loss"] != summary.initial_valid_loss


def test_agnostic_options_are_checked(tmp_path):
    base = dict(data=tmp_path, out=tmp_path / "o", kind="agnostic", preset="tiny")
    with pytest.raises(UserError, match="at least one real --upstream"):
        TrainConfig(upstreams=[], **base)
    with pytest.raises(UserError, match="comes in tiny or small"):
        TrainConfig(upstreams=["demucs:x"], **{**base, "preset": "paper"})
    with pytest.raises(UserError, match="--synthetic"):
        TrainConfig(upstreams=["demucs:x"], synthetic=1.5, **base)
    for anchor in (-0.1, float("nan")):
        with pytest.raises(UserError, match="--anchor"):
            TrainConfig(upstreams=["demucs:x"], anchor=anchor, **base)


def test_synthetic_only_training_never_runs_the_real_upstreams_on_the_train_songs(tmp_path, tiny_dataset, model_dir):
    cfg = TrainConfig(data=tiny_dataset, out=tmp_path / "run", upstreams=[f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"],
                      cache_dir=tmp_path / "cache", kind="agnostic", preset="tiny", epochs=1, steps_per_epoch=2, batch_size=2,
                      synthetic=1.0, **TINY)
    summary = train(cfg)
    assert summary.history[0]["train_loss"] > 0
    valid_songs = [d for d in (tiny_dataset / "valid").iterdir() if d.is_dir()]
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(valid_songs)  # validation mixes the real pool only


def test_two_gloo_processes_train_the_agnostic_mixer_like_one(tmp_path, tiny_dataset, model_dir):
    """Under torchrun each example's upstream set is drawn from (epoch, example) alone, so two
    processes of batch 2 take the same steps as one of batch 4 (same sets, averaged gradients)."""
    args = ["--data", str(tiny_dataset), "--cache-dir", str(tmp_path / "cache"), "--kind", "agnostic", "--preset", "tiny",
            "--upstream", f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}", "--synthetic", "0.5",
            "--epochs", "1", "--steps-per-epoch", "2", "--segment", "4096", "--folds", "16", "--layers", "1",
            "--token-hidden", "16", "--channel-hidden", "16", "--shift", "2048", "--lr", "1e-3", "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "mdxmix", "train", *args, "--batch-size", "4", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = run_two_gloo_processes([*args, "--batch-size", "2"], tmp_path / "two", env)
    assert two.returncode == 0, two.stderr
    a, b = load_file(tmp_path / "one" / "state.safetensors"), load_file(tmp_path / "two" / "state.safetensors")
    assert a.keys() == b.keys()
    assert float(a["optim.0.step"]) == float(b["optim.0.step"]) == 2  # both took two Adam steps
    assert any(float(v.abs().sum()) > 0 for k, v in a.items() if k.endswith("exp_avg"))  # with real gradients
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4, msg=name)


def test_validation_scores_several_fixed_sets_and_picks_by_their_mean(agnostic_run):
    cfg, summary = agnostic_run
    record = json.loads((cfg.out / "log.jsonl").read_text().splitlines()[-1])
    assert list(record["valid_sets"]) == ["pool", "synthetic", "pool+near-oracle"]  # a pool of one: no per-member sets
    assert record["valid_loss"] == pytest.approx(sum(record["valid_sets"].values()) / 3, abs=3e-6)


def test_set_songs_hold_the_chosen_pool_rows_and_fixed_synthetic_stems(tiny_dataset):
    pool = (STEMS, ("vocals",))
    sets = validation_sets(pool, 0.5, seed=0)
    assert [v.name for v in sets] == ["pool", "upstream0", "upstream1", "synthetic", "pool+near-oracle"]
    assert sets == validation_sets(pool, 0.5, seed=0) and len(validation_sets(pool, 0.0, seed=0)) == 3
    frames = 4096
    x, y = torch.randn(2 + 10, frames), torch.randn(8, frames)
    song = SimpleNamespace(name="s", frames=frames, read_input=lambda a, b: x[:, a:b], read_target=lambda a, b: y[:, a:b])
    only_vocals = SetSong(song, sets[2], pool).read_input(0, frames)
    torch.testing.assert_close(only_vocals, torch.cat([x[:2], x[10:12]]))
    oracle = SetSong(song, sets[4], pool)
    first, again = oracle.read_input(0, frames), oracle.read_input(0, frames)
    assert first.shape == (2 + 10 + 8, frames) and torch.equal(first, again)  # fixed: every epoch sees the same set
    torch.testing.assert_close(first[:12], x)
    estimate, reference = first[12:], y
    sdr = 10 * torch.log10(reference.pow(2).sum() / (reference - estimate).pow(2).sum())
    assert sdr > 12  # near-oracle: issue 11 calls separators of 12 dB and more "strong"


def _train_free_rows(anchor: float, steps: int = 40) -> float:
    """Adam steps of a small agnostic mixer on a target that its gates cannot reach (1.5 × the
    upstream's own stems: a convex share of one upstream gives at most 1 ×); the free-row
    penalty (`free_penalty`) of the result on fresh segments."""
    torch.manual_seed(0)
    mixer = AgnosticMixer(AgnosticConfig(segment=1024, folds=16, layers=1, width=16, token_hidden=16, channel_hidden=16, heads=2))
    optimizer = torch.optim.Adam(mixer.parameters(), lr=3e-3)

    def example(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        stems = torch.randn(8, 1024, generator=torch.Generator().manual_seed(seed))
        mixture = stems.view(4, 2, -1).sum(dim=0)
        return torch.cat([mixture, stems]), 1.5 * stems

    dataset = [example(i) for i in range(8)]
    sampler = SubsetSampler((STEMS,), 0.0, 1, torch.Generator().manual_seed(0))
    env = Distributed("cpu")
    for _ in range(steps // 4):
        run_agnostic_epoch(mixer, optimizer, dataset, list(range(8)), 2, sampler, env, anchor=anchor)
    x = torch.stack([example(100 + i)[0] for i in range(4)])
    with torch.no_grad():
        convex, free = mixer.weight_parts(x, (STEMS,))
        torch.testing.assert_close(convex + free, mixer.estimate_weights(x, (STEMS,)))
    return float(free_penalty(free))


def test_the_anchor_keeps_the_free_rows_of_w_near_zero():
    """Without the anchor the mixer learns free rows toward the 0.5 × correction; with it they stay
    small: the penalty is part of the loss that is minimised, not only reported."""
    free, anchored = _train_free_rows(0.0), _train_free_rows(1.0)
    assert free > 1.0  # eight diagonal entries heading for 0.5 each: Σ² up to 2
    assert anchored < 0.1 * free


def test_a_fresh_mixer_has_no_free_rows():
    mixer = AgnosticMixer(AgnosticConfig(segment=1024, folds=16, layers=1, width=16, token_hidden=16, channel_hidden=16, heads=2))
    layout = (STEMS, ("vocals",))
    with torch.no_grad():
        convex, free = mixer.weight_parts(torch.randn(3, layout_channels(layout), 1024), layout)
    assert float(free.abs().max()) == 0.0 and float(free_penalty(free)) == 0.0
    torch.testing.assert_close(convex[0], convex[2])


def test_valid_upstreams_are_validated_on_and_never_trained_on(tmp_path, tiny_dataset, model_dir):
    """--valid-upstream: a held-out separator joins the validation sets (alone and beside the pool)
    and is run on the valid songs only; the checkpoint's upstreams stay the pool."""
    import shutil

    held = tmp_path / "held_hdemucs.safetensors"  # another file, so another upstream id
    shutil.copy(model_dir / "tiny_hdemucs.safetensors", held)
    cfg = TrainConfig(data=tiny_dataset, out=tmp_path / "run", upstreams=[f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"],
                      valid_upstreams=[f"demucs-file:{held}:vocals"], cache_dir=tmp_path / "cache", kind="agnostic",
                      preset="tiny", epochs=1, steps_per_epoch=2, batch_size=2, synthetic=0.0, **TINY)
    summary = train(cfg)
    record = json.loads((cfg.out / "log.jsonl").read_text().splitlines()[-1])
    assert list(record["valid_sets"]) == ["pool", "held", "pool+held"]
    assert record["valid_loss"] == pytest.approx(sum(record["valid_sets"].values()) / 3, abs=3e-6)
    assert record["valid_sets"]["held"] != record["valid_sets"]["pool"]
    _, meta = load_checkpoint(summary.best)
    assert [u.model for u in meta.upstreams] == ["tiny_hdemucs.safetensors"]
    assert meta.provenance["valid_upstreams"] and "held_hdemucs" in meta.provenance["valid_upstreams"][0]
    held_entries = [p for p in (tmp_path / "cache").rglob("*.npy") if "held_hdemucs" in str(p)]
    valid_songs = [d for d in (tiny_dataset / "valid").iterdir() if d.is_dir()]
    assert len(held_entries) == len(valid_songs)  # computed for the valid songs only
    with pytest.raises(UserError, match="--valid-upstream is for --kind agnostic"):
        TrainConfig(data=tiny_dataset, out=tmp_path / "o", upstreams=cfg.upstreams, valid_upstreams=cfg.valid_upstreams)
    with pytest.raises(UserError, match="cannot also be held out"):
        train(TrainConfig(**{**{k: getattr(cfg, k) for k in ("data", "cache_dir", "kind", "preset", "upstreams")},
                             "out": tmp_path / "o2", "valid_upstreams": cfg.upstreams, **TINY}))
    resumed = TrainConfig(**{**{k: getattr(cfg, k) for k in ("data", "out", "cache_dir", "kind", "preset", "upstreams")},
                             "epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "synthetic": 0.0, "resume": True, **TINY})
    with pytest.raises(CheckpointError, match="another mixer or other upstreams"):
        train(resumed)  # the same run without its valid-only upstream would choose epochs differently
