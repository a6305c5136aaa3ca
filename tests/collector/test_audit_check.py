"""The tables answer to the chain: `audit check` (and `table_disagreements`, which the exporter
calls) compares every row of the tables the dashboard reads with the evidence chain, and names
each row an operator changed, removed or added behind the collector's back.

A store is written through its own writers (reports in groups and one by one, a backlog report,
a policy's re-judging, waivers, device events, admin entries); then the append-only triggers
are dropped (SQLite) or disabled (PostgreSQL), as an operator with the database would, and one
row is changed with plain SQL. On SQLite or PostgreSQL, as `make test` runs them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.compliance import Waiver
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.evidence import batches, chain
from devposture.collector.evidence import crosscheck as module
from devposture.collector.evidence.crosscheck import Findings, table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store import crosscheck as store_part
from devposture.collector.store.base import to_us
from devposture.collector.store.target import DatabaseTarget
from tests.collector.enrolled import enroll
from tests.collector.test_cli_imports import _RUN, SERVE_ONLY
from tests.databases import collector_database, fresh_database, unguarded

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
CHECKS = ("firewall", "antivirus", "chat-backup")
# After the policy changes: antivirus dropped (its verdicts go, its history stays), os-updates
# added.
LATER_CHECKS = ("firewall", "chat-backup", "os-updates")
STATES = ("PASS", "FAIL", "FAIL", "UNKNOWN")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a few rows, so that a store of a few hundred rows is read in many: every
    boundary between batches and ranges is crossed, as over millions of rows."""
    monkeypatch.setattr(module, "RANGE", 7)
    monkeypatch.setattr(batches, "LOOK_AHEAD", 17)
    monkeypatch.setattr(batches, "MOST_READ", 23)
    monkeypatch.setattr(batches, "BATCH_REPORTS", 9)
    monkeypatch.setattr(module, "KEYS_BATCH", 31)
    monkeypatch.setattr(module, "SUSPECT_ROWS", 14)
    monkeypatch.setattr(module, "UNRESOLVED", 2)
    monkeypatch.setattr(store_part, "BATCH", 5)
    monkeypatch.setattr(store_part, "WAIVER_BATCH", 2)


def _enroll(store: Store, device_id: str) -> None:
    enroll(store, device_id, T0)


def _record(device_id: str, number: int, minutes: int) -> ReportRecord:
    collected = T0 + dt.timedelta(minutes=minutes)
    return ReportRecord(
        f"{device_id}-r{number}", device_id, collected + dt.timedelta(seconds=30), collected,
        "1.4.2", f"body of {device_id} report {number}".encode(), f"host-{device_id}", "linux",
        "Debian", "12", clock_skew_ms=number % 3 * 250 or None,
    )  # fmt: skip


def _verdicts(rng: random.Random, checks: tuple[str, ...], number: int) -> list[CheckResult]:
    # The reason changes with every report, the state now and then: the verdicts' reasons
    # move on while the history keeps the reason a state began with.
    return [CheckResult(c, rng.choice(STATES), f"{c} seen in report {number}") for c in checks]


