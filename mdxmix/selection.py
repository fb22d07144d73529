"""Which registered mixer to use for the upstreams a user names (`--upstream`, `--stems-from`).

Why: a checkpoint trained for an exact set of upstreams is the best mixer for that set, so
it wins whenever one is registered; any other set goes to a mixer that takes any upstreams
(kind `agnostic`). Where neither is on this machine, the stems are combined by the fixed rule
`FALLBACK_RULE` rather than refused: a musician who names `--stems-from` should get stems, and
the sample-wise average is the rule that scored best on valid over the bundled four upstreams
(5.53 dB; the next of 18 rules 5.52) and within 0.01 dB of the best over the held-out spectral
pair (4.98 against 4.99; recipes/agnostic/README.md, "Fifth run"), and it is what a fresh
agnostic mixer computes. The choice is said in one line, so users know what ran.
Only checkpoints that are present locally are considered: choosing never downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checkpoint import CheckpointMeta, read_meta
from .errors import UserError
from .registry import Registry
from .upstream.base import UpstreamSpec

FALLBACK_RULE = "wave_avg"
"""The fixed ensemble rule used when no mixer for the named upstreams is on this machine."""


@dataclass(frozen=True)
class Choice:
    """The checkpoint to load, the upstream specs in its channel order, the line that says why,
    and the fixed ensemble rule to use instead of the checkpoint's mixer (None: the mixer)."""

    checkpoint: str
    specs: list[UpstreamSpec]
    reason: str
    ensemble: str | None = None


def local_metas(registry: Registry) -> list[tuple[str, CheckpointMeta]]:
    """(name, metadata) of every registered checkpoint whose file is on this machine."""
    found = []
    for name, ref in sorted(registry.checkpoints.items(), key=lambda item: (item[0] != registry.default, item[0])):
        path = registry.root / ref.file if ref.file else None
        if path is None or not path.exists():
            continue
        try:
            found.append((name, read_meta(path)))
        except UserError:
            continue  # `mdxmix models` reports unreadable entries; choosing skips them
    return found


def choose_checkpoint(specs: list[UpstreamSpec], with_files: bool, registry: Registry | None = None) -> Choice:
    """The mixer for `specs` (plus stem folders when `with_files`): an exact-set checkpoint, else an
    agnostic one, else the default checkpoint with the fixed rule `FALLBACK_RULE` in place of its mixer."""
    registry = registry or Registry.load()
    metas = local_metas(registry)
    wanted = sorted((s.id, s.stems) for s in specs)
    for name, meta in metas:
        if not with_files and not meta.any_upstreams and meta.mixture and sorted((u.id, u.stems) for u in meta.upstreams) == wanted:
            return Choice(name, list(meta.upstreams), f"using '{name}', trained for exactly these upstreams")
    for name, meta in metas:
        if meta.any_upstreams:
            return Choice(name, specs, f"no checkpoint is trained for these upstreams; using the agnostic mixer '{name}'")
    return Choice("default", specs, "no checkpoint is trained for these upstreams and no agnostic mixer is installed; "
                  f"combining them with --ensemble {FALLBACK_RULE} (pass -c FILE for a mixer of kind agnostic)", FALLBACK_RULE)
