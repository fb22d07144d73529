"""`--shard K/N`: the partition, its stability, and N workers over one folder finishing every song once."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mdxmix.errors import UsageError
from mdxmix.shard import Shard, select, shard_of, song_key

from conftest import write_tone

NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"), min_size=1, max_size=12).filter(lambda n: n != "-")
PATHS = st.lists(st.lists(NAME, min_size=1, max_size=3).map("/".join), min_size=200, max_size=400, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(keys=PATHS, seed=st.integers(0, 2**32 - 1))
def test_partition_covers_everything_once_and_ignores_listing_order(keys, seed):
    shuffled = keys[:]
    random.Random(seed).shuffle(shuffled)
    for count in range(1, 8):
        parts = [{key for key in keys if Shard(k, count).holds(key)} for k in range(1, count + 1)]
        assert set().union(*parts) == set(keys)
        assert sum(len(p) for p in parts) == len(keys)  # no song in two shards
        by_select = [{keys[i] for i in select(keys, [], Shard(k, count))} for k in range(1, count + 1)]
        again = [{shuffled[i] for i in select(shuffled, [], Shard(k, count))} for k in range(1, count + 1)]
        assert again == by_select and set().union(*again) == set(keys) and sum(map(len, again)) == len(keys)
        assert all(parts), "a few hundred songs leave no shard empty"


def test_the_hash_is_fixed_across_processes_and_versions():
    # sha256-based, not Python's per-process salted hash(): these values must never change,
    # or workers of one library running different mdxmix versions would split it differently.
    assert [shard_of(f"album/{i:02d}.wav", 7) for i in range(12)] == [6, 2, 4, 6, 4, 3, 4, 3, 6, 6, 1, 1]
    keys = ("a.wav", "rock/b.flac", "é/ü.mp3")
    assert [shard_of(k, 4) for k in keys] == [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") % 4 + 1 for k in keys]


def test_keys_are_paths_below_the_input_root_wherever_it_is_mounted(tmp_path):
    trees = []
    for mount in ("mnt/a", "elsewhere/deep/b"):
        root = tmp_path / mount / "library"
        for rel in ("x.wav", "live/y.flac", "live/2019/z.wav"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"")
        trees.append(root)
    for root in trees:
        sources = sorted(str(p) for p in root.rglob("*") if p.is_file())
        assert sorted(song_key(s, [str(root)]) for s in sources) == ["live/2019/z.wav", "live/y.flac", "x.wav"]
        pattern = str(root / "live" / "**" / "*.wav")
        assert song_key(str(root / "live/2019/z.wav"), [pattern]) == "2019/z.wav"  # below the glob's fixed folders
        assert song_key(str(root / "x.wav"), [str(root / "x.wav")]) == "x.wav"  # a file named directly: its name


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "1/-2", ""])
def test_bad_shard_values_are_usage_errors(text):
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(text)
    assert Shard.parse(" 2/3 ") == Shard(2, 3)


def _mdxmix(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mdxmix", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _finish(proc: subprocess.Popen) -> tuple[int, list[dict], str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines()], err.decode()


def test_bad_shard_exits_2_before_loading_anything(tmp_path):
    code, records, err = _finish(_mdxmix("song.wav", "--shard", "5/4", "--json", cwd=tmp_path))
    assert code == 2 and records == [] and err.strip().splitlines() == [
        "mdxmix: error: --shard '5/4': K must be between 1 and N, and N at least 1"]


def test_two_workers_on_two_shards_finish_every_song_once_and_reruns_redo_only_what_is_missing(tmp_path, model_dir):
    library = tmp_path / "library"
    names = [f"album{i % 2}/song{i}.wav" for i in range(6)]
    for name in names:
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        write_tone(library / name, 0.5, 22050)
    ckpt = str(model_dir / "tiny_conv.safetensors")
    # --verbose: a song that fails here once failed with "zip() argument 2 is longer than argument 1"
    # under heavy load (2026-11-27, not reproduced in reruns); the traceback says where next time
    args = ("library", "-o", "out", "-c", ckpt, "--no-cache", "--json", "--verbose")
    workers = [_mdxmix(*args, "--shard", f"{k}/2", cwd=tmp_path) for k in (1, 2)]  # run at the same time
    finished = [_finish(w) for w in workers]
    assert [code for code, _, _ in finished] == [0, 0], [err for _, _, err in finished]
    report = [r for _, records, _ in finished for r in records]  # the concatenated JSON lines
    done = sorted(str(Path(r["input"]).relative_to("library")) for r in report)
    assert done == sorted(names) and all(r["status"] == "ok" for r in report)  # every song exactly once
    assert {r["shard"] for r in finished[0][1]} == {"1/2"} and {r["shard"] for r in finished[1][1]} == {"2/2"}
    assert finished[0][1] and finished[1][1]
    assert len(list((tmp_path / "out").rglob("*.wav"))) == 4 * len(names)

    victim = Path(finished[1][1][0]["outputs"]["vocals"])
    (tmp_path / victim).unlink()  # a worker of shard 2 died mid-library
    rerun = [_finish(_mdxmix(*args, "--shard", f"{k}/2", cwd=tmp_path)) for k in (1, 2)]
    statuses = {(r["input"], r["status"]) for _, records, _ in rerun for r in records}
    assert {s for _, s in statuses} == {"skipped", "ok"}
    assert [i for i, s in statuses if s == "ok"] == [finished[1][1][0]["input"]]
    assert (tmp_path / victim).exists()
