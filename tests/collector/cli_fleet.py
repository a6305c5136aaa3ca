"""A collector data folder (`init`'s, on the test's database engine) holding a small fleet with
ids chosen by the test, for the admin CLI run in this process: the exports, the terminal
tables, `--limit` and device id prefixes.

Each device reported three days ago and now, its firewall off both times (failing past its
grace), with a long Chinese and English reason; two ids share the prefix `3f2a`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devposture.collector.clock import utcnow
from devposture.collector.datadir import initialize
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.tokens import new_token
from tests.databases import collector_database

# (device id, hostname)
DEVICES = (
    ("3f2a0000000000000000000000000001", "财务部-笔记本-王芳"),
    ("3f2a9c00000000000000000000000002", "laptop-li-wei"),
    ("b7e10000000000000000000000000003", "desktop-3"),
)
REASON = (
    "防火墙未开启：Windows Defender 防火墙的域、专用和公用配置文件均已关闭 (firewall off: the"
    " domain, private and public profiles of Windows Defender Firewall are all disabled)"
)


@dataclass(frozen=True)
class CliFleet:
    data: Path
    now: dt.datetime

    def store(self) -> Store:
        from devposture.collector.config import load  # noqa: PLC0415

        return Store.open(load(self.data).database)


def _report(store: Store, device_id: str, hostname: str, at: dt.datetime, name: str) -> None:
    record = ReportRecord(name, device_id, at, at, "1", b"", hostname, "linux", "Debian", "12")
    store.reports.store_report(record, [CheckResult("firewall", "FAIL", REASON)])


@pytest.fixture
def cli_fleet(tmp_path: Path) -> Iterator[CliFleet]:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    now = utcnow()
    enrolled = now - dt.timedelta(days=4)
    store = Store.open(config.database)
    try:
        for number, (device_id, hostname) in enumerate(DEVICES):
            token = new_token()
            store.identity.add_token(token, enrolled, enrolled + dt.timedelta(hours=1), uses=1)
            store.identity.enroll(
                token, enrolled,
                DeviceRecord(device_id, f"0{number}", now + dt.timedelta(days=90),
                             hostname=hostname),
            )  # fmt: skip
            _report(store, device_id, hostname, now - dt.timedelta(days=3), f"r{number}a")
            _report(store, device_id, hostname, now - dt.timedelta(minutes=5), f"r{number}b")
    finally:
        store.close()
    yield CliFleet(config.data_dir, now)
