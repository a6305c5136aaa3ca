"""`init --database`, `init --join` and `migrate --to` as a person types them: relative paths,
an address with a password or a typo in it, a password file saved in the wrong encoding, a
database that cannot be reached or belongs to another installation. Each is refused before
anything is made, in words that name the problem and the fix (never a traceback, never the
password), and a run that fails midway leaves nothing for the next `init` to trip over."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.store.schema import SCHEMA_VERSION
from devposture.collector.store.target import NewerSchema, PostgresTarget
from devposture.collector.tokens import new_token
from tests.databases import SERVER, fresh_postgres, init_arguments, on_postgresql, raw

T0 = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)
SECRET = "S3cret-in-the-address"

needs_postgresql = pytest.mark.skipif(
    not on_postgresql(), reason="needs a PostgreSQL server: the PostgreSQL leg runs it"
)


def _password_file(path: Path, content: bytes = b"unused-with-trust-auth\n") -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def _sqlite_site(folder: Path) -> Path:
    config, _ = initialize(folder, "127.0.0.1")  # SQLite: a site to move
    return config.data_dir


# --- 4: a password in the address, shown nowhere ----------------------------------------------


@pytest.mark.parametrize("lang", ["C.UTF-8", "zh_CN.UTF-8"])
def test_a_password_in_the_address_query_is_refused_and_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    lang: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("LANG", lang)
    site = _sqlite_site(tmp_path / "site")
    text = (site / "collector.toml").read_text()
    capsys.readouterr()
    query = f"postgresql://postgres@127.0.0.1:5432/db?sslmode=disable&password={SECRET}"
    keywords = f"host=127.0.0.1 dbname=db password={SECRET}"
    for argv in (["init", "--data", str(tmp_path / "new"), "--database", query],
                 ["init", "--data", str(tmp_path / "new"), "--database", keywords],
                 ["migrate", "--data", str(site), "--to", query],
                 ["migrate", "--data", str(site), "--to", keywords]):  # fmt: skip
        assert collector_cli(argv) == 1
        out, err = capsys.readouterr()
        assert SECRET not in out + err and "Traceback" not in err
        assert "PostgreSQL" in err
    assert not (tmp_path / "new").exists()
    assert (site / "collector.toml").read_text() == text


# --- 5: what is worded instead of a traceback -------------------------------------------------


def test_a_password_file_that_is_not_utf8_is_worded_at_init_and_at_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    utf16 = _password_file(tmp_path / "pwb", b"\xff\xfe")  # as Notepad saves UTF-16
    assert collector_cli(["init", "--data", str(tmp_path / "new"), "--database",
                          "postgresql://postgres@127.0.0.1:5432/db",
                          "--database-password-file", str(utf16)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"the database password file {utf16} is not UTF-8 text" in err
    assert not (tmp_path / "new").exists()
    site = _sqlite_site(tmp_path / "site")
    toml = site / "collector.toml"
    toml.write_text(toml.read_text().replace(
        '\nurl = ""', '\nurl = "postgresql://postgres@127.0.0.1:5432/db"'
    ).replace('\npassword_file = ""', f'\npassword_file = "{utf16}"'))  # fmt: skip
    capsys.readouterr()
    assert collector_cli(["serve", "--data", str(site)]) == 1
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "Traceback" not in err


def test_a_malformed_address_is_worded_wherever_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = "postgresql://postgres@[::1/db"
    site = _sqlite_site(tmp_path / "site")
    capsys.readouterr()
    for argv in (["init", "--data", str(tmp_path / "new"), "--database", broken],
                 ["migrate", "--data", str(site), "--to", broken]):  # fmt: skip
        assert collector_cli(argv) == 1
        err = capsys.readouterr().err
        assert f"the PostgreSQL address {broken!r} is malformed (Invalid IPv6 URL)" in err
        assert "[::1]:5432" in err  # how to write it
    toml = site / "collector.toml"
    toml.write_text(toml.read_text().replace('\nurl = ""', f'\nurl = "{broken}"'))
    assert collector_cli(["token", "list", "--data", str(site)]) == 1
    assert "is malformed (Invalid IPv6 URL)" in capsys.readouterr().err


# --- 3: a failed init leaves nothing behind ---------------------------------------------------


@pytest.mark.parametrize("existed", [False, True])
def test_an_init_that_fails_midway_leaves_nothing_and_the_next_one_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    existed: bool,
) -> None:  # fmt: skip
    folder = tmp_path / "collector"
    if existed:
        folder.mkdir()  # an empty folder made for it beforehand: kept, and empty again

    def down(*_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as failing:
        failing.setattr(Store, "open", down)  # after the CA and keys are written
        assert collector_cli(["init", "--data", str(folder)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert folder.exists() == existed
    assert not existed or list(folder.iterdir()) == []
    assert collector_cli(["init", "--data", str(folder)]) == 0


def test_a_database_of_a_newer_schema_is_refused_and_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading several collectors on one database, the first to start on the new version
    brings the schema up; a collector of the old version started after that must not write
    to a database whose tables it does not know (nor take the newer schema for its own): a
    command and `serve` both stop, saying which schema and what to do, on either engine."""
    folder = tmp_path / "collector"
    assert collector_cli(["init", "--data", str(folder), *init_arguments()]) == 0
    newer = SCHEMA_VERSION + 1
    database = raw(load(folder).database)
    try:
        with database.transaction():
            database.execute("UPDATE schema_version SET version = ?", (newer,))
    finally:
        database.close()
    capsys.readouterr()
    told = f"the database was written by a newer collector (schema {newer})"
    for command in (["report", "fleet"], ["serve", "--enroll-port", "0", "--report-port", "0",
                                          "--admin-port", "0"]):  # fmt: skip
        assert collector_cli([*command, "--data", str(folder)]) != 0
        err = capsys.readouterr().err
        assert f"{told}; upgrade devposture before opening it" in err, err
        assert "Traceback" not in err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert collector_cli(["report", "fleet", "--data", str(folder)]) != 0
    assert f"这个数据库是由更新版本的采集器写入的（schema {newer}）" in capsys.readouterr().err
    with pytest.raises(NewerSchema):
        Store.open(load(folder).database)
    database = raw(load(folder).database)
    try:
        assert database.execute("SELECT version FROM schema_version").fetchall() == [(newer,)]
    finally:
        database.close()


