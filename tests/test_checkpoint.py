"""Checkpoint format: round trips, refusals with one-line reasons, the registry and the hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mdxmix.checkpoint import CheckpointMeta, check_upstreams, load_checkpoint, read_meta, save_checkpoint
from mdxmix.errors import CheckpointError, UpstreamError
from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer, MDXMixer, MDXMixerConfig
from mdxmix.registry import Registry
from mdxmix.stems import STEMS
from mdxmix.upstream.base import UpstreamSpec
from mdxmix.weightfiles import file_sha256

SPEC_A = UpstreamSpec(family="demucs", model="htdemucs", stems=STEMS)
SPEC_B = UpstreamSpec(family="demucs-file", model="vocals_only.safetensors", stems=("vocals",), sha256="ab" * 32)


def _mdx(channels: int = 12) -> MDXMixer:
    torch.manual_seed(0)
    mixer = MDXMixer(MDXMixerConfig(in_channels=channels, segment=256, folds=8, layers=2, dropout=0.2))
    torch.nn.init.normal_(mixer.head.weight, std=0.1)
    torch.nn.init.normal_(mixer.head.bias)
    return mixer.eval()


@pytest.mark.parametrize("half", [False, True])
def test_round_trip_gives_the_same_outputs(tmp_path, half):
    mixer = _mdx()
    meta = CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B], provenance={"dataset": "unit", "epochs": 3})
    path = save_checkpoint(tmp_path / "m.safetensors", mixer, meta, half=half)
    loaded, loaded_meta = load_checkpoint(path)
    x = torch.randn(2, 12, 256)
    tol = 2e-2 if half else 0.0
    torch.testing.assert_close(loaded(x)[0], mixer(x)[0], atol=tol, rtol=tol)
    assert loaded_meta.upstreams == [SPEC_A, SPEC_B]
    assert loaded_meta.channels[:4] == ["mixture.L", "mixture.R", "demucs:htdemucs/drums.L", "demucs:htdemucs/drums.R"]
    assert loaded_meta.provenance == {"dataset": "unit", "epochs": 3}
    assert loaded_meta.mixer_config["dropout"] == 0.2
    assert read_meta(path).mixer_kind == "mdx_mixer"


def test_conv1x1_round_trip(tmp_path):
    conv = Conv1x1Mixer(Conv1x1Config(in_channels=10, segment=64))
    torch.nn.init.normal_(conv.weight)
    path = save_checkpoint(tmp_path / "c.safetensors", conv, CheckpointMeta(conv.kind, {}, [SPEC_A]))
    loaded, _ = load_checkpoint(path)
    torch.testing.assert_close(loaded.weight, conv.weight)


class _Loaded:
    """A loaded upstream as the compatibility check sees it: its name, rate and stems."""

    def __init__(self, spec: UpstreamSpec, stems=None, sample_rate: int = 44100) -> None:
        self.name, self.stems, self.sample_rate = spec.id, tuple(stems or spec.stems), sample_rate


def test_mismatched_upstream_set_is_refused(tmp_path):
    mixer = _mdx()
    meta = CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B])
    check_upstreams(meta, [_Loaded(SPEC_A), _Loaded(SPEC_B, stems=STEMS)])
    for wrong in ([SPEC_A], [SPEC_B, SPEC_A], [SPEC_A, UpstreamSpec("demucs", "mdx", ("vocals",))]):
        with pytest.raises(CheckpointError, match="trained with upstreams"):
            check_upstreams(meta, [_Loaded(s) for s in wrong])
    with pytest.raises(UpstreamError, match=r"produces \['drums'\], not \['vocals'\]"):
        check_upstreams(meta, [_Loaded(SPEC_A), _Loaded(SPEC_B, stems=("drums",))])
    with pytest.raises(UpstreamError, match="runs at 48000 Hz"):
        check_upstreams(meta, [_Loaded(SPEC_A, sample_rate=48000), _Loaded(SPEC_B)])


def test_channel_count_must_match_upstreams(tmp_path):
    mixer = _mdx(channels=6)
    with pytest.raises(CheckpointError, match="takes 6 channels but its upstreams give 12"):
        save_checkpoint(tmp_path / "m.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B]))


def test_tampered_file_is_refused_by_its_sha256(tmp_path):
    mixer = _mdx()
    path = save_checkpoint(tmp_path / "m.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B]))
    digest = file_sha256(path)
    load_checkpoint(path, sha256=digest)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the pinned"):
        load_checkpoint(path, sha256=digest)


def test_edited_metadata_and_foreign_files_are_refused(tmp_path):
    mixer = _mdx()
    path = save_checkpoint(tmp_path / "m.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B]))
    tensors = load_checkpoint(path)[0].state_dict()
    meta = json.loads(CheckpointMeta(mixer.kind, mixer.config.to_dict(), [SPEC_A, SPEC_B]).to_json())

    def rewrite(name: str, edit) -> Path:
        changed = json.loads(json.dumps(meta))
        edit(changed)
        target = tmp_path / name
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(target), metadata={"mdxmix": json.dumps(changed)})
        return target

    cases = {
        "version": (lambda m: m.update(format_version=99), "format version 99"),
        "rate": (lambda m: m.update(sample_rate=48000), "48000 Hz"),
        "order": (lambda m: m["channels"].reverse(), "channel order"),
        "kind": (lambda m: m["mixer"].update(kind="resnet"), "unknown mixer kind"),
        "shape": (lambda m: m["mixer"]["config"].update(layers=3), "missing"),
    }
    for name, (edit, message) in cases.items():
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(rewrite(f"{name}.safetensors", edit))
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without mdxmix metadata"):
        load_checkpoint(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(tmp_path / "junk.safetensors")


def test_registry_names_local_files_and_pins_their_hash(tmp_path):
    mixer = _mdx()
    path = save_checkpoint(tmp_path / "m.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B]))
    (tmp_path / "registry.json").write_text(
        json.dumps({"default": "mine", "checkpoints": {"mine": {"file": "m.safetensors", "sha256": file_sha256(path)}}})
    )
    registry = Registry.load(tmp_path)
    assert registry.checkpoint_path("default") == ("mine", path)
    assert registry.checkpoint_path(str(path)) == ("m", path)
    with pytest.raises(CheckpointError, match="unknown checkpoint 'other'"):
        registry.checkpoint_path("other")
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(CheckpointError, match="does not match the pinned"):
        registry.checkpoint_path("mine")
    (tmp_path / "registry.json").write_text(json.dumps({"default": None, "checkpoints": {}}))
    with pytest.raises(CheckpointError, match="no default checkpoint is bundled"):
        Registry.load(tmp_path).checkpoint_path("default")


HUB_SCRIPT = """
import sys
from pathlib import Path
from mdxmix.registry import WeightRef, fetch
from mdxmix.errors import UserError
ref = WeightRef(name="hubbed", sha256=sys.argv[1], hub={"repo_id": "someone/mixers", "filename": "m.safetensors", "revision": "a" * 40})
try:
    print("OK", fetch(ref, Path(".")))
