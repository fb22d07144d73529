"""Output names: the `--filename` template, safe folder names, and the marker of output folders.

Kept free of heavy imports so that the command line can check names before it loads
PyTorch, and so that `inputs.py` can recognise folders mdxmix wrote.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

from .atomic import check_name_lengths
from .errors import AudioError, UsageError

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = {"track", "stem", "ext", "checkpoint"}
# Written into every output root, so that a later run over a folder that contains it
# (`mdxmix music/ -o music/separated`) does not separate its own earlier stems again.
OUTPUT_MARKER = ".mdxmix-output"
MARKER_TEXT = "This folder holds stems written by mdxmix; mdxmix skips it when searching folders for songs.\n"


def check_template(template: str) -> None:
    """Refuse unknown fields, absolute paths and anything that could leave the output folder."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UsageError(f"--filename {template!r}: {exc}") from exc
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise UsageError(f"--filename {template!r}: unknown field(s) {sorted(unknown)}; use {{track}}, {{stem}}, {{ext}}, {{checkpoint}}")
    if "stem" not in fields:
        raise UsageError(f"--filename {template!r}: must contain {{stem}}, or every stem would overwrite the last")
    parts = Path(template).parts
    if Path(template).is_absolute() or ".." in parts or template.startswith("~"):
        raise UsageError(f"--filename {template!r}: must stay inside the output folder (no '..', '/' or '~' at the start)")


def safe_component(name: str) -> str:
    """`name` as one harmless path component: no separators, no '..', not empty.

    Checkpoint file names (`-c dir/...safetensors` has the name '..') and track names come
    from the user's files, and become folder names under `-o`.
    """
    name = name.replace(os.sep, "_").replace("/", "_").replace("\0", "_")
    if os.altsep:
        name = name.replace(os.altsep, "_")
    name = re.sub(r"\.\.+", "_", name)
    return "_" if name.strip() in ("", ".") else name


def output_path(root: Path, template: str, *, folder: str, track: str, stem: str, ext: str, checkpoint: str) -> Path:
    """root/folder/<template filled>, refusing anything that would land outside `root`.

    A name longer than a file system allows fails this song with one line (checked here,
    because asking the file system about such a name raises instead of answering).
    """
    relative = Path(safe_component(folder)) / template.format(
        track=safe_component(track), stem=stem, ext=ext, checkpoint=safe_component(checkpoint))
    path = root / relative
    resolved, base = path.resolve(), root.resolve()
    if base not in resolved.parents:
        raise UsageError(f"output {relative} would be written outside {root}")
    reason = check_name_lengths(path)
    if reason:
        raise AudioError(f"cannot write {path.parent}/…: {reason}; rename the input or use a shorter --filename")
    return path


def is_output_folder(folder: Path) -> bool:
    return (folder / OUTPUT_MARKER).is_file()