def write_busy_store(
    store: Store, devices: int = 8, rounds: int = 12, later: tuple[str, ...] = LATER_CHECKS
) -> None:
    """Records of every kind, written by the store's own writers as a collector writes them;
    halfway, the policy changes to the `later` checks and every device is judged again."""
    rng = random.Random(18)
    names = [f"dev-{n:02d}" for n in range(devices)]
    for device_id in names:
        _enroll(store, device_id)
    for number in range(rounds):
        checks = CHECKS if number < rounds // 2 else later
        group = [(_record(d, number, number * 10), _verdicts(rng, checks, number)) for d in names]
        if number == 3:  # two reports of one device in one group
            group.append((_record(names[0], 100, number * 10 + 5), _verdicts(rng, checks, 100)))
        store.reports.store_reports(group)
        if number == rounds // 2 - 1:
            # The policy changes: every device's latest report judged again (antivirus gone).
            for device_id, report_id, collected, body in store.reports.latest_reports():
                assert body
                store.reports.replace_results(
                    device_id, report_id, collected, T0 + dt.timedelta(minutes=number * 10 + 7),
                    _verdicts(rng, later, number),
                )  # fmt: skip
    # One by one, a backlog report (collected before the newest), and a report sent twice.
    store.reports.store_report(_record(names[1], 200, rounds * 10), _verdicts(rng, later, 7))
    store.reports.store_report(_record(names[2], 201, 15), _verdicts(rng, later, 8))
    store.reports.store_report(_record(names[1], 200, rounds * 10), _verdicts(rng, later, 7))
    for n, device_id in enumerate(names[:3]):
        store.waivers.add_waiver(Waiver(f"w-{n}", device_id, "chat-backup", "Li Wei (IT)",
                                        "新备份工具 rollout", T0, T0 + dt.timedelta(days=30)),
                                 T0 + dt.timedelta(minutes=n))  # fmt: skip
    store.waivers.revoke_waiver("w-1", T0 + dt.timedelta(hours=1), "rollout done")
    store.identity.set_device_status(names[-1], "revoked", T0 + dt.timedelta(hours=2), "stolen")
    for n in range(4):
        store.admin.audit(T0 + dt.timedelta(hours=3, minutes=n), actor="local:it",
                          credential_id=None, role="admin", command="report fleet",
                          arguments={"format": "table"}, outcome="ok", message="",
                          peer="local")  # fmt: skip
    store.sealing.seal_all()  # as a collector leaves it when it stops (store/sealing.py)


