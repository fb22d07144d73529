"""The README.md model card of an exported mixer, written from what the checkpoint already says.

Everything in the card comes from the checkpoint's metadata (mixer, upstreams, training
provenance), the files exported beside it (with their sha256) and, when given, the JSON of
an `mdxmix eval` run; nothing is invented. The YAML header is the hub's model-card metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointMeta
from .errors import UsageError
from .stems import STEMS

METRIC_NAMES = {
    "museval": "SDR, BSS Eval v4 (median over 1-s frames, then over tracks) [dB]",
    "global": "global SDR, MDX challenge (mean over tracks) [dB]",
}
FAMILY_NOTES = {
    "demucs": "pretrained Demucs, downloaded by mdxmix from the Demucs hub repositories on first use",
    "demucs-file": "Demucs-architecture weights, file in this folder",
    "spectral-file": "mdxmix spectral-mask weights, file in this folder",
    "umx-file": "mdxmix Open-Unmix-style (BiLSTM) weights, file in this folder",
    "spleeter-file": "Deezer's Spleeter (MIT), converted to safetensors by recipes/upstreams/get_spleeter.py, file in this folder",
}


@dataclass(frozen=True)
class CardFile:
    name: str
    sha256: str
    size: int
    role: str


def read_eval_json(path: Path) -> dict:
    """The `summary` of an `mdxmix eval` results.json, refusing anything else with one line."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        summary = data["summary"]
        if not isinstance(summary, dict) or not all(isinstance(rows, dict) for rows in summary.values()):
            raise TypeError("summary is not a table")
    except FileNotFoundError as exc:
        raise UsageError(f"--eval-json {path}: no such file") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--eval-json {path}: not the results.json of `mdxmix eval` ({exc})") from exc
    return data


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return f"{value:.2f}"
    return "–"


def eval_tables(data: dict) -> str:
    """One Markdown table per metric: a row per system, a column per stem and the average."""
    columns = [*STEMS, "average"]
    parts = []
    tracks = data.get("tracks") or []
    split = (data.get("settings") or {}).get("split")
    where = f" on {len(tracks)} tracks" + (f" of the '{split}' split" if split else "") if tracks else ""
    for metric, rows in data["summary"].items():
        lines = [f"**{METRIC_NAMES.get(metric, metric)}**{where}", "", "| system | " + " | ".join(columns) + " |",
                 "| --- |" + " ---: |" * len(columns)]
        for system, row in rows.items():
            lines.append(f"| {system} | " + " | ".join(_number(row.get(c)) for c in columns) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _yaml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def render_card(*, name: str, checkpoint_file: str, meta: CheckpointMeta, files: list[CardFile], license: str,
                eval_data: dict | None = None, repo: str | None = None) -> str:
    """The full README.md text."""
    cfg = meta.mixer_config
    kind = {"mdx_mixer": "MDX-Mixer (time-varying mixing weights, Nakano & Goto 2024)",
            "conv1x1": "a time-invariant 1x1-convolution mixer (paper §3.1)"}.get(meta.mixer_kind, meta.mixer_kind)
    out = ["---", f"license: {_yaml_string(license)}", "library_name: mdxmix",
           "tags:", "- audio", "- music-source-separation", "- mdxmix", f"- {meta.mixer_kind.replace('_', '-')}", "---", "",
           f"# {name}", "",
           f"An mdxmix mixer: {kind}. It reads the mixture and the stems of {len(meta.upstreams)} upstream "
           f"separator{'s' if len(meta.upstreams) != 1 else ''} ({len(meta.channels)} input channels) and estimates, "
           f"for every segment of {cfg.get('segment', '?')} samples at {meta.sample_rate} Hz, a matrix that mixes them "
           f"into {', '.join(meta.stems)}.", "", "## What it mixes", "",
           "| upstream | family | stems used | sha256 |", "| --- | --- | --- | --- |"]
    for spec in meta.upstreams:
        note = FAMILY_NOTES.get(spec.family, spec.family)
        if spec.hub:
            note = f"from the hub: {spec.hub.get('repo_id')}/{spec.hub.get('filename')}"
        out.append(f"| `{spec.model}` | {spec.family} ({note}) | {', '.join(spec.stems)} | "
                   f"{'`' + spec.sha256 + '`' if spec.sha256 else '–'} |")
    out += ["", f"Mixer `{meta.mixer_kind}` with config `{json.dumps(cfg, sort_keys=True)}`.", ""]

    hub = f"{repo}/{checkpoint_file}" if repo else f"<owner>/<repo>/{checkpoint_file}"
    sha = next(f.sha256 for f in files if f.name == checkpoint_file)
    out += ["## Use it", "", "```sh", "pip install mdxmix",
            f"mdxmix models add {name} --hub {hub} --revision main --sha256 {sha}", f"mdxmix song.wav -c {name}", "```", "",
            "`models add` pins the checkpoint's sha256; the checkpoint pins every upstream file's sha256, so one pin "
            "covers the folder (a commit hash instead of `main` also pins the revision). After the first download it "
            "runs offline from the Hugging Face cache.", ""]

    out += ["## Files", "", "| file | role | bytes | sha256 |", "| --- | --- | ---: | --- |"]
    out += [f"| `{f.name}` | {f.role} | {f.size} | `{f.sha256}` |" for f in files]
    out += ["", "`sha256sum -c SHA256SUMS` checks them.", ""]

    out += ["## Training data and provenance", ""]
    if meta.provenance:
        out += ["As recorded in the checkpoint's metadata:", "", "| key | value |", "| --- | --- |"]
        for key, value in sorted(meta.provenance.items()):
            text = value if isinstance(value, str) else json.dumps(value)
            out.append(f"| {key} | {str(text).replace('|', '/')} |")
    else:
        out.append("The checkpoint records no provenance.")
    out.append("")

    out += ["## Evaluation", ""]
    out.append(eval_tables(eval_data) if eval_data else "No evaluation was attached (`mdxmix models export --eval-json results.json`).")
    out += ["", "## Licence", "", f"`{license}`" + (" (set with `mdxmix models export --license`)" if license == "unknown" else "")
            + ". The upstream models and the training data may carry their own terms.", ""]
    return "\n".join(out)
