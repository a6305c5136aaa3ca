"""`devposture-collector migrate --to postgresql://…` on a bad day: the move interrupted (Ctrl-C,
SIGKILL) or its last step failing, the site written to while it moves, a site folder without
its database, a row PostgreSQL cannot hold, an account without rights, a password file saved
by Notepad. Each ends in one of two states, never between: the site still on its SQLite file
with the destination as empty as it was, or the site on PostgreSQL with every row; a run
again finishes or starts the move, and every refusal names the problem and the fix, without
a traceback."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.compliance import Waiver
from devposture.collector.config import load
from devposture.collector.store import Store
from devposture.collector.store.engine import PostgresDatabase
from devposture.collector.store.migrate import LEFT_BEHIND, TABLES, migrate
from devposture.collector.store.target import (
    DatabaseTargetError,
    PostgresTarget,
    SqliteTarget,
    read_password,
)
from devposture.collector.tokens import new_token
from tests.collector.test_migrate import T0, _everything, _export, _site
from tests.databases import fresh_database, fresh_postgres, on_postgresql, raw

needs_postgresql = pytest.mark.skipif(
    not on_postgresql(), reason="moves a database to PostgreSQL: the PostgreSQL leg runs it"
)
COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")


def _rows_of(target: PostgresTarget | SqliteTarget) -> dict[str, list[tuple[object, ...]]]:
    store = Store.open(target)
    try:
        return _everything(store)
    finally:
        store.close()


def _count(target: PostgresTarget, table: str) -> int:
    import psycopg  # noqa: PLC0415 (the PostgreSQL leg only)

    with psycopg.connect(target.url, autocommit=True) as connection:
        row = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# --- the move's last step: collector.toml ------------------------------------------------------


@needs_postgresql
def test_a_move_whose_config_cannot_be_rewritten_is_worded_and_finished_by_running_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copy committed, then collector.toml could not be replaced (a full disk, a folder in
    the way, a Ctrl-C or a kill at that moment): the site still runs on SQLite, and the
    destination holds it whole. A run again must finish the move, not refuse the database it
    filled itself as "already holding collector data" (the site was stuck)."""
    data, key = _site(tmp_path)
    before = _export(data, tmp_path / "before.zip")
    source = load(data).database
    text = (data / "collector.toml").read_text()
    rows = _rows_of(source)
    destination = fresh_postgres()
    (data / "collector.toml.new").mkdir()  # where the new collector.toml is written first
    capsys.readouterr()
    argv = ["migrate", "--data", str(data), "--to", destination.url]
    assert collector_cli(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "could not be rewritten" in err and "run the same migrate command again" in err
    assert (data / "collector.toml").read_text() == text  # the site still on its file
    assert _rows_of(destination) == rows  # and the copy whole, committed

    (data / "collector.toml.new").rmdir()
    assert collector_cli(argv) == 0
    out = capsys.readouterr().out
    assert "already held this site, every table identical" in out
    assert load(data).database == PostgresTarget(destination.url)
    assert _rows_of(destination) == rows  # nothing copied twice
    after = _export(data, tmp_path / "after.zip")
    capsys.readouterr()
    assert collector_cli(["audit", "verify", str(after), "--after", str(before),
                          "--public-key", str(key)]) == 0, capsys.readouterr()  # fmt: skip


@needs_postgresql
@pytest.mark.parametrize("lang", ["C.UTF-8", "zh_CN.UTF-8"])
def test_an_earlier_copy_of_the_site_that_differs_from_it_now_is_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    lang: str,
) -> None:  # fmt: skip
    """The move stopped after its copy, and the collector ran on SQLite again (a token made):
    the destination holds an older copy of this very site, which must be neither kept as the
    site nor called another installation's."""
    monkeypatch.setenv("LANG", lang)
    data, _ = _site(tmp_path)
    destination = fresh_postgres()
    (data / "collector.toml.new").mkdir()
    argv = ["migrate", "--data", str(data), "--to", destination.url]
    assert collector_cli(argv) == 1
    (data / "collector.toml.new").rmdir()
    assert collector_cli(["token", "create", "--data", str(data)]) == 0
    text = (data / "collector.toml").read_text()
    copied = _rows_of(destination)
    capsys.readouterr()
    assert collector_cli(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "enrollment_tokens" in err
    if lang == "C.UTF-8":
        assert "holds an earlier copy of this site" in err
        assert "empty it (drop the database and create it again)" in err
    assert (data / "collector.toml").read_text() == text
    assert _rows_of(destination) == copied


# --- the site written to while it moves ----------------------------------------------------------


@needs_postgresql
def test_nothing_is_written_to_the_site_while_it_moves(tmp_path: Path) -> None:
    """`token create --data` (any local command that writes) does not take the data folder's
    lock: during a move it wrote to the SQLite file after the copy was read, printed its token,
    and the token was not in PostgreSQL once the site ran there. The site's database is held
    for writing from the copy's start to collector.toml's rewrite: such a write waits for the
    move (here: fails at once, its wait set to nothing)."""
    data, _ = _site(tmp_path)
    source = load(data).database
    assert isinstance(source, SqliteTarget)
    destination = fresh_postgres()
    tried: list[BaseException | None] = []

    def meanwhile(table: str, rows: int) -> None:
        if tried:
            return
        other = sqlite3.connect(source.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE enrollment_tokens SET revoked_us = 1")
            other.execute("COMMIT")
            tried.append(None)
        except sqlite3.OperationalError as exc:
            tried.append(exc)
        finally:
            other.close()

    switched: list[bool] = []
    migrate(source, destination, meanwhile, lambda: switched.append(True))
    assert switched == [True]
    assert isinstance(tried[0], sqlite3.OperationalError), "a write went through mid-move"
    assert "locked" in str(tried[0])
    assert _rows_of(destination) == _rows_of(source)


# --- a site folder without its database ------------------------------------------------------


@needs_postgresql
def test_a_site_whose_database_file_is_missing_is_refused_not_moved_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """collector.toml names a file that is not there (copied without it, a wrong `path`): the
    move made an empty SQLite file, moved its 0 rows and pointed the site at PostgreSQL (as
    every command made the file anew, until config.load refused a missing one: acc62da)."""
    data, _ = _site(tmp_path)
    (data / "devposture.db").rename(tmp_path / "elsewhere.db")
    text = (data / "collector.toml").read_text()
    destination = fresh_postgres()
    capsys.readouterr()
    assert collector_cli(["migrate", "--data", str(data), "--to", destination.url]) == 1
    err = capsys.readouterr().err
    assert f"the database {data / 'devposture.db'} is missing" in err
    assert not (data / "devposture.db").exists()
    assert (data / "collector.toml").read_text() == text


# --- a row PostgreSQL cannot hold ------------------------------------------------------------


@needs_postgresql
@pytest.mark.parametrize(
    ("edit", "table"),
    [("UPDATE enrollment_tokens SET uses_left = 'many'", "enrollment_tokens"),
     ("UPDATE devices SET hostname = 'a' || char(0) || 'b'", "devices")],
)  # fmt: skip
def test_a_row_edited_by_hand_that_postgresql_cannot_hold_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, table: str
) -> None:
    """Text typed into an INTEGER column of the SQLite file, a NUL in a text: the move was
    refused, rightly, but told to check the --to address, the server and the password file."""
    data, _ = _site(tmp_path)
    raw = sqlite3.connect(data / "devposture.db", isolation_level=None)
    try:
        raw.execute(edit)
    finally:
        raw.close()
    text = (data / "collector.toml").read_text()
    destination = fresh_postgres()
    capsys.readouterr()
    assert collector_cli(["migrate", "--data", str(data), "--to", destination.url]) == 1
    err = capsys.readouterr().err
    assert f"table {table} of the SQLite file holds a row PostgreSQL cannot store" in err
    assert "edited outside the collector" in err and "nothing was moved" in err
    assert "--to address" not in err and "Traceback" not in err
    assert (data / "collector.toml").read_text() == text
    assert _count(destination, table) == 0


# --- an account without rights ---------------------------------------------------------------


@contextmanager
def _account_without_create(database: PostgresTarget) -> Iterator[PostgresTarget]:
    """`database` as a login role may reach it that cannot create tables in it (PostgreSQL 15's
    default for a database it does not own); the role is dropped after."""
    import psycopg  # noqa: PLC0415

    role = f"devposture_t_{uuid.uuid4().hex[:12]}"
    schema = database.url.rsplit("search_path%3D", 1)[-1]
    with psycopg.connect(database.url, autocommit=True) as connection:
        connection.execute(f'CREATE ROLE "{role}" LOGIN')
        connection.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    try:
        yield PostgresTarget(database.url.replace("postgres@", f"{role}@", 1))
    finally:
        with psycopg.connect(database.url, autocommit=True) as connection:
            connection.execute(f'DROP OWNED BY "{role}"')
            connection.execute(f'DROP ROLE "{role}"')


@needs_postgresql
def test_an_account_that_may_not_create_tables_is_told_what_rights_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The move and init were refused with "check the --to address, that the server runs
    … and the password file", and the statement's LINE and caret in the middle of the line."""
    data, _ = _site(tmp_path)
    text = (data / "collector.toml").read_text()
    with _account_without_create(fresh_postgres()) as limited:
        capsys.readouterr()
        for argv, option in (
            (["migrate", "--data", str(data), "--to", limited.url], "--to"),
            (["init", "--data", str(tmp_path / "new"), "--database", limited.url], "--database"),
        ):
            assert collector_cli(argv) == 1
            err = capsys.readouterr().err
            assert "may not create or change the collector's tables" in err, err
            assert "permission denied for schema" in err
            assert "OWNER TO devposture_t_" in err and "GRANT CREATE ON SCHEMA" in err
            assert f"check the {option} address" not in err and "LINE" not in err
    assert (data / "collector.toml").read_text() == text
    assert not (tmp_path / "new").exists()


# --- Ctrl-C and SIGKILL ----------------------------------------------------------------------


@contextmanager
def _setval_held(destination: PostgresTarget) -> Iterator[None]:
    """Hold the move where it has copied every table and not committed: ALTER SEQUENCE in an
    open transaction blocks setval, which the move calls after its copy."""
    import psycopg  # noqa: PLC0415

    Store.open(destination).close()  # the tables, and their sequences
    with psycopg.connect(destination.url) as connection:
        connection.execute(
            "ALTER SEQUENCE "
            + connection.execute(
                "SELECT pg_get_serial_sequence('waiver_events', 'event_id')"
            ).fetchone()[0]  # type: ignore[index]
            + " INCREMENT BY 1"
        )
        try:
            yield
        finally:
            connection.rollback()


@needs_postgresql
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_move_interrupted_after_its_copy_keeps_nothing_and_a_run_again_moves_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data, _ = _site(tmp_path)
    source = load(data).database
    text = (data / "collector.toml").read_text()
    destination = fresh_postgres()
    argv = [COLLECTOR, "migrate", "--data", str(data), "--to", destination.url]
    env = {**os.environ, "LANG": "C.UTF-8"}
    with _setval_held(destination):
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert process.stderr is not None
        for line in process.stderr:  # every table copied, the move waiting on setval
            if line.startswith("  alert_collector_problems:"):
                break
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert "Traceback" not in err
        assert "Interrupted before the move ended: the site still uses its SQLite file" in err
    else:
        assert process.returncode == -signal.SIGKILL
    assert (data / "collector.toml").read_text() == text
    assert _count(destination, "evidence_chain") == 0
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert load(data).database == PostgresTarget(destination.url)
    assert _rows_of(destination) == _rows_of(source)


# --- the password file -----------------------------------------------------------------------


def test_a_password_file_saved_with_a_byte_order_mark_gives_the_password_alone(
    tmp_path: Path,
) -> None:
    """Notepad's "UTF-8 with BOM": the mark was sent as the password's first character, and
    the server answered "password authentication failed", naming nothing."""
    path = tmp_path / "db-password"
    path.write_bytes(b"\xef\xbb\xbfS3cret\r\n")
    path.chmod(0o600)
    assert read_password(path) == "S3cret"


def test_a_password_file_saved_as_utf16_without_a_mark_is_worded(tmp_path: Path) -> None:
    """UTF-16 without its mark reads as UTF-8 with a NUL after each letter: libpq was given it
    and answered "unterminated quoted string in connection info string"."""
    path = tmp_path / "db-password"
    path.write_bytes("S3cret\n".encode("utf-16-le"))
    path.chmod(0o600)
    with pytest.raises(DatabaseTargetError, match="is not UTF-8 text"):
        read_password(path)


@needs_postgresql
def test_a_database_already_holding_another_site_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finishing a stopped move is for this site's own copy only: another installation's
    database, however similar, stays refused as before."""
    used = fresh_postgres()
    other = Store.open(used)
    try:
        other.identity.add_token(new_token(), T0, T0 + dt.timedelta(hours=1), uses=1)
    finally:
        other.close()
    data, _ = _site(tmp_path)
    capsys.readouterr()
    assert collector_cli(["migrate", "--data", str(data), "--to", used.url]) == 1
    err = capsys.readouterr().err
    assert "already holds collector data (table enrollment_tokens" in err
    assert "earlier copy of this site" not in err


def _waive(target: PostgresTarget | SqliteTarget, waiver_id: str) -> None:
    """A waiver: a record the evidence chain holds at once."""
    store = Store.open(target)
    try:
        store.waivers.add_waiver(
            Waiver(waiver_id, "d1", "firewall", "李伟", "rollout", T0, T0 + dt.timedelta(days=3)),
            T0,
        )
    finally:
        store.close()


@needs_postgresql
def test_a_copy_the_site_went_on_from_is_never_called_an_earlier_one_to_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The site moved and ran on PostgreSQL; then IT put the old collector.toml back (from a
    backup, to roll back) and ran migrate again. The database holds the site's newer evidence:
    telling IT to empty it, as an earlier copy is emptied, would throw that away."""
    data, _ = _site(tmp_path)
    source = load(data).database
    text = (data / "collector.toml").read_text()
    destination = fresh_postgres()
    argv = ["migrate", "--data", str(data), "--to", destination.url]
    assert collector_cli(argv) == 0
    _waive(destination, "w-on-postgresql")
    (data / "collector.toml").write_text(text)  # put back
    moved = _rows_of(destination)
    capsys.readouterr()
    assert collector_cli(argv) == 1
    err = capsys.readouterr().err
    assert "holds this site with evidence its SQLite file does not have" in err
    assert "Do not empty that database: set [database] url in collector.toml to it again" in err
    assert "earlier copy" not in err and "drop the database" not in err
    assert (data / "collector.toml").read_text() == text
    assert _rows_of(destination) == moved

    _waive(source, "w-on-sqlite")  # and the site ran on its file too: both went on
    assert collector_cli(argv) == 1
    err = capsys.readouterr().err
    assert "each hold evidence of this site the other does not" in err
    assert "Empty neither" in err and "drop the database" not in err
    assert _rows_of(destination) == moved


def test_every_table_is_moved_or_left_behind_on_purpose(tmp_path: Path) -> None:
    """A table added to the schema but not to migrate.TABLES was left behind by every move,
    under "every table read back identical" (only TABLES are read back)."""
    target = fresh_database(tmp_path)
    Store.open(target).close()
    database = raw(target)
    try:
        if isinstance(database, PostgresDatabase):
            listed = database.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
        else:
            listed = database.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
    finally:
        database.close()
    found = {str(row[0]) for row in listed}
    assert found == {table for table, _ in TABLES} | set(LEFT_BEHIND), (
        "add the table to migrate.TABLES (parents before children), or to LEFT_BEHIND with why"
    )
