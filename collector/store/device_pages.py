"""The dashboard's reads about one device, each by an index (so a device page costs the same
with 100 devices or 100,000): its verdicts (`check_results` primary key), its state history
(`state_changes` primary key starts with the device), its reports (`reports_by_device`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from devposture.collector.compliance import Change
from devposture.collector.store.base import Part, from_us, to_us
from devposture.collector.store.fact_parts import Bodies


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


class DevicePages(Part):
    """What a device's page shows (`Store.device_pages`)."""

    def verdicts(self, device_id: str) -> dict[str, Verdict]:
        rows = self._db.execute(
            "SELECT check_id, state, reason, report_id, collected_us FROM check_results"
            " WHERE device_id = ?",
            (device_id,),
        ).fetchall()
        return {r[0]: Verdict(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows}

    def changes(self, device_id: str, until: dt.datetime) -> list[Change]:
        rows = self._db.execute(
            "SELECT device_id, check_id, state, reason, since_us FROM state_changes"
            " WHERE device_id = ? AND since_us <= ? ORDER BY since_us, check_id",
            (device_id, to_us(until)),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows]

    def reports(self, device_id: str, limit: int) -> tuple[list[ReceivedReport], int]:
        """The device's latest `limit` reports, newest first, and how many it sent in all."""
        rows = self._db.execute(
            "SELECT report_id, received_us, collected_us, agent_version FROM reports"
            " WHERE device_id = ? ORDER BY received_us DESC LIMIT ?",
            (device_id, limit),
        ).fetchall()
        total = self._db.execute(
            "SELECT COUNT(*) FROM reports WHERE device_id = ?", (device_id,)
        ).fetchone()
        received = [ReceivedReport(r[0], from_us(r[1]), from_us(r[2]), r[3]) for r in rows]
        return received, int(total[0])

    def report_body(self, report_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT body, parts FROM reports WHERE report_id = ?", (report_id,)
        ).fetchone()
        return None if row is None else Bodies(self._db).one(report_id, bytes(row[0]), row[1])
