"""collector/gc_settle.py: what lives when serving starts is left out of later collections,
and what a call leaves behind in a cycle is still collected; a batch collects its young
objects less often while it runs, and Python's thresholds are as they were after it."""

from __future__ import annotations

import gc
import weakref

import pytest

from devposture.collector.gc_settle import BATCH_YOUNG, SERVING_YOUNG, batch, settled


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settled_freezes_what_lives_now_and_still_collects_later_cycles() -> None:
    kept = _Node()
    assert any(o is kept for o in gc.get_objects())  # walked by collections until settled
    before = gc.get_threshold()
    try:
        settled()
        assert gc.get_threshold() == (SERVING_YOUNG, *before[1:])
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # set aside: no collection walks it
        frozen = gc.get_freeze_count()
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after: garbage once dropped
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
        assert gc.get_freeze_count() == frozen  # a collection leaves the frozen ones alone
    finally:
        gc.unfreeze()  # the test process goes on as before
        gc.set_threshold(*before)


def test_a_batch_collects_its_young_objects_less_often_and_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="the batch failed"), batch():
        assert gc.get_threshold() == (BATCH_YOUNG, *before[1:])
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()  # cycles are still collected within a batch
        assert gone() is None
        raise RuntimeError("the batch failed")
    assert gc.get_threshold() == before
