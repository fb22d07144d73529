"""Which registered mixer to use for the upstreams a user names (`--upstream`, `--stems-from`).

Why: a checkpoint trained for an exact set of upstreams is the best mixer for that set, so
it wins whenever one is registered; any other set goes to a mixer that takes any upstreams
(kind `agnostic`). The choice is said in one line, so users know which mixer ran.
Only checkpoints that are present locally are considered: choosing never downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checkpoint import CheckpointMeta, read_meta
from .errors import UsageError, UserError
from .registry import Registry
from .upstream.base import UpstreamSpec


@dataclass(frozen=True)
class Choice:
    """The checkpoint to load, the upstream specs in its channel order, and the line that says why."""

    checkpoint: str
    specs: list[UpstreamSpec]
    reason: str


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
    """The mixer for `specs` (plus stem folders when `with_files`): an exact-set checkpoint, else an agnostic one."""
    registry = registry or Registry.load()
    metas = local_metas(registry)
    wanted = sorted((s.id, s.stems) for s in specs)
    for name, meta in metas:
        if not with_files and not meta.any_upstreams and meta.mixture and sorted((u.id, u.stems) for u in meta.upstreams) == wanted:
            return Choice(name, list(meta.upstreams), f"using '{name}', trained for exactly these upstreams")
    for name, meta in metas:
        if meta.any_upstreams:
            return Choice(name, specs, f"no checkpoint is trained for these upstreams; using the agnostic mixer '{name}'")
    raise UsageError("no checkpoint is trained for these upstreams and no agnostic mixer is registered; pass one with "
                     "-c FILE.safetensors (train it with `mdxmix train --kind agnostic`) or combine them with --ensemble RULE")
