"""A database belongs to one installation (its evidence-signing key), and a collector never
serves another's: a second `init` on a database made by the first, or a data folder pointed at
another installation's database (a wrong [database] url, a backup restored into the wrong
folder), is refused before anything is served or written, naming both keys and the fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.collector.config import load
from devposture.collector.datadir import evidence_key_of, initialize
from devposture.collector.store import Store
from devposture.collector.store.target import SqliteTarget
from tests.databases import fresh_database, init_arguments

SERVE_SECONDS = 60


def test_a_database_is_claimed_once_and_keeps_its_first_claim(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path))
    try:
        assert store.installation.held() is None  # made by an older collector, or new
        assert store.installation.claim("sha256:aa", 1) == "sha256:aa"
        assert store.installation.claim("sha256:bb", 2) == "sha256:aa"
        assert store.installation.held() == "sha256:aa"
    finally:
        store.close()


def test_init_claims_the_database_for_its_own_evidence_key(tmp_path: Path) -> None:
    from devposture.collector.cli import main as collector_cli  # noqa: PLC0415

    folder = tmp_path / "site"
    assert collector_cli(["init", "--data", str(folder), *init_arguments()]) == 0
    store = Store.open(load(folder).database)
    try:
        assert store.installation.held() == evidence_key_of(folder)
    finally:
        store.close()


def _serve(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devposture.collector", "serve", "--data", str(folder),
         "--enroll-port", "0", "--report-port", "0"],
        capture_output=True, text=True, timeout=SERVE_SECONDS, check=False,
    )  # fmt: skip


@pytest.mark.sqlite_only  # SQLite folders whatever the leg: run once
def test_serve_refuses_a_database_of_another_installation(tmp_path: Path) -> None:
    """A backup of one site's database restored into another site's folder: that folder's
    collector does not serve it (agents pinned to one CA, evidence signed by two keys)."""
    first, _ = initialize(tmp_path / "first", "127.0.0.1")
    second, _ = initialize(tmp_path / "second", "127.0.0.1")
    assert isinstance(first.database, SqliteTarget) and isinstance(second.database, SqliteTarget)
    before = second.database.path.read_bytes()
    shutil.copyfile(first.database.path, second.database.path)
    done = _serve(second.data_dir)
    assert done.returncode == 1, done.stderr
    ours, theirs = evidence_key_of(second.data_dir), evidence_key_of(first.data_dir)
    assert (f"belongs to another installation (its evidence-signing key is {theirs}; this data"
            f" folder's is {ours})") in done.stderr  # fmt: skip
    assert "Point [database] url in" in done.stderr and "Traceback" not in done.stderr
    # Its own database, put back, is still its own.
    second.database.path.write_bytes(before)
    store = Store.open(second.database)
    try:
        assert store.installation.held() == ours
    finally:
        store.close()
