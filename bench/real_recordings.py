"""Real recorded instruments, each separated alone: where does its energy go?

The bundled models train on rendered audio; this check feeds them *recordings*: the CC0
samples of Debian's `sonic-pi-samples` package (freesound.org recordings, licences listed in
/usr/share/doc/sonic-pi-samples/copyright), which no corpus split uses. Each clip is one
instrument alone, so the right answer is known: all of its energy in one stem, and the four
stems adding back to the clip.

    sudo apt-get install sonic-pi-samples
    python bench/real_recordings.py                      # the bundled default, table on stdout
    python bench/real_recordings.py --consistency none --json
    python bench/real_recordings.py --upstream spectral-file:weights/spectral_vocals-v2.safetensors:vocals  # one upstream alone
    python bench/real_recordings.py --set valid          # other clips, to choose models on

Per clip it reports the share of the output energy in each stem and how far Σ stems is from
the input (dB of the residual's energy relative to the input's).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mdxmix.pipeline import DEFAULT_CONSISTENCY, Separator
from mdxmix.stems import STEMS
from mdxmix.upstream.parse import parse_upstreams

SAMPLES = Path("/usr/share/sonic-pi/samples")
SECONDS = 10.0


@dataclass(frozen=True)
class Clip:
    """A recording of one instrument, the stem it belongs to, and where it comes from."""

    file: str
    stem: str
    what: str
    source: str  # freesound author, as in the package's copyright file (all CC0)


CLIPS: tuple[Clip, ...] = (
    Clip("loop_amen_full.flac", "drums", "drum kit, the Amen break", "gowers"),
    Clip("loop_breakbeat.flac", "drums", "drum kit breakbeat", "Snapper4298"),
    Clip("loop_tabla.flac", "drums", "tabla (percussion)", "lezaarth"),
    Clip("guit_e_fifths.flac", "other", "electric guitar, fifths", "Sub-d"),
    Clip("guit_em9.flac", "other", "electric guitar, Em9 chord", "Sub-d"),
    Clip("guit_e_slide.flac", "other", "electric guitar, slide", "Suva"),
    Clip("guit_harmonics.flac", "other", "guitar harmonics", "BStateham"),
    Clip("ambi_piano.flac", "other", "piano", "RutgerMuller"),
    Clip("ambi_choir.flac", "vocals", "choir voices", "Exsomniel"),
)
# Clips to *choose* on (models, settings), so the test clips above only report: other
# recordings of the same package, none of them in CLIPS. The package has no further voices or
# guitars, so this set has drums, bass notes and pitched textures only.
VALID_CLIPS: tuple[Clip, ...] = (
    Clip("loop_compus.flac", "drums", "percussion loop", "godspine"),
    Clip("loop_safari.flac", "drums", "hand-drum loop", "nemaavla"),
    Clip("drum_roll.flac", "drums", "snare roll", "Heigh-hoo"),
    Clip("bass_woodsy_c.flac", "bass", "synth bass note", "ani_music"),
    Clip("bass_thick_c.flac", "bass", "synth bass note, thick", "ani_music"),
    Clip("bass_trance_c.flac", "bass", "synth bass note, trance", "ani_music"),
    Clip("ambi_drone.flac", "other", "drone", "Autistic Lucario"),
    Clip("ambi_glass_hum.flac", "other", "glass hum", "kaligari"),
    Clip("ambi_glass_rub.flac", "other", "rubbed glass", "ani_music"),
)
SETS = {"test": CLIPS, "valid": VALID_CLIPS}


@dataclass(frozen=True)
class ClipResult:
    file: str
    stem: str
    what: str
    shares: dict[str, float]
    right_share: float
    residual_db: float


def load_clip(path: Path, seconds: float = SECONDS) -> tuple[np.ndarray, int]:
    """(2, N) float32, looped to `seconds` so short one-shots give the mixer full segments."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio[:, :2]
    frames = int(seconds * rate)
    reps = -(-frames // audio.shape[0])
    return np.tile(audio.T, (1, reps))[:, :frames].copy(), rate


def measure(separator: Separator, clip: Clip, root: Path = SAMPLES) -> ClipResult:
    audio, rate = load_clip(root / clip.file)
    stems = separator.separate(torch.from_numpy(audio), rate)
    energy = {s: float(stems[s].double().pow(2).sum()) for s in STEMS}
    total = sum(energy.values()) or 1.0
    shares = {s: energy[s] / total for s in STEMS}
    residual = (sum(stems.values()) - torch.from_numpy(audio)).double().pow(2).sum()
    residual_db = float(10 * torch.log10(residual / float(np.sum(audio.astype(np.float64) ** 2)) + 1e-30))
    return ClipResult(clip.file, clip.stem, clip.what, shares, shares[clip.stem], residual_db)


def build_separator(args: argparse.Namespace) -> Separator:
    """The checkpoint, or `--upstream`s combined by a fixed rule (raw: no mixture consistency)."""
    if not args.upstream:
        return Separator(args.checkpoint, device="cpu", cache=None, consistency=args.consistency)
    specs, search = parse_upstreams(args.upstream)
    return Separator(args.checkpoint, device="cpu", cache=None, consistency="none", ensemble=args.ensemble,
                     specs=specs, search=search)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--consistency", default=DEFAULT_CONSISTENCY)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--upstream", action="append", default=[], metavar="FAMILY:MODEL",
                        help="check these upstreams instead of the checkpoint's, combined by --ensemble "
                             "(one upstream alone: its own stems)")
    parser.add_argument("--ensemble", default="wave_avg", help="fixed rule for --upstream (default wave_avg)")
    parser.add_argument("--set", choices=sorted(SETS), default="test",
                        help="test: the README's clips (report only); valid: other clips, to choose on")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    clips = SETS[args.set]
    missing = [c.file for c in clips if not (args.samples / c.file).is_file()]
    if missing:
        print(f"error: {args.samples} lacks {', '.join(missing)}; install them with "
              "`sudo apt-get install sonic-pi-samples`", file=sys.stderr)
        return 2
    separator = build_separator(args)
    results = [measure(separator, clip, args.samples) for clip in clips]
    system = {"upstreams": args.upstream, "ensemble": args.ensemble} if args.upstream else {"checkpoint": args.checkpoint}
    if args.json:
        print(json.dumps({**system, "consistency": separator.consistency, "clips": [asdict(r) for r in results]}))
        return 0
    print(", ".join(f"{k} {v}" for k, v in system.items()) + f", consistency {separator.consistency}")
    print("| clip | right stem | " + " | ".join(STEMS) + " | Σ stems − input |")
    print("| --- | --- | " + " | ".join("---:" for _ in STEMS) + " | ---: |")
    for r in results:
        cells = " | ".join(f"{100 * r.shares[s]:.0f} %" for s in STEMS)
        print(f"| {r.what} (`{r.file}`) | {r.stem} | {cells} | {r.residual_db:.1f} dB |")
    mean = np.mean([r.right_share for r in results])
    print(f"\nmean share in the right stem: {100 * mean:.0f} %; "
          f"worst Σ residual: {max(r.residual_db for r in results):.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
