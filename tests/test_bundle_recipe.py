"""recipes/default/bundle.py: the trained mixers and the exact upstream files they pin go into weights/."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from mdxmix.checkpoint import load_checkpoint, save_checkpoint
from mdxmix.weightfiles import file_sha256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "default"))

from bundle import bundle  # noqa: E402


@pytest.fixture()
def runs(tmp_path: Path, model_dir: Path) -> Path:
    for run, source in (("mdxmixer", "tiny_mdx.safetensors"), ("conv1x1", "tiny_conv.safetensors")):
        (tmp_path / "runs" / run).mkdir(parents=True)
        shutil.copyfile(model_dir / source, tmp_path / "runs" / run / "best.safetensors")
    return tmp_path / "runs"


def test_bundle_registers_both_mixers_with_their_upstream_and_prunes_the_old_generation(runs, model_dir, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "hdemucs16.safetensors").write_bytes(b"an earlier default's upstream")
    registry = bundle(runs, model_dir, weights, "a test corpus", prune=True)
    assert registry["default"] == "mdxmix-default"
    assert sorted(p.name for p in weights.iterdir()) == [
        "mdxmix-conv1x1.safetensors", "mdxmix-default.safetensors", "registry.json", "tiny_hdemucs.safetensors"]
    for entry in registry["checkpoints"].values():
        assert entry["sha256"] == file_sha256(weights / entry["file"]) and "tiny_hdemucs" in entry["description"]
        assert (weights / entry["file"]).stat().st_mode & 0o044 == 0o044  # readable by all, unlike safetensors' default
    assert registry["checkpoints"]["mdxmix-default"]["description"].startswith("MDX-Mixer `custom` (T=2^")
    assert json.loads((weights / "registry.json").read_text()) == registry


def test_bundle_refuses_an_upstream_file_that_is_not_the_one_trained_with(runs, model_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "tiny_hdemucs.safetensors").write_bytes((model_dir / "tiny_hdemucs.safetensors").read_bytes() + b"x")
    (tmp_path / "weights").mkdir()
    with pytest.raises(SystemExit, match="not the file"):
        bundle(runs, other, tmp_path / "weights", "a test corpus", prune=False)


def _with_valid_loss(source: Path, target: Path, loss: float, dataset: str = "mixer-root") -> None:
    mixer, meta = load_checkpoint(source)
    meta.provenance = {**meta.provenance, "valid_loss": loss, "dataset": dataset, "valid_songs": 8}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, mixer, meta)


def test_the_default_is_the_mixer_size_with_the_lowest_valid_loss(runs, model_dir, tmp_path):
    shutil.rmtree(runs / "mdxmixer")
    _with_valid_loss(model_dir / "tiny_mdx.safetensors", runs / "mdxmixer_tiny" / "best.safetensors", 0.029)
    _with_valid_loss(model_dir / "tiny_mdx.safetensors", runs / "mdxmixer_small" / "best.safetensors", 0.031)
    (tmp_path / "weights").mkdir()
    bundle(runs, model_dir, tmp_path / "weights", "a test corpus", prune=False)
    assert file_sha256(tmp_path / "weights" / "mdxmix-default.safetensors") == file_sha256(
        runs / "mdxmixer_tiny" / "best.safetensors")  # the first name in order would be small
    _with_valid_loss(model_dir / "tiny_mdx.safetensors", runs / "mdxmixer_small" / "best.safetensors", 0.031, "other")
    with pytest.raises(SystemExit, match="do not compare"):
        bundle(runs, model_dir, tmp_path / "weights", "a test corpus", prune=False)


def test_the_previous_default_stays_registered_under_a_new_name(runs, model_dir, tmp_path):
    """`--keep-previous`: the old default and its upstreams survive --prune, pinned as before."""
    weights = tmp_path / "weights"
    weights.mkdir()
    bundle(runs, model_dir, weights, "corpus one", prune=True)
    first = file_sha256(weights / "mdxmix-default.safetensors")
    _with_valid_loss(model_dir / "tiny_mdx.safetensors", runs / "mdxmixer" / "best.safetensors", 0.02)
    registry = bundle(runs, model_dir, weights, "corpus two", prune=True, previous="mdxmix-v1")
    kept = registry["checkpoints"]["mdxmix-v1"]
    assert kept["file"] == "mdxmix-v1.safetensors" and kept["sha256"] == first == file_sha256(weights / kept["file"])
    assert kept["description"].startswith("The previous default: MDX-Mixer") and "corpus one" in kept["description"]
    assert registry["checkpoints"]["mdxmix-default"]["sha256"] != first and registry["default"] == "mdxmix-default"
    assert (weights / "tiny_hdemucs.safetensors").is_file()


def test_registered_entries_can_be_kept_through_a_new_bundle(runs, model_dir, tmp_path):
    """`--keep`: an older generation stays registered, files and pins unchanged, through --prune."""
    weights = tmp_path / "weights"
    weights.mkdir()
    bundle(runs, model_dir, weights, "corpus one", prune=True)
    registry = bundle(runs, model_dir, weights, "corpus two", prune=True, previous="mdxmix-v1")
    v1 = registry["checkpoints"]["mdxmix-v1"]
    _with_valid_loss(model_dir / "tiny_mdx.safetensors", runs / "mdxmixer" / "best.safetensors", 0.01)
    again = bundle(runs, model_dir, weights, "corpus two, both styles", prune=True, previous="mdxmix-v2", keep=["mdxmix-v1"])
    assert again["checkpoints"]["mdxmix-v1"] == v1 and file_sha256(weights / v1["file"]) == v1["sha256"]
    assert set(again["checkpoints"]) == {"mdxmix-default", "mdxmix-conv1x1", "mdxmix-v1", "mdxmix-v2"}
    assert "both styles" in again["checkpoints"]["mdxmix-default"]["description"]
    with pytest.raises(SystemExit, match="not registered"):
        bundle(runs, model_dir, weights, "corpus two", prune=False, keep=["mdxmix-v0"])
    with pytest.raises(SystemExit, match="replaces"):
        bundle(runs, model_dir, weights, "corpus two", prune=False, keep=["mdxmix-default"])


def test_mixer_curves_read_a_resumed_run_once_per_epoch(tmp_path):
    """plot_mixer_curves: a resumed run logs an epoch again; the last line wins, segments add up."""
    pytest.importorskip("matplotlib")  # the recipe draws with it
    from plot_mixer_curves import plot, read_epochs

    run = tmp_path / "mdxmixer_small"
    run.mkdir()
    lines = [{"epoch": 1, "train_loss": 0.2, "valid_loss": 0.19, "segments": 2400},
             {"epoch": 2, "train_loss": 0.18, "valid_loss": 0.185, "segments": 2400},
             {"epoch": 2, "train_loss": 0.17, "valid_loss": 0.18, "segments": 2400},  # the epoch again after a stop
             {"event": "not an epoch"},
             {"epoch": 3, "train_loss": 0.16, "valid_loss": 0.181, "segments": 1200}]
    (run / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    epochs = read_epochs(run)
    assert [(e["epoch"], e["seen"], e["valid_loss"]) for e in epochs] == [(1, 2400, 0.19), (2, 4800, 0.18), (3, 6000, 0.181)]
    plot([run], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_upstreams_are_searched_in_several_folders_weights_itself_included(runs, model_dir, tmp_path):
    """A wrong file of the right name in the first folder is passed over; a file already in weights/ stays."""
    stale, weights = tmp_path / "stale", tmp_path / "weights"
    stale.mkdir()
    weights.mkdir()
    (stale / "tiny_hdemucs.safetensors").write_bytes(b"another file of that name")
    shutil.copyfile(model_dir / "tiny_hdemucs.safetensors", weights / "tiny_hdemucs.safetensors")
    registry = bundle(runs, [stale, weights], weights, "a test corpus", prune=True)
    assert file_sha256(weights / "tiny_hdemucs.safetensors") == file_sha256(model_dir / "tiny_hdemucs.safetensors")
    assert set(registry["checkpoints"]) == {"mdxmix-default", "mdxmix-conv1x1"}
    with pytest.raises(SystemExit, match="in none of"):
        bundle(runs, [stale / "missing"], weights, "a test corpus", prune=False)
