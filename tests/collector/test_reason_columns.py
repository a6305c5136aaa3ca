"""A reason in the CLI's listings and files: the stored code for programs (`reason`) and its
words for people (`reason_text`); a terminal table shows only the words."""

from __future__ import annotations

import pytest

from devposture.collector.render import render
from devposture.collector.reports import DEVICE_COLUMNS, FAILING_COLUMNS, HISTORY_COLUMNS

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

ROW = {"check": "antivirus", "reason": "av.none", "reason_text": "未发现已安装或正在运行的杀毒软件"}


def test_every_listing_with_a_reason_has_its_words_beside_it() -> None:
    for columns in (DEVICE_COLUMNS, FAILING_COLUMNS, HISTORY_COLUMNS):
        assert columns.index("reason_text") == columns.index("reason") + 1


def test_a_table_shows_the_words_and_the_files_both() -> None:
    table = render([ROW], ("check", "reason", "reason_text"), "table")
    assert "REASON_TEXT" in table and "未发现已安装" in table
    assert "av.none" not in table
    assert '"reason": "av.none"' in render([ROW], ("check", "reason", "reason_text"), "json")
    assert "av.none" in render([ROW], ("check", "reason", "reason_text"), "csv")


def test_a_reason_alone_is_still_shown() -> None:
    """A listing without words beside it (a waiver's reason, typed by a person) keeps it."""
    assert "rollout" in render([{"reason": "rollout"}], ("reason",), "table")