# --- PostgreSQL -------------------------------------------------------------------------------


@needs_postgresql
def test_init_refuses_a_database_holding_another_installations_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    used = fresh_postgres()
    assert collector_cli(["init", "--data", str(tmp_path / "first"), "--database", used.url]) == 0
    # Claimed by the first `init` even before its collector served or stored anything.
    capsys.readouterr()
    assert collector_cli(["init", "--data", str(tmp_path / "early"), "--database", used.url]) == 1
    assert "already holds collector data (table installation is not empty)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "early").exists()
    store = Store.open(used)
    try:
        store.identity.add_token(new_token(), T0, T0 + dt.timedelta(hours=1), uses=1)
    finally:
        store.close()
    capsys.readouterr()
    assert collector_cli(["init", "--data", str(tmp_path / "second"), "--database", used.url]) == 1
    err = capsys.readouterr().err
    assert "already holds collector data (table installation is not empty)" in err
    assert "init --join FOLDER" in err and "give an empty database" in err
    assert not (tmp_path / "second").exists()
    # A database no `init` claimed is no one's yet.
    assert collector_cli(["init", "--data", str(tmp_path / "third"),
                          "--database", fresh_postgres().url]) == 0  # fmt: skip


@needs_postgresql
def test_a_relative_password_file_is_kept_absolute_by_init_and_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    password = _password_file(tmp_path / "pw")
    database = fresh_postgres()
    assert collector_cli(["init", "--data", "d2", "--database", database.url,
                          "--database-password-file", "pw"]) == 0  # fmt: skip
    assert load(Path("d2")).database == PostgresTarget(database.url, password)
    assert collector_cli(["token", "create", "--data", "d2"]) == 0  # reads the password file

    site = _sqlite_site(tmp_path / "site")
    text = (site / "collector.toml").read_text()
    destination = fresh_postgres()
    capsys.readouterr()
    # A file that cannot be read is refused before anything is moved or written.
    assert collector_cli(["migrate", "--data", "site", "--to", destination.url,
                          "--database-password-file", "missing"]) == 1  # fmt: skip
    assert f"cannot read the database password file {tmp_path / 'missing'}" in (
        capsys.readouterr().err)  # fmt: skip
    assert (site / "collector.toml").read_text() == text
    assert collector_cli(["migrate", "--data", "site", "--to", destination.url,
                          "--database-password-file", "pw"]) == 0  # fmt: skip
    assert load(site).database == PostgresTarget(destination.url, password)
    assert collector_cli(["token", "create", "--data", "site"]) == 0


@needs_postgresql
def test_a_join_with_relative_folders_brings_the_password_file_along(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = fresh_postgres()
    assert collector_cli(["init", "--data", "c1", "--database", database.url]) == 0
    _password_file(tmp_path / "c1" / "db-password")
    toml = tmp_path / "c1" / "collector.toml"
    toml.write_text(toml.read_text().replace('\npassword_file = ""',
                                             '\npassword_file = "db-password"'))  # fmt: skip
    assert collector_cli(["init", "--data", "c4", "--join", "c1"]) == 0
    assert 'password_file = "db-password"' in (tmp_path / "c4" / "collector.toml").read_text()
    assert load(Path("c4")).database == PostgresTarget(database.url, Path("c4/db-password"))
    assert collector_cli(["token", "create", "--data", "c4"]) == 0

    # A join that fails midway (the first folder's policy is missing) leaves nothing behind.
    (tmp_path / "c1" / "policy.toml").unlink()
    capsys.readouterr()
    assert collector_cli(["init", "--data", "c5", "--join", "c1"]) == 1
    assert "cannot join c1" in capsys.readouterr().err
    assert not (tmp_path / "c5").exists()


@needs_postgresql
@pytest.mark.parametrize(
    ("address", "reason"),
    [("/devposture_no_such_database", 'database "devposture_no_such_database" does not exist'),
     ("/x?sslmode=bogus", 'invalid sslmode value: "bogus"')],
)  # fmt: skip
def test_a_database_that_cannot_be_used_is_told_with_the_servers_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, reason: str
) -> None:
    server = SERVER.rstrip("/").rsplit("/", 1)[0] if SERVER.count("/") > 2 else SERVER
    url = server.rstrip("/") + address
    assert collector_cli(["init", "--data", str(tmp_path / "new"), "--database", url]) == 1
    err = capsys.readouterr().err
    assert reason in err and "check the --database address" in err
    assert "pool initialization" not in err
    assert not (tmp_path / "new").exists()
    site = _sqlite_site(tmp_path / "site")
    capsys.readouterr()
    assert collector_cli(["migrate", "--data", str(site), "--to", url]) == 1
    err = capsys.readouterr().err
    assert reason in err and "check the --to address" in err and "collector.toml" not in err


@needs_postgresql
def test_a_refused_port_is_told_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres@127.0.0.1:1/db"
    assert collector_cli(["init", "--data", str(tmp_path / "new"), "--database", url]) == 1
    assert "Connection refused" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