except UserError as exc:
    print("ERR", exc)
"""


def _hub(tmp_path: Path, sha: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-c", HUB_SCRIPT, sha], env=env, capture_output=True, text=True, timeout=120)
    return done.stdout.strip()


def test_hub_checkpoint_offline_uses_cache_verifies_hash_and_explains_when_missing(tmp_path):
    mixer = _mdx()
    source = save_checkpoint(tmp_path / "m.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [SPEC_A, SPEC_B]))
    digest = file_sha256(source)
    missing = _hub(tmp_path, digest)
    assert missing.startswith("ERR") and "someone/mixers/m.safetensors" in missing and "HF_HUB_OFFLINE is set" in missing
    assert "huggingface-cli download someone/mixers m.safetensors" in missing
    snapshot = tmp_path / "hub" / "models--someone--mixers" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "m.safetensors").write_bytes(source.read_bytes())
    found = _hub(tmp_path, digest)
    assert found.startswith("OK") and found.endswith("m.safetensors")
    assert load_checkpoint(Path(found.split(" ", 1)[1]))[1].upstreams == [SPEC_A, SPEC_B]
    (snapshot / "m.safetensors").write_bytes(source.read_bytes()[:-1] + b"!")
    assert "does not match the pinned" in _hub(tmp_path, digest)
