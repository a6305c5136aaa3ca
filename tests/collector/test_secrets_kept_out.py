"""Secrets stay out of the database and the service's log (threat model rows 4 and 27): an
admin credential is stored as a SHA-256 only, as a token is; and a collector that enrolls
devices with right and wrong tokens and takes dashboard logins with right and wrong
credentials logs their ids, never their secrets. The log is read as the service wrote it
(every record, DEBUG and up), before any redacting formatter: redaction is a second net, not
the reason nothing leaks."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from devposture.agent.enroll import EnrollError, enroll
from devposture.agent.state import AgentState
from devposture.collector.clock import utcnow
from devposture.collector.credentials import VIEWER, new_credential
from devposture.collector.store import Store
from devposture.collector.store.engine import AnyDatabase
from devposture.collector.store.target import DatabaseTarget, SqliteTarget
from devposture.collector.web.server import start_dashboard
from devposture.net.address import CollectorAddress
from tests.conftest import host_info, running_collector
from tests.databases import fresh_database, raw
from tests.throttling import post_login


def _secret(text: str) -> str:
    """The secret part of `dpt_<id>_<secret>` or `dpa_<id>_<secret>`."""
    return text.split("_", 2)[2]


def _tables(database: AnyDatabase) -> list[str]:
    if database.dialect.is_sqlite:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    return [str(row[0]) for row in database.execute(sql).fetchall()]


def _stored(target: DatabaseTarget) -> bytes:
    """Everything the database holds: every value of every row of every table, and for a
    SQLite file its bytes on disk too (the main file, its WAL, freed pages and all)."""
    database = raw(target)
    try:
        values = [
            value if isinstance(value, bytes) else str(value).encode()
            for table in _tables(database)
            for row in database.execute(f"SELECT * FROM {table}").fetchall()
            for value in row
        ]
    finally:
        database.close()
    if isinstance(target, SqliteTarget):
        folder, name = target.path.parent, target.path.name
        values += [p.read_bytes() for p in folder.glob(f"{name}*")]
    return b"\n".join(values)


def test_an_admin_credential_s_secret_is_not_stored(tmp_path: Path) -> None:
    target = fresh_database(tmp_path, "db.sqlite")
    store = Store.open(target)
    credential = new_credential()
    try:
        store.admin.add_credential(credential, "Li Wei (IT)", VIEWER, utcnow())
        assert store.admin.authenticate(credential) is not None  # it is usable: something is kept
    finally:
        store.close()
    stored = _stored(target)
    assert credential.secret.encode() not in stored
    assert credential.credential_id.encode() in stored
    assert hashlib.sha256(credential.secret.encode()).hexdigest().encode() in stored


def test_no_secret_reaches_the_service_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_collector(tmp_path / "collector") as collector:
        token = collector.token()
        wrong_token = token[: -len(_secret(token))] + "B" * len(_secret(token))
        address = CollectorAddress("127.0.0.1", collector.enroll_port)
        with pytest.raises(EnrollError):
            enroll(AgentState(tmp_path / "a"), address, wrong_token, collector.ca_fingerprint,
                   host_info())  # fmt: skip
        enroll(AgentState(tmp_path / "b"), address, token, collector.ca_fingerprint, host_info())
        with pytest.raises(EnrollError):  # the token is spent now: refused, and logged so
            enroll(AgentState(tmp_path / "c"), address, token, collector.ca_fingerprint,
                   host_info())  # fmt: skip
        viewer = collector.credential("Wang Fang (audit)", VIEWER)
        wrong_viewer = viewer[: -len(_secret(viewer))] + "C" * len(_secret(viewer))
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            assert post_login(dashboard.port, viewer)[0] == 303
            assert post_login(dashboard.port, wrong_viewer)[0] == 401
        finally:
            dashboard.stop()
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    # The log did record these events, by id: the test looked where secrets would show.
    token_id, credential_id = token.split("_")[1], viewer.split("_")[1]
    assert f"enrollment refused for token {token_id}" in logged
    assert f"with token {token_id}" in logged
    assert f"credential {credential_id}" in logged
    for secret in (_secret(token), _secret(wrong_token), _secret(viewer), _secret(wrong_viewer)):
        assert secret not in logged
