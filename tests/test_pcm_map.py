"""Mapped 16-bit WAV input (`mdxmix.pcm_map`): the same samples as soundfile reads, or no mapping at all."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st

from mdxmix.audio import PcmSamples, read_audio
from mdxmix.cache import audio_key
from mdxmix.pcm_map import wav_layout

RATE = 44100


def _wav_bytes(samples: np.ndarray, *, extra: list[tuple[bytes, bytes]] = (), data_size: int | None = None,
               bits: int = 16, tag: int = 1) -> bytes:
    """A RIFF/WAVE file written by hand, so chunk order, odd-sized chunks and bad sizes can be chosen."""
    frames, channels = samples.shape
    payload = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", tag, channels, RATE, RATE * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for name, data in extra:
        body += name + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    body += b"data" + struct.pack("<I", len(payload) if data_size is None else data_size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@settings(max_examples=20, deadline=None)
@given(frames=st.integers(min_value=1, max_value=20000), channels=st.sampled_from([1, 2]),
       kind=st.sampled_from(["WAV", "WAVEX", "FLAC"]),
       cuts=st.lists(st.integers(min_value=0, max_value=20000), min_size=2, max_size=2))
def test_a_mapped_song_gives_the_samples_key_and_statistics_of_a_read_one(tmp_path_factory, frames, channels, kind, cuts):
    """WAV files are mapped, FLAC files decoded a window at a time: both equal the whole read."""
    path = tmp_path_factory.mktemp("map") / ("song.flac" if kind == "FLAC" else "song.wav")
    ints = np.random.default_rng(frames).integers(-32768, 32768, size=(frames, channels)).astype(np.int16)
    sf.write(path, ints, RATE, subtype="PCM_16", format=kind)
    mapped, info = read_audio(path, compact=True)
    read, _ = read_audio(path)
    assert isinstance(mapped, PcmSamples) and mapped.mapped and info.frames == frames
    a, b = sorted(cuts)
    assert torch.equal(mapped[:, a:b], read[:, a:b]) and torch.equal(mapped[1, a:b], read[1, a:b])
    assert torch.equal(mapped[:, :], read)
    assert audio_key(mapped) == audio_key(read)
    held = PcmSamples(torch.from_numpy(np.array(np.broadcast_to(ints.T, (2, frames)))))
    assert float(mapped.mean()) == float(held.mean()) and float(mapped.std()) == float(held.std())


def test_chunks_before_the_data_odd_sizes_included_are_skipped(tmp_path):
    ints = np.arange(-500, 500, dtype=np.int16).reshape(-1, 2)
    (tmp_path / "a.wav").write_bytes(_wav_bytes(ints, extra=[(b"LIST", b"odd"), (b"junk", b"\0" * 10)]))
    layout = wav_layout(tmp_path / "a.wav", 500)
    assert layout is not None and layout.channels == 2
    mapped, _ = read_audio(tmp_path / "a.wav", compact=True)
    assert mapped.mapped and torch.equal(mapped[:, :], torch.from_numpy(ints.T / 32768.0).float())


@pytest.mark.parametrize("case", ["wrong size", "24-bit", "float", "not riff", "truncated"])
def test_what_is_not_a_plain_16_bit_wav_is_not_mapped(tmp_path, case):
    ints = np.zeros((100, 2), dtype=np.int16)
    data = {"wrong size": _wav_bytes(ints, data_size=0xFFFFFFFF), "24-bit": _wav_bytes(ints, bits=24),
            "float": _wav_bytes(ints, tag=3), "not riff": b"RIFX" + _wav_bytes(ints)[4:],
            "truncated": _wav_bytes(ints)[:-40]}[case]
    (tmp_path / "a.wav").write_bytes(data)
    assert wav_layout(tmp_path / "a.wav", 100) is None


def test_other_formats_are_read_as_before(tmp_path):
    song = np.zeros((1000, 2), dtype=np.int16)
    sf.write(tmp_path / "a.aiff", song, RATE, subtype="PCM_16")
    sf.write(tmp_path / "a.wav", song, RATE, subtype="PCM_24")
    assert not read_audio(tmp_path / "a.aiff", compact=True)[0].mapped  # held as int16
    assert isinstance(read_audio(tmp_path / "a.wav", compact=True)[0], torch.Tensor)


def test_a_mapped_song_refuses_strided_reads(tmp_path: Path):
    sf.write(tmp_path / "a.wav", np.zeros((100, 2), dtype=np.int16), RATE, subtype="PCM_16")
    mapped, _ = read_audio(tmp_path / "a.wav", compact=True)
    with pytest.raises(IndexError):
        mapped[:, ::2]


def test_a_file_cut_short_while_mapped_is_a_clean_error(tmp_path: Path):
    """Without the size check the read below is a SIGBUS that kills the process."""
    from mdxmix.errors import AudioError

    sf.write(tmp_path / "a.wav", np.ones((RATE, 2), dtype=np.int16), RATE, subtype="PCM_16")
    mapped, _ = read_audio(tmp_path / "a.wav", compact=True)
    assert float(mapped[0, :10].sum()) == 10 / 32768
    with open(tmp_path / "a.wav", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(AudioError, match="cut short"):
        mapped[:, RATE // 2 :]


def test_a_flac_cut_short_while_being_read_is_a_clean_error(tmp_path: Path):
    from mdxmix.errors import AudioError

    ints = np.random.default_rng(0).integers(-3000, 3000, size=(10 * RATE, 2)).astype(np.int16)
    sf.write(tmp_path / "a.flac", ints, RATE, subtype="PCM_16")
    served, _ = read_audio(tmp_path / "a.flac", compact=True)
    assert served.mapped and torch.equal(served[:, 5:9], torch.from_numpy(ints[5:9].T / 32768.0).float())
    size = (tmp_path / "a.flac").stat().st_size
    with open(tmp_path / "a.flac", "r+b") as handle:
        handle.truncate(size // 3)
    with pytest.raises(AudioError):
        served[:, 8 * RATE :]
