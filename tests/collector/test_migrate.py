"""`devposture-collector migrate --to postgresql://…`: a site's SQLite history moves to PostgreSQL
whole (every row, the evidence chain unchanged), and an auditor's `audit verify --after` across
the move proves the chain was extended, not rewritten. Needs a PostgreSQL server: runs on the
PostgreSQL leg (make unit-postgresql)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.compliance import Waiver
from devposture.collector.config import load
from devposture.collector.datadir import initialize, lock_data_folder
from devposture.collector.evidence import signing
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.store.migrate import TABLES
from devposture.collector.store.target import PostgresTarget, SqliteTarget
from devposture.collector.tokens import new_token
from devposture.v1 import devposture_pb2 as pb
from tests.databases import fresh_postgres, on_postgresql
from tests.e2e.fleet import posture_report

pytestmark = pytest.mark.skipif(
    not on_postgresql(), reason="moves a database to PostgreSQL: the PostgreSQL leg runs it"
)

T0 = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)


def _site(base: Path) -> tuple[Path, Path]:
    """A SQLite site with history in every table the move copies; its folder and public key."""
    config, _ = initialize(base / "collector", "127.0.0.1")  # SQLite: the site's file
    assert isinstance(config.database, SqliteTarget)
    key = base / "collector.pem"
    key.write_bytes(signing.public_pem(signing.load_or_create(config.data_dir).public_key()))
    store = Store.open(config.database)
    try:
        for device in ("d1", "d2"):
            token = new_token()
            store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1, group="财务部")
            store.identity.enroll(token, T0, DeviceRecord(device, "01", T0 + dt.timedelta(days=90),
                                                          hostname=f"笔记本-{device}"))  # fmt: skip
        for minute, state in enumerate(("FAIL", "PASS", "FAIL")):
            at = T0 + dt.timedelta(minutes=minute)
            # A laptop's real report: its repeated facts stored once, as parts (schema 16).
            body = posture_report("d1", at, hostname="笔记本-d1").SerializeToString()
            record = ReportRecord(f"r{minute}", "d1", at, at, "1.0", body, "笔记本-d1", "linux",
                                  "Debian", "12", clock_skew_ms=-5)  # fmt: skip
            # A check that passes too: the database counts each device's passing verdicts
            # (schema 18), a count the copy must bring as it was, not count again.
            judged = [CheckResult("firewall", state, "防火墙"),
                      CheckResult("antivirus", "PASS", "正常")]  # fmt: skip
            store.reports.store_report(record, judged)
        store.waivers.add_waiver(Waiver("w-1", "d2", "firewall", "李伟", "rollout", T0,
                                        T0 + dt.timedelta(days=3)), T0)  # fmt: skip
        store.waivers.revoke_waiver("w-1", T0 + dt.timedelta(hours=1), "done")
        store.identity.set_device_status("d2", "retired", T0, "replaced")
        store.admin.audit(T0, actor="local:it", credential_id=None, role="admin",
                          command="device retire", arguments={"device_id": "d2"}, outcome="ok",
                          message="", peer="local")  # fmt: skip
        store.fleet.keep_fleet_days({"2026-10-01": {"firewall": {"FAIL": 1}}}, T0)
    finally:
        store.close()
    return config.data_dir, key


def _export(data: Path, out: Path) -> Path:
    assert collector_cli(["audit", "export", "--data", str(data), "--from", "2026-09-01",
                          "--to", "2027-01-01", "--out", str(out)]) == 0  # fmt: skip
    return out


def _everything(store: Store) -> dict[str, list[tuple[object, ...]]]:
    rows = {}
    for table, key in TABLES:
        found = store._db.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        rows[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                       for r in found]  # fmt: skip
    return rows


def test_a_site_moves_whole_and_its_chain_verifies_across_the_move(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, key = _site(tmp_path)
    before = _export(data, tmp_path / "before.zip")
    old = Store.open(load(data).database)
    try:
        rows = _everything(old)
        bodies = old.reports.report_bodies(["r0", "r1", "r2"])
    finally:
        old.close()
    destination = fresh_postgres()
    capsys.readouterr()

    assert collector_cli(["migrate", "--data", str(data), "--to", destination.url]) == 0
    out = capsys.readouterr().out
    assert "every table read back identical" in out

    config = load(data)
    assert config.database == PostgresTarget(destination.url)
    moved = Store.open(config.database)
    try:
        assert _everything(moved) == rows  # every row, as it was
        assert sum(len(r) for r in rows.values()) > 20
        # Each body whole again from the moved parts, the bytes as the agent sent them.
        assert rows["fact_parts"] and moved.reports.report_bodies(list(bodies)) == bodies
        assert all(pb.PostureReport.FromString(b).host.hostname == "笔记本-d1"
                   for b in bodies.values())  # fmt: skip
        head = moved.evidence.chain_head()
        assert head is not None and f"seq {head.seq}, hash {head.hash.hex()}" in out
        # The collector goes on writing on PostgreSQL: identity numbers follow the copied ones.
        at = T0 + dt.timedelta(days=1)
        moved.reports.store_report(
            ReportRecord("r9", "d1", at, at, "1.0", b"x", "笔记本-d1", "linux", "Debian", "12"),
            [CheckResult("firewall", "PASS", "on")],
        )
        # The count of passing verdicts goes on from the copied one: antivirus, and now the
        # firewall.
        passing = moved._db.execute("SELECT passing FROM devices WHERE device_id = 'd1'")
        assert passing.fetchone()[0] == 2
        moved.admin.audit(at, actor="local:it", credential_id=None, role="admin",
                          command="report fleet", arguments={}, outcome="ok", message="",
                          peer="local")  # fmt: skip
        (entry_ids,) = moved._db.execute("SELECT array_agg(entry_id ORDER BY entry_id)"
                                         " FROM audit_log").fetchone()  # fmt: skip
        copied = len(rows["audit_log"])  # the site's entry and its `audit export`'s
        assert copied == 2 and entry_ids == [1, 2, 3]
    finally:
        moved.close()
    after = _export(data, tmp_path / "after.zip")
    capsys.readouterr()
    assert collector_cli(["audit", "verify", str(after), "--after", str(before),
                          "--public-key", str(key)]) == 0, capsys.readouterr()  # fmt: skip


def test_the_move_is_refused_while_the_collector_runs_or_into_a_used_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = _site(tmp_path)
    text = (data / "collector.toml").read_text()
    destination = fresh_postgres()
    lock = lock_data_folder(data)  # as `serve` holds it
    try:
        assert collector_cli(["migrate", "--data", str(data), "--to", destination.url]) == 1
    finally:
        lock.release()
    assert "needs the collector stopped" in capsys.readouterr().err

    used = fresh_postgres()
    Store.open(used).close()
    other = Store.open(used)
    try:
        token = new_token()
        other.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
    finally:
        other.close()
    assert collector_cli(["migrate", "--data", str(data), "--to", used.url]) == 1
    err = capsys.readouterr().err
    assert "already holds collector data (table enrollment_tokens" in err
    # Nothing was changed: the site still runs on its file, and the used database holds one
    # token only.
    assert (data / "collector.toml").read_text() == text
    check = Store.open(used)
    try:
        assert len(check.identity.tokens()) == 1 and check.identity.devices() == []
    finally:
        check.close()


def test_a_password_in_the_address_is_refused_and_a_password_file_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = _site(tmp_path)
    destination = fresh_postgres()
    with_password = destination.url.replace("postgres@", "postgres:secret@")
    assert collector_cli(["migrate", "--data", str(data), "--to", with_password]) == 1
    err = capsys.readouterr().err
    assert "holds a password" in err and "secret" not in err
    password = tmp_path / "db-password"
    password.write_text("unused-with-trust-auth\n")
    os.chmod(password, 0o644)
    assert collector_cli(["migrate", "--data", str(data), "--to", destination.url,
                          "--database-password-file", str(password)]) == 1  # fmt: skip
    assert "can be read by other users: chmod 600" in capsys.readouterr().err
    os.chmod(password, 0o600)
    assert collector_cli(["migrate", "--data", str(data), "--to", destination.url,
                          "--database-password-file", str(password)]) == 0  # fmt: skip
    assert load(data).database == PostgresTarget(destination.url, password)
