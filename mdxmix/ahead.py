"""Running an iterator a few items ahead of its consumer, in a worker thread.

Why: on a GPU, one thread that alternates between the device (separating the next batch)
and the host (checking, converting and writing the stems of the last one) leaves each idle
while the other works. CUDA calls, numpy's conversions and libsndfile's writes release the
GIL, so a producer thread and the consuming thread overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def run_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of `items`, in order, computed up to `depth` ahead in a worker thread.

    An exception in the worker is raised here, at the item it replaced. When the consumer
    stops early (an error, an interrupt, `close()`), the worker finishes the item it is on,
    closes `items` and ends before this generator returns, so nothing runs on afterwards.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="mdxmix-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()