@dataclass
class Site:
    target: DatabaseTarget
    store: Store

    def check(self, limit: int = 50) -> Findings:
        return table_disagreements(self.store, limit=limit, checks=LATER_CHECKS)

    def one(self, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
        row = self.store._db.execute(sql, params).fetchone()
        assert row is not None, sql
        return tuple(row)

    def tamper(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """What an operator with the database can do: the append-only triggers dropped (or
        disabled), the row changed, the triggers put back."""
        with unguarded(self.target) as db:
            db.execute(sql, params)

    def seq(self, kind: str, key: str) -> int:
        head = self.store.evidence.chain_head()
        assert head is not None
        found = [e.seq for e in self.store.evidence.chain_entries(1, head.seq)
                 if any(r.kind == kind and r.key == key for r in chain.as_reports(e))]  # fmt: skip
        assert len(found) == 1, (kind, key)
        return found[0]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    target = fresh_database(tmp_path, "collector.db")
    store = Store.open(target)
    write_busy_store(store)
    try:
        yield Site(target, store)
    finally:
        store.close()


def _only(findings: Findings) -> module.Finding:
    assert findings.total == 1, findings.text()
    return findings.found[0]


def _since_text(since_us: int) -> str:
    return f"since_us {since_us} ("


# --- an untouched store ----------------------------------------------------------------------


def test_an_untouched_busy_store_agrees_with_its_chain(site: Site) -> None:
    findings = site.check()
    assert findings.ok, findings.text()
    assert findings.found == [] and findings.total == 0
    head = site.store.evidence.chain_head()
    assert head is not None and findings.entries == head.seq > 200
    assert findings.verdict().startswith("AGREE: ") and "核对通过" in findings.verdict()
    # The store has what the check must not mistake for tampering: verdicts whose reason moved
    # on, a dropped check's history without a verdict, a backlog report, a revoked waiver.
    db = site.store._db
    assert db.execute("SELECT COUNT(*) FROM check_results WHERE check_id = 'antivirus'"
                      ).fetchone()[0] == 0  # fmt: skip
    assert db.execute("SELECT COUNT(*) FROM state_changes WHERE check_id = 'antivirus'"
                      ).fetchone()[0] > 0  # fmt: skip
    moved_on = db.execute(
        "SELECT COUNT(*) FROM check_results c JOIN state_changes s ON s.device_id = c.device_id"
        " AND s.check_id = c.check_id AND s.since_us = c.since_us WHERE s.reason <> c.reason"
    ).fetchone()[0]
    assert moved_on > 0


def test_an_empty_store_agrees(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path, "empty.db"))
    try:
        findings = table_disagreements(store)
        assert findings.ok and findings.entries == 0
    finally:
        store.close()


def test_it_reads_inside_a_snapshot_the_caller_already_holds(site: Site) -> None:
    with site.store.snapshot():
        assert site.check().ok


# --- the state history ---------------------------------------------------------------------------


def _a_failure(site: Site, *, last: bool) -> tuple[str, str, int]:
    """A FAIL in the history: the last change of its (device, check), or an earlier one."""
    newest = "=" if last else "<"
    row = site.one(
        "SELECT s.device_id, s.check_id, s.since_us FROM state_changes s WHERE s.state = 'FAIL'"
        f" AND s.since_us {newest} (SELECT MAX(t.since_us) FROM state_changes t"
        "  WHERE t.device_id = s.device_id AND t.check_id = s.check_id)"
        " ORDER BY s.device_id, s.check_id, s.since_us LIMIT 1"
    )
    return str(row[0]), str(row[1]), int(str(row[2]))


@pytest.mark.parametrize("last", [False, True], ids=["earlier-change", "last-change"])
def test_a_state_change_edited_from_fail_to_pass_is_named(site: Site, last: bool) -> None:
    device, check, since = _a_failure(site, last=last)
    site.tamper("UPDATE state_changes SET state = 'PASS' WHERE device_id = ? AND check_id = ?"
                " AND since_us = ?", (device, check, since))  # fmt: skip
    # Named alone: the verdict still says FAIL, which is what the chain says; the verdict is
    # held to the chain's history, not to the edited table.
    finding = _only(site.check())
    assert finding.table == "state_changes"
    assert finding.seq == site.seq(chain.STATE, chain.state_key(device, check, since))
    text = finding.text()
    assert f"device {device!r}, check {check!r}, {_since_text(since)}" in text
    assert "state is 'PASS' here, 'FAIL' in the chain" in text
    assert f"(chain seq {finding.seq})" in text and "状态变更记录与证据链不符（被修改）" in text


def test_a_deleted_state_change_is_named(site: Site) -> None:
    device, check, since = _a_failure(site, last=False)
    site.tamper("DELETE FROM state_changes WHERE device_id = ? AND check_id = ? AND since_us = ?",
                (device, check, since))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "state_changes"
    assert finding.seq == site.seq(chain.STATE, chain.state_key(device, check, since))
    assert f"device {device!r}, check {check!r}, {_since_text(since)}" in finding.text()
    assert "is missing: the chain records it (state 'FAIL'" in finding.text()
    assert "（被删除）" in finding.text()


def test_the_last_state_change_deleted_is_named_and_the_verdict_still_matches_the_chain(
    site: Site,
) -> None:
    device, check, since = _a_failure(site, last=True)
    site.tamper("DELETE FROM state_changes WHERE device_id = ? AND check_id = ? AND since_us = ?",
                (device, check, since))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "state_changes" and "is missing" in finding.problem


def test_an_inserted_state_change_is_named(site: Site) -> None:
    device, check, since = _a_failure(site, last=True)
    later = since + 60_000_000
    site.tamper(
        "INSERT INTO state_changes(device_id, check_id, state, reason, since_us, report_id)"
        " VALUES (?, ?, 'PASS', 'fixed, honestly', ?, ?)",
        (device, check, later, f"{device}-r0"),
    )
    finding = _only(site.check())
    assert (finding.table, finding.seq) == ("state_changes", None)
    text = finding.text()
    assert f"device {device!r}, check {check!r}, {_since_text(later)}" in text
    assert "(no chain entry): was added outside the collector" in text
    assert "state 'PASS', reason 'fixed, honestly'" in text and "（被添加）" in text


# --- the current verdicts ----------------------------------------------------------------------


def test_a_verdict_edited_from_fail_to_pass_is_named(site: Site) -> None:
    device, check, since = _a_failure(site, last=True)
    assert site.one("SELECT state, since_us FROM check_results WHERE device_id = ?"
                    " AND check_id = ?", (device, check)) == ("FAIL", since)  # fmt: skip
    site.tamper("UPDATE check_results SET state = 'PASS' WHERE device_id = ? AND check_id = ?",
                (device, check))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "check_results"
    assert finding.seq == site.seq(chain.STATE, chain.state_key(device, check, since))
    text = finding.text()
    assert f"[device {device!r}, check {check!r}]" in text
    assert "state is 'PASS' here, 'FAIL' in the chain" in text and "当前检查结果" in text


def test_a_verdict_moved_into_its_grace_period_is_named(site: Site) -> None:
    device, check, since = _a_failure(site, last=True)
    site.tamper("UPDATE check_results SET since_us = ? WHERE device_id = ? AND check_id = ?",
                (since + 86_400_000_000, device, check))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "check_results" and "since is " in finding.problem


def test_a_deleted_verdict_of_a_check_the_policy_judges_is_named(site: Site) -> None:
    device, check, _ = _a_failure(site, last=True)
    assert check in LATER_CHECKS
    site.tamper("DELETE FROM check_results WHERE device_id = ? AND check_id = ?",
                (device, check))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "check_results" and finding.problem.startswith("is missing")
    assert finding.seq is not None


# --- reports -----------------------------------------------------------------------------------


def test_an_edited_report_body_is_named(site: Site) -> None:
    site.tamper("UPDATE reports SET body = ? WHERE report_id = ?",
                (b"firewall on, honestly", "dev-04-r5"))  # fmt: skip
    finding = _only(site.check())
    assert finding.table == "reports"
    assert finding.seq == site.seq(chain.REPORT, "dev-04-r5")
    assert "[report_id 'dev-04-r5']" in finding.text()
    assert "the report body was changed" in finding.text() and "上报记录" in finding.text()


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("agent_version", "9.9.9", "agent_version is '9.9.9' here, '1.4.2' in the chain"),
        ("device_id", "dev-00", "device_id is 'dev-00' here, 'dev-04' in the chain"),
        ("received_us", 0, "received_us is 0 (1970-01-01 00:00:00 UTC) here"),
    ],
)
def test_edited_report_metadata_is_named(
    site: Site, column: str, value: object, words: str
) -> None:
    site.tamper(f"UPDATE reports SET {column} = ? WHERE report_id = ?", (value, "dev-04-r5"))
    findings = site.check()
    report = [f for f in findings.found if f.table == "reports"]
    assert len(report) == 1, findings.text()
    assert report[0].seq == site.seq(chain.REPORT, "dev-04-r5")
    assert words in report[0].text(), report[0].text()


