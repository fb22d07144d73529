"""Long files (issue 14): memory and temporary disk that do not grow with the song.

Peak memory is measured in a fresh subprocess as its VmHWM (a high-water mark of this
process image: the test process itself ran other tests, and `ru_maxrss` carries the
parent's peak across fork and exec).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxmix.audio import PcmSamples, read_audio
from mdxmix.cache import StemCache, audio_key
from mdxmix.outputs import OutputFormat, SongOutput

STEMS4 = ("drums", "bass", "other", "vocals")
RATE = 44100


def _printed_numbers(code: str, tmp_path: Path) -> list[float]:
    """Run `code` in a fresh interpreter; the numbers on the last line it prints."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return [float(v) for v in done.stdout.strip().splitlines()[-1].split()]


def _peak_growth_mib(code: str, tmp_path: Path) -> float:
    """Run `code` (which must print the peak RSS growth in MiB last) in a fresh interpreter."""
    return _printed_numbers(code, tmp_path)[-1]


def test_the_cache_writer_holds_one_block_not_the_entry(tmp_path):
    """A 300-s four-stem entry (202 MiB of float16) written in 60-s blocks: memory stays at the block.

    Through a memory map every written page stayed resident (the RSS grew by the entry's size).
    """
    growth = _peak_growth_mib("""
        import numpy as np, torch
        from mdxmix.cache import StemCache
        rss = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
        frames, block = 44100 * 300, 44100 * 60
        cache = StemCache("cache")
        writer = cache.writer("u", "0" * 32, ("drums", "bass", "other", "vocals"), frames)
        stems = {s: torch.full((2, block), 0.25 * (i + 1)) for i, s in enumerate(("drums", "bass", "other", "vocals"))}
        writer.write(0, stems)  # the first block's own buffers are allocated: measure from here
        before = rss()
        for start in range(block, frames, block):
            writer.write(start, stems)
        writer.commit()
        entry = cache.get("u", "0" * 32, frames=frames)
        assert entry is not None and float(entry["other"][1, -1]) == 0.75
        print(rss() - before)
    """, tmp_path)
    assert growth < 40, f"peak RSS grew by {growth:.0f} MiB while writing a 202-MiB entry"


def test_cache_entries_written_in_blocks_read_back_exactly_and_pass_the_checksum(tmp_path):
    cache = StemCache(tmp_path / "cache")
    rng = np.random.default_rng(0)
    full = {s: torch.from_numpy(rng.standard_normal((2, 1000)).astype(np.float32)) for s in STEMS4}
    writer = cache.writer("up", "a" * 32, STEMS4, 1000)
    for start in (0, 300, 600, 900):
        writer.write(start, {s: x[:, start : start + 300] for s, x in full.items()})
    writer.commit()
    entry = cache.get("up", "a" * 32, frames=1000, stems=STEMS4)
    assert entry is not None
    for s in STEMS4:
        np.testing.assert_array_equal(entry[s], full[s].numpy().astype(np.float16))
    [data] = (tmp_path / "cache").rglob("*.npy")
    with open(data, "r+b") as handle:  # one flipped sample: the checksum catches it and the entry goes
        handle.seek(-2, os.SEEK_END)
        handle.write(b"\x00\x7c")
    assert cache.get("up", "a" * 32, frames=1000) is None and not data.exists()


def test_reading_a_file_holds_one_copy_of_the_song(tmp_path):
    """Reading whole and transposing held the samples twice (2.6 GB for an hour of stereo)."""
    seconds = 300
    wave = (0.1 * np.sin(np.arange(seconds * RATE) / 7.0)).astype(np.float32)
    sf.write(tmp_path / "long.wav", np.stack([wave, -wave], 1), RATE, subtype="PCM_16")
    audio_mib = 2 * 4 * seconds * RATE / 2**20  # 101 MiB as float32
    growth = _peak_growth_mib("""
        from mdxmix.audio import read_audio
        from mdxmix.cache import audio_key
        rss = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
        before = rss()
        audio, info = read_audio("long.wav")
        assert audio.shape == (2, info.frames) and audio.is_contiguous()
        audio_key(audio)  # hashed in place, not through a copy
        print(rss() - before)
    """, tmp_path)
    assert growth < 1.25 * audio_mib, f"peak RSS grew by {growth:.0f} MiB for {audio_mib:.0f} MiB of samples"


