"""Where one process's time goes before and during its first song: imports, device start, model
load, reading, and the first against the second `separate` of the same song.

    python bench/startup_phases.py SONG.wav [--device cuda] [--per-upstream] [--no-cudnn]

Why: the command's wall time for one song is mostly start-up and first-call warm-up on a GPU
(issue 14); `--per-upstream` times each upstream's first and second call on a 66-s block of
noise, `--no-cudnn` turns cuDNN off to see what its plans cost. Measured on an H200 for the
README's Performance section.
"""
import argparse
import time

marks: list[tuple[str, float]] = []
T0 = time.perf_counter()


def mark(name: str, sync=None) -> None:
    if sync is not None:
        sync()
    marks.append((name, time.perf_counter()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--per-upstream", action="store_true")
    ap.add_argument("--no-cudnn", action="store_true")
    args = ap.parse_args()
    import torch
    mark("import torch")
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    if args.no_cudnn:
        torch.backends.cudnn.enabled = False
    torch.zeros(1, device=args.device)
    mark("device start + first kernel", sync)
    from mdxmix.audio import read_audio
    from mdxmix.pipeline import Separator
    mark("import mdxmix.pipeline")
    separator = Separator("default", device=args.device)
    mark("Separator('default') load", sync)
    audio, info = read_audio(args.song)
    mark("read the song")
    if args.per_upstream:
        block = torch.randn(2, 66 * 44100, device=args.device) * 0.1
        for index, upstream in enumerate(separator.upstreams):
            for call in ("first", "second"):
                upstream.separate(block)
                mark(f"upstream {index} {type(upstream).__name__}, 66 s, {call}", sync)
    for call in ("first", "second"):
        separator.separate(audio, info.sample_rate)
        mark(f"separate ({call})", sync)
    previous = T0
    for name, at in marks:
        print(f"{name:44s} {at - previous:7.2f} s  (from start {at - T0:6.2f} s)")
        previous = at


if __name__ == "__main__":
    main()
