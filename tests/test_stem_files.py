"""Bring your own stems: the layouts of demucs, audio-separator and MSST, mappings, and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mdxmix.errors import UpstreamError, UsageError
from mdxmix.stems import STEMS
from mdxmix.upstream.stem_files import StemFiles, parse_stems_from

RATE = 44100
FRAMES = RATE  # one second


def stem_audio(index: int, frames: int = FRAMES) -> np.ndarray:
    rng = np.random.default_rng(index)
    return (0.1 * rng.standard_normal((frames, 2))).astype(np.float32)


def write(path, data, rate=RATE, subtype="FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)


def test_demucs_layout_and_lazy_reads(tmp_path):
    for i, stem in enumerate(STEMS):
        write(tmp_path / "separated" / "htdemucs" / "my song" / f"{stem}.wav", stem_audio(i))
    for folder in (tmp_path / "separated" / "htdemucs", tmp_path / "separated"):  # DIR/TRACK or DIR/<model>/TRACK
        files = StemFiles(folder)
        readers = files.open("my song", FRAMES)
        assert list(readers) == list(STEMS)
        np.testing.assert_array_equal(readers["bass"][:, 100:300], stem_audio(1)[100:300].T)
        np.testing.assert_array_equal(np.asarray(readers["vocals"]), stem_audio(3).T)
    assert StemFiles(tmp_path / "separated" / "htdemucs").name == "files:htdemucs"


def test_audio_separator_and_msst_names(tmp_path):
    write(tmp_path / "uvr" / "song_(Vocals)_model_bs_roformer.wav", stem_audio(3))
    write(tmp_path / "uvr" / "song_(Instrumental)_model_bs_roformer.wav", stem_audio(9))  # not one of the four: ignored
    write(tmp_path / "uvr" / "other song_(Vocals)_x.wav", stem_audio(7))
    assert list(StemFiles(tmp_path / "uvr").locate("song")) == ["vocals"]
    for i, stem in enumerate(("drums", "bass")):
        write(tmp_path / "msst" / f"song_{stem}.flac", stem_audio(i), subtype="PCM_24")
    located = StemFiles(tmp_path / "msst").locate("song")
    assert [p.name for p in located.values()] == ["song_drums.flac", "song_bass.flac"]


def test_explicit_mapping(tmp_path):
    write(tmp_path / "mine" / "v" / "song.wav", stem_audio(3)[:, :1])  # mono is duplicated
    write(tmp_path / "mine" / "song-drums.wav", stem_audio(0))
    files = parse_stems_from(f"{tmp_path / 'mine'}::vocals=v/{{track}}.wav, drums={{track}}-drums.wav")
    readers = files.open("song", FRAMES)
    assert list(readers) == ["drums", "vocals"]
    np.testing.assert_array_equal(readers["vocals"][:, :], np.repeat(stem_audio(3)[:, :1].T, 2, axis=0))
    with pytest.raises(UpstreamError, match="no file .*other.wav for song 'other'"):
        files.locate("other")
    for bad in ("::vocals=x", "::voice={track}.wav", "::vocals={track}.wav,vocals=b.wav", "::vocals={name}.wav"):
        with pytest.raises(UsageError):
            parse_stems_from(f"{tmp_path / 'mine'}{bad}" if bad != "::vocals=x" else f"{tmp_path / 'nowhere'}{bad}")


def test_wrong_length_rate_or_missing_song_is_one_line(tmp_path):
    write(tmp_path / "a" / "song" / "vocals.wav", stem_audio(3, FRAMES // 2))
    with pytest.raises(UpstreamError, match=r"0\.50 s long, the song is 1\.00 s"):
        StemFiles(tmp_path / "a").open("song", FRAMES)
    write(tmp_path / "b" / "song" / "vocals.wav", stem_audio(3, 22050), rate=22050)
    with pytest.raises(UpstreamError, match="22050 Hz, expected 44100 Hz or the song's 48000 Hz"):
        StemFiles(tmp_path / "b").open("song", FRAMES, song_rate=48000)
    with pytest.raises(UpstreamError, match="no stems for song 'absent'") as info:
        StemFiles(tmp_path / "a").locate("absent")
    assert "\n" not in str(info.value)


def test_stems_at_the_songs_rate_are_resampled_and_round_off_is_tolerated(tmp_path):
    t = np.arange(48000) / 48000
    tone = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1).astype(np.float32) * 0.5
    write(tmp_path / "c" / "song" / "bass.wav", tone, rate=48000)
    reader = StemFiles(tmp_path / "c").open("song", FRAMES + 3, song_rate=48000)["bass"]  # 3 samples of round-off
    data = np.asarray(reader)
    assert data.shape == (2, FRAMES + 3)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(FRAMES + 3) / RATE)
    assert np.abs(data[0, 2000:-2000] - expected[2000:-2000]).max() < 1e-3
