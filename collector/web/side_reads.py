"""A second reader beside the dashboard's database thread, for a read that can run at the same
time as the page's others.

The overview's headline figures read every current verdict once (about 0.3 s over 100,000
devices); the fleet's counts per check take as long again. Read one after the other, a cold
overview takes their sum; read at once, on two connections (SQLite's readers do not wait for
each other, and the query runs outside Python's lock), about the longer of the two. One
connection of its own, opened on first use, used by one thread at a time: its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from devposture.collector.config import CollectorConfig
from devposture.collector.store import Store

T = TypeVar("T")


class SideReader:
    """One more reader connection, on one thread of its own."""

    def __init__(self, config: CollectorConfig) -> None:
        self._config = config
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devposture-web-side")
        self._store: Store | None = None

    def submit(self, work: Callable[[Store], T]) -> Future[T]:
        """Start `work` with the second reader; its result is the future's."""

        def run() -> T:
            if self._store is None:
                self._store = Store.open_reader(self._config.database)
            return work(self._store)

        return self._thread.submit(run)

    def close(self) -> None:
        def closing() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._thread.submit(closing).result()
        self._thread.shutdown(wait=True)
