"""The `mdxmix` command end to end, as a user runs it (a real subprocess, a real checkpoint)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from mdxmix.stems import STEMS

from conftest import write_tone


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mdxmix", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_stereo_48k_and_mono_inputs_give_four_stereo_stems_of_input_length(tmp_path, model_dir):
    write_tone(tmp_path / "song.wav", 3.0, 48000)
    write_tone(tmp_path / "voice.wav", 3.0, 44100, channels=1, subtype="PCM_24")
    done = run("song.wav", "voice.wav", "-o", "out", "--checkpoint", str(model_dir / "tiny_mdx.safetensors"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["input"] for r in records] == ["song.wav", "voice.wav"]
    for track, rate, subtype in (("song", 48000, "PCM_16"), ("voice", 44100, "PCM_24")):
        for stem in STEMS:
            info = sf.info(tmp_path / "out" / "tiny_mdx" / track / f"{stem}.wav")
            assert (info.samplerate, info.frames, info.channels, info.subtype) == (rate, 3 * rate, 2, subtype)
    leftovers = [p for p in (tmp_path / "out").rglob("*") if (p.is_file() and p.suffix != ".wav" or p.name.startswith(".")) and p.name != ".mdxmix-output"]
    assert leftovers == []


def test_conv1x1_checkpoint_runs_too(tmp_path, model_dir):
    write_tone(tmp_path / "a.wav", 1.0, 22050)
    done = run("a.wav", "-o", "out", "-c", str(model_dir / "tiny_conv.safetensors"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "out" / "tiny_conv" / "a" / "vocals.wav").frames == 22050


def test_missing_file_and_non_audio_fail_with_one_line_and_no_output(tmp_path, model_dir):
    (tmp_path / "notes.wav").write_text("this is a text file, not audio\n")
    for name, message in (("absent.wav", "absent.wav: no such file"), ("notes.wav", "notes.wav: not a readable audio file")):
        done = run(name, "-o", "out", "-c", str(model_dir / "tiny_mdx.safetensors"), cwd=tmp_path)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mdxmix: error:") and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        assert not any(p.is_file() for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True


def test_unknown_checkpoint_is_one_line(tmp_path):
    write_tone(tmp_path / "a.wav", 0.5, 44100)
    done = run("a.wav", "--checkpoint", "nonexistent-mixer", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "unknown checkpoint 'nonexistent-mixer'" in done.stderr


def test_verbose_shows_the_traceback(tmp_path, model_dir):
    done = run("absent.wav", "-c", str(model_dir / "tiny_mdx.safetensors"), "--verbose", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr and "absent.wav: no such file" in done.stderr


def test_every_subcommand_takes_the_verbose_its_errors_suggest(tmp_path):
    # `mdxmix train`, `eval`, `models` and `cache` have no option of their own for it
    for args, message in ((("train", "--data", "absent", "--upstream", "demucs:htdemucs", "--out", "o"), "absent"),
                          (("eval", "--data", "absent"), "nothing to score")):
        quiet, loud = run(*args, cwd=tmp_path), run(*args, "--verbose", cwd=tmp_path)
        assert quiet.returncode == loud.returncode != 0 and message in loud.stderr, loud.stderr
        assert "No such option" not in loud.stderr and "Traceback" not in quiet.stderr
    assert run("cache", "--verbose", "-v", cwd=tmp_path).returncode == 0


def test_help_shows_examples(tmp_path):
    done = run("separate", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "mdxmix song.wav" in done.stdout
