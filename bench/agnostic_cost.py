"""Mixer-stage cost of the agnostic mixer against the tiny MDX-Mixer over the same upstream layouts.

For each layout: multiply-add FLOPs per segment (torch's FlopCounterMode, exact for the
matrix products) and seconds to mix `--seconds` of audio through the overlap-add engine on
this machine (X made on the fly, so only the mixer stage is timed; best of `--repeat`).

    .venv/bin/python bench/agnostic_cost.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mdxmix.mixer import AgnosticConfig, AgnosticMixer, MDXMixer, MDXMixerConfig
from mdxmix.mixer.agnostic import layout_channels
from mdxmix.mixer.engine import mix_stream
from mdxmix.stems import STEMS

LAYOUTS = {
    "1 four-stem": (STEMS,),
    "1 vocals-only": (("vocals",),),
    "2 four-stem": (STEMS, STEMS),
    "bundled default (4+4+1 stems)": (STEMS, STEMS, ("vocals",)),
    "4 four-stem": (STEMS,) * 4,
    "4 single-stem": (("vocals",), ("drums",), ("bass",), ("other",)),
}


def flops(mixer, channels: int) -> int:
    x = torch.zeros(1, channels, mixer.segment)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        mixer.estimate_weights(x)
    return counter.get_total_flops()


def seconds(mixer, channels: int, audio_s: float, repeat: int) -> float:
    n = int(audio_s * 44100)

    def read(a: int, b: int) -> torch.Tensor:
        return torch.randn(channels, b - a, generator=torch.Generator().manual_seed(a))

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _chunk in mix_stream(read, n, mixer, batch_size=4):
            pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-time", action="store_true", help="FLOPs only")
    args = parser.parse_args()
    torch.manual_seed(0)
    agnostic = AgnosticMixer(AgnosticConfig.preset("tiny")).eval()
    for name, layout in LAYOUTS.items():
        channels = layout_channels(layout)
        mdx = MDXMixer(MDXMixerConfig.preset("tiny", channels)).eval()
        bound = agnostic.bind(layout)
        row = {"layout": name, "channels": channels, "agnostic_mflop": round(flops(bound, channels) / 1e6),
               "mdx_tiny_mflop": round(flops(mdx, channels) / 1e6)}
        if not args.no_time:
            row["agnostic_s"] = round(seconds(bound, channels, args.seconds, args.repeat), 2)
            row["mdx_tiny_s"] = round(seconds(mdx, channels, args.seconds, args.repeat), 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
