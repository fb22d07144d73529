"""The fast paths give the results of the plain ones: batched Demucs chunks, device-side X,
prefetched upstream blocks, and (on a GPU) CUDA against CPU and bf16 against fp32."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import soundfile as sf
import torch

from mdxmix.mixer import MDXMixer, MDXMixerConfig
from mdxmix.mixer.engine import mix_stream, mix_tensor
from mdxmix.pipeline import Separator
from mdxmix.stems import STEMS
from mdxmix.upstream.demucs_adapter import DemucsUpstream, split_batched
from mdxmix.upstream.demucs_package import load_demucs_package

from conftest import tiny_demucs

ROOT = Path(__file__).resolve().parent.parent
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (reference - estimate).pow(2).sum().clamp_min(1e-20)))


@pytest.mark.parametrize("frames", [44100 * 3 + 17, 44100 * 9, 5000])
def test_batched_demucs_chunks_match_demucs_apply_model(frames):
    from demucs.apply import apply_model

    model = tiny_demucs().eval()  # segment 4 s: 3 s, 9 s and 0.1 s give 1, 3 and 1 chunks with a short tail
    torch.manual_seed(3)
    mix = torch.randn(1, 2, frames) * 0.1
    with torch.no_grad():
        reference = apply_model(model, mix, shifts=0, split=True, overlap=0.25, progress=False)
        for batch in (1, 2, 16):
            torch.testing.assert_close(split_batched(model, mix, 0.25, batch), reference, atol=2e-6, rtol=1e-5)


def test_demucs_adapter_batched_equals_unbatched(model_dir):
    model = load_demucs_package(model_dir / "tiny_hdemucs.safetensors")
    mixture = torch.randn(2, 44100 * 10) * 0.1
    one = DemucsUpstream(model, "a", chunk_batch=1).separate(mixture)
    many = DemucsUpstream(model, "a", chunk_batch=8).separate(mixture)
    for stem in STEMS:
        torch.testing.assert_close(many[stem], one[stem], atol=2e-6, rtol=1e-5)


def test_engine_device_output_equals_host_output():
    torch.manual_seed(0)
    mixer = MDXMixer(MDXMixerConfig(in_channels=4, segment=256, folds=8, layers=1, token_hidden=8, channel_hidden=8))
    torch.nn.init.normal_(mixer.head.weight, std=0.1)
    x = torch.randn(4, 3000)
    host = mix_tensor(x, mixer, batch_size=3)
    kept = torch.cat(list(mix_stream(lambda a, b: x[:, a:b], 3000, mixer, batch_size=3, to_host=False)), dim=-1)
    torch.testing.assert_close(kept, host, atol=0, rtol=0)


class ThreadRecordingUpstream:
    """Stem = gain × mixture, remembering which threads ran it."""

    def __init__(self, name: str) -> None:
        self.name, self.sample_rate, self.stems = name, 44100, STEMS
        self.threads: set[str] = set()

    def separate(self, mixture):
        self.threads.add(threading.current_thread().name)
        return {stem: mixture * (0.1 * (i + 1)) for i, stem in enumerate(STEMS)}


def test_prefetched_blocks_give_the_same_output(model_dir):
    from mdxmix.weightfiles import file_sha256

    name = "demucs-file:tiny_hdemucs.safetensors@" + file_sha256(model_dir / "tiny_hdemucs.safetensors")[:12]
    torch.manual_seed(0)
    mixture = torch.randn(2, 44100 * 3) * 0.2
    outputs = {}
    for prefetch in (False, True):
        upstream = ThreadRecordingUpstream(name)
        sep = Separator(model_dir / "tiny_mdx.safetensors", device="cpu", upstreams=[upstream], block_seconds=0.4,
                        context_seconds=0.05, prefetch=prefetch)
        outputs[prefetch] = torch.cat(list(sep.stream(mixture)), dim=-1)
        assert any(t.startswith("mdxmix-upstreams") for t in upstream.threads) == prefetch
    torch.testing.assert_close(outputs[True], outputs[False], atol=0, rtol=0)


def _demo(seconds: float) -> tuple[torch.Tensor, int]:
    audio, rate = sf.read(ROOT / "examples" / "demo.wav", dtype="float32", frames=int(seconds * 44100), always_2d=True)
    return torch.from_numpy(audio.T.copy()), rate


@pytest.mark.gpu
@cuda
def test_cuda_output_of_the_default_matches_cpu():
    audio, rate = _demo(20)
    cpu = Separator("default", device="cpu", cache=None).separate(audio, rate)
    gpu = Separator("default", device="cuda", cache=None).separate(audio, rate)
    for stem in STEMS:
        assert float((gpu[stem] - cpu[stem]).abs().max()) < 5e-3, stem
        assert snr_db(cpu[stem], gpu[stem]) > 35, stem


@pytest.mark.gpu
@cuda
def test_cuda_bf16_weights_stay_close_to_fp32():
    audio, rate = _demo(25)
    fp32 = Separator("default", device="cuda", cache=None).separate(audio, rate)
    bf16 = Separator("default", device="cuda", cache=None, precision="bf16").separate(audio, rate)
    for stem in STEMS:
        assert snr_db(fp32[stem], bf16[stem]) > 40, stem


@pytest.mark.gpu
@cuda
def test_cuda_prefetch_and_batched_upstreams_match_the_plain_path():
    audio, rate = _demo(25)
    audio = audio.repeat(1, 6)  # 150 s: three blocks, so the worker runs two of them
    plain = Separator("default", device="cuda", cache=None, prefetch=False)
    for upstream in plain.upstreams:
        if isinstance(upstream, DemucsUpstream):
            upstream.chunk_batch = 1
    fast = Separator("default", device="cuda", cache=None)
    assert fast.prefetch
    a, b = plain.separate(audio, rate), fast.separate(audio, rate)
    for stem in STEMS:  # cuDNN may pick other (TF32) algorithms for a batch: rounding, not a change
        assert snr_db(a[stem], b[stem]) > 40, stem