def _stream(output: SongOutput, names: list[str], data: np.ndarray, block: int = 5000) -> None:
    for start in range(0, data.shape[1], block):
        for name in names:
            output.write(name, data[:, start : start + block])


def test_stems_are_staged_in_the_output_format_and_renamed_into_place(tmp_path):
    rng = np.random.default_rng(1)
    data = (0.3 * rng.standard_normal((2, 20000))).clip(-0.99, 0.99).astype(np.float32)
    paths = {s: tmp_path / f"{s}.wav" for s in STEMS4}
    fmt = OutputFormat().for_input("PCM_16", RATE)
    with SongOutput(dict(paths), rate=RATE, fmt=fmt) as output:
        _stream(output, list(STEMS4), data)
        staged = sorted(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        assert len(staged) == 4 and {sf.info(p).subtype for p in staged} == {"PCM_16"}
        inodes = {p.stat().st_ino for p in staged}
        output.commit()
    assert {p.stat().st_ino for p in paths.values()} == inodes  # the staged files became the outputs
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    expected = np.clip(np.round(data.T.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    for path in paths.values():
        np.testing.assert_array_equal(sf.read(path, dtype="int16")[0], expected)


def test_a_loud_stem_is_rescaled_in_place_with_its_clipped_samples_exact(tmp_path):
    """Peak 1.6 in 16-bit: `rescale` divides by 1.01·peak; staged at 16 bits, the result is at most one
    step from rescaling the float signal, and the samples beyond full scale are not flattened."""
    t = np.arange(30000)
    data = np.stack([1.6 * np.sin(t / 50.0), 0.5 * np.sin(t / 30.0)]).astype(np.float32)
    fmt = OutputFormat().for_input("PCM_16", RATE)
    path = tmp_path / "bass.wav"
    with SongOutput({"bass": path}, rate=RATE, fmt=fmt) as output:
        _stream(output, ["bass"], data)
        output.commit()
    got = sf.read(path, dtype="float64")[0].T
    want = data.astype(np.float64) / (1.01 * 1.6)
    assert np.abs(got - want).max() <= 1.0 / 32768 + 1e-9
    assert got[0].max() > 0.98  # the loudest samples are there, not clipped at 1/1.616
    assert [p.name for p in tmp_path.iterdir()] == ["bass.wav"]


def test_flac_is_staged_as_flac_and_a_rescaled_one_is_encoded_again(tmp_path):
    rng = np.random.default_rng(2)
    quiet = (0.2 * rng.standard_normal((2, 20000))).astype(np.float32)
    loud = 3.0 * quiet
    fmt = OutputFormat(container="FLAC").for_input("PCM_16", RATE)
    paths = {"drums": tmp_path / "drums.flac", "bass": tmp_path / "bass.flac"}
    with SongOutput(dict(paths), rate=RATE, fmt=fmt) as output:
        for start in range(0, 20000, 5000):
            output.write("drums", quiet[:, start : start + 5000])
            output.write("bass", loud[:, start : start + 5000])
        assert {sf.info(p).format for p in tmp_path.iterdir() if p.name.endswith(".tmp")} == {"FLAC"}
        output.commit()
    peak = float(np.abs(loud).max())
    np.testing.assert_allclose(sf.read(paths["bass"])[0].T, loud / (1.01 * peak), atol=1.0 / 32768 + 1e-9)
    np.testing.assert_allclose(sf.read(paths["drums"])[0].T, quiet.clip(-1, 1), atol=0.5 / 32768 + 1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bass.flac", "drums.flac"]


def test_a_16_bit_song_is_held_as_int16_with_the_same_values_key_and_stems(tmp_path, model_dir):
    """`read_audio(compact=True)`: half the memory, slices equal to the float32 read, the same cache key."""
    from test_pipeline import _separator

    rng = np.random.default_rng(3)
    song = (0.3 * rng.standard_normal((3 * RATE, 2))).clip(-1, 1)
    sf.write(tmp_path / "song.wav", song, RATE, subtype="PCM_16")
    sf.write(tmp_path / "song.aiff", song, RATE, subtype="PCM_16")
    sf.write(tmp_path / "song.flac", song, RATE, subtype="PCM_16")
    separator = _separator(model_dir)
    held, _ = read_audio(tmp_path / "song.aiff", compact=True)  # an AIFF is read into int16
    mapped, _ = read_audio(tmp_path / "song.wav", compact=True)  # a plain WAV is mapped, not read
    decoded, _ = read_audio(tmp_path / "song.flac", compact=True)  # a FLAC is decoded a window at a time
    assert isinstance(held, PcmSamples) and held.ints.dtype == torch.int16 and not held.mapped
    assert isinstance(mapped, PcmSamples) and mapped.mapped and decoded.mapped
    for compact, name in ((held, "song.aiff"), (mapped, "song.wav"), (decoded, "song.flac")):
        full, _ = read_audio(tmp_path / name)
        a = torch.cat(list(separator.stream(full)), dim=-1)
        assert compact.shape == full.shape
        assert torch.equal(compact[:, 1000:5000], full[:, 1000:5000]) and torch.equal(compact[:, :], full)
        assert audio_key(compact) == audio_key(full)
        assert float(compact.mean()) == pytest.approx(float(full.mean()), abs=1e-7)
        assert float(compact.std()) == pytest.approx(float(full.std()), rel=1e-6)
        b = torch.cat(list(separator.stream(compact)), dim=-1)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert isinstance(read_audio(tmp_path / "song.wav")[0], torch.Tensor)
    sf.write(tmp_path / "float.wav", song, RATE, subtype="FLOAT")
    assert isinstance(read_audio(tmp_path / "float.wav", compact=True)[0], torch.Tensor)  # only 16-bit is compact


def test_reading_a_16_bit_song_compactly_holds_half_of_it(tmp_path):
    """Read, hash and normalise a 300-s song as float32 and as int16 (an AIFF) in two fresh processes: the compact
    one peaks lower by at least a sixth of the float32 size (101 MiB). The same song as a mapped WAV keeps
    less than an eighth of that size in resident file pages and peaks below half of it, and as a FLAC
    decoded per window peaks below half of it.

    Measured here: float32 117 MiB every time; int16 59 MiB after reading, 73-81 MiB at the peak
    (hashing converts a piece at a time), and 92 MiB in two test runs of six (allocator noise).
    A compact read that kept a float32 copy would peak at 117 MiB or more, so the bound
    (117 - 17 = 100 MiB) sits between; a third (83 MiB) failed on that noise.
    """
    seconds = 300
    wave = (0.1 * np.sin(np.arange(seconds * RATE) / 7.0)).astype(np.float32)
    for name in ("long.wav", "long.aiff", "long.flac"):
        sf.write(tmp_path / name, np.stack([wave, -wave], 1), RATE, subtype="PCM_16")
    float_mib = 2 * 4 * seconds * RATE / 2**20
    code = """
        from mdxmix.audio import read_audio
        from mdxmix.cache import audio_key
        from mdxmix.mixer.normalize import Normalizer
        status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) / 1024
        before, pages = status("VmHWM"), status("RssFile")
        audio, info = read_audio("FILE", compact=COMPACT)
        audio_key(audio), Normalizer.of(audio)
        print(status("RssFile") - pages, status("VmHWM") - before)  # file pages left, then the peak
    """
    plain = _peak_growth_mib(code.replace("COMPACT", "False").replace("FILE", "long.aiff"), tmp_path)
    compact = _peak_growth_mib(code.replace("COMPACT", "True").replace("FILE", "long.aiff"), tmp_path)
    decoded = _peak_growth_mib(code.replace("COMPACT", "True").replace("FILE", "long.flac"), tmp_path)
    assert decoded < float_mib / 2, f"peak RSS grew by {decoded:.0f} MiB for a FLAC decoded per window"
    assert compact < plain - float_mib / 6, f"peak RSS grew by {compact:.0f} MiB (int16) and {plain:.0f} MiB (float32)"
    # Mapped: the file's pages are handed back after each read. Measured 20-43 MiB at the peak (allocator
    # noise of the hash and statistics pieces) and +4 MiB of file pages left; with the pages kept,
    # 66 MiB and +54 MiB.
    kept, peak = _printed_numbers(code.replace("COMPACT", "True").replace("FILE", "long.wav"), tmp_path)
    assert kept < float_mib / 8 and peak < float_mib / 2, f"mapped WAV: peak +{peak:.0f} MiB, file pages +{kept:.0f} MiB"


def test_the_next_blocks_upstreams_run_beside_only_the_tail_of_the_last_block():
    """X of one block is held while the next block's upstreams run, but only from the current read on."""
    from mdxmix.mixer.normalize import Normalizer
    from mdxmix.pipeline import BlockedInput

    held: list[int] = []

    class Recording:
        name, sample_rate, stems = "g", RATE, STEMS4

        def separate(self, mixture):
            held.append(sum(x.shape[-1] for _, x in source.blocks.values()))
            return {s: mixture * 0.25 for s in STEMS4}

    mixture = torch.randn(2, 50_000)
    normalizer = Normalizer.of(mixture)
    source = BlockedInput(mixture, [Recording()], [("vocals",)], normalizer, block=10_000, context=100)
    for start in range(0, 49_000, 1000):  # batches of segments: each read overlaps the next
        x = source.read(start, min(start + 1200, 50_000))
        torch.testing.assert_close(x[2:], normalizer.forward(mixture[:, start : start + 1200] * 0.25))
    assert len(held) == 5 and held[0] == 0 and max(held) <= 1200, held  # was the whole 10,000-sample block


def test_the_command_line_puts_torch_tensors_on_huge_pages_unless_told_not_to(tmp_path):
    """THP_MEM_ALLOC_ENABLE must be in the environment before torch is imported (it is read once)."""
    code = "import os, mdxmix.cli, sys; print(os.environ.get('THP_MEM_ALLOC_ENABLE'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["1", "False"], done.stderr
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, "THP_MEM_ALLOC_ENABLE": "0"})
    assert done.stdout.split() == ["0", "False"], done.stderr


def test_reading_a_cached_entry_block_by_block_does_not_keep_it_in_memory(tmp_path):
    """A second run reads upstream stems from the memory-mapped cache entry: the pages of blocks already
    mixed are handed back, so a 300-s entry (202 MiB) read in 60-s blocks holds about one block.

    One block of X (mixture and four stems, 10 channels of float32) is 101 MiB; the peak adds
    the block's mapped pages before they are handed back: 101-121 MiB in four runs here. Without
    the hand-back the growth was 222-266 MiB, so 160 MiB separates the two with room either side
    (the bound of 120 failed a CI run at 121 MiB).
    """
    growth = _peak_growth_mib("""
        import numpy as np, torch
        from mdxmix.cache import StemCache, audio_key
        from mdxmix.mixer.normalize import Normalizer
        from mdxmix.pipeline import BlockedInput
        rss = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
        names = ("drums", "bass", "other", "vocals")
        frames, block = 44100 * 300, 44100 * 60
        mixture = torch.full((2, frames), 0.1)
        cache = StemCache("cache")
        writer = cache.writer("up", audio_key(mixture), names, frames)
        for start in range(0, frames, block):
            writer.write(start, {s: torch.full((2, min(block, frames - start)), 0.5) for s in names})
        writer.commit()

        class Cached:
            name, sample_rate, stems = "up", 44100, names
            def separate(self, mixture):
                raise AssertionError("the cache holds these stems")

        source = BlockedInput(mixture, [Cached()], [names], Normalizer.of(mixture), block=block, context=0, cache=cache)
        source.read(0, 4096)
        before = rss()
        for start in range(4096, frames, 1 << 17):
            source.read(start, min(frames, start + (1 << 17)))
        print(rss() - before)
    """, tmp_path)
    assert growth < 160, f"peak RSS grew by {growth:.0f} MiB while reading a 202-MiB entry"


def test_memory_an_upstream_freed_goes_back_to_the_system(tmp_path):
    """`trim_heap` (run after every upstream call): heap memory freed between live pieces stops counting."""
    code = """
        import numpy as np
        from mdxmix.pipeline import trim_heap
        rss = lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
        before = rss()
        kept, freed = [], []
        for i in range(8000):  # 64-KB arrays come from malloc's heap; every 10th stays alive between the others
            (kept if i % 10 == 9 else freed).append(np.ones(8000))
        freed.clear()
        TRIM
        print(rss() - before)
    """
    untrimmed = _peak_growth_mib(code.replace("TRIM", "pass"), tmp_path)
    trimmed = _peak_growth_mib(code.replace("TRIM", "trim_heap()"), tmp_path)
    assert untrimmed > 300 and trimmed < 120, (untrimmed, trimmed)  # 488 MiB allocated, 49 MiB still alive
