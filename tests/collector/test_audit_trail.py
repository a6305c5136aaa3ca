"""The record of who did what cannot be rewritten through SQL, and names the person at the
collector machine (threat model rows 22 and 23). A real collector, a real agent's report, and
the real CLI on the data folder fill every history table; then each refuses UPDATE and DELETE
from a plain connection to the database (a SQLite file or PostgreSQL), as the application's own
code would make them."""

from __future__ import annotations

import datetime as dt
import getpass

import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector.cli import main as collector_cli
from devposture.collector.store import database_errors
from tests.conftest import EnrolledAgent, LiveCollector, make_report
from tests.databases import columns, raw

# Every table the threat model and the evidence chain say is append-only.
HISTORY = ("reports", "state_changes", "waiver_events", "device_events", "audit_log",
           "evidence_chain")  # fmt: skip


def test_local_commands_are_audited_as_the_local_user(
    live_collector: LiveCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    assert collector_cli(["device", "list", "--data", str(live_collector.config.data_dir)]) == 0
    store = live_collector.store()
    try:
        (entry,) = store.admin.audit_entries()
    finally:
        store.close()
    assert (entry.actor, entry.role, entry.peer) == (f"local:{getpass.getuser()}", "admin",
                                                    "local")  # fmt: skip
    assert (entry.command, entry.outcome) == ("device list", "ok")


def test_every_history_table_refuses_update_and_delete(
    live_collector: LiveCollector, agent: EnrolledAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    device_id = agent.enrollment.device_id
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, make_report(device_id, firewall_enabled=False))
    data = str(live_collector.config.data_dir)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%d")
    assert collector_cli(["waiver", "add", "--device", device_id, "--check", "firewall",
                          "--owner", "Li Wei (IT)", "--reason", "new firewall being rolled out",
                          "--expires", tomorrow, "--data", data]) == 0  # fmt: skip
    assert collector_cli(["device", "revoke", device_id, "--reason", "laptop stolen",
                          "--data", data]) == 0  # fmt: skip
    connection = raw(live_collector.config.database)
    try:
        for table in HISTORY:
            (rows,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert rows > 0, f"{table} is empty: the test would prove nothing about it"
            column = columns(connection, table)[1]
            with pytest.raises(database_errors(), match="append-only"):
                connection.execute(f"UPDATE {table} SET {column} = {column}")
            with pytest.raises(database_errors(), match="append-only"):
                connection.execute(f"DELETE FROM {table}")
            (after,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert after == rows
    finally:
        connection.close()


def test_the_audit_log_counts_a_tokens_uses_in_english(
    live_collector: LiveCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit log's note said "1 use(s)": it reads "1 use" and "3 uses" now."""
    data = str(live_collector.config.data_dir)
    for uses in ("1", "3"):
        assert collector_cli(["token", "create", "--uses", uses, "--data", data]) == 0
    store = live_collector.store()
    try:
        one, three = (e.message for e in store.admin.audit_entries())
    finally:
        store.close()
    assert one.startswith("token ") and ": 1 use, expires " in one
    assert ": 3 uses, expires " in three
