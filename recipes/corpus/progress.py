"""Gather songs as worker processes finish them, reporting speed as they come (v1 and v2 renderers)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable


def collect(finished: Iterable[dict], total: int, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Split finished song records into (rendered, failed), printing a line per song with the running real-time factor."""
    results: list[dict] = []
    failed: list[dict] = []
    t0 = time.time()
    audio = 0.0
    for k, r in enumerate(finished):
        if "error" in r:
            print(f"FAILED {r['split']}/{r['name']}: {r['error']}", file=sys.stderr, flush=True)
            failed.append(r)
            continue
        results.append(r)
        audio += r["duration_s"]
        if progress:
            el = time.time() - t0
            print(f"[{k + 1}/{total}] {r['split']}/{r['name']} "
                  f"{r['duration_s']:.0f}s in {r['render_s']:.1f}s | total "
                  f"{audio / 3600:.2f} h audio, {el:.0f} s wall, {audio / el:.1f}x RT",
                  flush=True)
    return results, failed
