"""Waivers: a device EXEMPT from a check until an expiry, with an owner and a reason, and
every change of them in an append-only log that the evidence chain covers."""

from __future__ import annotations

import dataclasses
import datetime as dt

from devposture.collector.compliance import Waiver
from devposture.collector.evidence import chain
from devposture.collector.store.base import Part, from_us, text, to_us
from devposture.collector.store.chain import append
from devposture.collector.store.engine import Cursor


class Waivers(Part):
    """Waivers and their log (`Store.waivers`)."""

    def add_waiver(self, waiver: Waiver, now: dt.datetime) -> None:
        waiver = dataclasses.replace(
            waiver, waiver_id=text(waiver.waiver_id), device_id=text(waiver.device_id),
            check_id=text(waiver.check_id), owner=text(waiver.owner), reason=text(waiver.reason),
        )  # fmt: skip
        with self._write() as cur:
            cur.execute(
                "INSERT INTO waivers(waiver_id, device_id, check_id, owner, reason, created_us,"
                " expires_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (waiver.waiver_id, waiver.device_id, waiver.check_id, waiver.owner,
                 waiver.reason, to_us(waiver.created_at), to_us(waiver.expires_at)),
            )  # fmt: skip
            detail = (
                f"device {waiver.device_id}, check {waiver.check_id}, owner {waiver.owner},"
                f" expires {waiver.expires_at.isoformat(timespec='seconds')}: {waiver.reason}"
            )
            event_id = cur.execute(
                "INSERT INTO waiver_events(waiver_id, action, at_us, detail) VALUES (?, ?, ?, ?)"
                " RETURNING event_id",
                (waiver.waiver_id, "add", to_us(now), detail),
            ).fetchone()[0]
            self._chain_waiver(cur, event_id)

    def revoke_waiver(self, waiver_id: str, now: dt.datetime, why: str) -> bool:
        """Revoke an active waiver; False when there is none by that id (or it already ended)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE waivers SET revoked_us = ? WHERE waiver_id = ? AND revoked_us IS NULL"
                " AND expires_us > ?",
                (to_us(now), waiver_id, to_us(now)),
            )
            if cur.rowcount == 0:
                return False
            event_id = cur.execute(
                "INSERT INTO waiver_events(waiver_id, action, at_us, detail) VALUES (?, ?, ?, ?)"
                " RETURNING event_id",
                (waiver_id, "revoke", to_us(now), why),
            ).fetchone()[0]
            self._chain_waiver(cur, event_id)
            return True

    @staticmethod
    def _chain_waiver(cur: Cursor, event_id: int) -> None:
        """Chain a waiver event just written, with the waiver it is about."""
        row = cur.execute(
            "SELECT e.event_id, e.waiver_id, e.action, e.at_us, e.detail, w.device_id,"
            " w.check_id, w.owner, w.reason, w.created_us, w.expires_us FROM waiver_events e"
            " JOIN waivers w ON w.waiver_id = e.waiver_id WHERE e.event_id = ?",
            (event_id,),
        ).fetchone()
        record = chain.fields(chain.WAIVER_FIELDS, row)
        append(cur, chain.WAIVER, f"{row[1]}/{row[0]}", record)

    def recorded(self) -> list[Waiver]:
        """Every waiver ever added, revoked and expired ones too, oldest first."""
        rows = self._db.execute(
            "SELECT waiver_id, device_id, check_id, owner, reason, created_us, expires_us,"
            " revoked_us FROM waivers ORDER BY created_us, waiver_id"
        ).fetchall()
        return [
            Waiver(r[0], r[1], r[2], r[3], r[4], from_us(r[5]), from_us(r[6]),
                   None if r[7] is None else from_us(r[7]))
            for r in rows
        ]  # fmt: skip

    def waiver_events(self) -> list[tuple[str, str, dt.datetime, str]]:
        rows = self._db.execute(
            "SELECT waiver_id, action, at_us, detail FROM waiver_events ORDER BY event_id"
        ).fetchall()
        return [(r[0], r[1], from_us(r[2]), r[3]) for r in rows]
