"""State history and standings: grace, STALE, the fleet as it stood at a past moment."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.company_time import zone_of
from devposture.collector.compliance import Waiver
from devposture.collector.config import load
from devposture.collector.reports import device_rows, failing_rows, fleet_rows, history_rows
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    database_errors,
)
from devposture.collector.tokens import new_token
from devposture.policy import default_policy
from devposture.policy.reasons import render
from tests.databases import fresh_database, init_arguments, raw

# A waiver lasts at most a year (collector/admin/commands.py MAX_WAIVER): one ending in 90 days.
SOON = (dt.date.today() + dt.timedelta(days=90)).isoformat()

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
POLICY = default_policy()  # firewall: 4 grace hours; stale after 48 h


def _enroll(store: Store, device_id: str, at: dt.datetime) -> None:
    token = new_token()
    store.identity.add_token(token, at, at + HOUR, uses=1)
    store.identity.enroll(
        token, at, DeviceRecord(device_id, "01", at + 90 * 24 * HOUR, hostname=device_id)
    )


def _report(store: Store, device_id: str, at: dt.datetime, firewall: str, name: str) -> None:
    record = ReportRecord(name, device_id, at, at, "1", b"", device_id, "linux", "Debian", "12")
    store.reports.store_report(record, [CheckResult("firewall", firewall, f"firewall {firewall}")])


def _firewall(store: Store, device: str, at: dt.datetime) -> tuple[str, str]:
    """The state and the reason in English (`reason_text`), the stored code checked too."""
    rows = device_rows(store, POLICY, at, device, lang="en")
    (row,) = [r for r in rows if r["check"] == "firewall"]
    assert row["reason_text"] == render(str(row["reason"]), "en", zone_of(POLICY))
    return str(row["state"]), str(row["reason_text"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(fresh_database(tmp_path, "db.sqlite"))
    try:
        _enroll(s, "laptop", T0)
        yield s
    finally:
        s.close()


def test_history_records_only_changes_and_ignores_late_older_reports(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    _report(store, "laptop", T0 + HOUR, "PASS", "r2")
    _report(store, "laptop", T0 + 2 * HOUR, "FAIL", "r3")
    _report(store, "laptop", T0 + HOUR / 2, "PASS", "r-late")  # collected earlier, arrives late
    changes = [(c[2], c[4]) for c in store.reports.state_changes() if c[1] == "firewall"]
    assert changes == [("PASS", T0), ("FAIL", T0 + 2 * HOUR)]


def test_history_is_append_only(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    other = raw(store.target)
    try:
        with pytest.raises(database_errors(), match="state history is append-only"):
            other.execute("DELETE FROM state_changes")
    finally:
        other.close()
    assert len(store.reports.state_changes()) == 1


def test_a_fresh_failure_is_in_grace_then_fails_and_the_past_is_kept(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    failed_at = T0 + 10 * HOUR
    _report(store, "laptop", failed_at, "FAIL", "r2")
    state, reason = _firewall(store, "laptop", failed_at + HOUR)
    # In Beijing time, the default time zone.
    assert state == "GRACE" and "within grace until 2026-11-02 07:00 (UTC+08:00)" in reason
    assert _firewall(store, "laptop", failed_at + 5 * HOUR)[0] == "FAIL"
    # As of a moment before the failure, the device passed.
    assert _firewall(store, "laptop", T0 + 5 * HOUR) == ("PASS", "firewall PASS")
    fixed_at = failed_at + 30 * HOUR
    _report(store, "laptop", fixed_at, "PASS", "r3")
    assert _firewall(store, "laptop", fixed_at + HOUR)[0] == "PASS"
    assert _firewall(store, "laptop", failed_at + 20 * HOUR)[0] == "FAIL"


def test_a_silent_device_becomes_stale(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    assert _firewall(store, "laptop", T0 + 47 * HOUR)[0] == "PASS"
    state, reason = _firewall(store, "laptop", T0 + 49 * HOUR)
    assert state == "STALE" and "silent for more than 48 h" in reason


def test_a_device_that_never_reported(store: Store) -> None:
    assert _firewall(store, "laptop", T0 + HOUR)[0] == "UNKNOWN"
    assert _firewall(store, "laptop", T0 + 49 * HOUR)[0] == "STALE"
    assert device_rows(store, POLICY, T0 - HOUR, "laptop") == []  # not enrolled yet then


def test_fleet_counts_and_failing_longest_first(store: Store) -> None:
    _enroll(store, "desktop", T0)
    _report(store, "laptop", T0, "FAIL", "l1")
    _report(store, "desktop", T0 + 6 * HOUR, "FAIL", "d1")
    at = T0 + 12 * HOUR
    (firewall,) = [r for r in fleet_rows(store, POLICY, at) if r["check"] == "firewall"]
    assert (firewall["devices"], firewall["fail"], firewall["pass"]) == (2, 2, 0)
    assert firewall["pass_rate_percent"] == 0.0
    failing = [(r["device"], r["days"]) for r in failing_rows(store, POLICY, at)]
    assert failing == [("laptop", 0.5), ("desktop", 0.2)]
    # Earlier, the desktop was still within its grace period.
    (then,) = [r for r in fleet_rows(store, POLICY, T0 + 8 * HOUR) if r["check"] == "firewall"]
    assert (then["fail"], then["grace"]) == (1, 1)


def test_a_device_as_of_a_past_moment_shows_no_verdict_made_after_it(store: Store) -> None:
    """`report device --as-of`: the state is that moment's, and so must be the verdict and
    the evidence beside it. They were the current report's, a later one that failed (its
    collection time after the moment asked for), beside a state that passed."""
    _report(store, "laptop", T0, "PASS", "r1")
    _report(store, "laptop", T0 + 10 * HOUR, "FAIL", "r2")
    rows = {r["check"]: r for r in device_rows(store, POLICY, T0 + 5 * HOUR, "laptop")}
    assert rows["firewall"]["state"] == "PASS"
    assert (rows["firewall"]["verdict"], rows["firewall"]["evidence"]) == (None, None)
    now = {r["check"]: r for r in device_rows(store, POLICY, T0 + 11 * HOUR, "laptop")}
    assert now["firewall"]["verdict"] == "FAIL"


def test_the_evidence_is_worded_in_the_reader_s_language(store: Store) -> None:
    """`report device` in Chinese said "report collected …". Collected at 19:00 UTC: the
    next day in Beijing."""
    _report(store, "laptop", T0 + 10 * HOUR, "PASS", "r1")
    at = T0 + 11 * HOUR
    (zh,) = [r for r in device_rows(store, POLICY, at, "laptop") if r["check"] == "firewall"]
    assert zh["evidence"] == "报告采集于 2026-11-02 03:00（UTC+08:00）"
    rows = device_rows(store, POLICY, at, "laptop", lang="en")
    (en,) = [r for r in rows if r["check"] == "firewall"]
    assert en["evidence"] == "report collected 2026-11-02 03:00 (UTC+08:00)"


def test_remediation_shown_only_when_not_passing(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    rows = {r["check"]: r for r in device_rows(store, POLICY, T0 + HOUR, "laptop")}
    assert rows["firewall"]["remediation_en"] == ""
    assert rows["antivirus"]["state"] == "UNKNOWN" and rows["antivirus"]["remediation_zh"]


def _waiver(store: Store, made: dt.datetime, expires: dt.datetime, waiver_id: str = "w-1") -> None:
    store.waivers.add_waiver(
        Waiver(waiver_id, "laptop", "firewall", "IT lead", "new firewall product rollout",
               made, expires),
        made,
    )  # fmt: skip


def test_a_waiver_exempts_until_it_expires_by_itself(store: Store) -> None:
    _report(store, "laptop", T0, "FAIL", "r1")
    _waiver(store, T0 + 10 * HOUR, T0 + 20 * HOUR)
    assert _firewall(store, "laptop", T0 + 9 * HOUR)[0] == "FAIL"  # before the waiver
    state, reason = _firewall(store, "laptop", T0 + 11 * HOUR)
    assert state == "EXEMPT" and "IT lead" in reason and "without it: failing" in reason
    assert _firewall(store, "laptop", T0 + 21 * HOUR)[0] == "FAIL"  # expired by itself


def test_a_revoked_waiver_stops_applying_and_the_log_keeps_both(store: Store) -> None:
    _report(store, "laptop", T0, "FAIL", "r1")
    _waiver(store, T0 + HOUR, T0 + 100 * HOUR)
    assert store.waivers.revoke_waiver("w-1", T0 + 3 * HOUR, "rollout cancelled")
    assert not store.waivers.revoke_waiver("w-1", T0 + 4 * HOUR, "again")
    assert _firewall(store, "laptop", T0 + 2 * HOUR)[0] == "EXEMPT"
    assert _firewall(store, "laptop", T0 + 4 * HOUR)[0] == "FAIL"
    assert [(e[1], e[3]) for e in store.waivers.waiver_events()][1] == (
        "revoke",
        "rollout cancelled",
    )


def test_a_waiver_never_hides_a_silent_device(store: Store) -> None:
    _report(store, "laptop", T0, "FAIL", "r1")
    _waiver(store, T0, T0 + 500 * HOUR)
    assert _firewall(store, "laptop", T0 + 60 * HOUR)[0] == "STALE"


def test_cli_waiver_refusals_and_listing(tmp_path: Path) -> None:
    collector = str(Path(sys.executable).parent / "devposture-collector")
    data = tmp_path / "c"
    subprocess.run([collector, "init", "--data", str(data), *init_arguments()], check=True,
                   capture_output=True)  # fmt: skip
    store = Store.open(load(data).database)
    _enroll(store, "laptop", dt.datetime.now(dt.UTC))
    store.close()

    def waiver(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [collector, "waiver", *extra, "--data", str(data)], capture_output=True, text=True,
            check=False,
        )  # fmt: skip

    base = ["add", "--device", "laptop", "--owner", "IT", "--reason", "rollout"]
    past = waiver(*base, "--check", "firewall", "--expires", "2020-01-01")
    assert past.returncode == 1 and "must be in the future" in past.stderr
    unknown = waiver(*base, "--check", "firewal", "--expires", SOON)
    assert unknown.returncode == 1 and "no check 'firewal'" in unknown.stderr
    stranger = waiver("add", "--device", "nobody", "--owner", "IT", "--reason", "x",
                      "--check", "firewall", "--expires", SOON)  # fmt: skip
    assert stranger.returncode == 1 and "no enrolled device nobody" in stranger.stderr
    forever = waiver(*base, "--check", "firewall", "--expires", "2199-12-30")
    assert forever.returncode == 1 and "--expires must be within 366 days" in forever.stderr
    added = waiver(*base, "--check", "firewall", "--expires", SOON)
    assert added.returncode == 0, added.stderr
    waiver_id = added.stdout.split()[1].rstrip(":")
    listed = waiver("list", "--format", "csv")
    assert waiver_id in listed.stdout and ",active" in listed.stdout
    assert waiver("revoke", waiver_id, "--reason", "done").returncode == 0
    assert waiver_id not in waiver("list").stdout
    assert ",revoked" in waiver("list", "--all", "--format", "csv").stdout


def test_history_says_since_when_and_how_long_a_fix_took(store: Store) -> None:
    _report(store, "laptop", T0, "PASS", "r1")
    _report(store, "laptop", T0 + 2 * HOUR, "FAIL", "r2")
    _report(store, "laptop", T0 + 5 * HOUR, "PASS", "r3")
    rows = [
        (r["state"], r["hours"], r["until"]) for r in history_rows(store, "laptop", T0 + 6 * HOUR)
    ]
    assert rows == [
        ("PASS", 2.0, "2026-11-01T19:00:00+08:00"),
        ("FAIL", 3.0, "2026-11-01T22:00:00+08:00"),
        ("PASS", 1.0, "now"),
    ]


def test_history_lists_checks_that_changed_together_in_one_order_on_both_engines(
    store: Store,
) -> None:
    # Checks whose states began at the same moment came in the database's own order, which
    # differed between SQLite and PostgreSQL (a site's history read otherwise after migrate).
    record = ReportRecord("r1", "laptop", T0, T0, "1", b"", "laptop", "linux", "Debian", "12")
    checks = ("public-wifi", "antivirus", "firewall", "chat-backup")
    judged = [CheckResult(check, "PASS", "ok") for check in checks]
    store.reports.store_report(record, judged)
    other = ReportRecord("r0", "other", T0, T0, "1", b"", "other", "linux", "Debian", "12")
    _enroll(store, "other", T0)
    store.reports.store_report(other, [CheckResult("firewall", "FAIL", "off")])
    rows = history_rows(store, "laptop", T0 + HOUR)
    assert [r["check"] for r in rows] == ["antivirus", "chat-backup", "firewall", "public-wifi"]


def test_a_state_that_holds_says_its_current_cause(store: Store) -> None:
    """FAIL for one reason, then FAIL for another: the device's row says the new cause (the
    state and since when stay those of the change); as of before it, the old one."""
    record = ReportRecord("r1", "laptop", T0, T0, "1", b"", "laptop", "linux", "Debian", "12")
    store.reports.store_report(record, [CheckResult("firewall", "FAIL", "no firewall configured")])
    later = T0 + 2 * HOUR
    record = ReportRecord("r2", "laptop", later, later, "1", b"", "laptop", "linux", "Debian",
                          "12")  # fmt: skip
    store.reports.store_report(record, [CheckResult("firewall", "FAIL", "firewall off on: public")])
    state, reason = _firewall(store, "laptop", later + HOUR)
    assert state == "GRACE" and reason.endswith("(UTC+08:00): firewall off on: public")
    assert "within grace until 2026-11-01 21:00 (UTC+08:00)" in reason  # grace counts from T0
    assert _firewall(store, "laptop", T0 + HOUR)[1].endswith("(UTC+08:00): no firewall configured")
