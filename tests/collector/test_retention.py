"""Retention (`store.retention`, the policy's `retention_days`): report bodies past it are
emptied, nothing else is; the pruning is chained; the chain still verifies; an export of the
pruned period says what was deleted and when, and still catches a body deleted otherwise. On
both engines; times given as data."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from devposture.collector.datadir import initialize
from devposture.collector.evidence import bundle, chain, export, signing, verify
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.intake import record_of
from devposture.collector.service import CollectorService
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    database_errors,
)
from devposture.collector.store.base import to_us
from devposture.collector.store.target import DatabaseTarget
from devposture.collector.tokens import new_token
from devposture.collector.trust import Trust
from devposture.policy import DEFAULT_RETENTION_DAYS, PolicyError, default_policy, parse_policy
from devposture.policy import default_policy_text as policy_text
from devposture.policy.checks import evaluate
from tests.collector.bundle_members import members_of, resigned, written
from tests.databases import collector_database, fresh_database, raw
from tests.e2e.fleet import posture_report

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
DAY_US = 86_400_000_000


def _enroll(store: Store, device_id: str) -> None:
    token = new_token()
    store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, T0, DeviceRecord(device_id, "01", T0 + dt.timedelta(days=90)))


def _report(store: Store, device: str, at: dt.datetime) -> str:
    report_id = f"{device}-{to_us(at)}"
    store.reports.store_report(
        ReportRecord(report_id, device, at, at, "1", b"facts of " + report_id.encode(), "h",
                     "linux", "Debian", "12"),
        [CheckResult("firewall", "PASS", "on")],
    )  # fmt: skip
    return report_id


def _bodies(store: Store) -> dict[str, bytes]:
    return store.reports.report_bodies(store.reports.report_ids())


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path, "db.sqlite")


@pytest.fixture
def store(target: DatabaseTarget) -> Store:
    """d1 and d2 report daily for ten days; d3 reported once, on the first day (its only
    report is what its current verdicts name). A checkpoint is recorded after."""
    opened = Store.open(target)
    for device in ("d1", "d2", "d3"):
        _enroll(opened, device)
    for day in range(10):
        for device in ("d1", "d2"):
            _report(opened, device, T0 + day * DAY)
    _report(opened, "d3", T0)
    head = opened.evidence.chain_head()
    assert head is not None
    assert opened.checkpoints.advance(head.at_us) == head.seq
    return opened


def _prune_at(store: Store, moment: dt.datetime, days: int = 400) -> object:
    return store.retention.prune(retention_days=days, now_us=to_us(moment))


def test_the_policy_sets_the_retention_and_refuses_less_than_a_week() -> None:
    assert default_policy().retention_days == DEFAULT_RETENTION_DAYS == 400
    text = policy_text().replace("retention_days = 400", "retention_days = 30")
    assert parse_policy(text).retention_days == 30
    with pytest.raises(PolicyError) as refused:
        parse_policy(policy_text().replace("retention_days = 400", "retention_days = 3"))
    assert "retention_days" in str(refused.value.problems) and "at least 7" in str(
        refused.value.problems
    )


def test_bodies_past_the_retention_are_emptied_and_the_pruning_chained(store: Store) -> None:
    before = _bodies(store)
    # 400 days after day 9: every body received before day 9 is past the retention.
    pruned = _prune_at(store, T0 + 9 * DAY + 400 * DAY)
    assert pruned is not None
    after = _bodies(store)
    gone = sorted(r for r, body in after.items() if body == b"")
    assert gone == sorted(f"{d}-{to_us(T0 + k * DAY)}" for d in ("d1", "d2") for k in range(9))
    # d3's only report is current (its verdicts name it): kept; the rest unchanged.
    assert all(after[r] == before[r] for r in after if r not in gone)
    entries = store.evidence.chain_entries(1, store.evidence.chain_head().seq)  # type: ignore[union-attr]
    last = entries[-1]
    assert last.kind == chain.PRUNE and last.record()["reports"] == 18
    assert last.record()["before_us"] == to_us(T0 + 9 * DAY)
    previous = chain.GENESIS
    for entry in entries:  # the chain still links and every hash holds
        assert entry.prev_hash == previous and entry.recomputed() == entry.hash
        previous = entry.hash
    # Nothing more to prune at the same moment; a later report of d3 frees its first body.
    assert _prune_at(store, T0 + 9 * DAY + 400 * DAY) is None
    _report(store, "d3", T0 + 30 * DAY)
    assert _prune_at(store, T0 + 9 * DAY + 401 * DAY) is not None
    assert _bodies(store)[f"d3-{to_us(T0)}"] == b""


def test_nothing_is_pruned_past_the_latest_checkpoint(tmp_path: Path) -> None:
    opened = Store.open(fresh_database(tmp_path, "db.sqlite"))
    _enroll(opened, "d1")
    for day in range(3):
        _report(opened, "d1", T0 + day * DAY)
    assert _prune_at(opened, T0 + 500 * DAY) is None  # no checkpoint yet
    assert b"" not in _bodies(opened).values()


def test_only_emptying_a_body_gets_past_the_append_only_guard(
    store: Store, target: DatabaseTarget
) -> None:
    _prune_at(store, T0 + 409 * DAY)
    report_id = f"d1-{to_us(T0 + 9 * DAY)}"
    pruned_id = f"d1-{to_us(T0)}"
    refused = [
        ("UPDATE reports SET received_us = received_us + 1 WHERE report_id = ?", (report_id,)),
        ("UPDATE reports SET body = ? WHERE report_id = ?", (b"other", report_id)),
        ("UPDATE reports SET body = ?, agent_version = 'x' WHERE report_id = ?", (b"", report_id)),
        ("UPDATE reports SET body = ? WHERE report_id = ?", (b"back", pruned_id)),
        ("DELETE FROM reports WHERE report_id = ?", (report_id,)),
    ]  # fmt: skip
    other = raw(target)
    try:
        for sql, params in refused:
            with pytest.raises(database_errors(), match="reports are append-only"):
                other.execute(sql, params)
        assert other.execute("SELECT COUNT(*) FROM reports").fetchone()[0] == 21
    finally:
        other.close()


def _pruned_export(store: Store, tmp_path: Path) -> Path:
    """Prunes at T0 + 409 days, then exports from the chain's first entry to now: the
    period both pruning tests read, so each starts from the same genuine bundle."""
    first = store.evidence.chain_entries(1, 1)[0]
    start = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=first.at_us)
    _prune_at(store, T0 + 409 * DAY)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    out = export.export_bundle(store, default_policy(), tmp_path, start=start, end=end,
                               out=tmp_path / "pruned.zip")  # fmt: skip
    return out.path


def test_a_pruning_made_up_to_excuse_deleted_bodies_is_refused(
    store: Store, tmp_path: Path
) -> None:
    # Who holds the signing key rewrites pruned.jsonl: a pruning claimed at a seq of the
    # period (where the chain holds another entry), its own hash recomputed, the manifest
    # signed again. It verified: the record was checked against its own hash only. Now
    # against the chain's entry at its seq; and one deleting bodies received after it ran is
    # named as such, wherever its seq.
    members = members_of(_pruned_export(store, tmp_path))
    manifest = json.loads(members[bundle.MANIFEST])
    (line,) = members[bundle.PRUNED].splitlines()
    genuine = bundle.parse_entry(json.loads(line))
    record = json.loads(genuine.payload)
    record["before_us"] = record["at_us"] + DAY_US
    seq = manifest["chain"]["last_seq"] - 2  # within the period: the chain holds another there
    payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    made = dataclasses.replace(genuine, seq=seq, payload=payload)
    made = dataclasses.replace(made, hash=made.recomputed())
    members[bundle.PRUNED] = bundle.entry_jsonl(made)
    manifest["pruned"]["prunes"][0]["seq"] = seq
    members[bundle.MANIFEST] = json.dumps(manifest, sort_keys=True, indent=1).encode()
    forged = resigned(members, tmp_path, tmp_path / "forged.zip")
    public = signing.load_or_create(tmp_path).public_key()
    text = verify.verify_bundle(forged, public).text()
    assert f"the pruning seq {seq} in {bundle.PRUNED} is not the chain's entry" in text
    assert f"the pruning seq {seq} deletes bodies received up to" in text
    assert "NOT VERIFIED" in text


def test_an_export_of_a_pruned_period_says_so_and_still_verifies(
    store: Store, tmp_path: Path
) -> None:
    path = _pruned_export(store, tmp_path)
    key = signing.load_or_create(tmp_path).public_key()
    verdict = verify.verify_bundle(path, key)
    assert verdict.ok, verdict.text()
    assert "18 report bodies of this period were deleted under the retention policy" in (
        verdict.text()
    )
    members = members_of(path)
    page = members[bundle.HTML].decode("utf-8")
    assert "保留期删除" in page and "400" in page
    # A body deleted otherwise (one not covered by any pruning) is still caught.
    kept_line = next(line for line in members[bundle.REPORTS].splitlines()
                     if b"d1-" + str(to_us(T0 + 9 * DAY)).encode() in line)  # fmt: skip
    members[bundle.REPORTS] = members[bundle.REPORTS].replace(kept_line + b"\n", b"")
    tampered = written(members, tmp_path / "tampered.zip")
    text = verify.verify_bundle(tampered, key).text()
    assert f"(d1-{to_us(T0 + 9 * DAY)}) is missing: deleted" in text


def test_a_retired_devices_last_body_goes_at_the_next_pruning(store: Store) -> None:
    """d3 reported once, long ago: its only report is what its current verdicts name, so
    retention keeps it while the device is in service (its page and re-judging read it).
    Retired (replaced, returned), nothing reads its facts again: the next pruning deletes it,
    and the tables still answer to the chain. A revoked device's stays (an investigation)."""
    moment = T0 + 9 * DAY + 400 * DAY
    assert _prune_at(store, moment) is not None
    assert _bodies(store)[f"d3-{to_us(T0)}"] != b""  # kept: current, d3 in service
    assert store.identity.set_device_status("d2", "revoked", moment, "stolen")
    assert store.identity.set_device_status("d3", "retired", moment, "laptop returned")
    later = store.retention.prune(retention_days=400, now_us=to_us(moment + HOUR))
    assert later is not None and later.reports == 1
    bodies = _bodies(store)
    assert bodies[f"d3-{to_us(T0)}"] == b""
    assert bodies[f"d2-{to_us(T0 + 9 * DAY)}"] != b""  # d2's current: not yet past retention
    findings = table_disagreements(store)
    assert findings.ok, findings.text()