BEIJING = dt.timezone(dt.timedelta(hours=8))


def test_a_finding_s_times_read_in_the_company_s_time_zone_while_its_text_keeps_utc(
    site: Site,
) -> None:
    """'… 09:00:00 UTC' inside a Chinese finding: a person reads each time in the company's time
    zone, as every other time the command line shows, the number that finds the row kept; the
    text scripts read (`str`) stays the UTC it always was. A field edited, a row's key and a
    removed record's summary (a list of its fields) alike."""
    micros = to_us(T0)
    site.tamper("UPDATE reports SET received_us = ? WHERE report_id = ?", (micros, "dev-04-r5"))
    site.tamper("DELETE FROM reports WHERE report_id = ?", ("dev-05-r2",))
    state = site.one("SELECT device_id, check_id, since_us FROM state_changes ORDER BY since_us"
                     " LIMIT 1")  # fmt: skip
    site.tamper("UPDATE state_changes SET reason = 'edited' WHERE device_id = ? AND check_id = ?"
                " AND since_us = ?", state)  # fmt: skip
    found = site.check().found
    edited = next(f for f in found if f.key == "report_id 'dev-04-r5'")
    removed = next(f for f in found if f.key == "report_id 'dev-05-r2'")
    key = next(f for f in found if f.table == "state_changes" and f.key.startswith(
        f"device {state[0]!r}, check {state[1]!r}, since_us {state[2]} ("))  # fmt: skip
    utc = f"received_us is {micros} (2026-11-01 09:00:00 UTC) here"
    assert utc in edited.text() and str(edited.text(BEIJING)) == edited.text()
    assert f"received_us is {micros} (2026-11-01 17:00:00 UTC+08:00) here" in edited.text(
        BEIJING).worded("en")
    assert f"{micros}（2026-11-01 17:00:00 UTC+08:00）" in edited.text(BEIJING).worded("zh")
    for finding in (edited, removed, key):
        text = finding.text()
        assert "UTC)" in text and str(finding.text(BEIJING)) == text  # what scripts read
        for lang in ("zh", "en"):
            worded = finding.text(BEIJING).worded(lang)
            assert "UTC)" not in worded and "UTC）" not in worded, worded
            assert "UTC+08:00" in worded, worded
    assert "received_us " in removed.text(BEIJING).worded("zh")
    assert f"since_us {state[2]}（" in key.text(BEIJING).worded("zh")


