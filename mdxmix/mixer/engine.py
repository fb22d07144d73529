"""Segment a track, mix each segment, weighted-overlap-add the results (paper §4.2).

Segments of T samples start every T/4 samples; the last one is aligned to the end of
the track so no segment is zero-padded unless the whole track is shorter than T.
Each segment's output is multiplied by a strictly positive triangular window and the
sum is divided by the sum of the windows at every sample, so a mixer that returns one
fixed W gives exactly X·W everywhere, edges included.

The engine streams: it asks for the input one batch of segments at a time through a
`read(start, stop)` callable and yields finished output as soon as no later segment
can touch it, so memory depends on T and the batch size, never on the track length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .consistency import make_consistent
from .mdx_mixer import apply_weights

ReadInput = Callable[[int, int], Tensor]


def segment_starts(length: int, segment: int, hop: int) -> list[int]:
    """Start sample of every segment: every `hop`, plus one ending exactly at `length`."""
    if length <= 0:
        return []
    if length <= segment:
        return [0]
    starts = list(range(0, length - segment + 1, hop))
    if starts[-1] != length - segment:
        starts.append(length - segment)
    return starts


def overlap_window(segment: int) -> Tensor:
    """A triangle that is strictly positive, so every covered sample has a non-zero weight."""
    ramp = torch.arange(1, segment // 2 + 1, dtype=torch.float32)
    return torch.cat([ramp, torch.arange(segment - segment // 2, 0, -1, dtype=torch.float32)])


@dataclass
class EngineProgress:
    """What the engine reports after each batch: segments done out of the total."""

    done: int
    total: int


def mix_stream(
    read: ReadInput,
    length: int,
    mixer: torch.nn.Module,
    *,
    hop: int | None = None,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    on_progress: Callable[[EngineProgress], None] | None = None,
    on_weights: Callable[[list[int], Tensor], None] | None = None,
    consistency: str = "none",
    to_host: bool = True,
) -> Iterator[Tensor]:
    """Yield consecutive (8, n) output chunks that together cover [0, length).

    `read(a, b)` must return the normalised input X[:, a:b] as (Cin, b - a) float32, on
    any device. It is called once per batch for the span the batch's segments cover, so
    a source that already lives on `device` is never copied back and forth; everything
    after the read stays on `device`, and the only host synchronisation is the copy of
    each finished chunk (`to_host=False` skips even that and yields device tensors).
    `dtype` (e.g. torch.bfloat16 on GPU) only affects the weight estimation; Y = X·W and the
    overlap-add stay in float32. `on_weights` gets the segment starts and W of every batch
    (`mdxmix inspect`). `consistency`: see `consistency.py`.
    """
    segment = int(mixer.segment)
    hop = hop or segment // 4
    device = torch.device(device)
    starts = segment_starts(length, segment, hop)
    window = overlap_window(segment).to(device)
    autocast = dtype is not None and dtype != torch.float32
    acc: Tensor | None = None  # weighted sum of outputs, covering [origin, origin + acc.shape[-1])
    wsum: Tensor | None = None
    origin = 0
    for first in range(0, len(starts), batch_size):
        batch_starts = starts[first : first + batch_size]
        x = _read_batch(read, batch_starts, segment, length, device)
        weights, y = _mix_batch(mixer, x, dtype if autocast else None, consistency)
        if on_weights is not None:
            on_weights(batch_starts, weights.detach().cpu())
        end = min(batch_starts[-1] + segment, length)
        acc, wsum = _extend(acc, wsum, y.shape[1], end - origin, device)
        for start, out in zip(batch_starts, y):
            n = min(segment, length - start)
            a = start - origin
            acc[:, a : a + n].addcmul_(out[:, :n], window[:n])
            wsum[a : a + n] += window[:n]
        final = starts[first + batch_size] if first + batch_size < len(starts) else length
        if final > origin:
            n = final - origin
            chunk = acc[:, :n] / wsum[:n]
            yield chunk.cpu() if to_host else chunk
            acc, wsum, origin = acc[:, n:], wsum[n:], final
        if on_progress is not None:
            on_progress(EngineProgress(done=min(first + batch_size, len(starts)), total=len(starts)))


def _mix_batch(mixer: torch.nn.Module, x: Tensor, dtype: torch.dtype | None,
               consistency: str) -> tuple[Tensor, Tensor]:
    """W_k of a batch (estimated under autocast to `dtype` if given) and Y_k = X_k W_k in float32."""
    with torch.inference_mode():
        if dtype is not None:
            with torch.autocast(device_type=x.device.type, dtype=dtype):
                weights = mixer.estimate_weights(x).float()
        else:
            weights = mixer.estimate_weights(x)
        return weights, make_consistent(apply_weights(x, weights), x[:, :2], consistency)


def _read_batch(read: ReadInput, starts: list[int], segment: int, length: int, device: torch.device) -> Tensor:
    """The (B, Cin, T) segments beginning at `starts`, cut from one read of the span they cover."""
    a, b = starts[0], min(starts[-1] + segment, length)
    span = read(a, b)
    if span.shape[-1] != b - a:
        raise ValueError(f"read({a}, {b}) returned {span.shape[-1]} samples")
    span = span.to(device=device, dtype=torch.float32)
    if b - a < starts[-1] - a + segment:  # only a track shorter than one segment: zero-pad it
        span = torch.nn.functional.pad(span, (0, starts[-1] - a + segment - (b - a)))
    return torch.stack([span[:, s - a : s - a + segment] for s in starts])


def _extend(acc: Tensor | None, wsum: Tensor | None, channels: int, width: int,
            device: torch.device) -> tuple[Tensor, Tensor]:
    """The accumulators grown with zeros to `width` samples, the carried part kept."""
    if acc is None or wsum is None:
        return torch.zeros(channels, width, device=device), torch.zeros(width, device=device)
    if width <= acc.shape[-1]:
        return acc, wsum
    grown = acc.new_zeros(channels, width)
    grown[:, : acc.shape[-1]] = acc
    grown_sum = wsum.new_zeros(width)
    grown_sum[: wsum.shape[-1]] = wsum
    return grown, grown_sum


def mix_tensor(x: Tensor, mixer: torch.nn.Module, **kwargs) -> Tensor:
    """Mix a whole normalised (Cin, N) tensor held in memory; returns (8, N)."""
    chunks = list(mix_stream(lambda a, b: x[:, a:b], x.shape[-1], mixer, **kwargs))
    return torch.cat(chunks, dim=-1) if chunks else x.new_zeros(8, 0)
