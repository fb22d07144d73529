"""The command line of musicians and scripts: batches, resume, formats, pipes, JSON, cache."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mdxmix.stems import STEMS

from conftest import write_tone


def run(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mdxmix", *args], cwd=cwd, input=stdin, capture_output=True, timeout=300)


@pytest.fixture()
def ckpt(model_dir) -> str:
    return str(model_dir / "tiny_mdx.safetensors")


def test_folder_batch_reports_failures_goes_on_and_resumes(tmp_path, ckpt):
    songs = tmp_path / "songs"
    (songs / "live").mkdir(parents=True)
    write_tone(songs / "mono.wav", 1.0, 44100, channels=1)
    write_tone(songs / "live" / "hi.flac", 1.0, 48000)
    (songs / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    args = ("songs", "-o", "out", "-c", ckpt, "--cache-dir", "cache", "--json")
    first = run(*args, "-j", "2", cwd=tmp_path)  # two songs at a time, one model
    assert first.returncode == 1
    records = {Path(r["input"]).name: r for r in map(json.loads, first.stdout.decode().splitlines())}
    assert {k: v["status"] for k, v in records.items()} == {"broken.wav": "failed", "hi.flac": "ok", "mono.wav": "ok"}
    assert "broken.wav: not a readable audio file" in records["broken.wav"]["error"]
    assert "3 songs: 2 separated, 0 skipped" in first.stderr.decode() and "1 failed" in first.stderr.decode()
    info = sf.info(tmp_path / "out" / "tiny_mdx" / "hi" / "vocals.wav")
    assert (info.samplerate, info.frames, info.channels) == (48000, 48000, 2)
    hidden = [p.name for p in (tmp_path / "out").rglob(".*")]
    assert hidden == [".mdxmix-output"]  # the output marker only: no temporary leftovers, also for the failed song
    again = run(*args, cwd=tmp_path)
    statuses = sorted(json.loads(line)["status"] for line in again.stdout.decode().splitlines())
    assert again.returncode == 1 and statuses == ["failed", "skipped", "skipped"]
    redo = run("songs/mono.wav", "-o", "out", "-c", ckpt, "--cache-dir", "cache", "--json", "--overwrite", cwd=tmp_path)
    record = json.loads(redo.stdout)
    assert redo.returncode == 0 and record["status"] == "ok" and record["upstream_runs"] == 0  # stems came from the cache


def test_two_stems_add_back_to_the_input(tmp_path, ckpt):
    data = write_tone(tmp_path / "song.wav", 1.5, 32000, subtype="FLOAT")
    done = run("song.wav", "-o", "out", "-c", ckpt, "--two-stems", "vocals", "--float32", "--no-cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "tiny_mdx" / "song"
    assert sorted(p.name for p in folder.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    vocals, rate = sf.read(folder / "vocals.wav")
    rest, _ = sf.read(folder / "no_vocals.wav")
    assert rate == 32000 and vocals.shape == data.shape
    np.testing.assert_allclose(vocals + rest, data, atol=1e-6)


def test_stdin_to_stdout_pipe_gives_one_wav_of_the_right_length(tmp_path, ckpt):
    buffer = io.BytesIO()
    t = np.arange(22050 * 2) / 22050
    sf.write(buffer, np.stack([np.sin(2 * np.pi * 330 * t)] * 2, 1) * 0.3, 22050, format="FLAC")
    done = run("-", "--stdout", "vocals", "-c", ckpt, "--no-cache", cwd=tmp_path, stdin=buffer.getvalue())
    assert done.returncode == 0, done.stderr
    audio, rate = sf.read(io.BytesIO(done.stdout))
    assert rate == 22050 and audio.shape == (44100, 2)
    assert not (tmp_path / "separated").exists()


@pytest.mark.parametrize("flags,ext,check", [
    (("--flac", "--int24"), "flac", lambda i: i.subtype == "PCM_24"),
    (("--mp3", "--mp3-bitrate", "128"), "mp3", lambda i: i.format == "MP3"),
])
def test_formats_and_subset_and_template(tmp_path, ckpt, flags, ext, check):
    write_tone(tmp_path / "a.wav", 1.0, 44100)
    done = run("a.wav", "-o", "out", "-c", ckpt, "--no-cache", "--stems", "vocals,bass", "--filename", "{track}-{stem}.{ext}",
               *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "out" / "tiny_mdx").iterdir())
    assert files == [f"a-bass.{ext}", f"a-vocals.{ext}"]
    info = sf.info(tmp_path / "out" / "tiny_mdx" / f"a-vocals.{ext}")
    assert check(info) and info.samplerate == 44100 and info.channels == 2
    assert abs(info.frames - 44100) < 3000  # MP3 adds encoder padding; the others are exact


@pytest.mark.parametrize("template", ["../{track}/{stem}.{ext}", "/tmp/{stem}.{ext}", "{track}.{ext}", "{song}/{stem}.{ext}"])
def test_templates_that_escape_or_collide_are_usage_errors(tmp_path, ckpt, template):
    write_tone(tmp_path / "a.wav", 0.5, 44100)
    done = run("a.wav", "-c", ckpt, "--filename", template, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1 and "--filename" in done.stderr.decode()
    assert not (tmp_path / "separated").exists()


def test_clip_modes_rescale_and_clamp_like_demucs(tmp_path, ckpt):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "loud.wav", np.stack([np.sin(2 * np.pi * 100 * t)] * 2, 1) * 3.0, 44100, subtype="FLOAT")
    stems = {}
    for mode, flag in (("none", "--float32"), ("rescale", "--int24"), ("clamp", "--int24")):
        done = run("loud.wav", "-o", mode, "-c", ckpt, "--no-cache", "--clip-mode", mode, flag, "--consistency", "none",
                   cwd=tmp_path)  # the raw mixer output: loud enough in every stem to need clipping
        assert done.returncode == 0, done.stderr
        stems[mode] = {s: sf.read(tmp_path / mode / "tiny_mdx" / "loud" / f"{s}.wav")[0] for s in STEMS}
    quantum = 2.0**-23
    for stem in STEMS:
        free = stems["none"][stem]
        peak = np.abs(free).max()
        assert peak > 1.0  # float output keeps what a 24-bit file cannot hold
        np.testing.assert_allclose(stems["rescale"][stem], free / max(1.01 * peak, 1.0), atol=2 * quantum + 1e-6)
        np.testing.assert_allclose(stems["clamp"][stem], np.clip(free, -1.0, 1.0 - quantum), atol=2 * quantum + 1e-6)


def test_cache_command_and_models_listing(tmp_path):
    (tmp_path / "c" / "v1" / "x").mkdir(parents=True)
    (tmp_path / "c" / "v1" / "x" / f"{'0' * 32}.npy").write_bytes(b"0" * 1000)
    shown = json.loads(run("cache", "--cache-dir", "c", "--json", cwd=tmp_path).stdout)
    assert shown["bytes"] == 1000
    cleared = json.loads(run("cache", "--cache-dir", "c", "--clear", "--json", cwd=tmp_path).stdout)
    assert cleared["cleared"] and list((tmp_path / "c").iterdir()) == []  # entries go; the folder named by the user stays
    assert run("models", "--json", cwd=tmp_path).returncode == 0
    # piped (as here): a header and one tab-separated line per checkpoint, whatever the terminal width
    lines = [line.split("\t") for line in run("models", cwd=tmp_path).stdout.decode().splitlines()]
    assert lines[0] == ["name", "registry", "status", "size", "mixer", "takes", "upstreams", "description", "default"]
    assert all(len(line) == 9 for line in lines)
    registry = json.loads((Path(__file__).resolve().parents[1] / "weights" / "registry.json").read_text())
    rows = {line[0]: line for line in lines[1:]}
    assert set(registry["checkpoints"]) <= set(rows) and rows[registry["default"]][8] == "yes"
    assert rows[registry["default"]][7] == registry["checkpoints"][registry["default"]]["description"]


def test_inspect_writes_weights_csv_and_plot(tmp_path, ckpt):
    write_tone(tmp_path / "a.wav", 1.0, 44100)
    done = run("inspect", "a.wav", "-c", ckpt, "--no-cache", "--csv", "w.csv", "--plot", "w.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "w.csv").read_text().splitlines()
    assert lines[0] == "segment,start_seconds,input,output,weight"
    segments = {line.split(",")[0] for line in lines[1:]}
    assert len(lines) - 1 == len(segments) * 10 * 8  # every segment: (2+C)=10 inputs × 8 outputs
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_default_jobs_is_two_songs_at_a_time_only_when_both_exist():
    from mdxmix.device import default_jobs

    assert default_jobs(songs=4, cores=2) == 2 and default_jobs(songs=4, cores=16) == 2
    assert default_jobs(songs=1, cores=16) == 1 and default_jobs(songs=4, cores=1) == 1
