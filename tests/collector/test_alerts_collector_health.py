"""A collector's own problems (certificates expiring, its data folder's disk filling), found in
its real data folder, kept in the database, and told by whichever collector composes."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from devposture.collector.alerts import collector_health
from devposture.collector.alerts.digest import RESOLVED_AFTER, compose
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.store.alerts import Detail
from devposture.policy import default_policy
from tests.collector.alert_fleet import NOW, settings
from tests.databases import collector_database


def test_certificates_within_the_warning_and_a_full_disk_are_found(tmp_path: Path) -> None:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    now = dt.datetime.now(dt.UTC)
    assert collector_health.problems(config, now, warning_days=30, disk_percent=100) == {}
    found = collector_health.problems(config, now, warning_days=100_000, disk_percent=1)
    kinds = sorted((d["kind"], d.get("certificate", "")) for d in found.values())
    assert kinds == [("certificate", "ca"), ("certificate", "server"), ("disk", "")]
    (disk,) = [d for d in found.values() if d["kind"] == "disk"]
    assert disk["collector"] == socket.gethostname()
    assert 1 <= int(disk["used_percent"]) <= 100
    assert str(config.data_dir) not in repr(found)  # no path leaves the collector


def test_every_collector_s_problems_are_told_and_one_gone_a_day_reads_resolved(
    tmp_path: Path,
) -> None:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    store = Store.open(config.database)
    try:
        disk: Detail = {"kind": "disk", "collector": "collector-1", "used_percent": 93}
        other: Detail = {"kind": "disk", "collector": "collector-2", "used_percent": 97}
        store.alerts.keep_problems("collector-1/aa", {"disk:collector-1/aa": disk}, NOW)
        store.alerts.keep_problems("collector-2/bb", {"disk:collector-2/bb": other}, NOW)
        s = settings(tmp_path, webhook="http://127.0.0.1:9")
        first = compose(store, default_policy(), s, NOW)
        assert first is not None
        assert [(i["status"], i["collector"]) for i in first.items] == [
            ("new", "collector-1"), ("new", "collector-2"),
        ]  # fmt: skip
        later = NOW + dt.timedelta(days=1, minutes=1)  # collector-2 heard from no more
        store.alerts.keep_problems("collector-1/aa", {"disk:collector-1/aa": disk}, later)
        gone = compose(store, default_policy(), s, later)
        assert gone is not None
        assert [(i["status"], i["collector"]) for i in gone.items] == [("reminder", "collector-1")]
        later += RESOLVED_AFTER  # collector-2's problem away long enough to read resolved
        store.alerts.keep_problems("collector-1/aa", {"disk:collector-1/aa": disk}, later)
        resolved = compose(store, default_policy(), s, later)
        assert resolved is not None
        assert [(i["status"], i["collector"]) for i in resolved.items] == [
            ("resolved", "collector-2"),
        ]  # fmt: skip
    finally:
        store.close()