def test_bodies_pruned_under_the_retention_policy_agree_and_a_body_emptied_otherwise_does_not(
    site: Site,
) -> None:
    head = site.store.evidence.chain_head()
    assert head is not None and site.store.checkpoints.advance(head.at_us) == head.seq
    # Everything received in the first hour, but the bodies current verdicts still name.
    cutoff = T0 + dt.timedelta(hours=1)
    pruned = site.store.retention.prune(
        retention_days=1, now_us=to_us(cutoff + dt.timedelta(days=1))
    )
    assert pruned is not None and pruned.reports > 20
    assert site.check().ok, site.check().text()
    # A body received after the cutoff, emptied as the retention would have, is still named.
    site.tamper("UPDATE reports SET body = ? WHERE report_id = 'dev-03-r7'", (b"",))
    # And a pruning written into the table alone excuses nothing: it is named too.
    site.tamper("INSERT INTO pruned_spans(seq, at_us, before_us, reports) VALUES (?, ?, ?, 1)",
                (head.seq + 1000, to_us(cutoff), to_us(T0 + dt.timedelta(days=1))))  # fmt: skip
    findings = site.check()
    assert findings.total == 2, findings.text()
    report, span = findings.found
    assert report.table == "reports" and "[report_id 'dev-03-r7']" in report.text()
    assert "the report body was changed" in report.problem
    assert (span.table, span.seq) == ("pruned_spans", None)
    assert f"[seq {head.seq + 1000}]" in span.text() and "was added outside" in span.problem


# --- the other logs ------------------------------------------------------------------------------


def test_an_unrevoked_waiver_is_named(site: Site) -> None:
    site.tamper("UPDATE waivers SET revoked_us = NULL WHERE waiver_id = 'w-1'")
    finding = _only(site.check())
    assert finding.table == "waivers" and "[waiver_id 'w-1']" in finding.text()
    assert finding.problem.startswith("is not revoked here, revoked at ")
    assert finding.seq == site.seq(chain.WAIVER, "w-1/4")


def test_an_extended_waiver_is_named_in_each_of_its_events(site: Site) -> None:
    site.tamper("UPDATE waivers SET expires_us = ? WHERE waiver_id = 'w-1'",
                (to_us(T0 + dt.timedelta(days=3650)),))  # fmt: skip
    findings = site.check()
    assert findings.total == 2, findings.text()  # its add and its revoke event
    assert {f.table for f in findings.found} == {"waiver_events"}
    assert all("expires_us is " in f.problem for f in findings.found)


def test_device_events_and_admin_entries_are_held_to_the_chain(site: Site) -> None:
    site.tamper("UPDATE device_events SET action = 'enrolled' WHERE action = 'revoked'")
    site.tamper("DELETE FROM audit_log WHERE entry_id = 2")
    findings = site.check()
    assert findings.total == 2, findings.text()
    tables = {f.table: f for f in findings.found}
    assert "action is 'enrolled' here, 'revoked' in the chain" in tables["device_events"].problem
    assert tables["audit_log"].problem.startswith("is missing")
    assert tables["audit_log"].seq == site.seq(chain.ADMIN, "2")


def test_an_edited_chain_entry_is_named_before_any_row(site: Site) -> None:
    seq = site.seq(chain.REPORT, "dev-04-r5")
    payload = bytes(site.one("SELECT payload FROM evidence_chain WHERE seq = ?", (seq,))[0])  # type: ignore[call-overload]
    site.tamper("UPDATE evidence_chain SET payload = ? WHERE seq = ?",
                (payload.replace(b'"1.4.2"', b'"1.4.3"', 1), seq))  # fmt: skip
    findings = site.check()
    assert [f.table for f in findings.found] == ["evidence_chain", "reports"], findings.text()
    assert "does not match its own hash" in findings.found[0].problem


# --- many findings -------------------------------------------------------------------------------


def test_only_the_first_findings_are_kept_and_every_one_is_counted(site: Site) -> None:
    site.tamper("UPDATE state_changes SET reason = 'edited' WHERE check_id = 'firewall'")
    edited = int(str(site.one("SELECT COUNT(*) FROM state_changes WHERE check_id = 'firewall'")[0]))
    for n in range(12):  # added rows spread over many ranges of keys
        site.tamper(
            "INSERT INTO state_changes(device_id, check_id, state, reason, since_us, report_id)"
            " VALUES (?, 'chat-backup', 'PASS', 'added', ?, 'dev-00-r0')",
            (f"dev-{n % 8:02d}", n + 1),
        )
    everything = site.check(limit=1000)
    assert everything.total == edited + 12, everything.text()
    assert len(everything.found) == everything.total
    assert sum(1 for f in everything.found if f.seq is None) == 12
    first = site.check(limit=3)
    assert first.total == everything.total
    assert first.found == everything.found[:3]
    assert "DISAGREE: " in first.verdict() and "the first 3 shown" in first.verdict()


