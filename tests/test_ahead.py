"""`run_ahead`: the GPU path's producer thread gives the same items, errors and stops as a plain loop."""

import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from mdxmix.ahead import run_ahead


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(), max_size=30), st.integers(min_value=1, max_value=4))
def test_items_come_in_order_and_all_of_them(items, depth):
    assert list(run_ahead(iter(items), depth)) == items


def test_an_error_in_the_source_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("block 3 failed")

    got = []
    with pytest.raises(ValueError, match="block 3 failed"):
        for item in run_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_the_source_runs_ahead_of_a_slow_consumer_but_no_further_than_depth():
    produced = []

    def source():
        for i in range(10):
            produced.append(i)
            yield i

    ahead = run_ahead(source(), depth=2)
    assert next(ahead) == 0
    deadline = time.monotonic() + 10  # the worker fills the hand-off and waits (a loaded CPU may be slow to run it)
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # and goes no further
    # item 0 taken, two waiting in the hand-off, one more made and blocked on putting it
    assert produced == [0, 1, 2, 3]
    assert list(ahead) == list(range(1, 10))


def test_a_consumer_that_stops_early_closes_the_source_and_leaves_no_thread():
    closed = threading.Event()

    def source():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    ahead = run_ahead(source())
    assert next(ahead) == 0
    ahead.close()  # what an exception in the consumer's loop does
    assert closed.is_set()
    assert threading.active_count() == before
