"""`mdxmix train` on a generated 3-song dataset with a tiny real upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdxmix.cache import StemCache
from mdxmix.checkpoint import load_checkpoint
from mdxmix.errors import CheckpointError
from mdxmix.pipeline import Separator
from mdxmix.stems import STEMS
from mdxmix.train.data import prepare_split
from mdxmix.train.trainer import Distributed, TrainConfig, average_weights, build_model, train, validate
from mdxmix.upstream.parse import parse_upstream

from conftest import run_two_gloo_processes

TINY = dict(segment=4096, folds=16, layers=1, token_hidden=16, channel_hidden=16, shift=2048, device="cpu", progress=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dataset, model_dir):
    work = tmp_path_factory.mktemp("train")
    upstream = f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}"
    return work, tiny_dataset, [upstream]


def _cfg(setup, out: str, **kw) -> TrainConfig:
    work, data, upstreams = setup
    return TrainConfig(data=data, out=work / out, upstreams=upstreams, cache_dir=work / "cache", **{**TINY, **kw})


def _train_loss(setup, checkpoint: Path) -> float:
    """L1 of a checkpoint over the whole training songs (read from the cache)."""
    work, data, upstreams = setup
    specs = [parse_upstream(u)[0] for u in upstreams]
    songs = prepare_split(data, "train", specs, lambda i: pytest.fail("cache miss"), StemCache(work / "cache"))
    model, _ = load_checkpoint(checkpoint)
    return validate(model, songs, Distributed("cpu"), "segment", 4)


@pytest.mark.parametrize("kind", ["conv1x1", "mdx_mixer"])
def test_one_epoch_reduces_the_loss_and_the_best_checkpoint_separates(setup, kind):
    summary = train(_cfg(setup, f"run_{kind}", kind=kind, epochs=1, steps_per_epoch=20, lr=3e-3, init="zero"))
    assert summary.best_epoch == 1 and summary.best_loss < summary.initial_valid_loss
    model, meta = load_checkpoint(summary.best)
    assert meta.provenance["best_epoch"] == 1 and meta.provenance["train_songs"] == 3
    assert meta.provenance["valid_loss"] == pytest.approx(summary.best_loss)
    # The training loss over the training songs went down from the zero-initialised mixer (whose L1 is that of silence).
    work, data, _ = setup
    assert _train_loss(setup, Path(summary.best)) < 0.95 * _train_loss_of_zero(setup, model)
    stems = Separator(summary.best, device="cpu").separate_file(data / "test" / "song04" / "mixture.wav")
    assert list(stems) == list(STEMS) and all(s.shape == (2, 3 * 44100) for s in stems.values())


def _train_loss_of_zero(setup, model) -> float:
    work, data, upstreams = setup
    specs = [parse_upstream(u)[0] for u in upstreams]
    songs = prepare_split(data, "train", specs, lambda i: pytest.fail("cache miss"), StemCache(work / "cache"))
    zero = type(model)(model.config)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    return validate(zero, songs, Distributed("cpu"), "segment", 4)


def test_resume_continues_exactly_where_it_stopped_and_cache_is_reused(setup):
    straight = train(_cfg(setup, "straight", epochs=2, steps_per_epoch=6))
    first = train(_cfg(setup, "resumed", epochs=1, steps_per_epoch=6))
    assert first.upstream_loads == 0  # every upstream stem came from the cache
    resumed = train(_cfg(setup, "resumed", epochs=2, steps_per_epoch=6, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    lines = [json.loads(x) for x in (_cfg(setup, "resumed").out / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    a, b = load_checkpoint(straight.best)[0], load_checkpoint(resumed.best)[0]
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)


def test_resume_with_another_mixer_is_refused(setup):
    train(_cfg(setup, "refuse", epochs=1, steps_per_epoch=1))
    with pytest.raises(CheckpointError, match="another mixer"):
        train(_cfg(setup, "refuse", epochs=2, steps_per_epoch=1, layers=2, resume=True))


def test_two_gloo_processes_take_the_same_step_as_one(setup):
    work, data, upstreams = setup
    args = ["--data", str(data), "--cache-dir", str(work / "cache"), "--epochs", "1", "--steps-per-epoch", "2",
            "--segment", "4096", "--folds", "16", "--layers", "1", "--token-hidden", "16", "--channel-hidden", "16",
            "--shift", "2048", "--device", "cpu", "--json"]
    for u in upstreams:
        args += ["--upstream", u]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "mdxmix", "train", *args, "--batch-size", "4", "--out", str(work / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = run_two_gloo_processes([*args, "--batch-size", "2"], work / "two", env)
    assert two.returncode == 0, two.stderr
    summaries = [json.loads(line) for line in two.stdout.splitlines() if line.startswith('{"main"') or '"best"' in line]
    assert len(summaries) == 1  # only rank 0 reports
    a = load_checkpoint(work / "one" / "best.safetensors")[0].state_dict()
    b = load_checkpoint(work / "two" / "best.safetensors")[0].state_dict()
    torch.manual_seed(0)  # the initial mixer both runs started from (seed 0, average initialisation)
    initial = build_model(_cfg(setup, "unused", layers=1), in_channels=10)
    initial.set_time_invariant_weights(average_weights([STEMS]))
    assert sum(float((a[k] - v).abs().sum()) for k, v in initial.state_dict().items()) > 0  # the step did move it
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4, msg=name)


def test_the_initial_weights_stay_best_when_no_epoch_beats_them(setup):
    # steps far too large make epoch 1 worse than the average the mixer started from
    summary = train(_cfg(setup, "epoch0", kind="conv1x1", epochs=1, steps_per_epoch=4, lr=10.0))
    assert summary.history[0]["valid_loss"] > summary.initial_valid_loss
    assert summary.best_epoch == 0 and summary.best_loss == summary.initial_valid_loss
    model, meta = load_checkpoint(summary.best)
    assert meta.provenance["best_epoch"] == 0 and meta.provenance["valid_loss"] == pytest.approx(summary.initial_valid_loss)
    torch.testing.assert_close(model.weight.detach(), average_weights([STEMS]))


def test_average_initialisation_averages_each_stem():
    w = average_weights([("drums", "bass", "other", "vocals"), ("vocals",)])
    assert w.shape == (12, 8)
    assert w[2, 0] == 1 and w[3, 1] == 1  # drums L/R from the first upstream
    assert w[8, 6] == 0.5 and w[10, 6] == 0.5 and w[11, 7] == 0.5  # vocals L averaged over both
    w = average_weights([("vocals",)])
    assert w[0, 0] == 0.25 and w[1, 1] == 0.25 and w[2, 6] == 1  # no drums upstream: a quarter of the mixture


def test_leakage_is_reported(setup, capsys):
    train(_cfg(setup, "leak", epochs=1, steps_per_epoch=1, upstream_trained_on=["train"]), log=lambda *a, **k: print(*a, file=sys.stderr))
    assert "3 of 3 mixer-training songs were used to train an upstream" in capsys.readouterr().err


def test_amp_on_cpu_trains_in_bfloat16_and_tracks_float32(setup):
    """--amp now autocasts on a CPU too: the same steps give a different (bf16-rounded) but
    close result, and the checkpoint still separates."""
    fp32 = train(_cfg(setup, "run_fp32", kind="mdx_mixer", epochs=1, steps_per_epoch=10, lr=3e-3, init="zero"))
    bf16 = train(_cfg(setup, "run_bf16", kind="mdx_mixer", epochs=1, steps_per_epoch=10, lr=3e-3, init="zero", amp=True))
    a, _ = load_checkpoint(fp32.best)
    b, _ = load_checkpoint(bf16.best)
    pa, pb = torch.cat([p.flatten() for p in a.parameters()]), torch.cat([p.flatten() for p in b.parameters()])
    assert not torch.equal(pa, pb)
    assert (pa - pb).norm() <= 0.05 * pa.norm()
    assert bf16.best_loss == pytest.approx(fp32.best_loss, rel=0.02)


def test_songs_prepared_two_at_a_time_match_one_at_a_time_and_load_each_upstream_once(setup, tmp_path):
    from mdxmix.train.trainer import UpstreamLoader

    _, data, upstreams = setup
    parsed = [parse_upstream(u) for u in upstreams]
    specs, search = [p[0] for p in parsed], [p[1] for p in parsed if p[1] is not None]
    runs, threads = {}, torch.get_num_threads()
    for jobs in (1, 2):
        loader, seen = UpstreamLoader(specs, search, torch.device("cpu")), []
        songs = prepare_split(data, "train", specs, loader, StemCache(tmp_path / f"cache{jobs}"), jobs=jobs,
                              on_song=lambda name, computed, seen=seen: seen.append((name, computed)))
        assert len(loader.loaded) == 1 and sorted(seen) == [(s.name, True) for s in songs]
        runs[jobs] = songs
        assert torch.get_num_threads() == threads  # the cores shared out for the songs are given back
    assert [s.name for s in runs[2]] == [s.name for s in runs[1]] == sorted(s.name for s in runs[1])
    for one, two in zip(runs[1], runs[2]):
        assert one.frames == two.frames and len(one.upstream_rows) == len(two.upstream_rows) == 4
        for a, b in zip(one.upstream_rows, two.upstream_rows):  # float16 entries; thread counts may reorder sums
            assert abs(a.astype("float32") - b.astype("float32")).max() <= 2e-3

