"""The dashboard's reads about one device, each by an index (so a device page costs the same
with 100 devices or 100,000): its verdicts (`check_results` primary key), its state history
(`state_changes` primary key starts with the device), its reports (`reports_by_device`).

They run on a read-only connection of their own (`mode=ro`, `query_only`): the dashboard
cannot write the store through it. They belong in the store in the end; they are here so the
dashboard does not reach into the store's connection.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from devposture.collector.compliance import Change
from devposture.collector.records import from_us, to_us


def open_readonly(database: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        f"{database.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
        timeout=30.0, isolation_level=None,
    )  # fmt: skip
    connection.execute("PRAGMA query_only=ON")
    return connection


@dataclass(frozen=True)
class Verdict:
    check_id: str
    state: str
    reason: str
    report_id: str
    collected_at: dt.datetime


@dataclass(frozen=True)
class ReceivedReport:
    report_id: str
    received_at: dt.datetime
    collected_at: dt.datetime
    agent_version: str


def data_version(db: sqlite3.Connection) -> int:
    """Changes whenever another connection commits to the database (SQLite's own counter)."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def verdicts(db: sqlite3.Connection, device_id: str) -> dict[str, Verdict]:
    rows = db.execute(
        "SELECT check_id, state, reason, report_id, collected_us FROM check_results"
        " WHERE device_id = ?",
        (device_id,),
    ).fetchall()
    return {r[0]: Verdict(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows}


def changes(db: sqlite3.Connection, device_id: str, until: dt.datetime) -> list[Change]:
    rows = db.execute(
        "SELECT device_id, check_id, state, reason, since_us FROM state_changes"
        " WHERE device_id = ? AND since_us <= ? ORDER BY since_us",
        (device_id, to_us(until)),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows]


def reports(db: sqlite3.Connection, device_id: str, limit: int) -> tuple[list[ReceivedReport], int]:
    """The device's latest `limit` reports, newest first, and how many it sent in all."""
    rows = db.execute(
        "SELECT report_id, received_us, collected_us, agent_version FROM reports"
        " WHERE device_id = ? ORDER BY received_us DESC LIMIT ?",
        (device_id, limit),
    ).fetchall()
    total = db.execute("SELECT COUNT(*) FROM reports WHERE device_id = ?", (device_id,)).fetchone()
    return [ReceivedReport(r[0], from_us(r[1]), from_us(r[2]), r[3]) for r in rows], int(total[0])


def report_body(db: sqlite3.Connection, report_id: str) -> bytes | None:
    row = db.execute("SELECT body FROM reports WHERE report_id = ?", (report_id,)).fetchone()
    return None if row is None else bytes(row[0])
