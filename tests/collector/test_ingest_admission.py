"""Admissions answered from memory (service.AdmissionCache), on both engines: what this
process changes holds for the very next call, what another process changes holds within the
documented bounds (the identity version is read at most every `recheck` seconds; a
certificate's first use elsewhere is seen within `max_age`), and nothing but ALLOWED is kept.
A fake clock stands in for time: no test here waits."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devposture.collector.agent_config import add_verdicts, verdict_templates
from devposture.collector.service import AdmissionCache, _Judging
from devposture.collector.store import CheckResult, DeviceRecord, Store
from devposture.collector.store.identity import Admission, Verdict
from devposture.collector.store.target import DatabaseTarget, SqliteTarget
from devposture.collector.tokens import new_token
from devposture.policy import default_policy
from devposture.policy.checks import CheckParameters
from devposture.v1 import devposture_pb2 as pb
from tests.databases import fresh_database

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
RECHECK = 0.25  # binary fractions: the fake clock adds up exactly
MAX_AGE = 64.0


class Clock:
    def __init__(self) -> None:
        self.now = 1024.0

    def __call__(self) -> float:
        return self.now


def _enrolled(tmp_path: Path) -> tuple[DatabaseTarget, Store]:
    """A database with device d1, its certificate s1 (generation 1) already in use."""
    target = fresh_database(tmp_path, "db.sqlite")
    store = Store.open(target)
    token = new_token()
    store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), 5)
    store.identity.enroll(token, NOW, DeviceRecord("d1", "s1", NOW + dt.timedelta(days=90)))
    assert store.identity.admit("d1", "s1", NOW).verdict is Verdict.ALLOWED
    return target, store


def _elsewhere(target: DatabaseTarget, statement: str) -> None:
    """Run identity work in another process (as the CLI or another collector would): nothing
    of this process learns of it except through the database."""
    where = str(target.path) if isinstance(target, SqliteTarget) else target.url
    code = (
        "import sys, datetime as dt\n"
        "from pathlib import Path\n"
        "from devposture.collector.store import Store\n"
        "from devposture.collector.store.target import SqliteTarget, PostgresTarget\n"
        "kind, where = sys.argv[1:3]\n"
        "store = Store.open(SqliteTarget(Path(where)) if kind == 'sqlite' else"
        " PostgresTarget(where))\n"
        "now = dt.datetime(2026, 12, 3, 9, 5, tzinfo=dt.UTC)\n"
        f"{statement}\n"
        "store.close()\n"
    )
    kind = "sqlite" if isinstance(target, SqliteTarget) else "postgresql"
    done = subprocess.run([sys.executable, "-c", code, kind, where], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _admitted(cache: AdmissionCache, reader: Store, device_id: str, serial: str) -> Admission:
    """What the service does: memory first, else read (and keep what may be kept)."""
    found = cache.get(device_id, serial)
    if found is not None:
        return found
    mark = cache.mark()
    read = reader.identity.admit(device_id, serial, NOW, read_only=True)
    if read is None:  # a first use or a clone: the writer would record it
        return Admission(Verdict.CLONE)
    cache.keep(device_id, serial, read, mark)
    return read


@dataclass
class Setup:
    target: DatabaseTarget
    store: Store
    reader: Store
    clock: Clock
    cache: AdmissionCache


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    target, store = _enrolled(tmp_path)
    reader = Store.open_reader(target)
    clock = Clock()
    cache = AdmissionCache(reader, recheck=RECHECK, max_age=MAX_AGE, clock=clock)
    yield Setup(target, store, reader, clock, cache)
    reader.close()
    store.close()


def test_an_allowed_device_is_answered_from_memory(setup: Setup) -> None:
    assert setup.cache.get("d1", "s1") is None
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    statements: list[str] = []
    setup.reader._db.trace(statements.append)
    assert setup.cache.get("d1", "s1") is not None
    setup.reader._db.trace(None)
    assert statements == []  # within `recheck`: not even the version is read
    setup.clock.now += RECHECK
    setup.reader._db.trace(statements.append)
    assert setup.cache.get("d1", "s1") is not None
    setup.reader._db.trace(None)
    assert len(statements) == 1 and "device_events" in statements[0], statements


def test_a_revocation_made_in_this_process_holds_for_the_next_call(setup: Setup) -> None:
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    other = Store.open(setup.target)  # the admin service's or a test's own connection
    try:
        assert other.identity.set_device_status("d1", "revoked", NOW, "laptop stolen")
    finally:
        other.close()
    assert setup.cache.get("d1", "s1") is None  # no time has passed
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.REVOKED


def test_a_revocation_by_another_process_holds_within_the_recheck_interval(setup: Setup) -> None:
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    _elsewhere(setup.target, "store.identity.set_device_status('d1', 'revoked', now, 'stolen')")
    # The documented bound: until the identity version is read again, memory answers.
    setup.clock.now += RECHECK / 2
    assert setup.cache.get("d1", "s1") is not None
    setup.clock.now += RECHECK / 2
    assert setup.cache.get("d1", "s1") is None
    refused = _admitted(setup.cache, setup.reader, "d1", "s1")
    assert refused.verdict is Verdict.REVOKED
    assert setup.cache.get("d1", "s1") is None  # a refusal is never kept


def test_a_newer_certificate_first_used_elsewhere_is_seen_within_max_age(setup: Setup) -> None:
    """A renewal is a device event (the version moves); the new certificate's first use is
    not. Presented here, the old certificate is a clone once the newer one was used: seen
    when the memory of it is `max_age` old at the latest."""
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    renewal = "store.identity.record_renewal('d1', 's2', now + dt.timedelta(days=90), now,"
    _elsewhere(setup.target, renewal + " action='renewed')")
    setup.clock.now += RECHECK
    assert setup.cache.get("d1", "s1") is None  # the renewal moved the version
    # s2 is not used yet:
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    _elsewhere(
        setup.target, "assert store.identity.admit('d1', 's2', now).verdict.value == 'allowed'"
    )
    setup.clock.now += RECHECK
    assert setup.cache.get("d1", "s1") is not None  # no event: memory still answers...
    setup.clock.now += MAX_AGE
    assert setup.cache.get("d1", "s1") is None  # ...until it is max_age old
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.CLONE
    # The newer certificate, presented here, is never answered from the older's memory.
    assert setup.cache.get("d1", "s2") is None


def test_an_admission_read_while_identities_changed_here_is_not_kept(setup: Setup) -> None:
    assert setup.cache.get("d1", "s1") is None
    mark = setup.cache.mark()
    read = setup.reader.identity.admit("d1", "s1", NOW, read_only=True)
    assert read is not None and read.verdict is Verdict.ALLOWED
    setup.store.identity.set_device_status("d1", "retired", NOW, "replaced")  # ends meanwhile
    setup.cache.keep("d1", "s1", read, mark)
    assert setup.cache.get("d1", "s1") is None


def test_another_device_s_changes_leave_what_is_known_of_this_one(setup: Setup) -> None:
    """A fleet enrolls, renews and first uses certificates all day: each such change drops
    what is known of its own device only, here or in another process."""
    token = new_token()
    setup.store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), 5)
    assert _admitted(setup.cache, setup.reader, "d1", "s1").verdict is Verdict.ALLOWED
    setup.store.identity.enroll(token, NOW, DeviceRecord("d2", "t1", NOW + dt.timedelta(days=9)))
    assert setup.store.identity.admit("d2", "t1", NOW).verdict is Verdict.ALLOWED  # first use
    assert setup.cache.get("d1", "s1") is not None
    _elsewhere(setup.target, "store.identity.set_device_status('d2', 'revoked', now, 'lost')")
    setup.clock.now += RECHECK
    assert setup.cache.get("d1", "s1") is not None
    # Read while another device changed here: kept; while this one changed: not.
    mark = setup.cache.mark()
    read = setup.reader.identity.admit("d1", "s1", NOW, read_only=True)
    assert read is not None
    setup.store.identity.record_renewal("d2", "t2", NOW, NOW, action="renewed")
    setup.cache.keep("d1", "s1", read, mark)
    assert setup.cache.get("d1", "s1") is not None


def test_acknowledgement_verdicts_are_those_add_verdicts_makes() -> None:
    """The acknowledgement's verdicts are copied as bytes encoded once per verdict: the same
    message as built field by field, in order, a check the policy no longer has left out."""
    policy = default_policy()
    params = CheckParameters.from_values({})
    judging = _Judging(policy, params, frozenset(), pb.AgentConfig(), verdict_templates(policy))
    checks = [c.check_id for c in policy.checks]
    for round_ in range(3):
        results = [CheckResult(c, ["PASS", "FAIL", "UNKNOWN"][(i + round_) % 3], f"why {i} 原因")
                   for i, c in enumerate(checks)] + [CheckResult("gone", "PASS", "")]  # fmt: skip
        built = pb.ReportAck(report_id="r")
        add_verdicts(judging.templates, results, built.verdicts)
        copied = pb.ReportAck(report_id="r")
        copied.MergeFromString(judging.verdict_bytes(results))
        assert copied == built
        assert len(copied.verdicts) == len(checks)