def test_re_judging_leaves_the_verdicts_of_a_pruned_last_report_as_they_were(
    tmp_path: Path,
) -> None:
    """A policy edit judges each device's latest report again. One whose body the retention
    policy deleted (a retired device's) has no facts left to judge: its verdicts stand as
    they were, instead of every check turning UNKNOWN "not reported" from an empty body."""
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    opened = Store.open(config.database)
    try:
        for device in ("kept", "gone"):
            _enroll(opened, device)
            report = posture_report(device, T0)
            record = record_of(report, device, T0, dt.timedelta(0))
            results = [CheckResult(c.check_id, v.state.value, v.reason)
                       for c, v in evaluate(report, T0)]  # fmt: skip
            opened.reports.store_reports([(record, results)])
        head = opened.evidence.chain_head()
        assert head is not None and opened.checkpoints.advance(head.at_us) == head.seq
        before = {(r.device_id, r.check_id): (r.state, r.reason)
                  for r in opened.reports.device_results() if r.device_id == "gone"}  # fmt: skip
        assert sum(state != "UNKNOWN" for state, _ in before.values()) >= 3  # a change shows
        assert opened.identity.set_device_status("gone", "retired", T0, "replaced")
        pruned = opened.retention.prune(retention_days=400, now_us=to_us(T0 + 401 * DAY))
        assert pruned is not None and pruned.reports == 1
        service = CollectorService(
            opened, Trust(config), dt.timedelta(days=14), default_policy(),
            network_hash_key=b"k" * 32, clock=lambda: T0 + 401 * DAY,
        )  # fmt: skip
        try:
            assert asyncio.run(service.apply_policy(default_policy())) == 1  # "kept" only
        finally:
            service.close()
        after = {(r.device_id, r.check_id): (r.state, r.reason)
                 for r in opened.reports.device_results() if r.device_id == "gone"}  # fmt: skip
        assert after == before
    finally:
        opened.close()
