"""A local command whose write waited out SQLite's busy timeout (another command held the
collector database for writing: a `migrate` moving the site holds it from its copy until
collector.toml names PostgreSQL) is told the database was busy and to run again, not to run
as the service account: the advice for a refused file, which sent IT looking at rights."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from devposture.collector import cli
from devposture.policy.cli_messages import error_line


def _busy_error(path: Path) -> sqlite3.OperationalError:
    """SQLite's own error for a write that found the write lock held (no wait here: the
    collector's 30 s timeout ends the same way)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t(x)")
    holder.execute("BEGIN IMMEDIATE")
    waiting = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiting.execute("BEGIN IMMEDIATE")
        return caught.value
    finally:
        waiting.close()
        holder.close()


def test_a_write_that_found_the_database_busy_says_so_in_both_languages(tmp_path: Path) -> None:
    error = _busy_error(tmp_path / "devposture.db")
    problem = cli._storage_problem(error, tmp_path)
    assert problem is not None
    english = error_line("devposture-collector", problem, "en")
    chinese = error_line("devposture-collector", problem, "zh")
    assert "stayed busy" in english and "run this command again" in english
    assert "service account" not in english
    assert "繁忙" in chinese and "重新运行" in chinese and "服务账号" not in chinese


def test_a_refused_file_still_names_the_service_account(tmp_path: Path) -> None:
    problem = cli._storage_problem(sqlite3.OperationalError("unable to open database file"),
                                   tmp_path)  # fmt: skip
    assert problem is not None
    assert "service account" in error_line("devposture-collector", problem, "en")