# --- the command -------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    store = Store.open(config.database)
    try:
        # Checks of the default policy, which the data folder's collector judges by.
        write_busy_store(store, devices=4, rounds=6, later=(*CHECKS, "os-updates"))
    finally:
        store.close()
    return config.data_dir


def _check(data: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = collector_cli(["audit", "check", "--data", str(data), *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_audit_check_exits_0_when_the_tables_agree_and_1_naming_each_row_when_not(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _check(data, capsys, "--progress")
    assert code == 0, out + err
    assert out.startswith("AGREE: ") and "核对通过" in out
    assert "audit check: chain entries" in err
    target = load(data).database
    with unguarded(target) as db:
        db.execute("UPDATE state_changes SET state = 'PASS' WHERE state = 'FAIL'"
                   " AND device_id = 'dev-01'")  # fmt: skip
        db.execute("UPDATE reports SET body = ? WHERE report_id = 'dev-02-r3'", (b"edited",))
    code, out, _ = _check(data, capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[-1].startswith("DISAGREE: ") and "核对失败" in lines[-1]
    problems = [line for line in lines if line.startswith("problem: ")]
    assert len(problems) == len(lines) - 1 >= 2
    assert any("problem: reports row [report_id 'dev-02-r3']" in p for p in problems)
    assert any("problem: state_changes row [device 'dev-01'" in p for p in problems)
    # The run is in the audit log, like every admin command.
    store = Store.open(target)
    try:
        entry = store.admin.audit_entries()[-1]
        assert (entry.command, entry.outcome) == ("audit check", "ok")
        assert "disagree with the chain" in entry.message
    finally:
        store.close()


def test_audit_check_prints_each_time_in_the_company_s_time_zone(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As every other time the command line shows ('… 09:00:00 UTC' was printed in Chinese)."""
    with unguarded(load(data).database) as db:
        db.execute("UPDATE reports SET received_us = ? WHERE report_id = 'dev-02-r3'",
                   (to_us(T0),))  # fmt: skip
    for lang, local in (("zh_CN.UTF-8", "（2026-11-01 17:00:00 UTC+08:00）"),
                        ("C.UTF-8", " (2026-11-01 17:00:00 UTC+08:00)")):  # fmt: skip
        monkeypatch.setenv("LANG", lang)
        code, out, _ = _check(data, capsys)
        assert code == 1 and f"{to_us(T0)}{local}" in out, out
        assert "UTC)" not in out and "UTC）" not in out


@pytest.mark.sqlite_only  # only SQLite keeps bytes that are not UTF-8 in a text column
def test_text_that_is_not_utf8_typed_in_by_hand_is_told_as_an_edit(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite cannot read it back as text; this was told as a permissions problem ("run as the
    # collector's service account"), with the raw bytes printed to the terminal.
    with unguarded(load(data).database) as db:
        db.execute("UPDATE state_changes SET reason = CAST(x'ff8081' AS TEXT)"
                   " WHERE device_id = 'dev-01'")  # fmt: skip
    code, out, err = _check(data, capsys)
    assert code == 1 and out == ""
    assert "holds bytes that are not text in column reason" in err, err
    assert "restore devposture.db from your last backup" in err
    assert "service account" not in err and "\udcff" not in err and "\xff" not in err


def test_audit_check_on_a_folder_that_is_not_a_collector_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _check(tmp_path / "nowhere", capsys)
    assert code == 1 and out == ""
    assert err.startswith("devposture-collector: error: ") and "nowhere" in err


def test_audit_check_loads_neither_grpc_nor_cryptography(data: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, "audit", "check", "--data", str(data)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stdout
    loaded = sorted(m for m in result["modules"]
                    if any(m == r or m.startswith(r + ".") for r in SERVE_ONLY))  # fmt: skip
    assert loaded == []
