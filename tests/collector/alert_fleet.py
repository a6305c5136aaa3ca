"""A small fleet for the alert tests, written through the store's own methods into a real
database (a SQLite file, or PostgreSQL): devices enrolled, reporting verdicts at given times,
suspected of being clones; and the settings the tests send digests with."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.tokens import new_token

NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)  # 12:00 in Beijing
ENROLLED = NOW - dt.timedelta(days=20)
# Named where a report's facts and the public Wi-Fi verdict's reason carry it: never sent.
WIFI_NAME = "CMCC-WEB-Lobby-5F"


def enroll(store: Store, device_id: str) -> None:
    token = new_token()
    store.identity.add_token(token, ENROLLED, ENROLLED + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(
        token, ENROLLED, DeviceRecord(device_id, "01", NOW + dt.timedelta(days=90))
    )


def report(
    store: Store, device_id: str, host: str, at: dt.datetime, verdicts: dict[str, str],
    *, body: bytes = b"body", reason: str = "r",
) -> None:  # fmt: skip
    """A report received at `at`, judged `verdicts` (check -> state), with `reason` each."""
    record = ReportRecord(f"{device_id}-{at.timestamp():.0f}", device_id, at, at, "1", body,
                          host, "linux", "Debian", "12")  # fmt: skip
    results = [CheckResult(check, state, reason) for check, state in verdicts.items()]
    store.reports.store_reports([(record, results)])


def flag_clone(store: Store, device_id: str, at: dt.datetime) -> None:
    """The enrollment certificate presented after a renewed one was used: a copy."""
    store.identity.record_renewal(device_id, "02", at + dt.timedelta(days=14), at,
                                  action="renewed")  # fmt: skip
    store.identity.admit(device_id, "02", at)
    store.identity.admit(device_id, "01", at)


def device(n: int) -> str:
    return f"{n:02x}" + "cd" * 15


def settings(
    folder: Path, *, wecom: str = "", webhook: str = "", secret: str = "", smtp_port: int = 0,
    **overrides: object,
) -> AlertSettings:  # fmt: skip
    """Settings sending to the receivers given: the WeCom URL and the webhook's secret are
    written to files, as IT keeps them."""
    s = AlertSettings(digest_minutes=15, repeat_hours=24)
    if wecom:
        (folder / "wecom.url").write_text(f"{wecom}/cgi-bin/webhook/send?key=robot-secret-key\n")
        s = dataclasses.replace(s, wecom_webhook_file=folder / "wecom.url")
    if webhook:
        s = dataclasses.replace(s, webhook_url=f"{webhook}/hooks/devposture")
    if secret:
        (folder / "webhook.key").write_text(secret + "\n")
        s = dataclasses.replace(s, webhook_secret_file=folder / "webhook.key")
    if smtp_port:
        s = dataclasses.replace(
            s, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none",
            smtp_from="devposture@example.com", smtp_to=("it-team@example.com",),
        )  # fmt: skip
    return dataclasses.replace(s, **overrides)  # type: ignore[arg-type]
