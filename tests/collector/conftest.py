"""Fixtures the collector's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.store import Store
from tests.databases import fresh_database


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store on a new database of either engine (the test run's), closed after the test. A
    test file that needs another (different data, an older schema) defines its own."""
    opened = Store.open(fresh_database(tmp_path))
    try:
        yield opened
    finally:
        opened.close()
