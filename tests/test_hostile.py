"""Hostile inputs and faults (issue 12): one test per defect a hostile pass found.

Real files, real faults (a full tmpfs, a killed process, damaged cache entries) and real
runs of the command line in a subprocess wherever the defect is about exit codes,
messages or signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxmix.checkpoint import CheckpointMeta, save_checkpoint
from mdxmix.mixer import Conv1x1Config, Conv1x1Mixer
from mdxmix.outputs import OutputFormat, SongOutput
from mdxmix.stems import STEMS
from mdxmix.upstream.base import UpstreamSpec
from mdxmix.upstream.spectral import SpectralConfig, SpectralMaskNet, save_spectral
from mdxmix.weightfiles import file_sha256

from conftest import write_tone

STEM_FILES = sorted(f"{s}.wav" for s in STEMS)


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mdxmix", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def records(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob(".*") if p.name != ".mdxmix-output"]


@pytest.fixture()
def ckpt(model_dir) -> str:
    return str(model_dir / "tiny_mdx.safetensors")


# --- data loss -------------------------------------------------------------------------
def test_1_cache_clear_deletes_only_cache_entries_and_refuses_a_folder_with_user_files(tmp_path):
    root = tmp_path / "mine"
    entry = root / "v1" / "up" / f"{'a' * 32}.npy"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"x" * 100)
    (root / "notes.txt").write_text("my notes")
    refused = run("cache", "--cache-dir", "mine", "--clear", cwd=tmp_path)
    assert refused.returncode == 1 and len(error_lines(refused)) == 1
    assert "notes.txt" in refused.stderr and "nothing was deleted" in refused.stderr
    assert (root / "notes.txt").read_text() == "my notes" and entry.exists()
    (root / "notes.txt").unlink()
    cleared = run("cache", "--cache-dir", "mine", "--clear", "--json", cwd=tmp_path)
    assert cleared.returncode == 0 and json.loads(cleared.stdout)["bytes"] == 100
    assert root.is_dir() and list(root.iterdir()) == []


def test_2_songs_with_the_same_name_get_distinct_outputs_and_a_note(tmp_path, ckpt):
    (tmp_path / "a").mkdir()
    for ext, fmt in (("flac", "FLAC"), ("ogg", "OGG"), ("wav", "WAV")):
        data = write_tone(tmp_path / "tmp.wav", 0.5, 44100)
        sf.write(tmp_path / "a" / f"in.{ext}", data, 44100, format=fmt)
    for parent in ("c1", "c2"):
        (tmp_path / parent / "x").mkdir(parents=True)
        write_tone(tmp_path / parent / "x" / "song.wav", 0.5, 44100)
    done = run("a/in.flac", "a/in.ogg", "a/in.wav", "c1", "c2", "-o", "out", "-c", ckpt, "--no-cache", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in records(done)] == ["ok"] * 5
    folders = sorted(p.name for p in (tmp_path / "out" / "tiny_mdx").iterdir())
    assert folders == ["c1-x-song", "c2-x-song", "in-flac", "in-ogg", "in-wav"]
    assert "3 songs are named 'in'" in done.stderr and "2 songs are named 'song'" in done.stderr


# --- partial results -------------------------------------------------------------------
def test_3_a_song_whose_last_stem_cannot_be_put_in_place_keeps_none_and_restores_the_old_ones(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 1.0, 44100)
    first = run("song.wav", "-o", "out", "-c", ckpt, "--no-cache", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "out" / "tiny_mdx" / "song"
    before = {name: (folder / name).read_bytes() for name in STEM_FILES}
    write_tone(tmp_path / "song.wav", 1.0, 44100, channels=1)  # different audio, so new stems would differ
    (folder / "vocals.wav").unlink()
    (folder / "vocals.wav").mkdir()  # the last rename fails: a folder is in the way
    (folder / "vocals.wav" / "keep").write_text("x")
    write_tone(tmp_path / "fresh.wav", 1.0, 44100)  # a first run, same fault: no stem may stay
    (tmp_path / "out" / "tiny_mdx" / "fresh" / "vocals.wav").mkdir(parents=True)
    again = run("song.wav", "fresh.wav", "-o", "out", "-c", ckpt, "--no-cache", "--overwrite", "--json", cwd=tmp_path)
    assert again.returncode == 1 and [r["status"] for r in records(again)] == ["failed", "failed"]
    assert all("none of this song's stems were kept" in r["error"] for r in records(again))
    for name in ("bass.wav", "drums.wav", "other.wav"):
        assert (folder / name).read_bytes() == before[name]  # the earlier stems, put back
    assert [p.name for p in (tmp_path / "out" / "tiny_mdx" / "fresh").iterdir()] == ["vocals.wav"]
    assert temporaries(tmp_path / "out") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_4_signals_stop_cleanly_and_the_next_run_sweeps_what_a_killed_one_left(tmp_path, ckpt, signum):
    write_tone(tmp_path / "long.wav", 240.0, 22050)
    cache = tmp_path / "cache"
    process = subprocess.Popen([sys.executable, "-m", "mdxmix", "long.wav", "-o", "out", "-c", ckpt, "--cache-dir", "cache"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(cache.rglob(".mdxmix-*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)  # stems are being staged and the upstream's cache entry is being filled
    time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines()[-1] == "mdxmix: interrupted; no partial outputs were kept"
    assert temporaries(tmp_path / "out", cache) == [] and not list((tmp_path / "out").rglob("*.wav"))
    # What SIGKILL leaves (a temporary of a dead process, in the old and the new naming) goes on the next run.
    song_folder = tmp_path / "out" / "tiny_mdx" / "long"
    song_folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = [song_folder / f".mdxmix-{dead}-0123abcd.tmp", cache / "v1" / "x" / f".mdxmix-{dead}-0123abcd.tmp",
             cache / "v1" / "x" / f".{'b' * 32}.npy.{dead}.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a killed run")
    write_tone(tmp_path / "long.wav", 0.5, 22050)
    done = run("long.wav", "-o", "out", "-c", ckpt, "--cache-dir", "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not any(path.exists() for path in stale)


# --- a failing song never stops the batch ------------------------------------------------
@pytest.fixture(scope="module")
def spectral_ckpt(tmp_path_factory) -> str:
    """A checkpoint over a small STFT upstream of the family the bundled default uses (n_fft 2048)."""
    folder = tmp_path_factory.mktemp("spectral")
    torch.manual_seed(0)
    net = SpectralMaskNet(SpectralConfig(stems=STEMS, n_fft=2048, hop=512, hidden=8, layers=1))
    package = save_spectral(net, folder / "spec.safetensors")
    spec = UpstreamSpec(family="spectral-file", model=package.name, stems=STEMS, sha256=file_sha256(package))
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=10, segment=2**14))
    return str(save_checkpoint(folder / "spec_mix.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [spec])))


def test_5_inputs_of_a_few_samples_are_separated_at_their_length(tmp_path, spectral_ckpt):
    sf.write(tmp_path / "blip.wav", np.full((100, 2), 0.1), 44100, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", np.full((2048, 2), 0.1), 44100, subtype="FLOAT")
    done = run("blip.wav", "short.wav", "-o", "out", "-c", spectral_ckpt, "--no-cache", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in records(done)] == ["ok", "ok"]
    assert sf.info(tmp_path / "out" / "spec_mix" / "blip" / "vocals.wav").frames == 100
    assert sf.info(tmp_path / "out" / "spec_mix" / "short" / "vocals.wav").frames == 2048
    shown = run("inspect", "blip.wav", "-c", spectral_ckpt, "--no-cache", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr


def test_6_nan_or_inf_samples_fail_that_song_in_one_line_and_the_batch_goes_on(tmp_path, ckpt):
    data = np.full((4410, 2), 0.1, dtype=np.float32)
    data[100, 0], data[200, 1] = np.nan, np.inf
    sf.write(tmp_path / "a_bad.wav", data, 44100, subtype="FLOAT")
    write_tone(tmp_path / "b_good.wav", 0.5, 44100)
    done = run("a_bad.wav", "b_good.wav", "-o", "out", "-c", ckpt, "--no-cache", "--json", cwd=tmp_path)
    assert done.returncode == 1
    bad, good = records(done)
    assert bad["status"] == "failed" and "NaN or infinite" in bad["error"] and good["status"] == "ok"
    assert "internal error" not in done.stderr and not (tmp_path / "out" / "tiny_mdx" / "a_bad").exists()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp && true"], capture_output=True)
    return probe.returncode == 0


def _run_on_small_disk(tmp_path: Path, ckpt: str, size_kb: int) -> list[str]:
    """`mdxmix song.wav -o out` where `out` is a tmpfs of `size_kb`; stdout lines, then rc=, then what is in out."""
    (tmp_path / "out").mkdir()
    script = (f"mount -t tmpfs -o size={size_kb}k tmpfs out && "
              f"{sys.executable} -m mdxmix song.wav -o out -c {ckpt} --no-cache --json; "
              "echo rc=$?; find out -mindepth 1 | sort")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "internal error" not in done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare -rm) for a small tmpfs")
def test_7_a_disk_that_fills_while_writing_fails_the_song_cleanly_with_no_space_left(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 2.0, 44100)
    lines = _run_on_small_disk(tmp_path, ckpt, (2 * 4 * 88200) // 1024 + 64)  # two of the four 16-bit stems fit
    record = json.loads(lines[0])
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    assert "rc=1" in lines
    left = [line for line in lines[lines.index("rc=1") + 1 :] if not line.endswith(".mdxmix-output")]
    assert left == []  # no stem, no temporary, and not the folders made for them


def test_7_a_song_that_fails_takes_away_only_the_folders_it_made_and_only_if_empty(tmp_path):
    """The same clean-up without a small disk (test 7 needs a mount namespace): a song aborted after
    writing removes its staged stems and the folders made for them, never a folder that was there."""
    (tmp_path / "out" / "kept").mkdir(parents=True)
    (tmp_path / "out" / "kept" / "notes.txt").write_text("the user's")
    fmt = OutputFormat(subtype="PCM_16")
    for folder in ("new/song", "kept"):
        destinations = {stem: tmp_path / "out" / folder / f"{stem}.wav" for stem in STEMS}
        with SongOutput(destinations, rate=44100, fmt=fmt) as song:
            for stem in STEMS:
                song.write(stem, np.zeros((2, 4410), dtype=np.float32))
        # leaving the block without commit() is the failure path
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "out/kept", "out/kept/notes.txt"]


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare -rm) for a small tmpfs")
def test_a_song_needs_no_more_disk_than_its_outputs(tmp_path, ckpt):
    """Stems are staged as 16-bit WAVs that become the outputs: a disk that holds the four outputs is enough
    (float32 staging plus encoded copies needed three times that)."""
    write_tone(tmp_path / "song.wav", 2.0, 44100)
    lines = _run_on_small_disk(tmp_path, ckpt, (4 * (4 * 88200 + 44)) // 1024 + 16)
    assert json.loads(lines[0])["status"] == "ok" and "rc=0" in lines
    stems = [line for line in lines if line.endswith(".wav")]
    assert len(stems) == 4 and not [line for line in lines if ".mdxmix-" in line and line.endswith(".tmp")]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_7_stdout_on_a_full_device_says_no_space_left_in_one_line(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "mdxmix", "song.wav", "--stdout", "vocals", "-c", ckpt, "--no-cache"],
                              cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.splitlines() == ["mdxmix: error: cannot write stdout: no space left on device"]


def _cache_entry(cache: Path) -> tuple[Path, Path]:
    (data,) = cache.rglob("*.npy")
    return data, data.with_suffix(".json")


def test_8_a_cache_entry_of_the_wrong_length_is_recomputed(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 1.0, 44100)
    args = ("song.wav", "-o", "out", "-c", ckpt, "--cache-dir", "cache", "--json", "--overwrite")
    assert run(*args, cwd=tmp_path).returncode == 0
    data, meta = _cache_entry(tmp_path / "cache")
    np.save(data, np.load(data)[:, :1000])
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps({**info, "frames": 1000}))
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert records(again)[0]["upstream_runs"] > 0 and np.load(data).shape[1] == 44100


def test_9_a_bad_cache_size_limit_is_a_usage_error_before_any_work(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    done = run("song.wav", "-o", "out", "-c", ckpt, "--cache-dir", "cache", cwd=tmp_path, env={"MDXMIX_CACHE_MAX_GB": "abc"})
    assert done.returncode == 2 and error_lines(done) == [
        "mdxmix: error: MDXMIX_CACHE_MAX_GB='abc': give the cache's size limit in GB, a number >= 0 (e.g. 20)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_10_names_near_the_255_byte_limit_work_and_longer_ones_fail_alone(tmp_path, ckpt):
    long = "x" * 246  # + ".wav" = 250 bytes: the stems' folder is 246 bytes
    write_tone(tmp_path / f"{long}.wav", 0.5, 44100)
    write_tone(tmp_path / "ok.wav", 0.5, 44100)
    args = (f"{long}.wav", "-o", "out", "-c", ckpt, "--no-cache", "--json")
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "tiny_mdx" / long).iterdir()) == STEM_FILES
    assert records(run(*args, cwd=tmp_path))[0]["status"] == "skipped"
    flat = run(f"{long}.wav", "ok.wav", "-o", "flat", "-c", ckpt, "--no-cache", "--json", "--filename", "{track}-{stem}.{ext}", cwd=tmp_path)
    too_long, fine = records(flat)
    assert flat.returncode == 1 and too_long["status"] == "failed" and "bytes; file systems allow 255" in too_long["error"]
    assert fine["status"] == "ok" and "internal error" not in flat.stderr


# --- wrong output with exit 0 -------------------------------------------------------------
@pytest.mark.parametrize("damage", ["nan", "noise", "reordered"])
def test_11_a_damaged_cache_entry_is_dropped_and_recomputed(tmp_path, ckpt, damage):
    write_tone(tmp_path / "song.wav", 1.0, 44100)
    args = ("song.wav", "-c", ckpt, "--cache-dir", "cache", "--json", "--overwrite", "--float32")
    assert run(*args, "-o", "clean", cwd=tmp_path).returncode == 0
    data, meta = _cache_entry(tmp_path / "cache")
    array = np.load(data)
    if damage == "nan":
        array[:, 5000:6000] = np.nan
        np.save(data, array)
    elif damage == "noise":
        np.save(data, np.random.default_rng(0).uniform(-60000, 60000, array.shape).astype(np.float16))
    else:
        info = json.loads(meta.read_text())
        meta.write_text(json.dumps({**info, "stems": info["stems"][::-1]}))
    again = run(*args, "-o", "again", cwd=tmp_path)
    assert again.returncode == 0 and records(again)[0]["upstream_runs"] > 0
    for name in STEM_FILES:
        clean = sf.read(tmp_path / "clean" / "tiny_mdx" / "song" / name)[0]
        np.testing.assert_allclose(sf.read(tmp_path / "again" / "tiny_mdx" / "song" / name)[0], clean, atol=1e-5)


def test_11_entries_from_before_checksums_are_kept_if_plausible_and_pinned(tmp_path):
    from mdxmix.cache import StemCache

    cache = StemCache(tmp_path)
    for key, value in (("a" * 32, 0.5), ("b" * 32, 48000.0)):
        cache.put("up", key, {"drums": torch.full((2, 100), 0.5), "bass": torch.zeros(2, 100)})
        data, meta = cache._paths("up", key)
        np.save(data, np.full((4, 100), value, dtype=np.float16))
        info = json.loads(meta.read_text())
        del info["sha256"]  # the format of earlier versions
        meta.write_text(json.dumps(info))
    kept = cache.get("up", "a" * 32, frames=100)
    assert kept is not None and float(kept["drums"][0, 0]) == 0.5 and "sha256" in json.loads(cache._paths("up", "a" * 32)[1].read_text())
    assert cache.get("up", "b" * 32) is None and not cache._paths("up", "b" * 32)[0].exists()


def test_11_an_entry_deleted_by_another_process_mid_eviction_is_skipped(tmp_path):
    from mdxmix.cache import StemCache

    cache = StemCache(tmp_path)
    for key in ("a" * 32, "b" * 32):
        cache.put("up", key, {"drums": torch.full((2, 1000), 0.5)})
    data, _ = cache._paths("up", "c" * 32)
    data.symlink_to(tmp_path / "gone.npy")  # listed by the eviction, gone when it looks at it
    cache.enforce_limit(limit_bytes=cache._paths("up", "a" * 32)[0].stat().st_size)
    assert sum(cache.get("up", key) is not None for key in ("a" * 32, "b" * 32)) == 1


def test_12_a_checkpoint_file_name_cannot_move_outputs_out_of_the_output_folder(tmp_path, ckpt):
    (tmp_path / "ck").mkdir()
    shutil.copy(ckpt, tmp_path / "ck" / "...safetensors")  # its name (stem) is '..'
    shutil.copy(Path(ckpt).parent / "tiny_hdemucs.safetensors", tmp_path / "ck")
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    done = run("song.wav", "-o", "sub/out", "-c", "ck/...safetensors", "--no-cache", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for path in records(done)[0]["outputs"].values():
        assert (tmp_path / "sub" / "out").resolve() in (tmp_path / path).resolve().parents
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out"]


def test_13_mp3_keeps_the_input_rate_or_fails_that_song_in_one_line(tmp_path, ckpt):
    write_tone(tmp_path / "a.wav", 1.0, 44100)
    write_tone(tmp_path / "b.wav", 0.5, 96000)
    done = run("a.wav", "b.wav", "-o", "out", "-c", ckpt, "--no-cache", "--json", "--mp3", "--mp3-bitrate", "64", cwd=tmp_path)
    a, b = records(done)
    assert sf.info(tmp_path / "out" / "tiny_mdx" / "a" / "vocals.mp3").samplerate == 44100
    assert b["status"] == "failed" and b["error"] == "MP3 cannot store 96000 Hz audio; use WAV or --flac for this song"
    low = run("a.wav", "-o", "low", "-c", ckpt, "--no-cache", "--mp3", "--mp3-bitrate", "320", cwd=tmp_path)
    assert low.returncode == 0  # 44.1 kHz takes 32-320 kbit/s
    write_tone(tmp_path / "c.wav", 0.5, 22050)
    narrow = run("c.wav", "-o", "low", "-c", ckpt, "--no-cache", "--mp3", "--mp3-bitrate", "320", cwd=tmp_path)
    assert narrow.returncode == 1 and "MP3 at 22050 Hz takes 8-160 kbit/s, not --mp3-bitrate 320" in narrow.stderr


def test_14_two_stems_of_loud_16_bit_material_add_back_within_half_a_quantisation_step(tmp_path, ckpt):
    t = np.arange(44100) / 44100
    loud = np.stack([np.sin(2 * np.pi * 100 * t), np.sin(2 * np.pi * 150 * t)], 1) * 0.999
    sf.write(tmp_path / "loud.wav", loud, 44100, subtype="PCM_16")
    original = sf.read(tmp_path / "loud.wav")[0]
    raw = ("--consistency", "none")  # the raw mixer output of this tiny model overshoots in both stems
    free = run("loud.wav", "-o", "free", "-c", ckpt, "--no-cache", "--two-stems", "vocals", "--float32", *raw, cwd=tmp_path)
    assert free.returncode == 0, free.stderr
    peaks = [np.abs(sf.read(tmp_path / "free" / "tiny_mdx" / "loud" / f"{n}.wav")[0]).max() for n in ("vocals", "no_vocals")]
    assert min(peaks) > 1.0 and abs(peaks[0] - peaks[1]) > 0.5  # both clip in 16-bit, by different amounts
    done = run("loud.wav", "-o", "out", "-c", ckpt, "--no-cache", "--two-stems", "vocals", *raw, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "tiny_mdx" / "loud"
    assert sf.info(folder / "vocals.wav").subtype == "PCM_16"
    total = sf.read(folder / "vocals.wav")[0] + sf.read(folder / "no_vocals.wav")[0]
    shared = float((total * original).sum() / (original * original).sum())  # the one factor of the pair
    assert 0.3 < shared < 1.0  # rescaled to fit, once for both
    assert np.abs(total - shared * original).max() <= 0.5 / 32768 + 1e-6


def test_15_an_output_folder_inside_the_input_folder_is_never_separated_again(tmp_path, ckpt):
    (tmp_path / "music").mkdir()
    write_tone(tmp_path / "music" / "song.wav", 0.5, 44100)
    for out in ("music/sep", "music/sep", "music/other"):
        done = run("music", "-o", out, "-c", ckpt, "--no-cache", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert [r["input"] for r in records(done)] == ["music/song.wav"]


# --- messages and exit codes ---------------------------------------------------------------
@pytest.mark.parametrize("args,says", [
    (["song.wav", "--bogus"], "No such option: --bogus"),
    (["song.wav", "-j", "0"], "'-j' / '--jobs': Input should be greater than or equal to 1"),
    (["separate"], "Missing argument 'inputs'"),
    (["song.wav", "--mp3-bitrate", "lots"], "'--mp3-bitrate': Input should be a valid integer"),
    (["-dash.wav"], "write ./-dash.wav"),
])
def test_16_command_line_parse_errors_exit_2_in_one_line(tmp_path, args, says):
    write_tone(tmp_path / "song.wav", 0.1, 44100)
    write_tone(tmp_path / "-dash.wav", 0.1, 44100)
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2 and len(error_lines(done)) == 1 and says in done.stderr, done.stderr
    assert "internal error" not in done.stderr


def test_16_bare_mdxmix_shows_the_help(tmp_path):
    done = run(cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("Usage: mdxmix") and "separate" in done.stdout


def test_17_unwritable_output_paths_fail_before_the_work(tmp_path, ckpt):
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    started = time.monotonic()
    done = run("inspect", "song.wav", "-c", ckpt, "--no-cache", "--plot", "/missing/dir/w.png", cwd=tmp_path)
    assert done.returncode == 2 and error_lines(done) == ["mdxmix: error: --plot /missing/dir/w.png: the folder /missing/dir does not exist"]
    (tmp_path / "afile").write_text("")
    done = run("song.wav", "-o", "afile/out", "-c", ckpt, "--no-cache", cwd=tmp_path)
    assert done.returncode == 2 and "is a file, not a folder" in done.stderr
    # eval makes a missing --plot folder (like --out), but not through a file
    done = run("eval", "--data", ".", "--estimates", ".", "--plot", "afile/dir/sdr.png", cwd=tmp_path)
    assert done.returncode == 2 and error_lines(done) == ["mdxmix: error: --plot afile/dir: afile is a file, not a folder"]
    done = run("train", "--data", ".", "--out", "afile/run", cwd=tmp_path)
    assert done.returncode == 2 and error_lines(done) == ["mdxmix: error: --out afile/run: afile is a file, not a folder"]
    assert time.monotonic() - started < 90


@pytest.mark.parametrize("args", [["--device", "tpu"], ["--precision", "fp8"], ["-d", "cuda:x"]])
def test_18_unknown_device_or_precision_is_a_usage_error(tmp_path, ckpt, args):
    write_tone(tmp_path / "song.wav", 0.1, 44100)
    done = run("song.wav", "-c", ckpt, *args, cwd=tmp_path)
    assert done.returncode == 2 and len(error_lines(done)) == 1 and args[1] in done.stderr


def test_19_a_hub_upstream_without_network_fails_in_one_line_fast(tmp_path, model_dir):
    spec = UpstreamSpec(family="demucs", model="htdemucs", stems=STEMS)
    mixer = Conv1x1Mixer(Conv1x1Config(in_channels=10, segment=2**14))
    save_checkpoint(tmp_path / "hub.safetensors", mixer, CheckpointMeta(mixer.kind, {}, [spec]))
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": ""}
    started = time.monotonic()
    done = run("song.wav", "-c", "hub.safetensors", "--no-cache", cwd=tmp_path, env=env)
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and len(error_lines(done)) == 1, done.stderr
    assert "Demucs model 'htdemucs'" in done.stderr and "cannot reach 127.0.0.1:9" in done.stderr
    assert elapsed < 20  # huggingface_hub alone retries for ~25 s


def test_20_a_malformed_registry_entry_is_named_with_the_reason(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "registry.json").write_text(json.dumps({"default": "x", "checkpoints": {"x": {"hub": {"filename": "x.safetensors"}}}}))
    write_tone(tmp_path / "song.wav", 0.1, 44100)
    done = run("song.wav", cwd=tmp_path, env={"MDXMIX_WEIGHTS": str(weights)})
    assert done.returncode == 1 and error_lines(done) == [
        "mdxmix: error: registry entry 'x': its hub location {\"filename\": \"x.safetensors\"} lacks 'repo_id' (a non-empty string)"]


# --- issue 13 item 7: `mdxmix --help` loads no heavy module ------------------------------------
def test_help_imports_neither_torch_nor_training_and_lists_lazy_commands_truly():
    code = ("import sys; from mdxmix.cli import main, LAZY_COMMANDS, load_lazy_command; rc = main(['--help']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(('mdxmix.train', "
            "'mdxmix.evaluate', 'mdxmix.pipeline'))); print(rc, heavy); "
            "print(all(load_lazy_command(n).help.split(chr(10))[0].strip() == LAZY_COMMANDS[n][3] for n in LAZY_COMMANDS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    *_, imported, truthful = done.stdout.splitlines()
    assert imported == "0 []" and truthful == "True"
    assert "train " in done.stdout and "eval " in done.stdout


def test_11_reading_an_entry_protects_it_from_eviction(tmp_path):
    # Eviction deletes the entries read longest ago first. With relatime (Linux's default) the
    # kernel leaves a file's access time alone when it is newer than the file's last change, and
    # with noatime always, so the cache must set it on every hit. A test cannot make a file's
    # change time old, so the "kernel would not move it" state is an access time ahead of it.
    from mdxmix.cache import StemCache

    cache = StemCache(tmp_path)
    now = time.time()
    for key, last_read in (("a" * 32, now + 3600), ("b" * 32, now - 60)):
        cache.put("up", key, {"drums": torch.full((2, 1000), 0.5)})
        os.utime(cache._paths("up", key)[0], (last_read, now - 7200))
    assert cache.get("up", "a" * 32) is not None
    data = cache._paths("up", "a" * 32)[0]
    assert abs(data.stat().st_atime - time.time()) < 60 and data.stat().st_mtime == pytest.approx(now - 7200)
    cache.enforce_limit(limit_bytes=data.stat().st_size)
    assert cache.get("up", "a" * 32) is not None and cache.get("up", "b" * 32) is None
