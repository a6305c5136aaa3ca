"""collector/gc_settle.py: what lives when serving starts is left out of later collections,
and what a call leaves behind in a cycle is still collected."""

from __future__ import annotations

import gc
import weakref

from devposture.collector.gc_settle import settled


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settled_freezes_what_lives_now_and_still_collects_later_cycles() -> None:
    kept = _Node()
    assert any(o is kept for o in gc.get_objects())  # walked by collections until settled
    try:
        settled()
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
