"""The auditor role over a real collector's admin port (grpc.aio, real TLS, either database
engine): it reads every report and the audit log, and is refused every change."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devposture.collector.admin.commands import COMMANDS
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, AUDITOR, VIEWER, new_credential
from devposture.collector.evidence import batches, check_pool
from devposture.collector.store import Store, database_errors
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc
from tests.collector.test_admin import DEADLINE, AdminCollector, admin_collector
from tests.collector.test_store import database_at_version, schema_of
from tests.conftest import EnrolledAgent, enroll_agent
from tests.databases import fresh_postgres, on_postgresql


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[AdminCollector]:
    with admin_collector(tmp_path / "collector") as running:
        yield running


@pytest.fixture
def device(collector: AdminCollector, tmp_path: Path) -> EnrolledAgent:
    return enroll_agent(collector.live, tmp_path / "agent", hostname="laptop-1")


def _refusal(call: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[grpc.StatusCode, str]:
    error = call.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def _state(collector: AdminCollector) -> tuple[object, ...]:
    """What a change would touch: devices, waivers, tokens, credentials."""
    store = collector.store()
    try:
        return (
            [(d.device_id, d.status) for d in store.identity.devices()],
            store._db.execute("SELECT COUNT(*) FROM waivers").fetchone(),
            [t.token_id for t in store.identity.tokens()],
            [c.credential_id for c in store.admin.credentials()],
        )
    finally:
        store.close()


def test_an_auditor_reads_reports_and_the_audit_log(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    auditor = collector.credential("Zhao Min (audit)", AUDITOR)
    fleet = json.loads(collector.run(auditor, "report", "fleet").rows_json)
    assert fleet and all(row["devices"] == 1 for row in fleet)
    shown = collector.run(auditor, "report", "device", device_id=device.enrollment.device_id)
    assert json.loads(shown.rows_json)
    assert collector.run(auditor, "audit", "public-key").message.startswith("-----BEGIN")
    log = json.loads(collector.run(auditor, "audit", "log").rows_json)
    assert [(r["command"], r["role"], r["outcome"]) for r in log] == [
        ("report fleet", AUDITOR, "ok"),
        ("report device", AUDITOR, "ok"),
        ("audit public-key", AUDITOR, "ok"),
    ]


def test_a_viewer_still_may_not_read_the_audit_log(collector: AdminCollector) -> None:
    viewer = collector.credential("Wang Fang", VIEWER)
    with pytest.raises(grpc.RpcError) as call:
        collector.run(viewer, "audit", "log")
    code, details = _refusal(call)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "--role auditor" in details and "审计员" in details


def test_an_auditor_is_refused_every_change_and_nothing_changes(
    collector: AdminCollector, device: EnrolledAgent
) -> None:
    auditor = collector.credential("Zhao Min (audit)", AUDITOR)
    device_id = device.enrollment.device_id
    before = _state(collector)
    expires = (utcnow() + dt.timedelta(days=7)).isoformat()
    attempts: list[tuple[tuple[str, str], dict[str, str]]] = [
        (("waiver", "add"), {"device": device_id, "check": "chat-backup", "owner": "Li Wei",
                             "reason": "rollout", "expires": expires}),
        (("device", "revoke"), {"device_id": device_id, "reason": "lost"}),
        (("token", "create"), {}),
    ]  # fmt: skip
    for words, arguments in attempts:
        with pytest.raises(grpc.RpcError) as call, collector.channel() as channel:
            admin_grpc.AdminStub(channel).Run(
                admin_pb.AdminCommand(command=list(words), arguments=arguments),
                timeout=DEADLINE, metadata=(("authorization", f"Bearer {auditor}"),),
            )  # fmt: skip
        code, details = _refusal(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED, words
        # Both languages, and the fix: an admin's credential.
        assert "needs the admin role" in details and "管理员" in details
        assert "admin add NAME --role admin" in details
    assert _state(collector) == before
    denied = [(e.command, e.outcome, e.role) for e in collector.audit()]
    assert denied == [(" ".join(w), "denied", AUDITOR) for w, _ in attempts]


def test_every_command_an_auditor_may_run_only_reads() -> None:
    """The table itself: an auditor's commands are the viewer's and the evidence's, never a
    change (a new command that changes something must need the admin role)."""
    allowed = sorted(" ".join(c.words) for c in COMMANDS.values() if c.role in (VIEWER, AUDITOR))
    assert allowed == [
        "audit check", "audit export", "audit log", "audit public-key", "device list",
        "device show", "report device", "report failing", "report fleet", "report history",
        "token list", "waiver list",
    ]  # fmt: skip
    assert {c.role for c in COMMANDS.values() if c.words[0] == "audit"} == {VIEWER, AUDITOR}
    assert all(c.role == ADMIN for c in COMMANDS.values() if c.words[0] == "admin")


# admin_credentials as schemas 1 to 14 made it: no auditor.
_CREDENTIALS_UP_TO_14 = """CREATE TABLE admin_credentials (
    credential_id  TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
    secret_hash    TEXT NOT NULL,
    created_us     INTEGER NOT NULL,
    revoked_us     INTEGER
)"""


@pytest.mark.sqlite_only
def test_a_schema_14_database_takes_auditor_credentials_and_keeps_the_old_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    database_at_version(path, 14, monkeypatch)
    raw = sqlite3.connect(path)
    try:
        with raw:
            raw.execute("DROP TABLE admin_credentials")
            raw.execute(_CREDENTIALS_UP_TO_14)
            raw.execute(
                "INSERT INTO admin_credentials VALUES ('0123456789abcdef', 'Li Wei', 'admin',"
                " 'x', 1, NULL)"
            )
        # Schema 14 knows no auditor.
        with pytest.raises(sqlite3.IntegrityError), raw:
            raw.execute(
                "INSERT INTO admin_credentials VALUES ('fedcba9876543210', 'Zhao', 'auditor',"
                " 'x', 1, NULL)"
            )
    finally:
        raw.close()
    store = Store.open(path)
    try:
        store.admin.add_credential(new_credential(), "Zhao Min", AUDITOR, utcnow())
        roles = sorted((c.name, c.role) for c in store.admin.credentials())
    finally:
        store.close()
    assert roles == [("Li Wei", ADMIN), ("Zhao Min", AUDITOR)]
    Store.open(tmp_path / "new.db").close()
    assert schema_of(path) == schema_of(tmp_path / "new.db")


@pytest.mark.sqlite_only
def test_a_new_database_is_not_rebuilt_and_keeps_no_free_pages(tmp_path: Path) -> None:
    """A full disk is found by a write needing a new page (test_group_commit.py): a new
    database must not start with pages freed by a migration."""
    Store.open(tmp_path / "new.db").close()
    raw = sqlite3.connect(tmp_path / "new.db")
    try:
        assert raw.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        raw.close()


def _remote(collector: AdminCollector, credential: str, folder: Path) -> list[str]:
    credential_file = folder / f"{credential.split('_')[1]}.credential"
    credential_file.write_text(credential + "\n")
    credential_file.chmod(0o600)
    return ["--collector", f"127.0.0.1:{collector.admin_port}", "--ca-fingerprint",
            collector.live.ca_fingerprint, "--credential-file", str(credential_file)]  # fmt: skip


def test_an_auditor_exports_remotely_and_the_bundle_verifies(
    collector: AdminCollector, device: EnrolledAgent, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    auditor = collector.credential("Zhao Min (audit)", AUDITOR)
    where = _remote(collector, auditor, tmp_path)
    start, end = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(seconds=1)
    period = ["--from", start.isoformat(), "--to", end.isoformat()]
    out = tmp_path / "evidence.zip"
    assert collector_cli(["audit", "export", *where, *period, "--out", str(out),
                          "--progress"]) == 0  # fmt: skip
    shown = capsys.readouterr()
    # The progress in the reader's language only (it was in Chinese and English at once).
    assert "chain entries" in shown.err and "证据链条目" not in shown.err
    assert "downloaded" in shown.err and "下载" not in shown.err
    assert f"wrote {out}" in shown.out and "audit verify" in shown.out
    assert not list(tmp_path.glob("*.partial")), "the file written beside was left"
    # The collector kept nothing: its temporary folder is gone.
    assert not list(collector.live.config.data_dir.glob("export-*"))
    key = tmp_path / "key.pem"
    assert collector_cli(["audit", "public-key", *where]) == 0
    key.write_text(capsys.readouterr().out)
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0
    capsys.readouterr()
    # Never over a file that exists.
    before = out.read_bytes()
    assert collector_cli(["audit", "export", *where, *period, "--out", str(out)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert out.read_bytes() == before
    exports = [(e.command, e.outcome, e.role) for e in collector.audit()
               if e.command == "audit export"]  # fmt: skip
    assert exports == [("audit export", "ok", AUDITOR)]


def test_a_viewer_may_not_export_remotely(
    collector: AdminCollector, device: EnrolledAgent, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    viewer = collector.credential("Wang Fang", VIEWER)
    start, end = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(seconds=1)
    with collector.channel() as channel, pytest.raises(grpc.RpcError) as call:
        list(admin_grpc.AdminStub(channel).Export(
            admin_pb.AdminCommand(command=["audit", "export"],
                                  arguments={"from": start.isoformat(), "to": end.isoformat()}),
            timeout=DEADLINE, metadata=(("authorization", f"Bearer {viewer}"),),
        ))  # fmt: skip
    code, details = _refusal(call)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "--role auditor" in details and "审计员" in details
    out = tmp_path / "evidence.zip"
    where = _remote(collector, viewer, tmp_path)
    assert collector_cli(["audit", "export", *where, "--from", start.isoformat(), "--to",
                          end.isoformat(), "--out", str(out)]) == 1  # fmt: skip
    assert "not allowed" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    assert not list(collector.live.config.data_dir.glob("export-*"))
    assert [(e.command, e.outcome) for e in collector.audit()] == [
        ("audit export", "denied"), ("audit export", "denied"),
    ]  # fmt: skip


def test_the_unary_run_still_refuses_a_remote_export(
    collector: AdminCollector, tmp_path: Path
) -> None:
    """Over Run, `out` would be a path on the collector chosen by the caller: only the
    Export stream, which picks its own temporary file, exports remotely."""
    auditor = collector.credential("Zhao Min (audit)", AUDITOR)
    with pytest.raises(grpc.RpcError) as call:
        collector.run(auditor, "audit", "export", out=str(tmp_path / "x.zip"))
    code, details = _refusal(call)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "runs only through the streamed export" in details and "流式导出" in details
    assert "--collector HOST:PORT" in details
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.skipif(
    not on_postgresql(),
    reason="needs a PostgreSQL server (DEVPOSTURE_TEST_POSTGRESQL): the PostgreSQL leg of"
    " `make test` runs it",
)
def test_a_schema_14_postgresql_database_takes_auditor_credentials() -> None:
    target = fresh_postgres()
    Store.open(target).close()
    store = Store.open(target)
    try:  # back to schema 14: its constraint knows no auditor
        store._db.execute(
            "ALTER TABLE admin_credentials DROP CONSTRAINT admin_credentials_role_check"
        )
        store._db.execute(
            "ALTER TABLE admin_credentials ADD CONSTRAINT admin_credentials_role_check"
            " CHECK (role IN ('viewer', 'admin'))"
        )
        store._db.execute("UPDATE schema_version SET version = 14")
        with pytest.raises(database_errors()):
            store.admin.add_credential(new_credential(), "Zhao", AUDITOR, utcnow())
    finally:
        store.close()
    store = Store.open(target)
    try:
        store.admin.add_credential(new_credential(), "Zhao Min", AUDITOR, utcnow())
        assert [c.role for c in store.admin.credentials()] == [AUDITOR]
    finally:
        store.close()


def test_a_large_period_exported_remotely_is_checked_by_workers_beside_the_collector(
    collector: AdminCollector, device: EnrolledAgent, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The bundle of a remote export is made inside `serve` (its admin port's thread): a
    large period's workers are started from there, and the bundle verifies. (Every period
    counts as large here, in runs of one entry.)"""
    started: list[check_pool.Workers] = []

    class Counted(check_pool.Workers):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    monkeypatch.setattr(check_pool, "Workers", Counted)
    monkeypatch.setattr(batches, "MOST_READ", 1)
    auditor = collector.credential("Zhao Min (audit)", AUDITOR)
    where = _remote(collector, auditor, tmp_path)
    start, end = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(seconds=1)
    out = tmp_path / "evidence.zip"
    assert collector_cli(["audit", "export", *where, "--from", start.isoformat(), "--to",
                          end.isoformat(), "--out", str(out)]) == 0  # fmt: skip
    assert len(started) == 1
    key = tmp_path / "key.pem"
    capsys.readouterr()
    assert collector_cli(["audit", "public-key", *where]) == 0
    key.write_text(capsys.readouterr().out)
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
